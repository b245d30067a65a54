"""Blob/upload, Blob/get and Blob/lookup (RFC 9404): blobs inside a JMAP request.

Blob/upload keeps octets given inline (text, base64, or ranges of blobs the account may
read) as an upload, as the upload endpoint would; Blob/get reads any blob the account may
read (``blobs.read_blob``) as text, base64 or digests; Blob/lookup says which of the
account's Emails, Mailboxes and Threads a blob belongs to (decision 0033: a message blob
is one Email; a part blob belongs to its message's Email).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

from mailstead.http.jmap.dispatch import CallContext, Methods
from mailstead.http.jmap.errors import MethodError, SetError, SetRefused
from mailstead.http.jmap.mail.blobs import read_blob
from mailstead.http.jmap.mail.ids import email_id, mailbox_id
from mailstead.http.jmap.mail.services import MailServices

BLOB = "urn:ietf:params:jmap:blob"
#: RFC 9404 §4.2: what Blob/get may give.
_PROPERTIES = frozenset({"data", "data:asText", "data:asBase64", "digest:sha",
                         "digest:sha-256", "size"})
_DIGESTS = {"digest:sha": "sha1", "digest:sha-256": "sha256"}
#: The most data sources one Blob/upload object may join (maxDataSources).
MAX_DATA_SOURCES = 64
_MESSAGE = re.compile(r"G([0-9a-f]{64})")


def account_capability(services: MailServices) -> dict[str, Any]:
    """RFC 9404 §4.1: the blob capability of an account."""
    return {
        "maxSizeBlobSet": services.limits.max_size_upload,
        "maxDataSources": MAX_DATA_SOURCES,
        "supportedTypeNames": ["Mailbox", "Thread", "Email"],
        "supportedDigestAlgorithms": ["sha", "sha-256"],
    }


def _range(args: dict[str, Any], name: str) -> int | None:
    value = args.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise MethodError("invalidArguments", f"{name} must be an UnsignedInt")
    return value


class BlobMethods:
    def __init__(self, services: MailServices) -> None:
        self.services = services

    def register(self, methods: Methods) -> None:
        methods.add("Blob/upload", BLOB, self.upload)
        methods.add("Blob/get", BLOB, self.get)
        methods.add("Blob/lookup", BLOB, self.lookup)

    async def upload(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(arguments) - {"accountId", "create"})
        if unknown:
            raise MethodError("invalidArguments", f"unknown argument {unknown[0][:60]!r}")
        create = arguments.get("create")
        if not isinstance(create, dict) or not all(isinstance(v, dict) for v in create.values()):
            raise MethodError("invalidArguments", "create is an object of creation ids to"
                              " UploadObjects")
        if len(create) > self.services.limits.max_objects_in_set:
            raise MethodError("requestTooLarge", "too many blobs in one Blob/upload")
        user = await self.services.user(context)
        created: dict[str, Any] = {}
        not_created: dict[str, Any] = {}
        for creation_id, item in create.items():
            try:
                data = await self._assemble(context, user.id, item)
            except SetRefused as refused:
                not_created[creation_id] = refused.error.to_json()
                continue
            media_type = item.get("type") or "application/octet-stream"
            blob = "U" + await self.services.store.put_upload(user.id, data, media_type)
            context.created_ids[creation_id] = blob
            created[creation_id] = {"id": blob, "type": media_type, "size": len(data)}
        return {"accountId": arguments.get("accountId"), "created": created or None,
                "notCreated": not_created or None}

    async def _assemble(self, context: CallContext, user_id: int, item: dict[str, Any]
                        ) -> bytes:
        extra = sorted(set(item) - {"data", "type"})
        if extra:
            raise SetRefused(SetError("invalidProperties", "not an UploadObject property",
                                    tuple(extra)))
        if item.get("type") is not None and not isinstance(item["type"], str):
            raise SetRefused(SetError("invalidProperties", "type is a string", ("type",)))
        sources = item.get("data")
        if not isinstance(sources, list) or not sources:
            raise SetRefused(SetError("invalidProperties", "data is a list of data sources",
                                    ("data",)))
        if len(sources) > MAX_DATA_SOURCES:
            raise SetRefused(SetError("tooManyDataSources",
                                    f"at most {MAX_DATA_SOURCES} data sources"))
        pieces: list[bytes] = []
        size = 0
        for index, source in enumerate(sources):
            piece = await self._source(context, user_id, source, f"data/{index}")
            size += len(piece)
            if size > self.services.limits.max_size_upload:
                raise SetRefused(SetError("tooLarge", "larger than maxSizeBlobSet"))
            pieces.append(piece)
        return b"".join(pieces)

    async def _source(self, context: CallContext, user_id: int, source: Any, where: str
                      ) -> bytes:
        if not isinstance(source, dict) or len(source) == 0:
            raise SetRefused(SetError("invalidProperties", "a data source is an object",
                                    (where,)))
        if set(source) == {"data:asText"} and isinstance(source["data:asText"], str):
            return source["data:asText"].encode("utf-8")
        if set(source) == {"data:asBase64"} and isinstance(source["data:asBase64"], str):
            try:
                return base64.b64decode(source["data:asBase64"], validate=True)
            except binascii.Error:
                raise SetRefused(SetError("invalidProperties", "not base64", (where,))) from None
        if "blobId" in source and set(source) <= {"blobId", "offset", "length"}:
            blob = source["blobId"]
            real = context.resolve_id(blob) if isinstance(blob, str) else None
            data = await read_blob(self.services.store, user_id, real) if real else None
            if data is None:
                raise SetRefused(SetError("blobNotFound", "no such blob",
                                        extra={"notFound": [blob]}))
            offset, length = source.get("offset", 0), source.get("length")
            if (not isinstance(offset, int) or offset < 0 or offset > len(data)
                    or (length is not None and (not isinstance(length, int) or length < 0
                                                or offset + length > len(data)))):
                raise SetRefused(SetError("invalidProperties", "the range is outside the blob",
                                        (where,)))
            return data[offset:] if length is None else data[offset:offset + length]
        raise SetRefused(SetError("invalidProperties", "an unknown kind of data source",
                                (where,)))

    async def get(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(arguments) - {"accountId", "ids", "properties", "offset", "length"})
        if unknown:
            raise MethodError("invalidArguments", f"unknown argument {unknown[0][:60]!r}")
        ids = arguments.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise MethodError("invalidArguments", "ids must be an array of blob ids")
        if len(ids) > self.services.limits.max_objects_in_get:
            raise MethodError("requestTooLarge", "too many ids in one Blob/get")
        properties = arguments.get("properties") or ["data", "size"]
        if not isinstance(properties, list) or not set(properties) <= _PROPERTIES:
            raise MethodError("invalidArguments", "unknown Blob property")
        offset, length = _range(arguments, "offset") or 0, _range(arguments, "length")
        user = await self.services.user(context)
        found: list[dict[str, Any]] = []
        missing: list[str] = []
        for value in ids:
            real = context.resolve_id(value) or value
            data = await read_blob(self.services.store, user.id, real)
            if data is None:
                missing.append(value)
                continue
            obj: dict[str, Any] = {"id": value}
            window = data[offset:] if length is None else data[offset:offset + length]
            truncated = (length is not None and offset + length > len(data)) or offset > len(data)
            for prop in properties:
                if prop == "size":
                    obj["size"] = len(data)
                elif prop in _DIGESTS:
                    digest = hashlib.new(_DIGESTS[prop], window).digest()
                    obj[prop] = base64.b64encode(digest).decode()
                elif prop == "data:asBase64":
                    obj[prop] = base64.b64encode(window).decode()
                else:
                    try:
                        text, problem = window.decode("utf-8"), False
                    except UnicodeDecodeError:
                        text, problem = window.decode("utf-8", "replace"), True
                    if prop == "data" and problem:
                        obj["data:asBase64"] = base64.b64encode(window).decode()
                    else:
                        obj["data:asText"] = text
                        if problem:
                            obj["isEncodingProblem"] = True
            if truncated:
                obj["isTruncated"] = True
            found.append(obj)
        return {"accountId": arguments.get("accountId"), "list": found, "notFound": missing}

    async def lookup(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(arguments) - {"accountId", "typeNames", "ids"})
        if unknown:
            raise MethodError("invalidArguments", f"unknown argument {unknown[0][:60]!r}")
        types, ids = arguments.get("typeNames"), arguments.get("ids")
        if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
            raise MethodError("invalidArguments", "typeNames must be an array of type names")
        bad = [t for t in types if t not in ("Mailbox", "Thread", "Email")]
        if bad:
            raise MethodError("unknownDataType", f"no lookup in {bad[0][:60]!r}")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise MethodError("invalidArguments", "ids must be an array of blob ids")
        user = await self.services.user(context)
        store = self.services.store
        keys = await store.mailbox_keys(user.id)
        found: list[dict[str, Any]] = []
        missing: list[str] = []
        for value in ids:
            real = context.resolve_id(value) or value
            match = _MESSAGE.match(real)
            records = await store.email_records(user.id, [match.group(1)]) if match else []
            if not records:
                uploaded = await read_blob(store, user.id, real) if real[:1] == "U" else None
                if uploaded is None:
                    missing.append(value)
                else:  # an upload belongs to nothing yet
                    found.append({"id": value, "matchedIds": {t: [] for t in types}})
                continue
            record = records[0]
            matched: dict[str, list[str]] = {}
            for type_name in types:
                if type_name == "Email":
                    matched[type_name] = [email_id(record.blob_id)]
                elif type_name == "Thread":
                    matched[type_name] = [record.thread_id]
                else:
                    matched[type_name] = sorted(mailbox_id(keys[b]) for b in record.mailbox_ids
                                                if b in keys)
            found.append({"id": value, "matchedIds": matched})
        return {"accountId": arguments.get("accountId"), "list": found, "notFound": missing}
