"""Email/query and Email/queryChanges (RFC 8621 §4.4, §4.5).

The query reads the account's emails (or a mailbox's, when the filter names one) with
their copies and flags from the store, filters and sorts them here, and windows the result
(RFC 8620 §5.5). Conditions on the message's content (from, to, cc, bcc, subject, text,
body, header) read the structure stored at delivery and, for body text, the message; a
mailbox of many messages with such a condition is read whole, as IMAP SEARCH without its
index would be.

queryChanges answers from the emails changed since the query's state (the account's
mod-sequence): an email that did not change kept its place relative to the others under
every sort offered except the thread ones, so removing each changed email and adding it
back at its new index turns the old result into the new (RFC 8620 §5.6). With
collapseThreads or a thread keyword condition or sort, a change to one email can move
another; such queries answer cannotCalculateChanges and the client queries again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from mailstead.http.jmap.dispatch import CallContext, Methods
from mailstead.http.jmap.errors import MethodError
from mailstead.http.jmap.mail import content as contents
from mailstead.http.jmap.mail.ids import (
    blob_of_email,
    email_id,
    flag_of,
    is_keyword,
    mailbox_id,
    parse_state,
    state_text,
    uidvalidity_of,
)
from mailstead.http.jmap.mail.mailboxes import _query_changes_answer
from mailstead.http.jmap.mail.services import MAIL, MailServices
from mailstead.http.jmap.standard import (
    Comparator,
    Filter,
    FilterCondition,
    FilterOperator,
    QueryArgs,
    QueryChangesArgs,
    query_window,
)
from mailstead.mime.jmap_views import EmailBody
from mailstead.mime.searchtext import body_text, fold, header_values
from mailstead.store.models import EmailRecord

_SORTS = frozenset({"receivedAt", "size", "from", "to", "subject", "sentAt", "hasKeyword",
                    "allInThreadHaveKeyword", "someInThreadHaveKeyword"})
_THREAD_KEYS = frozenset({"allInThreadHaveKeyword", "someInThreadHaveKeyword",
                          "noneInThreadHaveKeyword"})
_CONTENT_KEYS = frozenset({"text", "from", "to", "cc", "bcc", "subject", "body", "header",
                           "hasAttachment"})
_CONDITIONS = frozenset({"inMailbox", "inMailboxOtherThan", "before", "after", "minSize",
                         "maxSize", "hasKeyword", "notKeyword", *_THREAD_KEYS,
                         *_CONTENT_KEYS})
#: The most results one query computes before windowing (a mailbox larger than this is
#: still queried whole; this bounds the window a client may ask for).
MAX_LIMIT = 1000


def _walk(node: Filter | None) -> list[FilterCondition]:
    if node is None:
        return []
    if isinstance(node, FilterCondition):
        return [node]
    return [c for child in node.conditions for c in _walk(child)]


def _utc(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise MethodError("invalidArguments", f"filter {name} must be a UTCDate")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise MethodError("invalidArguments", f"filter {name} must be a UTCDate") from None
    if parsed.tzinfo is None:
        raise MethodError("invalidArguments", f"filter {name} must be a UTCDate")
    return parsed


def _keyword(value: Any, name: str) -> str:
    if not isinstance(value, str) or not is_keyword(value):
        raise MethodError("invalidArguments", f"{name} must be a keyword")
    return flag_of(value)


class _Evaluator:
    """One query's filter over the account's emails."""

    def __init__(self, records: Sequence[EmailRecord], store_ids: dict[str, int],
                 loaded: dict[str, contents.Content]) -> None:
        self.store_ids = store_ids
        self.loaded = loaded
        self.threads: dict[str, list[EmailRecord]] = {}
        for record in records:
            self.threads.setdefault(record.thread_id, []).append(record)

    def matches(self, record: EmailRecord, node: Filter | None) -> bool:
        if node is None:
            return True
        if isinstance(node, FilterOperator):
            results = (self.matches(record, c) for c in node.conditions)
            if node.operator == "AND":
                return all(results)
            if node.operator == "OR":
                return any(results)
            return not any(results)
        return all(self._one(record, name, value) for name, value in node.properties.items())

    def _mailbox(self, value: Any) -> int:
        if not isinstance(value, str):
            raise MethodError("invalidArguments", "inMailbox must be a Mailbox id")
        return self.store_ids.get(value, -1)

    def _one(self, record: EmailRecord, name: str, value: Any) -> bool:
        match name:
            case "inMailbox":
                return self._mailbox(value) in record.mailbox_ids
            case "inMailboxOtherThan":
                if not isinstance(value, list):
                    raise MethodError("invalidArguments", "inMailboxOtherThan is a list of ids")
                excluded = {self._mailbox(v) for v in value}
                return bool(record.mailbox_ids - excluded)
            case "before":
                return record.received < _utc(value, name)
            case "after":
                return record.received >= _utc(value, name)
            case "minSize":
                return record.size >= _size(value, name)
            case "maxSize":
                return record.size < _size(value, name)
            case "hasKeyword":
                return _keyword(value, name) in record.flags
            case "notKeyword":
                return _keyword(value, name) not in record.flags
            case "allInThreadHaveKeyword":
                flag = _keyword(value, name)
                return all(flag in r.flags for r in self.threads[record.thread_id])
            case "someInThreadHaveKeyword":
                flag = _keyword(value, name)
                return any(flag in r.flags for r in self.threads[record.thread_id])
            case "noneInThreadHaveKeyword":
                flag = _keyword(value, name)
                return not any(flag in r.flags for r in self.threads[record.thread_id])
            case _:
                return self._content(record, name, value)

    def _content(self, record: EmailRecord, name: str, value: Any) -> bool:
        content = self.loaded.get(record.blob_id)
        if content is None:
            return False
        structure, raw = content.structure, content.raw
        if name == "hasAttachment":
            if not isinstance(value, bool):
                raise MethodError("invalidArguments", "hasAttachment must be a boolean")
            return EmailBody(content.parsed, raw).has_attachment == value
        if name == "header":
            if (not isinstance(value, list) or not 1 <= len(value) <= 2
                    or not all(isinstance(v, str) for v in value)):
                raise MethodError("invalidArguments", "header is [name] or [name, value]")
            found = header_values(raw, structure, value[0])
            if len(value) == 1:
                return bool(found)
            needle = fold(value[1])
            return any(needle in fold(v) for v in found)
        if not isinstance(value, str):
            raise MethodError("invalidArguments", f"filter {name} must be a string")
        needle = fold(value)
        fields: dict[str, Callable[[], Sequence[str]]] = {
            "from": lambda: structure.from_addrs,
            "to": lambda: structure.to,
            "cc": lambda: structure.cc,
            "bcc": lambda: structure.bcc,
            "subject": lambda: [structure.subject or ""],
            "body": lambda: [body_text(raw, structure)],
        }
        if name == "text":
            texts = [*fields["from"](), *fields["to"](), *fields["cc"](), *fields["bcc"](),
                     *fields["subject"](), *fields["body"]()]
        else:
            texts = list(fields[name]())
        return any(needle in fold(t) for t in texts)


def _size(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MethodError("invalidArguments", f"filter {name} must be an UnsignedInt")
    return value


def _sort_key(comparator: Comparator, evaluator: _Evaluator
              ) -> Callable[[EmailRecord], Any]:
    prop = comparator.property
    if prop == "receivedAt":
        return lambda r: r.received
    if prop == "size":
        return lambda r: r.size
    if prop in ("hasKeyword", "allInThreadHaveKeyword", "someInThreadHaveKeyword"):
        flag = _keyword(comparator.extra.get("keyword"), "sort keyword")
        if prop == "hasKeyword":
            return lambda r: flag in r.flags
        if prop == "allInThreadHaveKeyword":
            return lambda r: all(flag in t.flags for t in evaluator.threads[r.thread_id])
        return lambda r: any(flag in t.flags for t in evaluator.threads[r.thread_id])

    def content_key(record: EmailRecord) -> Any:
        content = evaluator.loaded.get(record.blob_id)
        if content is None:
            return ""
        structure = content.structure
        if prop == "sentAt":
            return structure.date.timestamp() if structure.date is not None else 0.0
        if prop == "subject":
            return fold(structure.subject or "")
        values = structure.from_addrs if prop == "from" else structure.to
        return fold(values[0]) if values else ""

    return content_key


class EmailQuery:
    def __init__(self, services: MailServices) -> None:
        self.services = services

    def register(self, methods: Methods) -> None:
        methods.add("Email/query", MAIL, self.query)
        methods.add("Email/queryChanges", MAIL, self.query_changes)

    async def _results(self, context: CallContext, args: QueryArgs | QueryChangesArgs
                       ) -> tuple[list[str], int]:
        collapse = args.extra.get("collapseThreads", False)
        if not isinstance(collapse, bool):
            raise MethodError("invalidArguments", "collapseThreads must be a boolean")
        conditions = _walk(args.filter)
        for condition in conditions:
            unknown = sorted(set(condition.properties) - _CONDITIONS)
            if unknown:
                raise MethodError("unsupportedFilter", f"no Email filter {unknown[0][:60]!r}")
        for comparator in args.sort or ():
            if comparator.property not in _SORTS:
                raise MethodError("unsupportedSort",
                                  f"cannot sort by {comparator.property[:60]!r}")
        store = self.services.store
        account = await self.services.account(context, args.account_id)
        user = account.owner
        state = await store.account_state(user.id)
        keys = await store.mailbox_keys(user.id)
        store_ids = {mailbox_id(uidvalidity): box for box, uidvalidity in keys.items()
                     if account.shows_mailbox(box)}
        # One mailbox named at the top of the filter narrows what is read.
        narrowed: int | None = None
        top = args.filter
        if isinstance(top, FilterCondition) and isinstance(top.properties.get("inMailbox"), str):
            narrowed = store_ids.get(top.properties["inMailbox"], -1)
        records = account.views(await store.account_emails(user.id, narrowed)
                                if narrowed != -1 else [])
        needs_content = any(set(c.properties) & _CONTENT_KEYS for c in conditions) or any(
            c.property in ("from", "to", "subject", "sentAt") for c in args.sort or ())
        whole = any(set(c.properties) & {"text", "body", "header", "hasAttachment"}
                    for c in conditions)
        loaded: dict[str, contents.Content] = {}
        if needs_content and records:
            loaded = await contents.load(store, [r.blob_id for r in records],
                                         octets=whole, whole=whole)
        evaluator = _Evaluator(records, store_ids, loaded)
        matching = [r for r in records if evaluator.matches(r, args.filter)]
        sort = args.sort or (Comparator("receivedAt", False),)
        # RFC 8621 §4.4.2: ties keep a stable order; the newest first, then by id.
        matching.sort(key=lambda r: r.blob_id)
        for comparator in reversed(sort):
            matching.sort(key=_sort_key(comparator, evaluator),
                          reverse=not comparator.is_ascending)
        if collapse:
            seen: set[str] = set()
            collapsed = []
            for record in matching:
                if record.thread_id not in seen:
                    seen.add(record.thread_id)
                    collapsed.append(record)
            matching = collapsed
        return [email_id(r.blob_id) for r in matching], state

    async def query(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = QueryArgs.parse(arguments, self.services.limits, extra=("collapseThreads",))
        if args.anchor is not None and blob_of_email(args.anchor) is None:
            raise MethodError("anchorNotFound", "the anchor is not an email id")
        answer: dict[str, Any] = {
            "accountId": args.account_id, "canCalculateChanges": _incremental(args),
            "collapseThreads": bool(args.extra.get("collapseThreads", False)),
        }
        fast = await self._by_date(context, args)
        if fast is not None:
            window, position, limit_used, total, state = fast
        else:
            ids, state = await self._results(context, args)
            window, position, limit_used = query_window(ids, args, MAX_LIMIT)
            total = len(ids)
        answer.update(queryState=state_text(state), position=position, ids=window)
        if args.calculate_total:
            answer["total"] = total
        if limit_used is not None:
            answer["limit"] = limit_used
        return answer

    async def _by_date(self, context: CallContext, args: QueryArgs
                       ) -> tuple[list[str], int, int | None, int | None, int] | None:
        """A client's most common query, a page of a mailbox (or of everything) newest or
        oldest first, read from the store in order (``Emails.email_page``) rather than by
        sorting every email; None for any other query."""
        sort = args.sort or (Comparator("receivedAt", False),)
        if (args.anchor is not None or args.position < 0 or args.extra.get("collapseThreads")
                or len(sort) != 1 or sort[0].property != "receivedAt"):
            return None
        top = args.filter
        if top is not None and not (isinstance(top, FilterCondition)
                                    and set(top.properties) == {"inMailbox"}
                                    and isinstance(top.properties["inMailbox"], str)):
            return None
        store = self.services.store
        account = await self.services.account(context, args.account_id)
        if not account.own:
            return None  # the store's page holds emails of mailboxes not shared
        user = account.owner
        state = await store.account_state(user.id)
        mailbox: int | None = None
        if top is not None:
            keys = await store.mailbox_keys(user.id)
            wanted = uidvalidity_of(top.properties["inMailbox"])
            mailbox = next((box for box, v in keys.items() if v == wanted), -1)
            if mailbox == -1:
                return [], args.position, None, 0, state
        limit, limit_used = args.limit, None
        if limit is None or limit > MAX_LIMIT:
            limit = limit_used = MAX_LIMIT
        page = await store.email_page(user.id, mailbox, sort[0].is_ascending, args.position,
                                      limit, args.calculate_total)
        if page is None:
            return None
        blobs, total = page
        return [email_id(b) for b in blobs], args.position, limit_used, total, state

    async def query_changes(self, context: CallContext, arguments: dict[str, Any]
                            ) -> dict[str, Any]:
        args = QueryChangesArgs.parse(arguments, self.services.limits,
                                      extra=("collapseThreads",))
        if not _incremental(args):
            raise MethodError("cannotCalculateChanges",
                              "thread queries are not followed by changes: query again")
        since = parse_state(args.since_query_state)
        account = await self.services.account(context, args.account_id)
        if not account.own:
            # The owner's changes name emails the caller does not see: never to it.
            raise MethodError("cannotCalculateChanges", "a shared account's queries are "
                              "run again")
        user = account.owner
        changes = await self.services.store.email_changes(user.id, since, None)
        if since > changes.state:
            raise MethodError("cannotCalculateChanges", "the state is from the future")
        ids, state = await self._results(context, args)
        changed = {email_id(b) for b in
                   (*changes.created, *changes.updated, *changes.destroyed)}
        return _query_changes_answer(args, ids, changed, since, state)


def _incremental(args: QueryArgs | QueryChangesArgs) -> bool:
    """Whether queryChanges can follow this query (see the module's docstring)."""
    if args.extra.get("collapseThreads"):
        return False
    if any(set(c.properties) & _THREAD_KEYS for c in _walk(args.filter)):
        return False
    return not any(c.property in _THREAD_KEYS for c in args.sort or ())
