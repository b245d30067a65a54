"""The one SASL loop of SMTP AUTH, IMAP AUTHENTICATE and POP3 AUTH.

A front end gives the mechanism name, the initial response as sent (SASL-IR, RFC 4959;
SMTP and POP3 have had one from the start), its channel bindings, and a
:class:`SaslChannel` that sends a challenge behind the protocol's prefix (``334``, ``+``)
and reads the answer under the protocol's limits. It gets back a :class:`Login`, or one of:

- :class:`~mailstead.auth.sasl.UnknownMechanism`: not offered on this connection;
- :class:`~mailstead.auth.sasl.SaslCancelled`: the client sent ``*``;
- :class:`~mailstead.auth.sasl.SaslMalformed`: a message broke the mechanism's grammar;
- :class:`~mailstead.core.errors.AuthThrottled`: too many failures, try later;
- :class:`~mailstead.core.errors.AuthError` (the others): authentication failed.

Each front end turns these into its own replies in one place; the mechanisms, the
throttle and the log lines are the same for all three.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from mailstead.auth.authenticator import Authenticator, ScramLookup, UserRecord
from mailstead.auth.sasl import (
    Challenge,
    Credentials,
    KeysNeeded,
    Login,
    Mechanism,
    Plain,
    SaslMalformed,
    UnknownMechanism,
    Verified,
    decode_response,
)
from mailstead.auth.scram import SCRAM_PLUS, ScramSha256


class SaslChannel(Protocol):
    async def challenge(self, data: bytes) -> bytes:
        """Send ``data`` (raw; the channel base64-encodes it) as a challenge; return the
        client's next line, line ending stripped, still base64 (or ``*``)."""
        ...


@dataclass(frozen=True, slots=True)
class SaslLogin:
    """A successful exchange: the account, and how it logged in (for the log line)."""

    user: UserRecord
    mechanism: str
    channel_binding: str | None = None

    def describe(self) -> str:
        """``"SCRAM-SHA-256-PLUS tls-server-end-point"`` / ``"PLAIN"``, for log lines."""
        if self.channel_binding:
            return f"{self.mechanism} {self.channel_binding}"
        return self.mechanism


def start_mechanism(
    name: str,
    initial_response: bytes | None,
    *,
    offered: tuple[str, ...],
    bindings: Mapping[str, bytes],
) -> Mechanism:
    """The mechanism ``name`` (case-insensitive, RFC 4422 §3.1) if it is ``offered``."""
    upper = name.upper()
    if upper not in offered:
        raise UnknownMechanism(f"unsupported SASL mechanism {name[:40]!r}")
    match upper:
        case "PLAIN":
            return Plain(initial_response)
        case "LOGIN":
            return Login(initial_response)
        case "SCRAM-SHA-256" | "SCRAM-SHA-256-PLUS":
            return ScramSha256(initial_response, plus=upper == SCRAM_PLUS, bindings=bindings)
        case _:
            raise UnknownMechanism(f"unsupported SASL mechanism {name[:40]!r}")


async def authenticate(
    authenticator: Authenticator,
    name: str,
    initial_response: bytes | None,
    channel: SaslChannel,
    *,
    ip: str,
    bindings: Mapping[str, bytes],
) -> SaslLogin:
    """Run one exchange to its end (see the module docstring for what it raises)."""
    mechanism = start_mechanism(
        name, initial_response, offered=authenticator.mechanisms(bindings), bindings=bindings
    )
    lookup: ScramLookup | None = None
    result = mechanism.step(None)
    while True:
        match result:
            case Challenge(data=data):
                result = mechanism.step(await channel.challenge(data))
            case Credentials(username=username, password=password):
                user = await authenticator.authenticate(username, password, ip)
                return SaslLogin(user, mechanism.name)
            case KeysNeeded(username=username):
                lookup = await authenticator.scram_begin(username, ip)
                result = mechanism.provide_keys(lookup.keys)
            case Verified(proof_ok=proof_ok, server_final=server_final):
                if lookup is None:  # cannot happen: a mechanism verifies only with keys
                    raise SaslMalformed("SCRAM proof checked without stored keys")
                user = await authenticator.scram_end(lookup, proof_ok, ip)
                # RFC 5802 §5: the server proves it knows the keys; the client answers
                # with an empty response (RFC 4954 §4) or cancels.
                if decode_response(await channel.challenge(server_final)) != b"":
                    raise SaslMalformed("non-empty response to the SCRAM server-final")
                binding = mechanism.binding if isinstance(mechanism, ScramSha256) else None
                return SaslLogin(user, mechanism.name, binding)
