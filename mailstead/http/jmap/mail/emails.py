"""Email/get, /changes, /set, /copy and /import (RFC 8621 §4.2, §4.3, §4.6, §4.7, §4.8).

An Email is a body the account holds, in one or more of its mailboxes (decision 0033);
its keywords are its copies' flags. Changing an Email changes its copies through the same
store writes IMAP makes (STORE, COPY, EXPUNGE of the copies), so an IMAP session with a
mailbox selected sees each change as it would see another client's, and every write takes
the account's next mod-sequence: JMAP's state.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from mailstead.core.errors import MailsteadError, QuotaExceeded
from mailstead.core.rights import flag_right, settable
from mailstead.core.types import SEEN, UID, FlagMode
from mailstead.http.jmap.dispatch import CallContext, Methods
from mailstead.http.jmap.errors import MethodError, SetError, SetRefused
from mailstead.http.jmap.mail import content as contents
from mailstead.http.jmap.mail.answers import changes_answer, require_state, set_answer
from mailstead.http.jmap.mail.blobs import parse as parse_blob
from mailstead.http.jmap.mail.blobs import part_blob_id, read_blob
from mailstead.http.jmap.mail.ids import (
    blob_of_email,
    email_id,
    flags_for,
    is_keyword,
    keywords_of,
    mailbox_id,
    message_blob_id,
    parse_state,
    state_text,
)
from mailstead.http.jmap.mail.services import MAIL, MailAccount, MailServices
from mailstead.http.jmap.standard import ChangesArgs, CopyArgs, GetArgs, SetArgs, apply_patch
from mailstead.mime import jmap_headers
from mailstead.mime.jmap_compose import ComposeError, compose
from mailstead.mime.jmap_views import (
    DEFAULT_BODY_PROPERTIES,
    EmailBody,
    body_property_valid,
    email_header_properties,
    preview,
)
from mailstead.store.models import Changes, EmailCopy, EmailRecord, User

log = logging.getLogger("mailstead.http.jmap")

METADATA = ("id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt")
HEADER_PROPERTIES = ("headers", *jmap_headers.CONVENIENCE)
BODY = ("bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments",
        "hasAttachment", "preview")
#: RFC 8621 §4.2: what Email/get gives when the client names no properties.
DEFAULT_PROPERTIES = (
    "id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId",
    "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject",
    "sentAt", "hasAttachment", "preview", "bodyValues", "textBody", "htmlBody", "attachments",
)
#: RFC 8621 §4.9: what Email/parse gives when the client names no properties.
PARSE_PROPERTIES = (
    "messageId", "inReplyTo", "references", "sender", "from", "to", "cc", "bcc", "replyTo",
    "subject", "sentAt", "hasAttachment", "preview", "bodyValues", "textBody", "htmlBody",
    "attachments",
)
_GET_EXTRA = ("bodyProperties", "fetchTextBodyValues", "fetchHTMLBodyValues",
              "fetchAllBodyValues", "maxBodyValueBytes")
#: Properties that need the message's octets beyond its header.
_WHOLE = frozenset({"bodyStructure", "bodyValues", "textBody", "htmlBody", "attachments",
                    "hasAttachment"})


def utc_date(value: datetime) -> str:
    """RFC 8620 §1.4 UTCDate."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def valid_property(name: str) -> bool:
    return (name in METADATA or name in HEADER_PROPERTIES or name in BODY
            or jmap_headers.header_property(name) is not None)


def metadata_of(record: EmailRecord, mailbox_ids: dict[int, str]) -> dict[str, Any]:
    return {
        "id": email_id(record.blob_id),
        "blobId": message_blob_id(record.blob_id),
        "threadId": record.thread_id,
        "mailboxIds": {mailbox_ids[c.mailbox_id]: True for c in record.copies
                       if c.mailbox_id in mailbox_ids},
        "keywords": keywords_of(record.flags),
        "size": record.size,
        "receivedAt": utc_date(record.received),
    }


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, bool):
        raise MethodError("invalidArguments", f"{name} must be a boolean")
    return value


class PropertyCache:
    """Email properties computed from a body that never change (its header properties,
    its preview), by body: a message list shown again does not parse its headers again.
    Least recently used first out; bodies are content-addressed, so nothing goes stale."""

    def __init__(self, max_bodies: int = 20_000) -> None:
        self.max_bodies = max_bodies
        self._bodies: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, blob_id: str, names: Sequence[str]) -> dict[str, Any] | None:
        """The properties ``names`` of the body, if all are known; None otherwise."""
        known = self._bodies.get(blob_id)
        if known is None or any(n not in known for n in names):
            return None
        self._bodies.move_to_end(blob_id)
        return {n: known[n] for n in names}

    def put(self, blob_id: str, values: dict[str, Any]) -> None:
        if not values:
            return
        self._bodies.setdefault(blob_id, {}).update(values)
        self._bodies.move_to_end(blob_id)
        while len(self._bodies) > self.max_bodies:
            self._bodies.popitem(last=False)


class EmailMethods:
    def __init__(self, services: MailServices) -> None:
        self.services = services
        self._cache = PropertyCache()

    def register(self, methods: Methods) -> None:
        methods.add("Email/get", MAIL, self.get)
        methods.add("Email/changes", MAIL, self.changes)
        methods.add("Email/set", MAIL, self.set)
        methods.add("Email/import", MAIL, self.import_)
        methods.add("Email/copy", MAIL, self.copy)
        methods.add("Email/parse", MAIL, self.parse)

    async def mailbox_ids(self, account: MailAccount) -> dict[int, str]:
        """The account's mailboxes' JMAP ids by store id (of a shared account, those the
        caller may see)."""
        keys = await self.services.store.mailbox_keys(account.owner.id)
        return {box: mailbox_id(uidvalidity) for box, uidvalidity in keys.items()
                if account.shows_mailbox(box)}

    # -- get --------------------------------------------------------------------------------

    async def get(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = GetArgs.parse(arguments, self.services.limits, extra=_GET_EXTRA)
        properties, body_properties, fetch_text, fetch_html, fetch_all, max_bytes = (
            _body_arguments(args.properties, args.extra, DEFAULT_PROPERTIES))
        account = await self.services.account(context, args.account_id)
        user = account.owner
        store = self.services.store
        state = await store.account_state(user.id)
        if args.ids is None:
            records = account.views(await store.account_emails(user.id))
            if len(records) > self.services.limits.max_objects_in_get:
                raise MethodError("requestTooLarge", "name the ids: the account has more emails"
                                  f" than {self.services.limits.max_objects_in_get}")
            wanted = [email_id(r.blob_id) for r in records]
        else:
            wanted = [context.resolve_id(i) or i for i in args.ids]
            blobs = [b for b in (blob_of_email(i) for i in wanted) if b is not None]
            records = account.views(await store.email_records(user.id, blobs))
        by_id = {email_id(r.blob_id): r for r in records}
        mailbox_ids = await self.mailbox_ids(account)
        # Header properties and the preview of a body never change: they come from the
        # cache when it has them all, and only the other bodies are read.
        cached_names = [p for p in properties if p not in METADATA and p not in _WHOLE
                        and p != "bodyValues"]
        always = any(p in _WHOLE or p == "bodyValues" for p in properties)
        to_load = [r.blob_id for r in records if cached_names or always]
        if not always:
            to_load = [b for b in to_load if self._cache.get(b, cached_names) is None]
        needs_octets = any(p not in METADATA and p != "preview" for p in properties)
        loaded = await contents.load(store, to_load, octets=needs_octets,
                                     whole=always) if to_load else {}
        if "preview" in properties:  # a structure stored without one: made from the body
            again = [b for b, c in loaded.items() if c.structure.preview is None
                     and not c.complete]
            if again:
                loaded.update(await contents.load(store, again, octets=True, whole=True))
        found: list[dict[str, Any]] = []
        missing: list[str] = []
        for value in wanted:
            record = by_id.get(value)
            if record is None or (record.blob_id in to_load and record.blob_id not in loaded):
                missing.append(value)
                continue
            obj = {"id": value}
            meta = metadata_of(record, mailbox_ids)
            obj.update({p: meta[p] for p in properties if p in meta})
            content = loaded.get(record.blob_id)
            if content is not None:
                made = self._content_properties(
                    message_blob_id(record.blob_id), content, properties, body_properties,
                    fetch_text, fetch_html, fetch_all, max_bytes)
                self._cache.put(record.blob_id, {n: made[n] for n in cached_names})
                obj.update(made)
            elif cached_names:
                obj.update(self._cache.get(record.blob_id, cached_names) or {})
            found.append(obj)
        return {"accountId": args.account_id, "state": state_text(state), "list": found,
                "notFound": missing}

    def _content_properties(
        self, container: str, content: contents.Content, properties: Sequence[str],
        body_properties: Sequence[str], fetch_text: bool, fetch_html: bool, fetch_all: bool,
        max_bytes: int,
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if "preview" in properties:
            kept = content.structure.preview
            out["preview"] = kept if kept is not None else preview(content.parsed, content.raw)
        header_names = [p for p in properties if p not in METADATA and p not in BODY]
        if header_names:
            out.update(email_header_properties(content.raw, content.structure.top_headers,
                                               header_names))
        if not any(p in _WHOLE for p in properties):
            return out
        body = EmailBody(content.parsed, content.raw)

        def blob_of(part_id: str) -> str:
            return part_blob_id(container, part_id)

        if "bodyStructure" in properties:
            out["bodyStructure"] = body.render(body.root, blob_of, body_properties)
        for name, parts in (("textBody", body.text_body), ("htmlBody", body.html_body),
                            ("attachments", body.attachments)):
            if name in properties:
                out[name] = body.render_list(parts, blob_of, body_properties)
        if "hasAttachment" in properties:
            out["hasAttachment"] = body.has_attachment
        if "bodyValues" in properties:
            chosen: list[str] = []
            if fetch_all:
                chosen = [p.part_id for p in body.root.leaves()
                          if p.part_id is not None and p.part.content_type == "text"]
            else:
                if fetch_text:
                    chosen += [p.part_id for p in body.text_body if p.part_id is not None]
                if fetch_html:
                    chosen += [p.part_id for p in body.html_body if p.part_id is not None]
            out["bodyValues"] = body.body_values(chosen, max_bytes)
        return out

    # -- parse ------------------------------------------------------------------------------

    async def parse(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        """RFC 8621 §4.9: messages in blobs (an upload, an attached message) as Emails that
        are in no mailbox."""
        known = {"accountId", "blobIds", "properties", *_GET_EXTRA}
        unknown = sorted(set(arguments) - known)
        if unknown:
            raise MethodError("invalidArguments", f"unknown argument {unknown[0][:60]!r}")
        blob_ids = arguments.get("blobIds")
        if not isinstance(blob_ids, list) or not all(isinstance(b, str) for b in blob_ids):
            raise MethodError("invalidArguments", "blobIds must be an array of ids")
        if len(blob_ids) > self.services.limits.max_objects_in_get:
            raise MethodError("requestTooLarge", "too many blobIds in one call")
        asked = arguments.get("properties")
        if asked is not None and (not isinstance(asked, list)
                                  or not all(isinstance(p, str) for p in asked)):
            raise MethodError("invalidArguments", "properties must be an array of strings")
        properties, body_properties, fetch_text, fetch_html, fetch_all, max_bytes = (
            _body_arguments(asked, arguments, PARSE_PROPERTIES))
        account = await self.services.account(context, arguments.get("accountId"))
        parsed: dict[str, Any] = {}
        not_parsable: list[str] = []
        not_found: list[str] = []
        for blob in blob_ids:
            data = await read_blob(self.services.store, account.viewer.id, blob, account)
            if data is None:
                not_found.append(blob)
                continue
            try:
                message = await parse_blob(data)
            except ValueError:
                not_parsable.append(blob)
                continue
            content = contents.Content.of(message, data)
            obj: dict[str, Any] = {}
            for name in properties:
                if name in ("id", "mailboxIds", "keywords", "receivedAt", "threadId"):
                    obj[name] = None  # §4.9: no such thing for a message in a blob
                elif name == "blobId":
                    obj[name] = blob
                elif name == "size":
                    obj[name] = len(data)
            obj.update(self._content_properties(blob, content, properties, body_properties,
                                                fetch_text, fetch_html, fetch_all, max_bytes))
            parsed[blob] = obj
        return {"accountId": arguments.get("accountId"), "parsed": parsed or None,
                "notParsable": not_parsable or None, "notFound": not_found or None}

    # -- changes ----------------------------------------------------------------------------

    async def changes(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = ChangesArgs.parse(arguments, self.services.limits)
        since = parse_state(args.since_state)
        account = await self.services.account(context, args.account_id)
        user = account.owner
        changes = await self.services.store.email_changes(user.id, since, args.max_changes)
        if not account.own and since <= changes.state:
            changes = await self._shared_changes(account, changes)
        return changes_answer(
            args, since, changes.state, [email_id(b) for b in changes.created],
            [email_id(b) for b in changes.updated], [email_id(b) for b in changes.destroyed],
            more=changes.more)

    async def _shared_changes(self, account: MailAccount, changes: Changes) -> Changes:
        """The owner's changes as the caller of a shared account may learn them: the
        emails it sees now. An id it does not see now (destroyed, or changed outside the
        mailboxes shared with it) may name an email it never saw, whose id must not reach
        it: then the client fetches again (``cannotCalculateChanges``, RFC 8620 §5.2),
        which also covers a revoked grant."""
        if changes.destroyed:
            raise MethodError("cannotCalculateChanges", "emails left the shared mailboxes:"
                              " fetch them again")
        blobs = [*changes.created, *changes.updated]
        records = await self.services.store.email_records(account.owner.id, blobs)
        visible = {r.blob_id for r in account.views(records)}
        if len(visible) != len(set(blobs)):
            raise MethodError("cannotCalculateChanges", "emails left the shared mailboxes:"
                              " fetch them again")
        return changes

    # -- set --------------------------------------------------------------------------------

    async def set(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        args = SetArgs.parse(arguments, self.services.limits)
        store = self.services.store
        account = await self.services.account(context, args.account_id)
        user = account.owner
        old_state = await store.account_state(user.id)
        require_state(args.if_in_state, old_state)
        mailbox_ids = await self.mailbox_ids(account)
        store_ids = {v: k for k, v in mailbox_ids.items()}
        created: dict[str, Any] = {}
        not_created: dict[str, Any] = {}
        for creation_id, obj in args.create.items():
            try:
                created[creation_id] = await self._create(context, account, obj, store_ids)
            except SetRefused as refused:
                not_created[creation_id] = refused.error.to_json()
                continue
            context.created_ids[creation_id] = created[creation_id]["id"]
        updated: dict[str, Any] = {}
        not_updated: dict[str, Any] = {}
        for target, patch in args.update.items():
            real = context.resolve_id(target)
            try:
                blob = blob_of_email(real) if real is not None else None
                if blob is None or real is None:
                    raise SetRefused(SetError("notFound", "no such email"))
                await self._update(context, account, blob, patch, mailbox_ids, store_ids)
            except SetRefused as refused:
                not_updated[target] = refused.error.to_json()
                continue
            updated[real] = None
        destroyed: list[str] = []
        not_destroyed: dict[str, Any] = {}
        for target in args.destroy:
            real = context.resolve_id(target)
            blob = blob_of_email(real) if real is not None else None
            records = account.views(await store.email_records(user.id, [blob]) if blob else [])
            if not records or real is None:
                not_destroyed[target] = SetError("notFound", "no such email").to_json()
                continue
            if not all(account.may(c.mailbox_id, "te") for c in records[0].copies):
                not_destroyed[target] = _FORBIDDEN_REMOVE.to_json()
                continue
            await self._remove_copies(records[0].copies)
            destroyed.append(real)
        new_state = await store.account_state(user.id)
        return set_answer(
            args.account_id, old_state, new_state, created=created, updated=updated,
            destroyed=destroyed, not_created=not_created, not_updated=not_updated,
            not_destroyed=not_destroyed,
        )

    def _mailboxes(self, context: CallContext, value: Any, store_ids: dict[str, int]
                   ) -> list[int]:
        """The store ids of a ``mailboxIds`` object: at least one, all the account's."""
        if not isinstance(value, dict) or not value or not all(v is True for v in value.values()):
            raise SetRefused(SetError("invalidProperties",
                                    "mailboxIds is an object of at least one id to true",
                                    ("mailboxIds",)))
        found = []
        for key in value:
            real = context.resolve_id(key)
            if real is None or real not in store_ids:
                raise SetRefused(SetError("invalidProperties", "no such mailbox",
                                        ("mailboxIds",)))
            found.append(store_ids[real])
        return found

    def _keywords(self, value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, dict) or not all(
                isinstance(k, str) and is_keyword(k) and v is True for k, v in value.items()):
            raise SetRefused(SetError("invalidProperties",
                                    "keywords is an object of keywords to true", ("keywords",)))
        return list(value)

    async def _append(self, account: MailAccount, data: bytes, boxes: list[int],
                      keywords: list[str], received: datetime | None) -> EmailRecord:
        """Store ``data`` in the first mailbox and copy it into the others. In a shared
        account every mailbox needs "i" (RFC 4314 §4: APPEND), and the copies get only the
        flags the caller may set there; its ``$seen`` is its own \\Seen (decision 0028)."""
        user = account.owner
        if not all(account.may(box, "i") for box in boxes):
            raise SetRefused(SetError("forbidden", "adding to that mailbox needs the right "
                                    "to insert (i)", ("mailboxIds",)))
        if len(data) > self.services.max_message_size:
            raise SetRefused(SetError("tooLarge", "the message is larger than this server takes",
                                    extra={"maxSize": self.services.max_message_size}))
        wanted = flags_for(keywords, ())
        flags = wanted if account.own else settable(wanted, account.rights_on(boxes[0])) - {SEEN}
        store = self.services.store
        try:
            added = await store.append(boxes[0], data, flags, received)
            for other in boxes[1:]:
                await store.copy(boxes[0], [added.uid], other,
                                 rights=None if account.own else account.rights_on(other))
        except QuotaExceeded:
            raise SetRefused(SetError("overQuota", "the account's quota is full")) from None
        listed = await store.list_messages(boxes[0], [(int(added.uid), int(added.uid))])
        records = await store.email_records(user.id, [listed[0].blob_id])
        if not account.own and SEEN in wanted:
            await self._set_private_seen(account, [
                c for c in records[0].copies if c.mailbox_id in boxes], True)
        return records[0]

    async def _set_private_seen(self, account: MailAccount, copies: Iterable[EmailCopy],
                                seen: bool) -> None:
        """The caller's own \\Seen on copies in a shared account, where it has "s"."""
        by_mailbox: dict[int, list[UID]] = {}
        for copy in copies:
            if account.may(copy.mailbox_id, "s"):
                by_mailbox.setdefault(copy.mailbox_id, []).append(copy.uid)
        for mailbox, uids in by_mailbox.items():
            await self.services.store.set_private_seen(mailbox, account.viewer.id, uids, seen)

    async def _create(self, context: CallContext, account: MailAccount, obj: dict[str, Any],
                      store_ids: dict[str, int]) -> dict[str, Any]:
        """RFC 8621 §4.6: a new message from the properties (a draft, usually)."""
        boxes = self._mailboxes(context, obj.get("mailboxIds"), store_ids)
        keywords = self._keywords(obj.get("keywords"))
        received = _received(obj.get("receivedAt"))
        server_set = [p for p in ("id", "blobId", "threadId", "size", "preview",
                                  "hasAttachment") if p in obj]
        if server_set:
            raise SetRefused(SetError("invalidProperties", "set by the server",
                                    tuple(server_set)))
        uploads = await self._blobs_of(account.viewer, obj)
        try:
            data = compose(obj, uploads.get, now=datetime.now(UTC),
                           message_id_domain=account.viewer.address.rpartition("@")[2])
        except ComposeError as exc:
            raise SetRefused(SetError(**exc.set_error())) from None
        record = await self._append(account, data, boxes, keywords, received)
        return {"id": email_id(record.blob_id), "blobId": message_blob_id(record.blob_id),
                "threadId": record.thread_id, "size": record.size}

    async def _blobs_of(self, user: User, obj: dict[str, Any]) -> dict[str, bytes]:
        """The uploads a created email's parts name by blobId, read before composing."""
        wanted: set[str] = set()

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                if isinstance(value.get("blobId"), str):
                    wanted.add(value["blobId"])
                for child in value.values():
                    walk(child)
            elif isinstance(value, list):
                for child in value:
                    walk(child)

        for key in ("bodyStructure", "attachments", "textBody", "htmlBody"):
            walk(obj.get(key))
        found: dict[str, bytes] = {}
        for blob in wanted:
            data = await self.read_blob(user, blob)
            if data is not None:
                found[blob] = data
        return found

    async def read_blob(self, user: User, blob: str) -> bytes | None:
        """Any blob the account may read: an upload, a message, a message's part."""
        return await read_blob(self.services.store, user.id, blob)

    async def _update(self, context: CallContext, account: MailAccount, blob: str,
                      patch: dict[str, Any], mailbox_ids: dict[int, str],
                      store_ids: dict[str, int]) -> None:
        """Keywords and mailboxes of an email. In a shared account each change needs its
        right on each mailbox it touches (RFC 4314 §4, as IMAP asks): "i" to add to one,
        "t" and "e" to take a copy out, "s" for ``$seen`` (the caller's own), "w" for any
        other keyword; refused as a whole (``forbidden``) before anything is written."""
        store = self.services.store
        user = account.owner
        viewed = account.views(await store.email_records(user.id, [blob]))
        if not viewed:
            raise SetRefused(SetError("notFound", "no such email"))
        record = viewed[0]
        current = {"keywords": keywords_of(record.flags),
                   "mailboxIds": {mailbox_ids[c.mailbox_id]: True for c in record.copies
                                  if c.mailbox_id in mailbox_ids}}
        if any(key.split("/", 1)[0] not in current for key in patch):
            fixed = sorted({key.split("/", 1)[0] for key in patch} - set(current))
            raise SetRefused(SetError("invalidProperties",
                                    "only keywords and mailboxIds can change", tuple(fixed)))
        try:
            wanted = apply_patch(current, patch, defaults={"keywords": {}})
        except MethodError as exc:
            raise SetRefused(SetError("invalidPatch", exc.description)) from None
        keywords = self._keywords(wanted.get("keywords"))
        boxes = set(self._mailboxes(context, wanted.get("mailboxIds"), store_ids))
        copies = list(record.copies)
        have = {c.mailbox_id for c in copies}
        if not account.own:
            _check_rights(account, copies, boxes, keywords)
        # Mailboxes first: copies made now take the email's new keywords below.
        source = copies[0]
        try:
            for box in sorted(boxes - have):
                await store.copy(source.mailbox_id, [source.uid], box,
                                 rights=None if account.own else account.rights_on(box))
        except QuotaExceeded:
            raise SetRefused(SetError("overQuota", "the account's quota is full")) from None
        await self._remove_copies([c for c in copies if c.mailbox_id not in boxes])
        if keywords_of(record.flags) != {k.lower(): True for k in keywords} or (boxes - have):
            fresh = await store.email_records(user.id, [blob])
            kept = [c for c in (fresh[0].copies if fresh else ()) if c.mailbox_id in boxes]
            if account.own:
                for copy in kept:
                    flags = flags_for(keywords, copy.flags)
                    if flags != copy.flags:
                        await store.store_flags(copy.mailbox_id, [copy.uid], FlagMode.SET,
                                                flags)
                return
            await self._shared_keywords(account, kept, keywords)

    async def _shared_keywords(self, account: MailAccount, copies: list[EmailCopy],
                               keywords: list[str]) -> None:
        """Set keywords on copies in a shared account: the owner's flags but \\Seen where
        the caller may set them, and ``$seen`` as the caller's own \\Seen."""
        store = self.services.store
        wanted = flags_for(keywords, ())
        for copy in copies:
            rights = account.rights_on(copy.mailbox_id)
            target = flags_for(keywords, copy.flags) - {SEEN}
            owners = copy.flags - {SEEN}
            changed = settable(target ^ owners, rights)
            flags = (owners - changed) | (target & changed) | (copy.flags & {SEEN})
            if flags != copy.flags:
                await store.store_flags(copy.mailbox_id, [copy.uid], FlagMode.SET, flags)
        await self._set_private_seen(
            account, [c for c in copies if (c.uid in account.seen.get(c.mailbox_id, ()))
                      != (SEEN in wanted)], SEEN in wanted)

    async def _remove_copies(self, copies: Iterable[Any]) -> None:
        by_mailbox: dict[int, list[UID]] = {}
        for copy in copies:
            by_mailbox.setdefault(copy.mailbox_id, []).append(copy.uid)
        for mailbox, uids in by_mailbox.items():
            await self.services.store.delete_messages(mailbox, sorted(uids))

    # -- copy -----------------------------------------------------------------------------

    async def copy(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        """RFC 8621 §4.7 (RFC 8620 §5.4): emails of one account of the session into
        another, for example from a shared account into the caller's own. Reading needs
        "r" on a copy in the source (the email must be visible there), adding needs "i" on
        every target mailbox; with ``onSuccessDestroyOriginal`` the originals go through
        one implicit Email/set in the source account, with its rights checks."""
        args = CopyArgs.parse(arguments, self.services.limits)
        if args.from_account_id == args.account_id:
            raise MethodError("invalidArguments", "fromAccountId and accountId must differ")
        store = self.services.store
        source = await self.services.account(context, args.from_account_id)
        target = await self.services.account(context, args.account_id)
        from_state = await store.account_state(source.owner.id)
        if args.if_from_in_state is not None and args.if_from_in_state != state_text(
                from_state):
            raise MethodError("stateMismatch", "the source account changed since that state")
        old_state = await store.account_state(target.owner.id)
        require_state(args.if_in_state, old_state)
        store_ids = {v: k for k, v in (await self.mailbox_ids(target)).items()}
        created: dict[str, Any] = {}
        not_created: dict[str, Any] = {}
        originals: list[str] = []
        for creation_id, obj in args.create.items():
            try:
                made, original = await self._copy_one(context, source, target, obj, store_ids)
            except SetRefused as refused:
                not_created[creation_id] = refused.error.to_json()
                continue
            except MailsteadError as exc:
                log.warning("Email/copy: %s", exc)
                not_created[creation_id] = SetError("invalidEmail", str(exc)).to_json()
                continue
            context.created_ids[creation_id] = made["id"]
            created[creation_id] = made
            originals.append(original)
        answer = {
            "fromAccountId": args.from_account_id, "accountId": args.account_id,
            "oldState": state_text(old_state),
            "newState": state_text(await store.account_state(target.owner.id)),
            "created": created or None, "notCreated": not_created or None,
        }
        if args.on_success_destroy_original and originals:
            destroy: dict[str, Any] = {"accountId": args.from_account_id,
                                       "destroy": list(dict.fromkeys(originals))}
            if args.destroy_from_if_in_state is not None:
                destroy["ifInState"] = args.destroy_from_if_in_state
            try:
                context.add_response("Email/set", await self.set(context, destroy))
            except MethodError as error:
                context.add_response("error", error.to_json())
        return answer

    async def _copy_one(self, context: CallContext, source: MailAccount, target: MailAccount,
                        obj: dict[str, Any], store_ids: dict[str, int]
                        ) -> tuple[dict[str, Any], str]:
        """One copy: the created Email's server-set properties, and the original's id."""
        extra = sorted(set(obj) - {"id", "mailboxIds", "keywords", "receivedAt"})
        if extra:
            raise SetRefused(SetError("invalidProperties", "Email/copy sets only mailboxIds, "
                                    "keywords and receivedAt", tuple(extra)))
        given = obj.get("id")
        real = context.resolve_id(given) if isinstance(given, str) else None
        blob = blob_of_email(real) if real is not None else None
        store = self.services.store
        found = source.views(await store.email_records(source.owner.id, [blob])) if blob else []
        if not found or real is None:
            raise SetRefused(SetError("notFound", "no such email in the source account"))
        record = found[0]
        existing = target.views(await store.email_records(target.owner.id, [record.blob_id]))
        if existing:
            # RFC 8620 §5.4: an email is its body here (decision 0033): it is there already.
            raise SetRefused(SetError("alreadyExists", "the account holds that email already",
                                    extra={"existingId": email_id(record.blob_id)}))
        boxes = self._mailboxes(context, obj.get("mailboxIds"), store_ids)
        keywords = (self._keywords(obj["keywords"]) if "keywords" in obj
                    else list(keywords_of(record.flags)))
        received = _received(obj["receivedAt"]) if "receivedAt" in obj else record.received
        data = await store.read_blob(record.blob_id)
        if data is None:
            raise SetRefused(SetError("notFound", "the email's message is gone"))
        made = await self._append(target, data, boxes, keywords, received)
        return ({"id": email_id(made.blob_id), "blobId": message_blob_id(made.blob_id),
                 "threadId": made.thread_id, "size": made.size}, real)

    # -- import -----------------------------------------------------------------------------

    async def import_(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        """RFC 8621 §4.8: messages a client uploaded, into mailboxes."""
        unknown = sorted(set(arguments) - {"accountId", "ifInState", "emails"})
        if unknown:
            raise MethodError("invalidArguments", f"unknown argument {unknown[0][:60]!r}")
        emails = arguments.get("emails")
        if not isinstance(emails, dict) or not all(isinstance(v, dict) for v in emails.values()):
            raise MethodError("invalidArguments", "emails is an object of creation ids to"
                              " EmailImport objects")
        if len(emails) > self.services.limits.max_objects_in_set:
            raise MethodError("requestTooLarge", f"at most "
                              f"{self.services.limits.max_objects_in_set} emails in one import")
        store = self.services.store
        account = await self.services.account(context, arguments.get("accountId"))
        user = account.owner
        old_state = await store.account_state(user.id)
        if_in_state = arguments.get("ifInState")
        require_state(if_in_state, old_state)
        store_ids = {v: k for k, v in (await self.mailbox_ids(account)).items()}
        created: dict[str, Any] = {}
        not_created: dict[str, Any] = {}
        for creation_id, item in emails.items():
            try:
                extra = sorted(set(item) - {"blobId", "mailboxIds", "keywords", "receivedAt"})
                if extra:
                    raise SetRefused(SetError("invalidProperties", "not an EmailImport property",
                                            tuple(extra)))
                blob = item.get("blobId")
                if not isinstance(blob, str):
                    raise SetRefused(SetError("invalidProperties", "blobId is required",
                                            ("blobId",)))
                resolved = context.resolve_id(blob) or blob
                data = await self.read_blob(account.viewer, resolved)
                if data is None:
                    raise SetRefused(SetError("blobNotFound", "no such blob",
                                            extra={"notFound": [blob]}))
                boxes = self._mailboxes(context, item.get("mailboxIds"), store_ids)
                keywords = self._keywords(item.get("keywords"))
                record = await self._append(account, data, boxes, keywords,
                                            _received(item.get("receivedAt")))
            except SetRefused as refused:
                not_created[creation_id] = refused.error.to_json()
                continue
            except MailsteadError as exc:
                log.warning("Email/import: %s", exc)
                not_created[creation_id] = SetError("invalidEmail", str(exc)).to_json()
                continue
            context.created_ids[creation_id] = email_id(record.blob_id)
            created[creation_id] = {"id": email_id(record.blob_id),
                                    "blobId": message_blob_id(record.blob_id),
                                    "threadId": record.thread_id, "size": record.size}
        new_state = await store.account_state(user.id)
        return {"accountId": arguments.get("accountId"), "oldState": state_text(old_state),
                "newState": state_text(new_state), "created": created or None,
                "notCreated": not_created or None}


def _body_arguments(
    asked: Sequence[str] | None, extra: Mapping[str, Any], default: Sequence[str]
) -> tuple[list[str], list[str], bool, bool, bool, int]:
    """The properties and body arguments of Email/get and Email/parse (RFC 8621 §4.2)."""
    properties = list(asked) if asked is not None else list(default)
    bad = [p for p in properties if not valid_property(p)]
    if bad:
        raise MethodError("invalidArguments", f"unknown property {bad[0][:60]!r}")
    body_properties = extra.get("bodyProperties")
    if body_properties is None:
        body_properties = list(DEFAULT_BODY_PROPERTIES)
    elif not isinstance(body_properties, list) or not all(
            isinstance(p, str) and body_property_valid(p) for p in body_properties):
        raise MethodError("invalidArguments", "bodyProperties names unknown properties")
    fetch_text = _flag(extra.get("fetchTextBodyValues", False), "fetchTextBodyValues")
    fetch_html = _flag(extra.get("fetchHTMLBodyValues", False), "fetchHTMLBodyValues")
    fetch_all = _flag(extra.get("fetchAllBodyValues", False), "fetchAllBodyValues")
    max_bytes = extra.get("maxBodyValueBytes", 0)
    if not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 0:
        raise MethodError("invalidArguments", "maxBodyValueBytes must be an UnsignedInt")
    return properties, body_properties, fetch_text, fetch_html, fetch_all, max_bytes


_FORBIDDEN_REMOVE = SetError("forbidden", "removing an email from a mailbox needs the rights"
                             " to delete and expunge (t and e) there")


def _check_rights(account: MailAccount, copies: Sequence[EmailCopy], boxes: set[int],
                  keywords: list[str]) -> None:
    """``forbidden`` unless the caller may make every change of an Email/set update in a
    shared account (RFC 4314 §4; RFC 8621 §2 myRights)."""
    have = {c.mailbox_id for c in copies}
    if not all(account.may(box, "i") for box in boxes - have):
        raise SetRefused(SetError("forbidden", "adding to that mailbox needs the right to "
                                "insert (i)", ("mailboxIds",)))
    if not all(account.may(c.mailbox_id, "te") for c in copies if c.mailbox_id not in boxes):
        raise SetRefused(_FORBIDDEN_REMOVE)
    for copy in copies:
        if copy.mailbox_id not in boxes:
            continue
        changed = flags_for(keywords, copy.flags) ^ copy.flags
        missing = {flag_right(f) for f in changed} - set(account.rights_on(copy.mailbox_id))
        if missing:
            raise SetRefused(SetError("forbidden", "changing those keywords needs the right(s) "
                                    f"{''.join(sorted(missing))!r}", ("keywords",)))


def _received(value: Any) -> datetime | None:
    """A ``receivedAt`` UTCDate (RFC 8620 §1.4), or None for now."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise SetRefused(SetError("invalidProperties", "receivedAt is a UTCDate",
                                ("receivedAt",)))
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise SetRefused(SetError("invalidProperties", "receivedAt is a UTCDate",
                                ("receivedAt",))) from None
    if parsed.tzinfo is None:
        raise SetRefused(SetError("invalidProperties", "receivedAt needs its Z",
                                ("receivedAt",)))
    return parsed
