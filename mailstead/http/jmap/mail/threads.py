"""Thread/get and Thread/changes (RFC 8621 §3).

A thread is fixed when its first email arrives (decision 0033): the emails that name a
message of the thread in References or In-Reply-To join it. Its ``emailIds`` are in the
order the emails were received.
"""

from __future__ import annotations

from typing import Any

from mailstead.http.jmap.dispatch import CallContext, Methods
from mailstead.http.jmap.errors import MethodError
from mailstead.http.jmap.mail.answers import changes_answer
from mailstead.http.jmap.mail.ids import email_id, parse_state, state_text
from mailstead.http.jmap.mail.services import MAIL, MailServices
from mailstead.http.jmap.standard import ChangesArgs, GetArgs


class ThreadMethods:
    def __init__(self, services: MailServices) -> None:
        self.services = services

    def register(self, methods: Methods) -> None:
        methods.add("Thread/get", MAIL, self.get)
        methods.add("Thread/changes", MAIL, self.changes)

    async def get(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = GetArgs.parse(arguments, self.services.limits)
        if args.ids is None:
            raise MethodError("requestTooLarge", "name the threads to get")
        if args.properties is not None and not set(args.properties) <= {"id", "emailIds"}:
            raise MethodError("invalidArguments", "a Thread has id and emailIds")
        account = await self.services.account(context, args.account_id)
        user = account.owner
        store = self.services.store
        state = await store.account_state(user.id)
        wanted = [context.resolve_id(i) or i for i in args.ids]
        threads = await store.thread_emails(user.id, wanted)
        if not account.own:
            # A shared account: a thread holds the emails the caller may read, and one
            # with none does not exist for it.
            every = [b for blobs in threads.values() for b in blobs]
            seen = {r.blob_id for r in account.views(await store.email_records(user.id, every))}
            threads = {t: [b for b in blobs if b in seen] for t, blobs in threads.items()}
            threads = {t: blobs for t, blobs in threads.items() if blobs}
        found = []
        for thread_id in wanted:
            if thread_id in threads:
                obj: dict[str, Any] = {"id": thread_id}
                if args.properties is None or "emailIds" in args.properties:
                    obj["emailIds"] = [email_id(b) for b in threads[thread_id]]
                found.append(obj)
        return {"accountId": args.account_id, "state": state_text(state), "list": found,
                "notFound": [t for t in wanted if t not in threads]}

    async def changes(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = ChangesArgs.parse(arguments, self.services.limits)
        since = parse_state(args.since_state)
        account = await self.services.account(context, args.account_id)
        user = account.owner
        if not account.own:
            # The owner's threads change with its mail in mailboxes the caller does not
            # see: their ids must not reach it, so a shared account's client refetches.
            raise MethodError("cannotCalculateChanges", "a shared account's threads are "
                              "fetched again")
        changes = await self.services.store.thread_changes(user.id, since, args.max_changes)
        return changes_answer(args, since, changes.state, changes.created, changes.updated,
                              changes.destroyed, more=changes.more)
