"""VacationResponse/get and /set (RFC 8621 §8): the account's one vacation auto-reply.

The object is a singleton with id ``singleton``: /get returns it (ids null or naming it),
/set may only update it; create and destroy are refused with the ``singleton`` SetError
(RFC 8620 §5.3). There is no /changes method for this type (§8); the state is the account
mod-sequence, which every change of the setting moves. The setting is what the delivery
side's vacation engine (:mod:`mailstead.delivery.vacation`) answers with, by the rules of
RFC 3834 and RFC 5230, once a day per sender by default (RFC 5230 §4.1: 7 days).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailstead.http.jmap.dispatch import CallContext, Methods
from mailstead.http.jmap.errors import MethodError, SetError, SetRefused
from mailstead.http.jmap.mail.answers import (
    check_properties,
    get_answer,
    require_state,
    set_answer,
)
from mailstead.http.jmap.mail.emails import utc_date
from mailstead.http.jmap.mail.services import MailServices
from mailstead.http.jmap.standard import GetArgs, SetArgs, apply_patch
from mailstead.store.models import Vacation, VacationFields

#: RFC 8621 §1.3.3: the capability of the VacationResponse methods (an empty object).
VACATION = "urn:ietf:params:jmap:vacationresponse"
#: RFC 8621 §8: the one object's id.
SINGLETON = "singleton"
PROPERTIES = ("id", "isEnabled", "fromDate", "toDate", "subject", "textBody", "htmlBody")
#: Bound on a body or subject a client stores: an away notice is a few paragraphs.
MAX_TEXT = 64 * 1024


def vacation_json(vacation: Vacation) -> dict[str, Any]:
    fields = vacation.fields
    return {
        "id": SINGLETON,
        "isEnabled": fields.is_enabled,
        "fromDate": None if fields.from_date is None else utc_date(fields.from_date),
        "toDate": None if fields.to_date is None else utc_date(fields.to_date),
        "subject": fields.subject,
        "textBody": fields.text_body,
        "htmlBody": fields.html_body,
    }


def _invalid(prop: str, why: str) -> SetRefused:
    return SetRefused(SetError("invalidProperties", f"{prop}: {why}", (prop,)))


def _date(obj: dict[str, Any], prop: str) -> datetime | None:
    """RFC 8620 §1.4 UTCDate, or null."""
    value = obj.get(prop)
    if value is None:
        return None
    if not isinstance(value, str) or not value.endswith("Z"):
        raise _invalid(prop, "a UTCDate (ending in Z) or null")
    try:
        return datetime.fromisoformat(value[:-1] + "+00:00")
    except ValueError:
        raise _invalid(prop, "a UTCDate (ending in Z) or null") from None


def _text(obj: dict[str, Any], prop: str) -> str | None:
    value = obj.get(prop)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise _invalid(prop, f"a string of at most {MAX_TEXT} characters, or null")
    return value


def fields_of(obj: dict[str, Any]) -> VacationFields:
    """The stored setting of a whole VacationResponse object (the patch applied)."""
    unknown = sorted(set(obj) - set(PROPERTIES))
    if unknown:
        raise SetRefused(
            SetError("invalidProperties", "not a VacationResponse property", tuple(unknown))
        )
    if not isinstance(obj.get("isEnabled"), bool):
        raise _invalid("isEnabled", "true or false")
    return VacationFields(
        is_enabled=obj["isEnabled"],
        from_date=_date(obj, "fromDate"),
        to_date=_date(obj, "toDate"),
        subject=_text(obj, "subject"),
        text_body=_text(obj, "textBody"),
        html_body=_text(obj, "htmlBody"),
    )


class VacationMethods:
    def __init__(self, services: MailServices) -> None:
        self.services = services
        self.store = services.store

    def register(self, methods: Methods) -> None:
        methods.add("VacationResponse/get", VACATION, self.get)
        methods.add("VacationResponse/set", VACATION, self.set)

    async def get(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = GetArgs.parse(arguments, self.services.limits)
        check_properties(args.properties, PROPERTIES)
        user = await self.services.user(context)
        vacation = await self.store.vacation(user.id)
        state = await self.services.store.account_state(user.id)
        wanted = [SINGLETON] if args.ids is None else list(dict.fromkeys(args.ids))
        return get_answer(args, state, {SINGLETON: vacation_json(vacation)}, wanted)

    async def set(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = SetArgs.parse(arguments, self.services.limits)
        user = await self.services.user(context)
        old_state = await self.services.store.account_state(user.id)
        require_state(args.if_in_state, old_state)
        # RFC 8620 §5.3, RFC 8621 §8: a singleton is neither created nor destroyed.
        singleton = SetError("singleton", "the VacationResponse is a singleton").to_json()
        not_created = {creation_id: singleton for creation_id in args.create}
        not_destroyed = {target: singleton for target in args.destroy}
        updated: dict[str, Any] = {}
        not_updated: dict[str, Any] = {}
        for target, patch in args.update.items():
            try:
                if target != SINGLETON:
                    raise SetRefused(SetError("notFound", "the only VacationResponse is singleton"))
                await self._update(user.id, patch)
            except SetRefused as refused:
                not_updated[target] = refused.error.to_json()
                continue
            updated[target] = None
        new_state = await self.services.store.account_state(user.id)
        return set_answer(
            args.account_id, old_state, new_state, created={}, updated=updated,
            destroyed=[], not_created=not_created, not_updated=not_updated,
            not_destroyed=not_destroyed,
        )

    async def _update(self, user_id: int, patch: dict[str, Any]) -> None:
        before = vacation_json(await self.store.vacation(user_id))
        try:
            after = apply_patch(before, patch)
        except MethodError as exc:
            raise SetRefused(SetError("invalidPatch", exc.description)) from None
        if after.get("id") != SINGLETON:
            raise _invalid("id", "set by the server")
        fields = fields_of(after)
        if (
            fields.from_date is not None
            and fields.to_date is not None
            and fields.to_date < fields.from_date
        ):
            raise SetRefused(
                SetError("invalidProperties", "toDate is before fromDate", ("fromDate", "toDate"))
            )
        await self.store.set_vacation(user_id, fields)
