"""The blobs an account may read and upload (RFC 8620 §6): its uploads (``U`` and the
SHA-256 of the octets), its messages (``G`` and the body's SHA-256, decision 0033) and
their parts (the message's id, ``-``, and the IMAP part number with ``-`` for ``.``)."""

from __future__ import annotations

import re

from mailstead.http.jmap.mail.content import load
from mailstead.http.jmap.mail.services import MailStore
from mailstead.mime.jmap_views import part_octets
from mailstead.store.models import User

_BLOB = re.compile(r"([GU])([0-9a-f]{64})(?:-([1-9][0-9]{0,5}(?:-[1-9][0-9]{0,5}){0,31}))?")


async def read_blob(store: MailStore, user_id: int, blob: str) -> bytes | None:
    """The octets of ``blob`` if the account may read it; None otherwise (unknown, another
    account's, gone)."""
    match = _BLOB.fullmatch(blob)
    if match is None:
        return None
    kind, digest, part = match.groups()
    if kind == "U":
        if part is not None:
            return None
        found = await store.get_upload(user_id, digest)
        return found[0] if found is not None else None
    if not await store.email_records(user_id, [digest]):
        return None  # not a body this account holds
    if part is None:
        return await store.read_blob(digest)
    loaded = await load(store, [digest], octets=True, whole=True)
    content = loaded.get(digest)
    if content is None:
        return None
    return part_octets(content.parsed, content.raw, part.replace("-", "."))


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

    async def download(self, user: object, blob_id: str) -> bytes | None:
        user_id = await self._user_id(user)
        if user_id is None:
            return None
        return await read_blob(self.store, user_id, blob_id)
