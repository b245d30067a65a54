"""EmailSubmission/get, /changes, /query, /queryChanges and /set (RFC 8621 §7): sending an
email of the account through the same delivery transaction SMTP submission uses.

A creation runs :class:`~mailstead.delivery.deliver.Delivery` exactly as an authenticated
SMTP client's MAIL FROM, RCPT TO and DATA do: the envelope sender is checked by
``Router.may_send_as`` (decision 0015, as MAIL FROM is), every recipient is resolved by the
router (local accounts get their copy at once, remote ones go to the durable outbound
queue, in one transaction), the commit checks the header ``From:``/``Sender:`` against the
account (the same check, ``forbiddenFrom`` here where SMTP answers ``550 5.7.1``) and
DKIM-signs what leaves the server. Before that the ``Bcc`` header field is removed (RFC
8621 §7.5: "The server MUST remove any Bcc header field present on the message during
delivery"; RFC 5322 §3.6.3): its addresses are envelope recipients only, and the copy in
the account's mailboxes keeps it.

Sending is immediate: ``maxDelayedSend`` is 0, so every submission is ``final`` once
created and cannot be cancelled (``cannotUnsend``). Destroying a submission forgets it;
the delivery goes on (§7.5). ``deliveryStatus`` comes from the outbound queue while it
holds the message and from the states recorded when it retired it (store ``submissions``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from mailstead.core.errors import InvalidName, NotFound
from mailstead.core.types import Address
from mailstead.delivery.authorship import read_authors
from mailstead.delivery.deliver import Deliverer, Envelope, TraceInfo, header_block
from mailstead.delivery.router import DeliveryError
from mailstead.http.jmap.dispatch import CallContext, Methods
from mailstead.http.jmap.errors import MethodError, SetError, SetRefused
from mailstead.http.jmap.mail.answers import (
    changes_answer,
    check_properties,
    get_answer,
    query_answer,
    require_state,
    set_answer,
)
from mailstead.http.jmap.mail.emails import EmailMethods, utc_date
from mailstead.http.jmap.mail.identities import (
    SUBMISSION,
    IdentityMethods,
    identity_id,
    identity_number,
)
from mailstead.http.jmap.mail.ids import blob_of_email, email_id, parse_state, state_text
from mailstead.http.jmap.mail.services import MailServices
from mailstead.http.jmap.standard import (
    ChangesArgs,
    Comparator,
    FilterCondition,
    FilterOperator,
    GetArgs,
    QueryArgs,
    QueryChangesArgs,
    SetArgs,
)
from mailstead.mime import jmap_headers
from mailstead.store.models import (
    Identity,
    NewSubmission,
    QueueStatus,
    RecipientOutcome,
    Submission,
    User,
)

log = logging.getLogger("mailstead.http.jmap")

PROPERTIES = (
    "id",
    "identityId",
    "emailId",
    "threadId",
    "envelope",
    "sendAt",
    "undoStatus",
    "deliveryStatus",
    "dsnBlobIds",
    "mdnBlobIds",
)
_CREATE = frozenset({"identityId", "emailId", "envelope"})
_ID = re.compile(r"S[1-9][0-9]{0,17}")
_FILTERS = frozenset({"identityIds", "emailIds", "threadIds", "undoStatus", "before", "after"})
_SORTS = frozenset({"emailId", "threadId", "sentAt"})
_BLANK_LINE = re.compile(rb"\n\r?\n")
_LINE = re.compile(rb"[^\n]+\n?")
#: What a recipient stored here at once reads as (RFC 3463 X.0.0: delivered).
DELIVERED_LOCALLY = "250 2.0.0 Delivered to a mailbox of this server"
#: The MAIL FROM check's answer, and the commit's for a header From it refuses.
_NOT_AUTHORIZED = ("5.7.1", 550)


def submission_id(number: int) -> str:
    return f"S{number}"


def submission_number(value: str) -> int | None:
    return int(value[1:]) if _ID.fullmatch(value) else None


def delivery_status(outcome: RecipientOutcome | None) -> dict[str, str]:
    """RFC 8621 §7 DeliveryStatus of one recipient: ``delivered`` "queued" while the queue
    still tries, "yes" once taken by the next server or stored here, "no" when it failed
    for good; ``displayed`` is never known (no MDN processing)."""
    if outcome is None:
        return {"smtpReply": "250 2.0.0 Accepted", "delivered": "unknown", "displayed": "unknown"}
    match outcome.status:
        case QueueStatus.DELIVERED:
            delivered, reply = "yes", outcome.reply or "250 2.0.0 Delivered"
        case QueueStatus.FAILED:
            delivered, reply = "no", outcome.reply or "550 5.0.0 Delivery failed"
        case _:
            delivered, reply = "queued", outcome.reply or "250 2.0.0 Queued for delivery"
    return {"smtpReply": reply, "delivered": delivered, "displayed": "unknown"}


def submission_json(submission: Submission) -> dict[str, Any]:
    by_key = {a.casefold(): o for a, o in submission.recipients.items()}
    rcpts = [
        r.get("email", "") for r in submission.envelope.get("rcptTo", []) if isinstance(r, dict)
    ]
    return {
        "id": submission_id(submission.id),
        "identityId": identity_id(submission.identity_id),
        "emailId": email_id(submission.blob_id),
        "threadId": submission.thread_id,
        "envelope": dict(submission.envelope),
        "sendAt": utc_date(submission.send_at),
        "undoStatus": submission.undo_status.value,
        "deliveryStatus": {r: delivery_status(by_key.get(r.casefold())) for r in rcpts},
        "dsnBlobIds": [],
        "mdnBlobIds": [],
    }


def without_bcc(data: bytes) -> bytes:
    """The message without its ``Bcc`` header fields (folded lines included); the body
    and every other field as they were. The header ends at the first empty line, CRLF or
    a bare LF (a message imported from a Unix file)."""
    if data.startswith((b"\r\n", b"\n")):
        return data  # no header at all
    blank = _BLANK_LINE.search(data)
    head = data if blank is None else data[: blank.start() + 1]
    kept: list[bytes] = []
    dropping = False
    for line in _LINE.findall(head):
        if line[:1] in (b" ", b"\t"):
            if not dropping:
                kept.append(line)
            continue
        dropping = line.split(b":", 1)[0].strip().lower() == b"bcc"
        if not dropping:
            kept.append(line)
    return b"".join(kept) + data[len(head) :]


def header_recipients(data: bytes) -> list[str]:
    """RFC 8621 §7.5: the default ``rcptTo``, every address of the To, Cc and Bcc header
    fields, each once."""
    found: dict[str, str] = {}
    for field in jmap_headers.split_header(header_block(data)):
        if field.name.lower() in ("to", "cc", "bcc"):
            for address in jmap_headers.addresses_form(field.value):
                email = address.get("email")
                if email:
                    found.setdefault(email.casefold(), email)
    return list(found.values())


@dataclass(frozen=True, slots=True)
class SubmissionSettings:
    hostname: str  # names this server in the Received line
    max_recipients: int  # RFC 8621 §7.5 tooManyRecipients: the SMTP submission limit


class SubmissionMethods:
    def __init__(
        self,
        services: MailServices,
        identities: IdentityMethods,
        emails: EmailMethods,
        deliverer: Deliverer,
        settings: SubmissionSettings,
    ) -> None:
        self.services = services
        self.identities = identities
        self.emails = emails
        self.deliverer = deliverer
        self.settings = settings

    def register(self, methods: Methods) -> None:
        methods.add("EmailSubmission/get", SUBMISSION, self.get)
        methods.add("EmailSubmission/changes", SUBMISSION, self.changes)
        methods.add("EmailSubmission/query", SUBMISSION, self.query)
        methods.add("EmailSubmission/queryChanges", SUBMISSION, self.query_changes)
        methods.add("EmailSubmission/set", SUBMISSION, self.set)

    # -- get, changes -----------------------------------------------------------------------

    async def get(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = GetArgs.parse(arguments, self.services.limits)
        check_properties(args.properties, PROPERTIES)
        user = await self.services.user(context)
        store = self.services.store
        state = await store.account_state(user.id)
        if args.ids is None:
            found = await store.submissions(user.id)
            if len(found) > self.services.limits.max_objects_in_get:
                raise MethodError("requestTooLarge", "name the submissions to get")
            wanted = [submission_id(s.id) for s in found]
        else:
            wanted = [context.resolve_id(i) or i for i in args.ids]
            numbers = [n for n in map(submission_number, wanted) if n is not None]
            found = await store.submissions(user.id, numbers)
        by_id = {submission_id(s.id): s for s in found}
        return get_answer(args, state, {k: submission_json(v) for k, v in by_id.items()}, wanted)

    async def changes(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = ChangesArgs.parse(arguments, self.services.limits)
        since = parse_state(args.since_state)
        user = await self.services.user(context)
        changes = await self.services.store.submission_changes(user.id, since)
        return changes_answer(
            args,
            since,
            changes.state,
            [submission_id(int(i)) for i in changes.created],
            [submission_id(int(i)) for i in changes.updated],
            [submission_id(int(i)) for i in changes.destroyed],
            paged=False,
        )

    # -- query ------------------------------------------------------------------------------

    async def _results(
        self, user: User, filter_: Any, sort: Sequence[Comparator] | None
    ) -> list[str]:
        """Every submission matching the filter, sorted (RFC 8621 §7.3)."""
        submissions = await self.services.store.submissions(user.id)
        objects = [submission_json(s) for s in submissions]
        matching = [o for o, s in zip(objects, submissions, strict=True) if _matches(filter_, o, s)]
        keys: list[tuple[str, bool]] = []
        for comparator in sort or ():
            if comparator.property not in _SORTS or comparator.extra:
                raise MethodError("unsupportedSort", f"cannot sort by {comparator.property[:60]!r}")
            keys.append(
                (
                    "sendAt" if comparator.property == "sentAt" else comparator.property,
                    comparator.is_ascending,
                )
            )
        matching.sort(key=lambda o: int(o["id"][1:]))  # ties: in the order sent
        for prop, ascending in reversed(keys):
            matching.sort(key=itemgetter(prop), reverse=not ascending)
        return [o["id"] for o in matching]

    async def query(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = QueryArgs.parse(arguments, self.services.limits)
        _check_filter(args.filter)
        user = await self.services.user(context)
        state = await self.services.store.account_state(user.id)
        ids = await self._results(user, args.filter, args.sort)
        return query_answer(args, state, ids, can_calculate_changes=True)

    async def query_changes(
        self, context: CallContext, arguments: dict[str, Any]
    ) -> dict[str, Any]:
        """RFC 8620 §5.6, the plain way: every submission changed since the state is
        removed, and added again where it now stands if it still matches (a client
        applying that reaches the current results; §5.6 allows reporting more than moved)."""
        args = QueryChangesArgs.parse(arguments, self.services.limits)
        _check_filter(args.filter)
        since = parse_state(args.since_query_state)
        user = await self.services.user(context)
        changes = await self.services.store.submission_changes(user.id, since)
        if since > changes.state:
            raise MethodError("cannotCalculateChanges", "the state is from the future")
        touched = [
            submission_id(int(i)) for i in (*changes.created, *changes.updated, *changes.destroyed)
        ]
        if args.max_changes is not None and len(touched) > args.max_changes:
            raise MethodError("tooManyChanges", f"more than {args.max_changes} changes")
        ids = await self._results(user, args.filter, args.sort)
        changed = set(touched)
        added = [{"id": i, "index": n} for n, i in enumerate(ids) if i in changed]
        if args.up_to_id is not None and args.up_to_id in ids:
            cut = ids.index(args.up_to_id)
            added = [a for a in added if int(str(a["index"])) <= cut]
        response: dict[str, Any] = {
            "accountId": args.account_id,
            "oldQueryState": args.since_query_state,
            "newQueryState": state_text(changes.state),
            "removed": sorted(changed),
            "added": added,
        }
        if args.calculate_total:
            response["total"] = len(ids)
        return response

    # -- set --------------------------------------------------------------------------------

    async def set(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = SetArgs.parse(
            arguments, self.services.limits, extra=("onSuccessUpdateEmail", "onSuccessDestroyEmail")
        )
        on_update = args.extra.get("onSuccessUpdateEmail")
        on_destroy = args.extra.get("onSuccessDestroyEmail")
        if on_update is not None and not (
            isinstance(on_update, dict) and all(isinstance(v, dict) for v in on_update.values())
        ):
            raise MethodError(
                "invalidArguments", "onSuccessUpdateEmail is an object of ids to PatchObjects"
            )
        if on_destroy is not None and not (
            isinstance(on_destroy, list) and all(isinstance(v, str) for v in on_destroy)
        ):
            raise MethodError("invalidArguments", "onSuccessDestroyEmail is an array of ids")
        store = self.services.store
        user = await self.services.user(context)
        old_state = await store.account_state(user.id)
        require_state(args.if_in_state, old_state)
        identities = {identity_id(i.id): i for i in await self.identities.identities(user)}
        created: dict[str, Any] = {}
        not_created: dict[str, Any] = {}
        email_of: dict[str, str] = {}  # submission id or #creationId -> its emailId
        for creation_id, obj in args.create.items():
            try:
                made = await self._create(context, user, obj, identities)
            except SetRefused as refused:
                not_created[creation_id] = refused.error.to_json()
                continue
            sid = submission_id(made.id)
            context.created_ids[creation_id] = sid
            created[creation_id] = {
                "id": sid,
                "threadId": made.thread_id,
                "sendAt": utc_date(made.send_at),
                "undoStatus": made.undo_status.value,
            }
            email_of[f"#{creation_id}"] = email_of[sid] = email_id(made.blob_id)
        updated: dict[str, Any] = {}
        not_updated: dict[str, Any] = {}
        for target, patch in args.update.items():
            real = context.resolve_id(target)
            number = submission_number(real) if real is not None else None
            found = await store.submissions(user.id, [number]) if number is not None else []
            if not found or real is None:
                not_updated[target] = SetError("notFound", "no such submission").to_json()
                continue
            if patch.get("undoStatus") == "canceled" and len(patch) == 1:
                # RFC 8621 §7.5: sent at once, so never pending: it cannot be recalled.
                not_updated[target] = SetError(
                    "cannotUnsend", "the message was sent at once"
                ).to_json()
            else:
                not_updated[target] = SetError(
                    "invalidProperties",
                    "only undoStatus can change, to canceled",
                    tuple(sorted(patch)),
                ).to_json()
        destroyed: list[str] = []
        not_destroyed: dict[str, Any] = {}
        for target in args.destroy:
            real = context.resolve_id(target)
            number = submission_number(real) if real is not None else None
            try:
                if number is None or real is None:
                    raise NotFound(target)
                found = await store.submissions(user.id, [number])
                await store.remove_submission(user.id, number)
            except NotFound:
                not_destroyed[target] = SetError("notFound", "no such submission").to_json()
                continue
            destroyed.append(real)
            email_of.setdefault(real, email_id(found[0].blob_id))
        new_state = await store.account_state(user.id)
        response = set_answer(
            args.account_id, old_state, new_state, created=created, updated=updated,
            destroyed=destroyed, not_created=not_created, not_updated=not_updated,
            not_destroyed=not_destroyed,
        )
        await self._on_success(context, args.account_id, email_of, on_update, on_destroy)
        return response

    async def _on_success(
        self,
        context: CallContext,
        account_id: str,
        email_of: dict[str, str],
        on_update: dict[str, Any] | None,
        on_destroy: list[str] | None,
    ) -> None:
        """RFC 8621 §7.5: for each submission named that succeeded, an Email/set of its
        email, answered as an implicit ``Email/set`` response after this one."""
        update = {email_of[k]: patch for k, patch in (on_update or {}).items() if k in email_of}
        destroy = [email_of[k] for k in on_destroy or () if k in email_of]
        if not update and not destroy:
            return
        email_args: dict[str, Any] = {"accountId": account_id}
        if update:
            email_args["update"] = update
        if destroy:
            email_args["destroy"] = destroy
        context.add_response("Email/set", await self.emails.set(context, email_args))

    async def _create(
        self, context: CallContext, user: User, obj: dict[str, Any], identities: dict[str, Identity]
    ) -> Submission:
        unknown = sorted(set(obj) - _CREATE)
        if unknown:
            raise SetRefused(
                SetError("invalidProperties", "set by the server or unknown", tuple(unknown))
            )
        raw_identity = obj.get("identityId")
        real_identity = context.resolve_id(raw_identity) if isinstance(raw_identity, str) else None
        identity = identities.get(real_identity) if real_identity is not None else None
        if identity is None or identity_number(str(real_identity)) is None:
            raise SetRefused(SetError("invalidProperties", "no such identity", ("identityId",)))
        raw_email = obj.get("emailId")
        real_email = context.resolve_id(raw_email) if isinstance(raw_email, str) else None
        blob = blob_of_email(real_email) if real_email is not None else None
        records = await self.services.store.email_records(user.id, [blob]) if blob else []
        if not records:
            raise SetRefused(SetError("invalidProperties", "no such email", ("emailId",)))
        record = records[0]
        data = await self.services.store.read_blob(record.blob_id)
        if len(data) > self.services.max_message_size:
            raise SetRefused(
                SetError(
                    "tooLarge",
                    "the message is larger than this server sends",
                    extra={"maxSize": self.services.max_message_size},
                )
            )
        envelope = _envelope(obj.get("envelope"), identity.fields.email, data)
        mail_from = _address("envelope", envelope["mailFrom"]["email"])
        rcpts = [r["email"] for r in envelope["rcptTo"]]
        if not rcpts:
            raise SetRefused(SetError("noRecipients", "the message has no recipients"))
        if len(rcpts) > self.settings.max_recipients:
            raise SetRefused(
                SetError(
                    "tooManyRecipients",
                    "too many recipients",
                    extra={"maxRecipients": self.settings.max_recipients},
                )
            )
        bad = [r for r in rcpts if _parsed(r) is None]
        if bad:
            raise SetRefused(
                SetError(
                    "invalidRecipients", "not e-mail addresses", extra={"invalidRecipients": bad}
                )
            )
        router = self.deliverer.router
        if not await router.may_send_as(user.id, mail_from):
            # RFC 8621 §7.5 forbiddenMailFrom; SMTP's MAIL FROM check (553 5.7.1).
            raise SetRefused(
                SetError("forbiddenMailFrom", "this account may not send as that envelope sender")
            )
        sent = without_bcc(data)
        if not await router.may_send_as_anyone(user.id):
            try:
                # The header the commit will judge must name its authors readably (the
                # same reading, decision 0015); if not, the email is at fault, not who
                # sends it: RFC 8621 §7.5 invalidEmail.
                read_authors(header_block(sent))
            except DeliveryError as exc:
                raise SetRefused(SetError("invalidEmail", exc.text, ("from", "sender"))) from None
        delivery = self.deliverer.start(
            Envelope(
                mail_from=mail_from,
                size=len(sent),
                smtputf8=not all(a.isascii() for a in (str(mail_from), *rcpts)),
                body=None if sent.isascii() else "8BITMIME",
            ),
            TraceInfo(
                hostname=self.settings.hostname,
                helo="jmap",
                client_ip=context.client_ip or "0.0.0.0",
                auth_user=user.address,
                session_id=f"jmap-{user.id}",
            ),
            relay_allowed=True,
            sender_id=user.id,
        )
        refused_rcpts: list[str] = []
        for rcpt in rcpts:
            parsed = _parsed(rcpt)
            assert parsed is not None
            try:
                await delivery.add_rcpt(parsed)
            except DeliveryError as exc:
                if exc.temporary:
                    raise SetRefused(
                        SetError("forbiddenToSend", f"{rcpt}: {exc.text}; try again later")
                    ) from None
                refused_rcpts.append(rcpt)
        if refused_rcpts:
            raise SetRefused(
                SetError(
                    "invalidRecipients",
                    "refused by the server",
                    extra={"invalidRecipients": refused_rcpts},
                )
            )
        try:
            trace_id = await delivery.commit(sent)
        except DeliveryError as exc:
            if (exc.enhanced, exc.code) == _NOT_AUTHORIZED:
                # RFC 8621 §7.5 forbiddenFrom: the header From/Sender check of decision 0015.
                raise SetRefused(SetError("forbiddenFrom", exc.text)) from None
            raise SetRefused(SetError("forbiddenToSend", exc.text)) from None
        local = {
            r: RecipientOutcome(QueueStatus.DELIVERED, DELIVERED_LOCALLY)
            for r in delivery.local_rcpts
        }
        log.info(
            "jmap-%s: submitted %s as %s to %d recipients", user.id, trace_id, mail_from, len(rcpts)
        )
        return await self.services.store.add_submission(
            user.id,
            NewSubmission(
                identity_id=identity.id,
                blob_id=record.blob_id,
                thread_id=record.thread_id,
                envelope=envelope,
                send_at=datetime.now(UTC),
                trace_id=trace_id,
                local=local,
            ),
        )


def _parsed(text: str) -> Address | None:
    try:
        return Address.parse(text)
    except InvalidName:
        return None


def _address(prop: str, text: Any) -> Address:
    parsed = _parsed(text) if isinstance(text, str) else None
    if parsed is None:
        raise SetRefused(SetError("invalidProperties", "not an e-mail address", (prop,)))
    return parsed


def _envelope(value: Any, identity_email: str, data: bytes) -> dict[str, Any]:
    """RFC 8621 §7: the Envelope, or the default of §7.5 (the identity's address, the
    header recipients). Parameters are refused: no submission extension is offered."""
    if value is None:
        return {
            "mailFrom": {"email": identity_email, "parameters": None},
            "rcptTo": [{"email": r, "parameters": None} for r in header_recipients(data)],
        }

    def address(item: Any) -> dict[str, Any]:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("email"), str)
            or set(item) - {"email", "parameters"}
        ):
            raise SetRefused(
                SetError("invalidProperties", "an Address has email and parameters", ("envelope",))
            )
        if item.get("parameters"):
            raise SetRefused(
                SetError("invalidProperties", "no SMTP parameters are supported", ("envelope",))
            )
        return {"email": item["email"], "parameters": None}

    if not isinstance(value, dict) or not isinstance(value.get("rcptTo"), list):
        raise SetRefused(
            SetError("invalidProperties", "envelope has mailFrom and rcptTo", ("envelope",))
        )
    return {
        "mailFrom": address(value.get("mailFrom")),
        "rcptTo": [address(r) for r in value["rcptTo"]],
    }


def _check_filter(filter_: Any) -> None:
    match filter_:
        case None:
            return
        case FilterOperator(conditions=conditions):
            for condition in conditions:
                _check_filter(condition)
        case FilterCondition(properties=props):
            unknown = sorted(set(props) - _FILTERS)
            if unknown:
                raise MethodError("unsupportedFilter", f"cannot filter by {unknown[0][:60]!r}")
            for name in ("identityIds", "emailIds", "threadIds"):
                value = props.get(name)
                if value is not None and not (
                    isinstance(value, list) and all(isinstance(v, str) for v in value)
                ):
                    raise MethodError("invalidArguments", f"filter: {name} is a list of ids")
            for name in ("before", "after", "undoStatus"):
                if props.get(name) is not None and not isinstance(props[name], str):
                    raise MethodError("invalidArguments", f"filter: {name} is a string")


def _matches(filter_: Any, obj: dict[str, Any], submission: Submission) -> bool:
    """RFC 8621 §7.3 FilterCondition over one submission."""
    match filter_:
        case None:
            return True
        case FilterOperator(operator=op, conditions=conditions):
            results = (_matches(c, obj, submission) for c in conditions)
            test: Callable[[Any], bool] = {"AND": all, "OR": any}.get(op, lambda r: not any(r))
            return test(results)
        case FilterCondition(properties=props):
            for name, prop in (
                ("identityIds", "identityId"),
                ("emailIds", "emailId"),
                ("threadIds", "threadId"),
            ):
                if props.get(name) is not None and obj[prop] not in props[name]:
                    return False
            if props.get("undoStatus") is not None and obj["undoStatus"] != props["undoStatus"]:
                return False
            if props.get("before") is not None and not obj["sendAt"] < props["before"]:
                return False
            after = props.get("after")
            return after is None or obj["sendAt"] >= after
    return False
