"""Identity/get, /changes and /set (RFC 8621 §6): the addresses an account sends as.

An identity's ``email`` is an address the account may submit with, by the one rule every
sender check asks (``Router.may_send_as``, decision 0015): its own address, its tagged
forms and aliases that deliver to it, or any address when the admin allowed it
(``mailstead user send-as``); anything else is ``forbiddenFrom``. The address is fixed once
created (§6). Every account has an identity for its own address, made in the store the
first time its identities are read so that its id is stable; it cannot be destroyed
(``mayDelete`` false). States are the account mod-sequence, like every mail type's.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

from mailstead.core.errors import InvalidName, NotFound
from mailstead.core.types import Address
from mailstead.http.jmap.dispatch import CallContext, Methods
from mailstead.http.jmap.errors import MethodError, SetError, SetRefused
from mailstead.http.jmap.mail.answers import (
    changes_answer,
    check_properties,
    get_answer,
    require_state,
    set_answer,
)
from mailstead.http.jmap.mail.ids import parse_state
from mailstead.http.jmap.mail.services import MailServices
from mailstead.http.jmap.standard import ChangesArgs, GetArgs, SetArgs, apply_patch
from mailstead.store.models import EmailAddressValue, Identity, IdentityFields, User

#: RFC 8621 §1.3.2: the capability of the Identity and EmailSubmission methods.
SUBMISSION = "urn:ietf:params:jmap:submission"

PROPERTIES = (
    "id",
    "name",
    "email",
    "replyTo",
    "bcc",
    "textSignature",
    "htmlSignature",
    "mayDelete",
)
_SERVER_SET = ("id", "mayDelete")
_ID = re.compile(r"I[1-9][0-9]{0,17}")
#: Bound on the text a client stores per identity: a signature is a few lines.
MAX_TEXT = 64 * 1024


class SenderPolicy(Protocol):
    """Who an account may send as (``Router.may_send_as``, decision 0015)."""

    async def may_send_as(self, user_id: int, address: Address | None) -> bool: ...


def identity_id(number: int) -> str:
    return f"I{number}"


def identity_number(value: str) -> int | None:
    return int(value[1:]) if _ID.fullmatch(value) else None


def identity_json(identity: Identity) -> dict[str, Any]:
    fields = identity.fields
    return {
        "id": identity_id(identity.id),
        "name": fields.name,
        "email": fields.email,
        "replyTo": _addresses_json(fields.reply_to),
        "bcc": _addresses_json(fields.bcc),
        "textSignature": fields.text_signature,
        "htmlSignature": fields.html_signature,
        "mayDelete": not identity.is_default,
    }


def _addresses_json(value: tuple[EmailAddressValue, ...] | None) -> list[dict[str, Any]] | None:
    return None if value is None else [{"name": a.name, "email": a.email} for a in value]


def _invalid(prop: str, why: str) -> SetRefused:
    return SetRefused(SetError("invalidProperties", f"{prop}: {why}", (prop,)))


def _text(obj: dict[str, Any], prop: str) -> str:
    value = obj.get(prop, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise _invalid(prop, f"a string of at most {MAX_TEXT} characters")
    return value


def _address_list(obj: dict[str, Any], prop: str) -> tuple[EmailAddressValue, ...] | None:
    """RFC 8621 §6: ``replyTo`` and ``bcc`` are EmailAddress[] or null."""
    value = obj.get(prop)
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 100:
        raise _invalid(prop, "an array of EmailAddress objects or null")
    found = []
    for item in value:
        if not isinstance(item, dict) or set(item) - {"name", "email"}:
            raise _invalid(prop, "an EmailAddress has name and email")
        name, email = item.get("name"), item.get("email")
        if name is not None and not isinstance(name, str):
            raise _invalid(prop, "name is a string or null")
        if not isinstance(email, str):
            raise _invalid(prop, "email is required")
        try:
            Address.parse(email)
        except InvalidName:
            raise _invalid(prop, "not an e-mail address") from None
        found.append(EmailAddressValue(email, name))
    return tuple(found)


def fields_of(obj: dict[str, Any], email: str) -> IdentityFields:
    """The stored fields of an Identity object (its ``email`` already checked)."""
    unknown = sorted(set(obj) - set(PROPERTIES))
    if unknown:
        raise SetRefused(SetError("invalidProperties", "not an Identity property", tuple(unknown)))
    name = _text(obj, "name")
    return IdentityFields(
        email=email,
        name=name,
        reply_to=_address_list(obj, "replyTo"),
        bcc=_address_list(obj, "bcc"),
        text_signature=_text(obj, "textSignature"),
        html_signature=_text(obj, "htmlSignature"),
    )


class IdentityMethods:
    def __init__(self, services: MailServices, senders: SenderPolicy) -> None:
        self.services = services
        self.senders = senders

    def register(self, methods: Methods) -> None:
        methods.add("Identity/get", SUBMISSION, self.get)
        methods.add("Identity/changes", SUBMISSION, self.changes)
        methods.add("Identity/set", SUBMISSION, self.set)

    async def identities(self, user: User) -> list[Identity]:
        return await self.services.store.identities(user.id, user.address)

    async def get(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = GetArgs.parse(arguments, self.services.limits)
        check_properties(args.properties, PROPERTIES)
        user = await self.services.user(context)
        found = {identity_id(i.id): i for i in await self.identities(user)}
        state = await self.services.store.account_state(user.id)
        wanted = list(found) if args.ids is None else [context.resolve_id(i) or i for i in args.ids]
        return get_answer(args, state, {k: identity_json(v) for k, v in found.items()}, wanted)

    async def changes(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = ChangesArgs.parse(arguments, self.services.limits)
        since = parse_state(args.since_state)
        user = await self.services.user(context)
        await self.identities(user)
        changes = await self.services.store.identity_changes(user.id, since)
        return changes_answer(
            args,
            since,
            changes.state,
            [identity_id(int(i)) for i in changes.created],
            [identity_id(int(i)) for i in changes.updated],
            [identity_id(int(i)) for i in changes.destroyed],
            paged=False,
        )

    async def set(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = SetArgs.parse(arguments, self.services.limits)
        store = self.services.store
        user = await self.services.user(context)
        current = {identity_id(i.id): i for i in await self.identities(user)}
        old_state = await store.account_state(user.id)
        require_state(args.if_in_state, old_state)
        created: dict[str, Any] = {}
        not_created: dict[str, Any] = {}
        for creation_id, obj in args.create.items():
            try:
                made = await self._create(user, obj)
            except SetRefused as refused:
                not_created[creation_id] = refused.error.to_json()
                continue
            context.created_ids[creation_id] = identity_id(made.id)
            created[creation_id] = {"id": identity_id(made.id), "mayDelete": True}
            current[identity_id(made.id)] = made
        updated: dict[str, Any] = {}
        not_updated: dict[str, Any] = {}
        for target, patch in args.update.items():
            real = context.resolve_id(target)
            try:
                if real is None or real not in current:
                    raise SetRefused(SetError("notFound", "no such identity"))
                await self._update(user, current[real], patch)
            except SetRefused as refused:
                not_updated[target] = refused.error.to_json()
                continue
            updated[real] = None
        destroyed: list[str] = []
        not_destroyed: dict[str, Any] = {}
        for target in args.destroy:
            real = context.resolve_id(target)
            identity = current.get(real) if real is not None else None
            if identity is None or real is None:
                not_destroyed[target] = SetError("notFound", "no such identity").to_json()
                continue
            if identity.is_default:
                # RFC 8621 §6: mayDelete false; §5.3 forbidden.
                not_destroyed[target] = SetError(
                    "forbidden", "the account's own address cannot be removed"
                ).to_json()
                continue
            try:
                await store.remove_identity(user.id, identity.id)
            except NotFound:
                not_destroyed[target] = SetError("notFound", "no such identity").to_json()
                continue
            destroyed.append(real)
        new_state = await store.account_state(user.id)
        return set_answer(
            args.account_id, old_state, new_state, created=created, updated=updated,
            destroyed=destroyed, not_created=not_created, not_updated=not_updated,
            not_destroyed=not_destroyed,
        )

    async def _create(self, user: User, obj: dict[str, Any]) -> Identity:
        server_set = [p for p in _SERVER_SET if p in obj]
        if server_set:
            raise SetRefused(SetError("invalidProperties", "set by the server", tuple(server_set)))
        email = obj.get("email")
        if not isinstance(email, str):
            raise _invalid("email", "required")
        try:
            address = Address.parse(email)
        except InvalidName:
            raise _invalid("email", "not an e-mail address") from None
        if not await self.senders.may_send_as(user.id, address):
            # RFC 8621 §6.3: "forbiddenFrom": the user may not send from this address.
            raise SetRefused(SetError("forbiddenFrom", "this account may not send as that address"))
        fields = fields_of(obj, str(address))
        return await self.services.store.add_identity(user.id, fields)

    async def _update(self, user: User, identity: Identity, patch: dict[str, Any]) -> None:
        before = identity_json(identity)
        try:
            after = apply_patch(before, patch)
        except MethodError as exc:
            raise SetRefused(SetError("invalidPatch", exc.description)) from None
        fixed = [p for p in ("id", "email", "mayDelete") if after.get(p) != before[p]]
        if fixed:
            # RFC 8621 §6: email is immutable; id and mayDelete are the server's.
            raise SetRefused(SetError("invalidProperties", "cannot be changed", tuple(fixed)))
        fields = fields_of(after, identity.fields.email)
        try:
            await self.services.store.update_identity(user.id, identity.id, fields)
        except NotFound:
            raise SetRefused(SetError("notFound", "no such identity")) from None

