"""SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677) as a sans-I/O SASL mechanism.

The exchange, after the protocol's framing is taken off::

    C: n,,n=user,r=<cnonce>                     client-first (gs2 header + bare)
    S: r=<cnonce><snonce>,s=<salt>,i=<count>    server-first, after the stored keys are read
    C: c=<base64 gs2 header + binding>,r=<cnonce><snonce>,p=<proof>
    S: v=<server signature>                     server-final, a last challenge answered empty

The mechanism asks for the account's keys with :class:`~mailstead.auth.sasl.KeysNeeded`
(the store read is the driver's business, :mod:`mailstead.auth.exchange`), and reports the
checked proof with :class:`~mailstead.auth.sasl.Verified`; throttling, the log line and the
answer for an unknown account belong to the Authenticator.

Channel binding (RFC 5802 §6, RFC 5056): the gs2 flag says what the client does.

- ``n``: the client does not bind. Accepted everywhere.
- ``y``: the client could bind but believes the server cannot. If this connection offers
  -PLUS, someone removed it from the list the client saw: a downgrade, refused.
- ``p=<type>``: the client binds with ``<type>``; only with the -PLUS mechanism, and only
  to a type this connection has (``bindings``: see :mod:`mailstead.net.tls`).

Every comparison of secret or attacker-chosen data with expected data is constant-time
(:func:`hmac.compare_digest`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from enum import Enum, auto

from mailstead.auth.sasl import (
    MAX_FIELD,
    Challenge,
    KeysNeeded,
    Mechanism,
    SaslMalformed,
    SaslRefused,
    Step,
    Verified,
    same_identity,
)
from mailstead.auth.scram_keys import ScramKeys, hmac_sha256

SCRAM = "SCRAM-SHA-256"
SCRAM_PLUS = "SCRAM-SHA-256-PLUS"

MAX_NONCE = 256  # characters of a client nonce; ours is 32, common clients send 18 to 48
_SERVER_NONCE_BYTES = 24  # 192 random bits, 32 characters of URL-safe base64
_PROOF_BYTES = 32  # SHA-256
_CB_NAME = re.compile(r"[A-Za-z0-9.-]{1,64}")  # RFC 5802 §7 cb-name
_ATTRIBUTE = re.compile(r"[A-Za-z]=")


class _Stage(Enum):
    CLIENT_FIRST = auto()
    KEYS = auto()
    CLIENT_FINAL = auto()
    DONE = auto()


def _utf8(data: bytes) -> str:
    if b"\x00" in data:
        raise SaslMalformed("NUL in SCRAM message")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SaslMalformed("SCRAM message is not UTF-8") from exc


def _saslname(value: str, what: str) -> str:
    """RFC 5802 §7 saslname: ``=2C`` is ``,`` and ``=3D`` is ``=``; any other ``=`` is bad."""
    if not value or len(value.encode("utf-8")) > MAX_FIELD:
        raise SaslMalformed(f"SCRAM {what} empty or too long")
    if re.search(r"=(?!2C|3D)", value):
        raise SaslMalformed(f"bad escape in SCRAM {what}")
    return value.replace("=2C", ",").replace("=3D", "=")


def _nonce(value: str) -> str:
    """RFC 5802 §7 ``printable``: ASCII 0x21-0x7E except ``,`` (which cannot occur here)."""
    if not 0 < len(value) <= MAX_NONCE:
        raise SaslMalformed("SCRAM client nonce empty or too long")
    if any(not 0x21 <= ord(c) <= 0x7E for c in value):
        raise SaslMalformed("SCRAM nonce has characters outside printable ASCII")
    return value


def _attribute(part: str, name: str) -> str:
    if not part.startswith(name + "="):
        raise SaslMalformed(f"SCRAM message lacks its {name}= attribute")
    return part[len(name) + 1 :]


def _extensions(parts: list[str]) -> None:
    """Optional extensions (RFC 5802 §7): ``attr=value`` each; none is understood, so
    they are ignored once their form is checked. ``m=`` is handled by the caller."""
    for part in parts:
        if not _ATTRIBUTE.match(part) or len(part) < 3:
            raise SaslMalformed("malformed SCRAM extension")


def _b64(value: str, what: str) -> bytes:
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SaslMalformed(f"invalid base64 in SCRAM {what}") from exc
    if base64.b64encode(data).decode("ascii") != value:
        raise SaslMalformed(f"non-canonical base64 in SCRAM {what}")
    return data


class ScramSha256(Mechanism):
    """One server-side SCRAM-SHA-256[-PLUS] exchange.

    ``bindings`` are the channel bindings this connection has (type name to data), empty
    on a connection without TLS; the server offers -PLUS exactly when it is not empty.
    """

    def __init__(
        self,
        initial_response: bytes | None,
        *,
        plus: bool,
        bindings: Mapping[str, bytes],
        server_nonce: str | None = None,
    ) -> None:
        super().__init__(initial_response)
        self.name = SCRAM_PLUS if plus else SCRAM
        self._plus = plus
        self._bindings = dict(bindings)
        self._snonce = server_nonce or secrets.token_urlsafe(_SERVER_NONCE_BYTES)
        self._stage = _Stage.CLIENT_FIRST
        self.binding: str | None = None  # the channel binding type used, once known
        self._username = ""
        self._gs2_header = b""
        self._cbind_data = b""
        self._client_first_bare = ""
        self._nonce = ""
        self._server_first = ""
        self._keys: ScramKeys | None = None

    def _first_challenge(self) -> Challenge:
        return Challenge(b"")  # RFC 5802 §5: the client speaks first

    def _advance(self, data: bytes) -> Step:
        match self._stage:
            case _Stage.CLIENT_FIRST:
                return self._client_first(_utf8(data))
            case _Stage.CLIENT_FINAL:
                return self._client_final(_utf8(data))
            case _:
                raise SaslMalformed("unexpected SCRAM message")

    # -- client-first ------------------------------------------------------------------------
    def _client_first(self, text: str) -> KeysNeeded:
        fields = text.split(",", 2)
        if len(fields) != 3:
            raise SaslMalformed("SCRAM client-first lacks the gs2 header")
        flag, authzid_field, bare = fields
        self._check_binding_flag(flag)
        self._gs2_header = f"{flag},{authzid_field},".encode()
        parts = bare.split(",")
        if parts[0].startswith("m="):
            # RFC 5802 §5.1: a mandatory extension we cannot know; fail the exchange.
            raise SaslMalformed("unsupported mandatory SCRAM extension")
        if len(parts) < 2:
            raise SaslMalformed("SCRAM client-first lacks n= or r=")
        self._username = _saslname(_attribute(parts[0], "n"), "user name")
        self._nonce = _nonce(_attribute(parts[1], "r")) + self._snonce
        _extensions(parts[2:])
        if authzid_field:
            # RFC 5802 §5.1 a=: acting as someone else needs a proxy policy we do not have.
            authzid = _saslname(_attribute(authzid_field, "a"), "authorization identity")
            if not same_identity(authzid, self._username):
                raise SaslRefused("authorization identity differs from authentication identity")
        self._client_first_bare = bare
        self._stage = _Stage.KEYS
        return KeysNeeded(self._username)

    def _check_binding_flag(self, flag: str) -> None:
        """RFC 5802 §6: which gs2 flag fits which mechanism on this connection."""
        if flag == "n":
            if self._plus:
                raise SaslRefused("SCRAM-SHA-256-PLUS without channel binding")
            return
        if flag == "y":
            if self._plus:
                raise SaslRefused("SCRAM-SHA-256-PLUS without channel binding")
            if self._bindings:
                # The client could bind and thinks we cannot; we advertised -PLUS here.
                raise SaslRefused("channel binding downgrade: client saw no -PLUS mechanism")
            return
        if not flag.startswith("p="):
            raise SaslMalformed("bad gs2 channel binding flag")
        name = flag[2:]
        if not _CB_NAME.fullmatch(name):
            raise SaslMalformed("bad channel binding type name")
        if not self._plus:
            raise SaslRefused("channel binding requested with non-PLUS SCRAM-SHA-256")
        data = self._bindings.get(name)
        if data is None:
            raise SaslRefused(f"channel binding type {name!r} not available here")
        self.binding = name
        self._cbind_data = data

    # -- server-first ------------------------------------------------------------------------
    def provide_keys(self, keys: ScramKeys) -> Challenge:
        if self._stage is not _Stage.KEYS:
            raise SaslMalformed("SCRAM keys provided out of turn")
        self._keys = keys
        salt = base64.b64encode(keys.salt).decode("ascii")
        self._server_first = f"r={self._nonce},s={salt},i={keys.iterations}"
        self._stage = _Stage.CLIENT_FINAL
        return Challenge(self._server_first.encode("ascii"))

    # -- client-final ------------------------------------------------------------------------
    def _client_final(self, text: str) -> Verified:
        keys = self._keys
        if keys is None:  # cannot happen: this stage begins in provide_keys
            raise SaslMalformed("SCRAM client-final before the server-first")
        cut = text.rfind(",p=")
        if cut < 0:
            raise SaslMalformed("SCRAM client-final lacks the proof")
        without_proof = text[:cut]
        proof = _b64(text[cut + 3 :], "proof")
        if len(proof) != _PROOF_BYTES:
            raise SaslMalformed("SCRAM proof of the wrong length")
        parts = without_proof.split(",")
        if len(parts) < 2:
            raise SaslMalformed("SCRAM client-final lacks c= or r=")
        channel_binding = _b64(_attribute(parts[0], "c"), "channel binding")
        nonce = _attribute(parts[1], "r")
        _extensions(parts[2:])
        if not hmac.compare_digest(nonce.encode(), self._nonce.encode()):
            raise SaslRefused("SCRAM nonce does not match")
        # RFC 5802 §7: c= carries the gs2 header, and with p= the binding data too.
        expected = self._gs2_header + (self._cbind_data if self.binding else b"")
        if not hmac.compare_digest(channel_binding, expected):
            raise SaslRefused("SCRAM channel binding does not match this connection")
        auth_message = ",".join(
            (self._client_first_bare, self._server_first, without_proof)
        ).encode("utf-8")
        client_signature = hmac_sha256(keys.stored_key, auth_message)
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        ok = hmac.compare_digest(hashlib.sha256(client_key).digest(), keys.stored_key)
        server_signature = hmac_sha256(keys.server_key, auth_message)
        self._stage = _Stage.DONE
        final = b"v=" + base64.b64encode(server_signature) if ok else b""
        return Verified(self._username, ok, final)
