"""The blobs an account may read and upload (RFC 8620 §6).

A blob id names where its octets are, so reading one needs no table of blob ids:

- ``U`` and the SHA-256 of the octets: one of the account's uploads;
- ``G`` and the SHA-256 of a message the account holds (decision 0033): the message;
- either of those, then ``-`` and an IMAP part number with ``-`` for ``.``: that leaf part,
  transfer-decoded (``G…-2-1`` is part 2.1);
- and after a part that is itself a message (an attached message/rfc822, which JMAP does
  not look inside: Email/parse does), ``_`` and a part number of the attached message
  (``G…-2_1`` is part 1 of the message attached as part 2), as deep as messages nest.
"""

from __future__ import annotations

import asyncio
import re

from mailstead.http.jmap.mail.content import load
from mailstead.http.jmap.mail.services import MailAccount, MailStore, account_of
from mailstead.mime.jmap_views import part_octets
from mailstead.mime.parse import ParsedMessage, parse_message
from mailstead.store.models import User

_PART = r"[1-9][0-9]{0,5}(?:-[1-9][0-9]{0,5}){0,31}"
_BLOB = re.compile(rf"([GU])([0-9a-f]{{64}})((?:-{_PART})(?:_{_PART}){{0,7}})?")
#: A message larger than this is parsed on a worker thread, off the event loop.
_PARSE_IN_THREAD = 256 * 1024


async def parse(raw: bytes) -> ParsedMessage:
    if len(raw) > _PARSE_IN_THREAD:
        return await asyncio.to_thread(parse_message, raw)
    return parse_message(raw)


def part_blob_id(container: str, part_id: str) -> str:
    """The blob id of part ``part_id`` of the message whose blob id is ``container``."""
    joiner = "_" if len(container) > 65 else "-"  # past "G" and the hash: a part already
    return f"{container}{joiner}{part_id.replace('.', '-')}"


async def read_blob(store: MailStore, user_id: int, blob: str,
                    shared: MailAccount | None = None) -> bytes | None:
    """The octets of ``blob`` if the account may read it; None otherwise (unknown, another
    account's, gone). In a ``shared`` account (another's, seen through its grants) only
    its messages the caller may read are: no uploads (they are each user's own)."""
    match = _BLOB.fullmatch(blob)
    if match is None:
        return None
    kind, digest, path = match.groups()
    data: bytes | None
    if shared is not None and not shared.own:
        held = kind == "G" and shared.views(
            await store.email_records(shared.owner.id, [digest]))
        if not held:
            return None
        data = await store.read_blob(digest)
    elif kind == "U":
        found = await store.get_upload(user_id, digest)
        data = found[0] if found is not None else None
    elif await store.email_records(user_id, [digest]):
        data = await store.read_blob(digest)
    else:
        return None  # not a body this account holds
    if data is None or not path:
        return data
    for depth, step in enumerate(path[1:].split("_")):
        parsed: ParsedMessage | None = None
        if depth == 0 and kind == "G":  # a stored message: its structure is kept
            content = (await load(store, [digest], octets=False, whole=False)).get(digest)
            parsed = content.parsed if content is not None else None
        if parsed is None:
            parsed = await parse(data)
        part = part_octets(parsed, data, step.replace("-", "."))
        if part is None:
            return None
        data = part
    return data


class AccountBlobs:
    """The JMAP endpoints' upload and download (``http/jmap/app.py`` JMAPBlobs), on the
    store."""

    def __init__(self, store: MailStore) -> None:
        self.store = store

    async def _user_id(self, user: object) -> int | None:
        if isinstance(user, User):
            return user.id
        address = getattr(user, "address", None)
        found = await self.store.find_user(address) if isinstance(address, str) else None
        return found.id if found is not None else None

    async def upload(self, user: object, data: bytes, type: str) -> str:
        user_id = await self._user_id(user)
        if user_id is None:
            raise LookupError("the account no longer exists")
        return "U" + await self.store.put_upload(user_id, data, type)

    async def download(self, user: object, blob_id: str, account_id: str | None = None
                       ) -> bytes | None:
        user_id = await self._user_id(user)
        if user_id is None:
            return None
        if account_id is not None:
            viewer = user if isinstance(user, User) else await self.store.get_user(user_id)
            account = await account_of(self.store, viewer, account_id)
            if account is None:
                return None
            return await read_blob(self.store, user_id, blob_id, account)
        return await read_blob(self.store, user_id, blob_id)
