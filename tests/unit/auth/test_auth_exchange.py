"""The one SASL loop (auth/exchange.py) with a scripted client: what ends an exchange how."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import scramp

from mailstead.auth.authenticator import Authenticator, ScramPolicy
from mailstead.auth.exchange import authenticate
from mailstead.auth.passwords import PasswordPolicy, hash_password
from mailstead.auth.sasl import SaslCancelled, SaslMalformed, SaslRefused, UnknownMechanism
from mailstead.auth.scram_keys import derive_keys
from mailstead.auth.throttle import Throttle
from mailstead.core.errors import AuthError

FAST = PasswordPolicy(time_cost=1, memory_cost=64, parallelism=1)
BINDINGS = {"tls-server-end-point": b"\x07" * 32}


@dataclass
class Account:
    address: str
    password_hash: str
    scram_sha256: str | None
    disabled: bool = False


class Users:
    def __init__(self) -> None:
        self.bob = Account(
            "bob@example.org", hash_password("pw", FAST), derive_keys("pw", 4096).encode()
        )

    async def find_user(self, address: str) -> Account | None:
        return self.bob if address.lower() == self.bob.address else None


class Script:
    """A client as a function of the challenges it received so far."""

    def __init__(self, respond: Callable[[int, bytes], bytes]) -> None:
        self.respond = respond
        self.challenges: list[bytes] = []

    async def challenge(self, data: bytes) -> bytes:
        self.challenges.append(data)
        return self.respond(len(self.challenges), data)


def scram_script(client: scramp.ScramClient, last: bytes = b"") -> Script:
    def respond(n: int, data: bytes) -> bytes:
        if n == 1:
            client.set_server_first(data.decode())
            return base64.b64encode(client.get_client_final().encode())
        client.set_server_final(data.decode())
        return last

    return Script(respond)


def make(scram: bool = True) -> Authenticator:
    return Authenticator(Users(), Throttle(), FAST, scram=ScramPolicy() if scram else None)


async def run(
    auth: Authenticator,
    name: str,
    script: Script,
    client: scramp.ScramClient | None = None,
    bindings: dict[str, bytes] = BINDINGS,
):
    initial = base64.b64encode(client.get_client_first().encode()) if client else None
    return await authenticate(auth, name, initial, script, ip="192.0.2.1", bindings=bindings)


async def test_scram_plus_logs_in_and_names_its_binding() -> None:
    client = scramp.ScramClient(
        ["SCRAM-SHA-256-PLUS"],
        "bob@example.org",
        "pw",
        channel_binding=("tls-server-end-point", BINDINGS["tls-server-end-point"]),
    )
    login = await run(make(), "scram-sha-256-plus", scram_script(client), client)
    assert login.user.address == "bob@example.org"
    assert login.describe() == "SCRAM-SHA-256-PLUS tls-server-end-point"


async def test_answer_to_the_server_final_must_be_empty() -> None:
    client = scramp.ScramClient(["SCRAM-SHA-256"], "bob@example.org", "pw")
    with pytest.raises(SaslMalformed):
        await run(make(), "SCRAM-SHA-256", scram_script(client, last=b"Zm9v"), client)
    client = scramp.ScramClient(["SCRAM-SHA-256"], "bob@example.org", "pw")
    with pytest.raises(SaslCancelled):
        await run(make(), "SCRAM-SHA-256", scram_script(client, last=b"*"), client)


async def test_wrong_password_never_gets_the_server_final() -> None:
    client = scramp.ScramClient(["SCRAM-SHA-256"], "bob@example.org", "nope")
    script = scram_script(client)
    with pytest.raises(AuthError) as failed:
        await run(make(), "SCRAM-SHA-256", script, client)
    assert type(failed.value) is AuthError and len(script.challenges) == 1


async def test_what_is_offered_decides() -> None:
    script = Script(lambda n, data: b"*")
    with pytest.raises(UnknownMechanism):  # SCRAM off
        await run(make(scram=False), "SCRAM-SHA-256", script)
    with pytest.raises(UnknownMechanism):  # no binding on this connection
        await run(make(), "SCRAM-SHA-256-PLUS", script, bindings={})
    with pytest.raises(UnknownMechanism):
        await run(make(), "CRAM-MD5", script)


async def test_plain_goes_through_the_same_loop() -> None:
    script = Script(lambda n, data: base64.b64encode(b"\0bob@example.org\0pw"))
    login = await run(make(), "PLAIN", script)
    assert login.describe() == "PLAIN" and script.challenges == [b""]
    refused = Script(lambda n, data: base64.b64encode(b"eve@example.org\0bob@example.org\0pw"))
    with pytest.raises(SaslRefused):
        await run(make(), "PLAIN", refused)
