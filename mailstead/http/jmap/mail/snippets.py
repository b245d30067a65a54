"""SearchSnippet/get (RFC 8621 §5): where an Email matched a query's text, marked.

The terms are the text conditions of the filter (``text``, ``subject``, ``body``); the
subject is shown whole with each term in ``<mark>``, the body as the stretch around the
first term, both HTML-escaped first (§5: the snippets are HTML). Matching folds case and
compatibility forms as SEARCH and Email/query do (``mime/searchtext.fold``), so what the
query found is what is marked.
"""

from __future__ import annotations

import html
import re
from typing import Any

from mailstead.http.jmap.dispatch import CallContext, Methods
from mailstead.http.jmap.errors import MethodError
from mailstead.http.jmap.mail import content as contents
from mailstead.http.jmap.mail.ids import blob_of_email
from mailstead.http.jmap.mail.services import MAIL, MailServices
from mailstead.http.jmap.standard import Filter, FilterCondition, parse_filter
from mailstead.mime.searchtext import body_text, fold

#: Characters of body text shown around the first match (§5: "around 255 characters").
PREVIEW_CHARACTERS = 255


def terms(node: Filter | None, *, negated: bool = False) -> tuple[list[str], list[str]]:
    """The subject terms and the body terms of a filter's text conditions (those under a
    NOT are not what matched)."""
    subject: list[str] = []
    body: list[str] = []
    if node is None:
        return subject, body
    if isinstance(node, FilterCondition):
        if negated:
            return subject, body
        for name, value in node.properties.items():
            if not isinstance(value, str) or not value.strip():
                continue
            if name in ("text", "subject"):
                subject.append(value)
            if name in ("text", "body"):
                body.append(value)
        return subject, body
    for child in node.conditions:
        more_subject, more_body = terms(child, negated=negated or node.operator == "NOT")
        subject += more_subject
        body += more_body
    return subject, body


def _spans(text: str, needles: list[str]) -> list[tuple[int, int]]:
    """Where the needles occur in ``text``, comparing folded forms character by character
    (fold may change lengths: each character is folded on its own to keep positions)."""
    folded_chars = [fold(c) for c in text]
    folded = "".join(folded_chars)
    starts = [0]
    for piece in folded_chars:
        starts.append(starts[-1] + len(piece))
    position = {offset: index for index, offset in enumerate(starts)}
    spans: list[tuple[int, int]] = []
    for needle in needles:
        wanted = fold(needle)
        if not wanted:
            continue
        for match in re.finditer(re.escape(wanted), folded):
            begin, end = position.get(match.start()), position.get(match.end())
            if begin is not None and end is not None:
                spans.append((begin, end))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for begin, end in spans:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged


def marked(text: str, spans: list[tuple[int, int]]) -> str:
    out: list[str] = []
    last = 0
    for begin, end in spans:
        out.append(html.escape(text[last:begin]))
        out.append("<mark>" + html.escape(text[begin:end]) + "</mark>")
        last = end
    out.append(html.escape(text[last:]))
    return "".join(out)


def subject_snippet(subject: str, needles: list[str]) -> str | None:
    spans = _spans(subject, needles)
    return marked(subject, spans) if spans else None


def body_snippet(text: str, needles: list[str]) -> str | None:
    """The stretch of ``text`` around the first match, marked; None without a match."""
    flat = " ".join(text.split())
    spans = _spans(flat, needles)
    if not spans:
        return None
    first = spans[0][0]
    begin = max(0, first - PREVIEW_CHARACTERS // 4)
    end = min(len(flat), begin + PREVIEW_CHARACTERS)
    inside = [
        (max(b, begin) - begin, min(e, end) - begin) for b, e in spans if b < end and e > begin
    ]
    snippet = marked(flat[begin:end], inside)
    return ("…" if begin else "") + snippet + ("…" if end < len(flat) else "")


class SnippetMethods:
    def __init__(self, services: MailServices) -> None:
        self.services = services

    def register(self, methods: Methods) -> None:
        methods.add("SearchSnippet/get", MAIL, self.get)

    async def get(self, context: CallContext, arguments: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(arguments) - {"accountId", "filter", "emailIds"})
        if unknown:
            raise MethodError("invalidArguments", f"unknown argument {unknown[0][:60]!r}")
        email_ids = arguments.get("emailIds")
        if not isinstance(email_ids, list) or not all(isinstance(e, str) for e in email_ids):
            raise MethodError("invalidArguments", "emailIds must be an array of ids")
        if len(email_ids) > self.services.limits.max_objects_in_get:
            raise MethodError("requestTooLarge", "too many emailIds in one call")
        subject_terms, body_terms = terms(parse_filter(arguments.get("filter")))
        account = await self.services.account(context, arguments.get("accountId"))
        store = self.services.store
        blobs = {e: blob_of_email(e) for e in email_ids}
        records = account.views(
            await store.email_records(account.owner.id, [b for b in blobs.values() if b]))
        held = {r.blob_id for r in records}
        loaded = (
            await contents.load(
                store, sorted(held), octets=bool(body_terms), whole=bool(body_terms)
            )
            if held
            else {}
        )
        found: list[dict[str, Any]] = []
        missing: list[str] = []
        for email, blob in blobs.items():
            content = loaded.get(blob) if blob is not None else None
            if blob not in held or (held and content is None):
                missing.append(email)
                continue
            subject = content.structure.subject if content is not None else None
            body = None
            if body_terms and content is not None:
                body = body_snippet(body_text(content.raw, content.structure), body_terms)
            found.append(
                {
                    "emailId": email,
                    "subject": subject_snippet(subject, subject_terms) if subject else None,
                    "preview": body,
                }
            )
        return {"accountId": arguments.get("accountId"), "list": found, "notFound": missing or None}
