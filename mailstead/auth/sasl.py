"""SASL mechanisms as sans-I/O state machines, shared by SMTP AUTH, IMAP AUTHENTICATE, POP3 AUTH.

The protocol does the framing (SMTP ``334``, IMAP/POP3 ``+ ``) and passes the client's line
as it came off the wire (base64 text, line ending stripped). This module does everything else:
base64 (strict), the ``*`` cancel, the ``=`` empty initial response, and the mechanism rules.

    mech = Plain(initial_response)                      # wire text or None
    result = mech.step(None)                            # first step: uses the initial response
    while isinstance(result, Challenge):
        send(prefix + result.encoded()); result = mech.step(read_line())
    authenticate(result.username, result.password)

A mechanism that checks a proof itself (SCRAM, :mod:`mailstead.auth.scram`) returns
:class:`KeysNeeded` and :class:`Verified` instead of :class:`Credentials`; the one loop that
drives every mechanism for the three protocols is :mod:`mailstead.auth.exchange`.

Every bad input raises :class:`SaslMalformed`, a well-formed message the server will not
accept :class:`SaslRefused` (both are :class:`~mailstead.core.errors.AuthError`); a ``*``
line raises :class:`SaslCancelled`. Nothing else escapes ``step`` (checked with hypothesis).
"""

from __future__ import annotations

import base64
import binascii
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from mailstead.auth.scram_keys import ScramKeys
from mailstead.core.errors import AuthError, MailsteadError

# A SASL exchange never needs more than this; longer input is an attack or a bug.
MAX_RESPONSE = 8192  # bytes of base64 on one line
MAX_FIELD = 1024  # bytes in one decoded user name or password


class SaslCancelled(MailsteadError):
    """The client sent ``*`` (RFC 4954 §4, RFC 9051 §6.2.2, RFC 5034 §4): not a failed login."""


class SaslMalformed(AuthError):
    """The client's message breaks the mechanism's grammar (a protocol error, not a guess)."""


class SaslRefused(AuthError):
    """A well-formed message the server refuses (a channel binding that does not match, a
    downgrade, acting as another identity): a failed login."""


class UnknownMechanism(AuthError):
    """A mechanism this server does not offer on this connection."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """Server challenge; the protocol sends ``encoded()`` behind its continuation prefix."""

    data: bytes

    def encoded(self) -> bytes:
        return encode_base64(self.data)


@dataclass(frozen=True, slots=True)
class Credentials:
    """The exchange is complete; check these with the Authenticator."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeysNeeded:
    """The mechanism needs the account's stored SCRAM keys (:meth:`Mechanism.provide_keys`)."""

    username: str


@dataclass(frozen=True, slots=True)
class Verified:
    """The client's proof was checked against the keys; on success the server proves
    itself with ``server_final``, sent as one more challenge (IMAP, SMTP and POP3 have no
    room for data with their success reply, RFC 4954 §4) that the client answers empty."""

    username: str
    proof_ok: bool
    server_final: bytes = field(repr=False)


Step = Challenge | Credentials | KeysNeeded | Verified


def encode_base64(data: bytes) -> bytes:
    return base64.b64encode(data)


def decode_base64(text: bytes) -> bytes:
    """Strict, canonical base64 (RFC 4648 §4); surrounding whitespace tolerated."""
    text = text.strip()
    if len(text) > MAX_RESPONSE:
        raise SaslMalformed("SASL response too long")
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SaslMalformed("invalid base64 in SASL response") from exc
    # binascii tolerates excess padding and non-zero trailing bits; only canonical passes.
    if base64.b64encode(data) != text:
        raise SaslMalformed("invalid base64 in SASL response")
    return data


def decode_response(line: bytes, *, initial: bool = False) -> bytes:
    """Decode one client response as sent on the wire.

    ``*`` cancels (RFC 4954 §4). In an initial response ``=`` stands for an empty one
    (RFC 4954 §4, RFC 4959 §3); in a later response an empty line is empty data.
    """
    text = line.strip()
    if text == b"*":
        raise SaslCancelled("authentication cancelled by client")
    if initial and text == b"=":
        return b""
    return decode_base64(text)


def _text(data: bytes, what: str) -> str:
    """UTF-8 user name or password; no NUL, not empty, bounded (SASLprep-lite)."""
    if not data:
        raise SaslMalformed(f"empty {what}")
    if len(data) > MAX_FIELD:
        raise SaslMalformed(f"{what} too long")
    if b"\x00" in data:
        raise SaslMalformed(f"NUL in {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SaslMalformed(f"{what} is not UTF-8") from exc


def same_identity(authzid: str, authcid: str) -> bool:
    """Equal addresses, the domain compared case-insensitively."""
    local_a, _, domain_a = authzid.rpartition("@")
    local_b, _, domain_b = authcid.rpartition("@")
    return local_a == local_b and domain_a.lower() == domain_b.lower()


class Mechanism(ABC):
    """Base for a server-side SASL mechanism; one instance per exchange."""

    name = ""

    def __init__(self, initial_response: bytes | None) -> None:
        self._initial = initial_response
        self._started = False
        self._done = False

    def step(self, client_data: bytes | None) -> Step:
        """Advance with the client's wire-form response (``None`` only for the first step)."""
        if self._done:
            raise SaslMalformed("SASL exchange already finished")
        try:
            if not self._started:
                self._started = True
                if client_data is not None:
                    raise SaslMalformed("first step takes no client data")
                if self._initial is None:
                    return self._first_challenge()
                return self._finish(self._advance(decode_response(self._initial, initial=True)))
            if client_data is None:
                raise SaslMalformed("SASL step without client data")
            return self._finish(self._advance(decode_response(client_data)))
        except (AuthError, SaslCancelled):
            self._done = True
            raise

    def provide_keys(self, keys: ScramKeys) -> Challenge:
        """Continue after :class:`KeysNeeded` with the account's keys (or mock ones)."""
        raise SaslMalformed(f"{self.name} takes no stored keys")

    def _finish(self, result: Step) -> Step:
        if isinstance(result, (Credentials, Verified)):
            self._done = True
        return result

    @abstractmethod
    def _first_challenge(self) -> Challenge:
        """What the server says first when the client sent no initial response."""

    @abstractmethod
    def _advance(self, data: bytes) -> Step:
        """Take the client's next (decoded) response."""


class Plain(Mechanism):
    """RFC 4616 PLAIN: ``[authzid] NUL authcid NUL passwd`` in one message."""

    name = "PLAIN"

    def _first_challenge(self) -> Challenge:
        return Challenge(b"")  # RFC 4616 §2: server sends an empty challenge

    def _advance(self, data: bytes) -> Credentials:
        parts = data.split(b"\x00")
        if len(parts) != 3:
            raise SaslMalformed("PLAIN message must have exactly three fields")
        authzid_raw, authcid_raw, passwd_raw = parts
        authcid = _text(authcid_raw, "user name")
        password = _text(passwd_raw, "password")
        # RFC 4616 §2: authzid may be empty (act as authcid); acting as someone else would
        # need a proxy-authorization policy we do not have, so only the same identity passes.
        if authzid_raw:
            authzid = _text(authzid_raw, "authorization identity")
            if not same_identity(authzid, authcid):
                raise SaslRefused("authorization identity differs from authentication identity")
        return Credentials(authcid, password)


class Login(Mechanism):
    """draft-murchison-sasl-login-00: ``Username:`` then ``Password:`` challenges."""

    name = "LOGIN"

    def __init__(self, initial_response: bytes | None) -> None:
        super().__init__(initial_response)
        self._username: str | None = None

    def _first_challenge(self) -> Challenge:
        return Challenge(b"Username:")

    def _advance(self, data: bytes) -> Challenge | Credentials:
        if self._username is None:
            # Some clients send the user name as initial response (SMTP "AUTH LOGIN dXNlcg==").
            self._username = _text(data, "user name")
            return Challenge(b"Password:")
        return Credentials(self._username, _text(data, "password"))
