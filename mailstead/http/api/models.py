"""What the admin API reads and writes: pydantic models, and how store records become them.

Request models refuse unknown members (a misspelt field is an error, not a silent
default) and bound every string, so a request cannot make the server hold more than its
body limit. Response models leave out what must never leave the server: password hashes,
token hashes, private keys.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from mailstead.admin.importer import ImportReport
from mailstead.admin.service import NewToken, QueuedDetail, SetupResult
from mailstead.core.types import Pop3Policy, SendAs
from mailstead.delivery.dkim import DKIMKey
from mailstead.store.models import (
    Alias,
    ApiToken,
    AuditRecord,
    Domain,
    Group,
    Mailbox,
    QueuedMessage,
    User,
)

#: An address, a domain or a name in a request: longer than any real one (RFC 5321 paths
#: are at most 256 octets).
Name = Annotated[str, Field(min_length=1, max_length=320)]
Password = Annotated[str, Field(min_length=1, max_length=1024)]
#: Most targets of an alias or members of a group one request may set.
MAX_LIST = 1000


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DomainIn(_Request):
    name: Name = Field(description="the domain to accept mail for", examples=["example.org"])


class UserIn(_Request):
    address: Name = Field(description="the new account; its domain must exist",
                          examples=["bob@example.org"])
    password: Password = Field(description="the account's password (the password policy "
                               "applies)")
    quota: int = Field(0, ge=0, description="storage quota in octets, 0 = unlimited")


class PasswordIn(_Request):
    password: Password


class QuotaIn(_Request):
    quota: int = Field(ge=0, description="storage quota in octets, 0 = unlimited")


class Pop3PolicyIn(_Request):
    policy: Pop3Policy = Field(description="what a POP3 deletion does")


class SendAsIn(_Request):
    send_as: SendAs = Field(description="own: the account's addresses only; any: any sender")


class PlusFoldersIn(_Request):
    enabled: bool = Field(description="deliver user+tag@ into the folder tag when it exists")


class AliasIn(_Request):
    source: Name = Field(description="local@domain, or @domain for a catch-all",
                         examples=["sales@example.org"])
    targets: list[Name] = Field(min_length=1, max_length=MAX_LIST,
                                description="addresses mail is delivered to (added to the "
                                "alias's existing targets)")


class GroupIn(_Request):
    address: Name
    members: list[Name] = Field(default_factory=list, max_length=MAX_LIST)


class MemberIn(_Request):
    member: Name


class DKIMKeyIn(_Request):
    domain: Name
    selector: str = Field("mail", min_length=1, max_length=63,
                          description="the DNS name is SELECTOR._domainkey.DOMAIN")
    algorithm: Literal["rsa2048", "ed25519"] = "rsa2048"


class TokenIn(_Request):
    name: str = Field(min_length=1, max_length=100, description="what uses the token")
    scope: str = Field("admin", max_length=330,
                       description="admin, send, or domain:example.org")


class SetupIn(_Request):
    domain: Name


class OwnPasswordIn(_Request):
    new_password: Password


# -- answers -----------------------------------------------------------------------------------


class DomainOut(BaseModel):
    name: str
    created: datetime

    @classmethod
    def of(cls, d: Domain) -> DomainOut:
        return cls(name=d.name, created=d.created)


class UserOut(BaseModel):
    address: str
    quota: int = Field(description="octets, 0 = unlimited")
    used: int
    pop3_policy: Pop3Policy
    plus_folders: bool
    send_as: SendAs
    disabled: bool
    created: datetime

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls(address=u.address, quota=u.quota_bytes, used=u.used_bytes,
                   pop3_policy=u.pop3_policy, plus_folders=u.plus_folders,
                   send_as=u.send_as, disabled=u.disabled, created=u.created)


class AliasOut(BaseModel):
    source: str
    targets: list[str]

    @classmethod
    def of(cls, a: Alias) -> AliasOut:
        return cls(source=a.source, targets=list(a.targets))


class GroupOut(BaseModel):
    address: str
    members: list[str]

    @classmethod
    def of(cls, g: Group) -> GroupOut:
        return cls(address=g.address, members=list(g.members))


class MailboxOut(BaseModel):
    name: str
    special_use: str | None
    messages: int
    unseen: int
    size: int
    subscribed: bool

    @classmethod
    def of(cls, m: Mailbox) -> MailboxOut:
        return cls(name=m.name, special_use=m.special_use, messages=m.message_count,
                   unseen=m.unseen_count, size=m.size_bytes, subscribed=m.subscribed)


class ShareIn(_Request):
    mailbox: Annotated[str, Field(min_length=1, max_length=1000)] = Field(
        description="the owner's folder", examples=["INBOX"])
    grantee: Name = Field(description="an account address, or anyone",
                          examples=["bob@example.org"])
    rights: Annotated[str, Field(min_length=1, max_length=32)] = Field(
        description="RFC 4314 rights: lrs replaces the grant, +w adds, -w removes",
        examples=["lrs"])


class ShareOut(BaseModel):
    mailbox: str
    grantee: str
    rights: str


class ImportOut(BaseModel):
    folder: str
    imported: int
    skipped: dict[str, int]

    @classmethod
    def of(cls, r: ImportReport) -> ImportOut:
        return cls(folder=r.folder, imported=r.imported, skipped=dict(r.skipped))


class CheckOut(BaseModel):
    ok: bool
    problems: list[str]


class IndexRebuildOut(BaseModel):
    """Messages whose SEARCH index row was written, and those left to scanning."""

    indexed: int
    skipped: int


class RecipientOut(BaseModel):
    address: str
    status: str
    attempts: int
    next_attempt: datetime | None
    last_attempt: datetime | None
    remote: str | None
    last_error: str | None


class QueuedOut(BaseModel):
    id: int
    created: datetime
    size: int
    sender: str = Field(description="the envelope sender; empty for a bounce")
    held: bool
    submitted_by: str | None
    recipients: list[RecipientOut]
    headers: dict[str, str] = Field(default_factory=dict,
                                    description="From, To, Subject, Message-ID, Date "
                                    "(queue show only)")

    @classmethod
    def of(cls, m: QueuedMessage, headers: dict[str, str] | None = None) -> QueuedOut:
        env = m.envelope
        return cls(
            id=m.id, created=m.created, size=m.size, sender=env.mail_from or "", held=m.held,
            submitted_by=env.auth_user,
            recipients=[RecipientOut(
                address=r.address, status=str(r.status), attempts=r.attempts,
                next_attempt=r.next_attempt, last_attempt=r.last_attempt, remote=r.remote,
                last_error=r.last_error) for r in env.recipients],
            headers=headers or {})

    @classmethod
    def detail(cls, d: QueuedDetail) -> QueuedOut:
        return cls.of(d.message, d.headers)


class CountOut(BaseModel):
    count: int = Field(description="recipients made due now")


class DKIMKeyOut(BaseModel):
    domain: str
    selector: str
    algorithm: str
    record_name: str
    record_value: str = Field(description="the TXT record's text to publish")

    @classmethod
    def of(cls, k: DKIMKey) -> DKIMKeyOut:
        return cls(domain=k.domain, selector=k.selector, algorithm=k.algorithm,
                   record_name=k.record_name, record_value=k.txt_value)


class TokenOut(BaseModel):
    id: int
    name: str
    scope: str
    created: datetime
    created_by: str
    last_used: datetime | None
    last_used_from: str | None
    revoked: datetime | None

    @classmethod
    def of(cls, t: ApiToken) -> TokenOut:
        return cls(id=t.id, name=t.name, scope=t.scope, created=t.created,
                   created_by=t.created_by, last_used=t.last_used,
                   last_used_from=t.last_used_from, revoked=t.revoked)


class NewTokenOut(BaseModel):
    token: TokenOut
    secret: str = Field(description="the bearer token; shown only in this answer")

    @classmethod
    def of(cls, n: NewToken) -> NewTokenOut:
        return cls(token=TokenOut.of(n.token), secret=n.text)


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    source: str
    action: str
    target: str
    detail: str = Field(description="the operation's arguments as a JSON object")

    @classmethod
    def of(cls, r: AuditRecord) -> AuditOut:
        return cls(id=r.id, at=r.at, actor=r.actor, source=r.source, action=r.action,
                   target=r.target, detail=r.detail)


class SetupOut(BaseModel):
    domain: str
    domain_created: bool
    postmaster: str
    password: str | None = Field(description="the new postmaster's password, shown once; "
                                 "null when the postmaster existed already")
    dkim: DKIMKeyOut
    dkim_created: bool

    @classmethod
    def of(cls, r: SetupResult) -> SetupOut:
        return cls(domain=r.domain, domain_created=r.domain_created, postmaster=r.postmaster,
                   password=r.password, dkim=DKIMKeyOut.of(r.dkim_key),
                   dkim_created=r.dkim_created)


class WhoAmIOut(BaseModel):
    actor: str
    scope: str
