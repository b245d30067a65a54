"""One certificate order, start to finish, with certbot's ``acme`` library (RFC 8555).

The library is synchronous (requests), so :func:`issue_certificate` blocks: the renewal
loop runs it in a worker thread, never on the event loop. Steps: find or create the
account (§7.3), place an order for the names (§7.4), answer one challenge per pending
authorization with the first type of ``[acme] challenges`` the server offers (§7.5.1),
wait for the authorizations and finalize with a CSR for a fresh key (§7.4), download the
chain and check it really is for that key and those names.

Every failure comes out as one :class:`ACMEError` whose message is one line a person can
act on; the library's exceptions and the ACME server's problem documents are turned into
it here.
"""

from __future__ import annotations

import datetime
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import requests
from acme import challenges, client, crypto_util, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.b64 import b64encode
from josepy.errors import DeserializationError
from josepy.jwa import ES256
from josepy.jwk import JWKEC

from mailstead.acme.challenges import TOKEN_RE, PendingChallenges
from mailstead.acme.files import certificate_names, private_pem
from mailstead.config.schema import ChallengeType
from mailstead.core.errors import MailsteadError

USER_AGENT = "mailstead"
#: Seconds for one HTTP request to the ACME server.
NETWORK_TIMEOUT = 30
#: The whole order: validations and finalization together.
ORDER_DEADLINE = datetime.timedelta(seconds=180)


class ACMEError(MailsteadError):
    """Obtaining the certificate failed; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What to ask for, and from whom."""

    directory: str
    names: Sequence[str]
    challenge_types: Sequence[ChallengeType]
    contact: str = ""
    ca_bundle: Path | None = None


@dataclass(frozen=True, slots=True)
class Issued:
    chain_pem: bytes
    key_pem: bytes
    not_after: datetime.datetime


class _TLSALPN01Response(challenges.KeyAuthorizationChallengeResponse):
    """RFC 8737 §3: the client's answer is an empty object, as for HTTP-01. The library
    no longer ships a TLS-ALPN-01 class; this one only serializes the answer."""

    typ = "tls-alpn-01"


def issue_certificate(
    request: OrderRequest, account_key: ec.EllipticCurvePrivateKey, pending: PendingChallenges
) -> Issued:
    """Obtain a certificate for ``request.names`` (blocking). Raises :class:`ACMEError`."""
    try:
        return _issue(request, account_key, pending)
    except ACMEError:
        raise
    except errors.ValidationError as exc:
        raise ACMEError(f"validation failed: {_validation_problems(exc)}") from None
    except errors.TimeoutError:
        raise ACMEError("the ACME server did not finish the order in time") from None
    except messages.Error as exc:
        raise ACMEError(f"the ACME server refused: {_one_line(str(exc))}") from None
    except requests.exceptions.SSLError as exc:
        raise ACMEError(f"cannot verify the ACME server's certificate ({_one_line(str(exc))});"
                        " set [acme] ca_bundle for a private CA") from None
    except requests.exceptions.RequestException as exc:
        raise ACMEError(f"cannot reach the ACME server at {request.directory}: "
                        f"{_one_line(str(exc))}") from None
    except (errors.Error, ValueError, KeyError, TypeError, DeserializationError) as exc:
        raise ACMEError(f"unexpected answer from the ACME server: {type(exc).__name__}: "
                        f"{_one_line(str(exc))}") from None


def _issue(
    request: OrderRequest, account_key: ec.EllipticCurvePrivateKey, pending: PendingChallenges
) -> Issued:
    jwk = JWKEC(key=account_key)
    # requests takes a CA bundle path where the library passes ``verify_ssl`` through.
    verify = typing.cast(bool, str(request.ca_bundle)) if request.ca_bundle else True
    net = client.ClientNetwork(jwk, alg=ES256, verify_ssl=verify,
                               user_agent=USER_AGENT, timeout=NETWORK_TIMEOUT)
    acme = client.ClientV2(client.ClientV2.get_directory(request.directory, net), net)
    _find_or_create_account(acme, request.contact)

    cert_key = ec.generate_private_key(ec.SECP256R1())
    key_pem = private_pem(cert_key)
    csr_pem = crypto_util.make_csr(key_pem, list(request.names))
    order = acme.new_order(csr_pem)
    deadline = datetime.datetime.now() + ORDER_DEADLINE
    thumbprint = b64encode(jwk.thumbprint()).decode()
    answered: list[tuple[ChallengeType, str]] = []
    try:
        for authz in order.authorizations:
            if authz.body.status == messages.STATUS_VALID:
                continue  # validated earlier and still valid (RFC 8555 §7.1.4)
            name = authz.body.identifier.value
            challb, kind, token = _choose(authz.body.challenges, request.challenge_types, name)
            key_authorization = f"{token}.{thumbprint}"  # RFC 8555 §8.1
            if kind == "http-01":
                pending.add_http01(token, key_authorization)
                answered.append((kind, token))
            else:
                pending.add_tls_alpn01(name, key_authorization)
                answered.append((kind, name))
            response = (challb.chall.response(jwk) if kind == "http-01"
                        else _TLSALPN01Response(key_authorization=key_authorization))
            acme.answer_challenge(challb, response)
        order = acme.poll_authorizations(order, deadline)
    finally:
        for kind, what in answered:
            if kind == "http-01":
                pending.remove_http01(what)
            else:
                pending.remove_tls_alpn01(what)
    order = acme.finalize_order(order, deadline)
    if not order.fullchain_pem:
        raise ACMEError("the ACME server issued no certificate")
    chain_pem = order.fullchain_pem.encode()
    return Issued(chain_pem, key_pem, _check_chain(chain_pem, cert_key, request.names))


def _find_or_create_account(acme: client.ClientV2, contact: str) -> None:
    """RFC 8555 §7.3: registering a known key answers 200 with the account's URL."""
    registration = messages.NewRegistration.from_data(
        email=contact or None, terms_of_service_agreed=True)
    try:
        acme.new_account(registration)
    except errors.ConflictError as exc:
        acme.net.account = messages.RegistrationResource(
            uri=exc.location, body=messages.Registration())


def _choose(
    offered: Sequence[messages.ChallengeBody], preference: Sequence[ChallengeType], name: str
) -> tuple[messages.ChallengeBody, ChallengeType, str]:
    """The first challenge type of ``preference`` the server offers for ``name``."""
    by_type: dict[str, tuple[messages.ChallengeBody, str]] = {}
    for challb in offered:
        fields = challb.to_partial_json()
        token = fields.get("token")
        kind = fields.get("type")
        if isinstance(kind, str) and isinstance(token, str) and TOKEN_RE.match(token):
            by_type.setdefault(kind, (challb, token))
    for kind in preference:
        if kind in by_type:
            challb, token = by_type[kind]
            return challb, kind, token
    raise ACMEError(f"the ACME server offers none of the challenges {', '.join(preference)} "
                    f"for {name} (it offers {', '.join(sorted(by_type)) or 'nothing usable'})")


def _check_chain(
    chain_pem: bytes, key: ec.EllipticCurvePrivateKey, names: Sequence[str]
) -> datetime.datetime:
    """The chain must start with a certificate for our key covering every name."""
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise ACMEError(f"the issued certificate cannot be read: {exc}") from None
    leaf = chain[0]
    if leaf.public_key() != key.public_key():
        raise ACMEError("the issued certificate is not for the key of the request")
    missing = {name.lower() for name in names} - certificate_names(leaf)
    if missing:
        raise ACMEError(f"the issued certificate does not cover {', '.join(sorted(missing))}")
    return leaf.not_valid_after_utc


def _validation_problems(exc: errors.ValidationError) -> str:
    problems = []
    for authz in exc.failed_authzrs:
        for challb in authz.body.challenges:
            if challb.error is not None:
                detail = challb.error.detail or challb.error.typ
                problems.append(f"{authz.body.identifier.value}: {_one_line(detail)}")
    return "; ".join(problems) or "the ACME server gave no reason"


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
