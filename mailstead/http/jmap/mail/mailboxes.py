"""Mailbox/get, /changes, /query, /queryChanges and /set (RFC 8621 §2).

A Mailbox is an IMAP mailbox of the account: its JMAP ``name`` is the last level of the
IMAP name (levels separated by ``/``), ``parentId`` the level above, ``role`` its
special-use attribute (RFC 8457; INBOX is ``inbox``). A \\Noselect name kept for its
children (RFC 9051 §6.3.5) is a Mailbox that may hold nothing. Counts come from the
store's emails (decision 0033): an email counts once per mailbox holding a copy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from mailstead.core.errors import (
    AlreadyExists,
    InvalidName,
    MailsteadError,
    NotEmpty,
    NotFound,
)
from mailstead.core.types import SEEN
from mailstead.http.jmap.dispatch import CallContext, Methods
from mailstead.http.jmap.errors import MethodError, SetError, SetRefused
from mailstead.http.jmap.mail.answers import changes_answer, query_answer, require_state, set_answer
from mailstead.http.jmap.mail.ids import (
    ROLE_OF_SPECIAL_USE,
    SPECIAL_USE_OF_ROLE,
    mailbox_id,
    parse_state,
    state_text,
    uidvalidity_of,
)
from mailstead.http.jmap.mail.services import MAIL, MailAccount, MailServices
from mailstead.http.jmap.standard import (
    ChangesArgs,
    FilterCondition,
    FilterOperator,
    GetArgs,
    QueryArgs,
    QueryChangesArgs,
    SetArgs,
    apply_patch,
)
from mailstead.store.models import MailboxCounts, MailboxState
from mailstead.store.names import SEPARATOR, is_inbox

log = logging.getLogger("mailstead.http.jmap")

PROPERTIES = (
    "id", "name", "parentId", "role", "sortOrder", "totalEmails", "unreadEmails",
    "totalThreads", "unreadThreads", "myRights", "isSubscribed",
)
#: What a client may give on create and change on update (the rest is the server's).
_SETTABLE = frozenset({"name", "parentId", "role", "sortOrder", "isSubscribed"})
#: The order roles come in (lower first) in clients that sort by sortOrder.
_ROLE_ORDER = {"inbox": 1, "drafts": 2, "sent": 3, "archive": 4, "junk": 5, "trash": 6}
_OTHER_ORDER = 10
_COUNT_PROPERTIES = ("totalEmails", "unreadEmails", "totalThreads", "unreadThreads")


def role_of(state: MailboxState) -> str | None:
    if is_inbox(state.mailbox.name):
        return "inbox"
    return ROLE_OF_SPECIAL_USE.get(state.mailbox.special_use or "")


def _rights(state: MailboxState) -> dict[str, bool]:
    """RFC 8621 §2 myRights: the owner may do everything with a real mailbox; a
    \\Noselect name holds nothing; INBOX cannot be renamed or deleted here."""
    holds = not state.mailbox.noselect
    inbox = is_inbox(state.mailbox.name)
    return {
        "mayReadItems": holds, "mayAddItems": holds, "mayRemoveItems": holds,
        "maySetSeen": holds, "maySetKeywords": holds, "mayCreateChild": True,
        "mayRename": not inbox, "mayDelete": not inbox, "maySubmit": holds,
    }


def acl_rights(rights: str) -> dict[str, bool]:
    """RFC 8621 §2 myRights of another account's mailbox, from the caller's RFC 4314
    rights on it (as IMAP applies them, decision 0028): removing needs both "t" and "e",
    and nothing is sent from another's mailbox. Mailbox/set in another account is refused
    (a grantee with "k" or "x" makes and removes the owner's mailboxes over IMAP), so the
    rights JMAP would check it against are false rather than a promise it does not keep."""
    return {
        "mayReadItems": "r" in rights, "mayAddItems": "i" in rights,
        "mayRemoveItems": "t" in rights and "e" in rights, "maySetSeen": "s" in rights,
        "maySetKeywords": "w" in rights, "mayCreateChild": False,
        "mayRename": False, "mayDelete": False, "maySubmit": False,
    }


def mailbox_object(state: MailboxState, by_name: dict[str, MailboxState],
                   account: MailAccount | None = None) -> dict[str, Any]:
    """The Mailbox object; in a shared ``account`` with the caller's rights, without the
    owner's role (as IMAP shows it without its special use) and its counts only where the
    caller may read."""
    box = state.mailbox
    parent, _, leaf = box.name.rpartition(SEPARATOR)
    if account is not None and not account.own:
        rights = account.rights_on(box.id)
        return {
            "id": mailbox_id(box.uidvalidity),
            "name": leaf,
            "parentId": (mailbox_id(by_name[parent].mailbox.uidvalidity)
                         if parent in by_name else None),
            "role": None,
            "sortOrder": _OTHER_ORDER,
            "totalEmails": state.counts.emails,
            "unreadEmails": state.counts.unread_emails,
            "totalThreads": state.counts.threads,
            "unreadThreads": state.counts.unread_threads,
            "myRights": acl_rights(rights),
            "isSubscribed": False,
        }
    role = role_of(state)
    return {
        "id": mailbox_id(box.uidvalidity),
        "name": leaf,
        "parentId": mailbox_id(by_name[parent].mailbox.uidvalidity) if parent in by_name else None,
        "role": role,
        "sortOrder": _ROLE_ORDER.get(role or "", _OTHER_ORDER),
        "totalEmails": state.counts.emails,
        "unreadEmails": state.counts.unread_emails,
        "totalThreads": state.counts.threads,
        "unreadThreads": state.counts.unread_threads,
        "myRights": _rights(state),
        "isSubscribed": box.subscribed,
    }


def _pick(obj: dict[str, Any], properties: Sequence[str] | None) -> dict[str, Any]:
    if properties is None:
        return obj
    return {"id": obj["id"], **{p: obj[p] for p in properties if p in obj}}


def _check_properties(properties: Sequence[str] | None) -> None:
    if properties is not None:
        unknown = [p for p in properties if p not in PROPERTIES]
        if unknown:
            raise MethodError("invalidArguments", f"unknown property {unknown[0][:60]!r}")


class MailboxMethods:
    """The Mailbox methods of one server, bound to its services."""

    def __init__(self, services: MailServices) -> None:
        self.services = services

    def register(self, methods: Methods) -> None:
        methods.add("Mailbox/get", MAIL, self.get)
        methods.add("Mailbox/changes", MAIL, self.changes)
        methods.add("Mailbox/query", MAIL, self.query)
        methods.add("Mailbox/queryChanges", MAIL, self.query_changes)
        methods.add("Mailbox/set", MAIL, self.set)

    async def _states(self, user_id: int, account: MailAccount | None = None
                      ) -> tuple[list[MailboxState], dict[str, MailboxState]]:
        """The account's mailboxes; of a shared ``account`` only those the caller may see."""
        states = await self.services.store.mailbox_states(user_id)
        if account is not None and not account.own:
            states = [await self._own_counts(account, s) for s in states
                      if account.shows_mailbox(s.mailbox.id)]
        return states, {s.mailbox.name: s for s in states}

    async def _own_counts(self, account: MailAccount, state: MailboxState) -> MailboxState:
        """A shared mailbox counted as the caller sees it: unread by its own \\Seen
        (decision 0028), as the store counts (an email or thread is unread when a copy in
        the mailbox is); nothing without "r"."""
        box = state.mailbox.id
        if not account.may(box, "r"):
            return replace(state, counts=MailboxCounts(0, 0, 0, 0))
        records = account.views(await self.services.store.account_emails(account.owner.id,
                                                                          box))
        unread = [r for r in records
                  if any(c.mailbox_id == box and SEEN not in c.flags for c in r.copies)]
        return replace(state, counts=MailboxCounts(
            len(records), len(unread), len({r.thread_id for r in records}),
            len({r.thread_id for r in unread})))

    # -- get and changes --------------------------------------------------------------------

    async def get(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = GetArgs.parse(arguments, self.services.limits)
        _check_properties(args.properties)
        account = await self.services.account(context, args.account_id)
        user = account.owner
        state = await self.services.store.account_state(user.id)
        states, by_name = await self._states(user.id, account)
        objects = {mailbox_id(s.mailbox.uidvalidity): mailbox_object(s, by_name, account)
                   for s in states}
        wanted = list(objects) if args.ids is None else [context.resolve_id(i) or i
                                                         for i in args.ids]
        found = [_pick(objects[i], args.properties) for i in wanted if i in objects]
        missing = [i for i in wanted if i not in objects]
        return {"accountId": args.account_id, "state": state_text(state), "list": found,
                "notFound": missing}

    async def changes(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = ChangesArgs.parse(arguments, self.services.limits)
        since = parse_state(args.since_state)
        account = await self.services.account(context, args.account_id)
        user = account.owner
        if not account.own:
            # The owner's changes name mailboxes not shared with the caller (and a revoke
            # is no change of the owner's): a shared account's mailboxes are fetched again.
            raise MethodError("cannotCalculateChanges", "a shared account's mailboxes are "
                              "fetched again")
        changes, counts_only = await self.services.store.mailbox_changes(
            user.id, since, args.max_changes)

        def ids(keys: Sequence[str]) -> list[str]:
            return [mailbox_id(int(k)) for k in keys]

        answer = changes_answer(args, since, changes.state, ids(changes.created),
                                ids(changes.updated), ids(changes.destroyed), more=changes.more)
        # RFC 8621 §2.2: only counts changed, so a client may fetch only those.
        answer["updatedProperties"] = (list(_COUNT_PROPERTIES) if counts_only and changes.updated
                                       else None)
        return answer

    # -- query ------------------------------------------------------------------------------

    def _matches(self, obj: dict[str, Any], condition: FilterCondition | FilterOperator | None
                 ) -> bool:
        if condition is None:
            return True
        if isinstance(condition, FilterOperator):
            results = (self._matches(obj, c) for c in condition.conditions)
            if condition.operator == "AND":
                return all(results)
            if condition.operator == "OR":
                return any(results)
            return not any(results)
        for name, value in condition.properties.items():
            if name == "parentId":
                if obj["parentId"] != value:
                    return False
            elif name == "name":
                if not isinstance(value, str):
                    raise MethodError("invalidArguments", "filter name must be a string")
                if value.casefold() not in obj["name"].casefold():
                    return False
            elif name == "role":
                if obj["role"] != value:
                    return False
            elif name == "hasAnyRole":
                if not isinstance(value, bool):
                    raise MethodError("invalidArguments", "filter hasAnyRole must be a boolean")
                if (obj["role"] is not None) != value:
                    return False
            elif name == "isSubscribed":
                if obj["isSubscribed"] != value:
                    return False
            else:
                raise MethodError("unsupportedFilter", f"no Mailbox filter {name[:60]!r}")
        return True

    async def _query_ids(self, context: CallContext, args: QueryArgs | QueryChangesArgs
                         ) -> tuple[list[str], int]:
        account = await self.services.account(context, args.account_id)
        user = account.owner
        state = await self.services.store.account_state(user.id)
        states, by_name = await self._states(user.id, account)
        objects = [mailbox_object(s, by_name, account) for s in states]
        full_names = {mailbox_id(s.mailbox.uidvalidity): s.mailbox.name for s in states}
        matching = [o for o in objects if self._matches(o, args.filter)]
        keys: list[tuple[str, bool]] = []
        for comparator in args.sort or ():
            if comparator.property not in ("name", "sortOrder"):
                raise MethodError("unsupportedSort", f"cannot sort by {comparator.property[:60]!r}")
            keys.append((comparator.property, comparator.is_ascending))
        for prop, ascending in reversed(keys):
            matching.sort(key=_sort_key(prop), reverse=not ascending)
        if args.extra.get("sortAsTree"):
            # RFC 8621 §2.3: parents before their children, siblings in the sort's order.
            order = {o["id"]: n for n, o in enumerate(matching)}
            matching.sort(key=lambda o: [order.get(mailbox_id(by_name[p].mailbox.uidvalidity),
                                                   0)
                                         for p in _ancestors(full_names[o["id"]])
                                         if p in by_name] + [order[o["id"]]])
        return [o["id"] for o in matching], state

    async def query(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = QueryArgs.parse(arguments, self.services.limits,
                               extra=("sortAsTree", "filterAsTree"))
        ids, state = await self._query_ids(context, args)
        tree = bool(args.extra.get("sortAsTree") or args.extra.get("filterAsTree"))
        return query_answer(args, state, ids, can_calculate_changes=not tree)

    async def query_changes(self, context: CallContext, arguments: dict[str, Any]
                            ) -> dict[str, Any]:
        """RFC 8620 §5.6 from the mailboxes changed since: every changed one is removed
        and, if it matches now, added at its index. Sorted as a tree, a rename moves a
        whole subtree: that cannot be answered this way."""
        args = QueryChangesArgs.parse(arguments, self.services.limits,
                                      extra=("sortAsTree", "filterAsTree"))
        if args.extra.get("sortAsTree") or args.extra.get("filterAsTree"):
            raise MethodError("cannotCalculateChanges", "tree queries are fetched again")
        since = parse_state(args.since_query_state)
        account = await self.services.account(context, args.account_id)
        user = account.owner
        if not account.own:
            raise MethodError("cannotCalculateChanges", "a shared account's mailboxes are "
                              "queried again")
        changes, _ = await self.services.store.mailbox_changes(user.id, since, None)
        ids, state = await self._query_ids(context, args)
        changed = {mailbox_id(int(k)) for k in
                   (*changes.created, *changes.updated, *changes.destroyed)}
        return _query_changes_answer(args, ids, changed, since, state)

    # -- set --------------------------------------------------------------------------------

    async def set(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = SetArgs.parse(arguments, self.services.limits, extra=("onDestroyRemoveEmails",))
        remove_emails = args.extra.get("onDestroyRemoveEmails", False)
        if not isinstance(remove_emails, bool):
            raise MethodError("invalidArguments", "onDestroyRemoveEmails must be a boolean")
        store = self.services.store
        account = await self.services.account(context, args.account_id)
        user = account.owner
        old_state = await store.account_state(user.id)
        require_state(args.if_in_state, old_state)
        if not account.own:
            return _refuse_all(args, old_state)
        created: dict[str, Any] = {}
        not_created: dict[str, Any] = {}
        for creation_id, obj in args.create.items():
            try:
                made = await self._create(context, user.id, obj)
            except SetRefused as refused:
                not_created[creation_id] = refused.error.to_json()
                continue
            context.created_ids[creation_id] = made["id"]
            created[creation_id] = made
        updated: dict[str, Any] = {}
        not_updated: dict[str, Any] = {}
        for target, patch in args.update.items():
            real = context.resolve_id(target)
            try:
                if real is None:
                    raise SetRefused(SetError("notFound", "no mailbox was created with that id"))
                await self._update(context, user.id, real, patch)
            except SetRefused as refused:
                not_updated[target] = refused.error.to_json()
                continue
            updated[real] = None
        destroyed: list[str] = []
        not_destroyed: dict[str, Any] = {}
        for target in args.destroy:
            real = context.resolve_id(target)
            try:
                if real is None:
                    raise SetRefused(SetError("notFound", "no mailbox was created with that id"))
                await self._destroy(user.id, real, remove_emails)
            except SetRefused as refused:
                not_destroyed[target] = refused.error.to_json()
                continue
            destroyed.append(real)
        new_state = await store.account_state(user.id)
        return set_answer(
            args.account_id, old_state, new_state, created=created, updated=updated,
            destroyed=destroyed, not_created=not_created, not_updated=not_updated,
            not_destroyed=not_destroyed,
        )

    async def _find(self, user_id: int, value: str) -> tuple[MailboxState,
                                                            dict[str, MailboxState]]:
        uidvalidity = uidvalidity_of(value)
        states, by_name = await self._states(user_id)
        for state in states:
            if state.mailbox.uidvalidity == uidvalidity:
                return state, by_name
        raise SetRefused(SetError("notFound", "no such mailbox"))

    async def _parent_name(self, context: CallContext, user_id: int, value: Any) -> str:
        """The IMAP name of ``parentId`` ("" for the top level)."""
        if value is None:
            return ""
        if not isinstance(value, str):
            raise SetRefused(SetError("invalidProperties", "parentId is an id or null",
                                    ("parentId",)))
        real = context.resolve_id(value)
        if real is None:
            raise SetRefused(SetError("invalidProperties", "no mailbox was created with that id",
                                    ("parentId",)))
        try:
            parent, _ = await self._find(user_id, real)
        except SetRefused:
            raise SetRefused(SetError("invalidProperties", "no such parent mailbox",
                                    ("parentId",))) from None
        return parent.mailbox.name

    async def _create(self, context: CallContext, user_id: int, obj: dict[str, Any]
                      ) -> dict[str, Any]:
        server_set = sorted(set(obj) - _SETTABLE)
        if server_set:
            raise SetRefused(SetError("invalidProperties", "set by the server",
                                    tuple(server_set)))
        name = _leaf(obj.get("name"))
        parent = await self._parent_name(context, user_id, obj.get("parentId"))
        role = obj.get("role")
        special_use = None
        if role is not None:
            special_use = SPECIAL_USE_OF_ROLE.get(role) if isinstance(role, str) else None
            if special_use is None:
                raise SetRefused(SetError("invalidProperties", "not a role this server gives",
                                        ("role",)))
            states, _ = await self._states(user_id)
            if any(role_of(s) == role for s in states):
                raise SetRefused(SetError("invalidProperties", "another mailbox has that role",
                                        ("role",)))
        full = f"{parent}{SEPARATOR}{name}" if parent else name
        subscribed = obj.get("isSubscribed", False)
        if not isinstance(subscribed, bool):
            raise SetRefused(SetError("invalidProperties", "isSubscribed is a boolean",
                                    ("isSubscribed",)))
        try:
            made = await self.services.store.create_mailbox(user_id, full, special_use)
            if subscribed:
                await self.services.store.set_subscribed(user_id, full, True)
        except AlreadyExists:
            raise SetRefused(SetError("invalidProperties", "a mailbox of that name exists there",
                                    ("name",))) from None
        except InvalidName as exc:
            raise SetRefused(SetError("invalidProperties", str(exc), ("name",))) from None
        states, by_name = await self._states(user_id)
        answer = mailbox_object(by_name[made.name], by_name)
        # RFC 8620 §5.3: the created object's server-set properties.
        return {k: v for k, v in answer.items() if k not in obj or k == "id"}

    async def _update(self, context: CallContext, user_id: int, target: str,
                      patch: dict[str, Any]) -> None:
        state, by_name = await self._find(user_id, target)
        current = mailbox_object(state, by_name)
        try:
            wanted = apply_patch(current, patch)
        except MethodError as exc:
            raise SetRefused(SetError("invalidPatch", exc.description)) from None
        changed = sorted(k for k in wanted if wanted.get(k) != current.get(k))
        changed += sorted(k for k in current if k not in wanted)
        fixed = [k for k in changed if k not in ("name", "parentId", "isSubscribed")]
        if fixed:
            raise SetRefused(SetError("invalidProperties", "cannot be changed here", tuple(fixed)))
        store = self.services.store
        name = state.mailbox.name
        if "name" in changed or "parentId" in changed:
            if is_inbox(name):
                raise SetRefused(SetError("forbidden", "INBOX keeps its name"))
            leaf = _leaf(wanted.get("name"))
            parent = await self._parent_name(context, user_id, wanted.get("parentId"))
            if parent == name or parent.startswith(name + SEPARATOR):
                raise SetRefused(SetError("invalidProperties", "a mailbox cannot move into itself",
                                        ("parentId",)))
            new = f"{parent}{SEPARATOR}{leaf}" if parent else leaf
            try:
                await store.rename_mailbox(user_id, name, new)
            except AlreadyExists:
                raise SetRefused(SetError("invalidProperties",
                                        "a mailbox of that name exists there",
                                        ("name",))) from None
            except InvalidName as exc:
                raise SetRefused(SetError("invalidProperties", str(exc), ("name",))) from None
            name = new
        if "isSubscribed" in changed:
            if not isinstance(wanted.get("isSubscribed"), bool):
                raise SetRefused(SetError("invalidProperties", "isSubscribed is a boolean",
                                        ("isSubscribed",)))
            await store.set_subscribed(user_id, name, bool(wanted["isSubscribed"]))

    async def _destroy(self, user_id: int, target: str, remove_emails: bool) -> None:
        state, by_name = await self._find(user_id, target)
        name = state.mailbox.name
        if is_inbox(name):
            raise SetRefused(SetError("forbidden", "INBOX cannot be destroyed"))
        if any(other.startswith(name + SEPARATOR) for other in by_name):
            raise SetRefused(SetError("mailboxHasChild", "destroy its child mailboxes first"))
        if state.counts.emails and not remove_emails:
            raise SetRefused(SetError("mailboxHasEmail",
                                    "it holds emails (onDestroyRemoveEmails removes them)"))
        try:
            await self.services.store.delete_mailbox(user_id, name)
        except (NotFound, NotEmpty) as exc:
            raise SetRefused(SetError("notFound", str(exc))) from None
        except MailsteadError as exc:
            log.warning("Mailbox/set destroy %s: %s", name, exc)
            raise SetRefused(SetError("forbidden", "the mailbox could not be destroyed")) from None


def _leaf(value: Any) -> str:
    """A Mailbox name: one level, not empty (RFC 8621 §2: it may not hold the hierarchy
    separator, which here is ``/``)."""
    if not isinstance(value, str) or not value.strip():
        raise SetRefused(SetError("invalidProperties", "a name is a non-empty string", ("name",)))
    if SEPARATOR in value:
        raise SetRefused(SetError("invalidProperties", f"a name cannot hold {SEPARATOR!r}",
                                ("name",)))
    if len(value.encode()) > 255:
        raise SetRefused(SetError("invalidProperties", "a name is at most 255 octets", ("name",)))
    return value


def _sort_key(prop: str) -> Callable[[dict[str, Any]], Any]:
    if prop == "name":
        return lambda obj: obj["name"].casefold()
    return lambda obj: obj[prop]


def _ancestors(name: str) -> list[str]:
    parts = name.split(SEPARATOR)
    return [SEPARATOR.join(parts[:n]) for n in range(1, len(parts))]


def _query_changes_answer(
    args: QueryChangesArgs, ids: list[str], changed: set[str], since: int, state: int
) -> dict[str, Any]:
    """RFC 8620 §5.6 for a sort that depends on each object alone: an object that did not
    change kept its place relative to the others, so removing every changed id and adding
    back those in the results at their index turns the old results into the new."""
    added: list[dict[str, Any]] = []
    for index, value in enumerate(ids):
        if value in changed:
            added.append({"id": value, "index": index})
        if args.up_to_id is not None and value == args.up_to_id:
            break
    removed = sorted(changed)
    if args.max_changes is not None and len(removed) + len(added) > args.max_changes:
        raise MethodError("tooManyChanges", f"more than {args.max_changes} changes")
    answer: dict[str, Any] = {
        "accountId": args.account_id, "oldQueryState": args.since_query_state,
        "newQueryState": state_text(state), "removed": removed, "added": added,
    }
    if args.calculate_total:
        answer["total"] = len(ids)
    return answer


def _refuse_all(args: SetArgs, state: int) -> dict[str, Any]:
    """Mailbox/set in another account: its mailboxes are the owner's to create, rename and
    delete (over IMAP a grantee with "k" and "x" may; here every change is forbidden)."""
    forbidden = SetError("forbidden", "another account's mailboxes are its owner's to "
                         "change").to_json()
    return {
        "accountId": args.account_id, "oldState": state_text(state),
        "newState": state_text(state), "created": None, "updated": None, "destroyed": None,
        "notCreated": {c: forbidden for c in args.create} or None,
        "notUpdated": {u: forbidden for u in args.update} or None,
        "notDestroyed": {d: forbidden for d in args.destroy} or None,
    }
