"""CAPA (RFC 2449 §5): the capabilities, derived from the command table."""

from __future__ import annotations

from mailstead.pop3 import protocol as wire
from mailstead.pop3.protocol import Capability
from mailstead.pop3.session import Session
from mailstead.pop3.states import Authorization, Transaction


async def capa(s: Session, state: Authorization | Transaction, _: None) -> None:
    """RFC 2449 §5, in AUTHORIZATION and TRANSACTION alike."""
    s.send(wire.multiline(wire.ok("capability list follows"), capabilities(s, state)))


def capabilities(s: Session, state: Authorization | Transaction) -> list[bytes]:
    """What this connection offers now, in :class:`Capability` order.

    A capability that belongs to commands is listed while one of its commands is valid
    now or after login: TOP and UIDL show before login too, while USER, SASL, STLS and
    UTF8 are no longer listed once logged in, where their commands are refused. Every
    capability is listed only while :meth:`Session.offers` it, the predicate that also
    refuses its commands.
    """
    served = {spec.capability for spec in s.commands.values()}
    lines: list[bytes] = []
    for capability in Capability:
        if not s.offers(capability):
            continue
        if capability in served and not any(
            spec.capability is capability
            and (type(state) in spec.states or Transaction in spec.states)
            for spec in s.commands.values()
        ):
            continue
        lines.append(capability_line(s, capability))
    return lines


def capability_line(s: Session, capability: Capability) -> bytes:
    """The capability's tag and whatever parameters it has (RFC 2449 §6)."""
    match capability:
        case Capability.SASL:
            mechanisms = s.authenticator.mechanisms(s.stream.channel_bindings)
            return b"SASL " + " ".join(mechanisms).encode()
        case Capability.UTF8:
            return b"UTF8 USER"  # RFC 6856 §2: USER and PASS accept UTF-8 too
        case Capability.EXPIRE:
            # RFC 2449 §6.7: the server never removes messages on its own, whatever the
            # POP3 policy does with the ones a client deleted.
            return b"EXPIRE NEVER"
        case Capability.LOGIN_DELAY:
            return f"LOGIN-DELAY {s.config.login_delay}".encode()
        case Capability.IMPLEMENTATION:
            return b"IMPLEMENTATION mailstead"
        case _:
            return capability.value.encode()
