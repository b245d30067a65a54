"""In-memory accounts and blobs behind the JMAP endpoints, for the HTTP tests."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mailstead.auth.authenticator import Authenticator, UserRecord
from mailstead.auth.passwords import hash_password
from mailstead.auth.throttle import Throttle, ThrottlePolicy
from mailstead.http.jmap.app import JMAPServices
from mailstead.http.jmap.dispatch import Methods
from mailstead.http.jmap.session import Capabilities
from mailstead.http.jmap.standard import Limits
from mailstead.testing.server import TEST_PASSWORD_POLICY

MAIL = "urn:ietf:params:jmap:mail"


@dataclass(frozen=True)
class User:
    address: str
    password_hash: str
    disabled: bool = False
    scram_sha256: str | None = None


class Users:
    def __init__(self, passwords: Mapping[str, str]) -> None:
        self.users = {
            address: User(address, hash_password(password, TEST_PASSWORD_POLICY))
            for address, password in passwords.items()
        }

    async def find_user(self, address: str) -> UserRecord | None:
        return self.users.get(address.lower())


@dataclass
class Blobs:
    """Blobs per account, named by their content (as the store does)."""

    held: dict[tuple[str, str], tuple[bytes, str]] = field(default_factory=dict)

    async def upload(self, user: UserRecord, data: bytes, type: str) -> str:
        blob_id = "B" + hashlib.sha256(data).hexdigest()[:24]
        self.held[(user.address, blob_id)] = (data, type)
        return blob_id

    async def download(self, user: UserRecord, blob_id: str, account_id: str | None = None
                       ) -> bytes | None:
        held = self.held.get((user.address, blob_id))
        return None if held is None else held[0]


@dataclass
class World:
    """What the services read, changeable by a test."""

    state: str = "st1"
    mail_capability: dict[str, Any] = field(default_factory=lambda: {"maxMailboxDepth": 10})

    def capabilities(self, user: UserRecord) -> tuple[Capabilities, Capabilities]:
        return {MAIL: {}}, {MAIL: self.mail_capability}

    async def state_of(self, user: UserRecord) -> str:
        return self.state


def account_id_of(user: UserRecord) -> str:
    return "A" + hashlib.sha256(user.address.encode()).hexdigest()[:12]


def services(
    methods: Methods | None = None,
    *,
    limits: Limits | None = None,
    allow_plaintext: bool = False,
    world: World | None = None,
    blobs: Blobs | None = None,
    throttle: Throttle | None = None,
    users: Users | None = None,
) -> JMAPServices:
    world = world or World()
    users = users or Users(
        {"alice@example.org": "alice's password", "bob@example.org": "bob's password"}
    )
    throttle = throttle or Throttle(ThrottlePolicy(base_delay=0.0))
    return JMAPServices(
        authenticator=Authenticator(users, throttle, TEST_PASSWORD_POLICY),
        methods=methods or Methods(),
        blobs=blobs or Blobs(),
        account_id_of=account_id_of,
        capabilities=world.capabilities,
        state=world.state_of,
        limits=limits or Limits(),
        allow_plaintext=allow_plaintext,
    )
