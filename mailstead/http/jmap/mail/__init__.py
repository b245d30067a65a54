"""The mail methods of JMAP (RFC 8621) on the mailstore: Mailbox, Thread and Email."""

from __future__ import annotations

from typing import Any

from mailstead.http.jmap.dispatch import Methods
from mailstead.http.jmap.mail.emails import EmailMethods
from mailstead.http.jmap.mail.mailboxes import MailboxMethods
from mailstead.http.jmap.mail.query import MAX_LIMIT, EmailQuery
from mailstead.http.jmap.mail.services import MAIL, MailServices
from mailstead.http.jmap.mail.snippets import SnippetMethods
from mailstead.http.jmap.mail.threads import ThreadMethods


def register(methods: Methods, services: MailServices) -> EmailMethods:
    """Add the mail methods to ``methods``; the Email methods, which submission's
    ``onSuccessUpdateEmail`` calls (RFC 8621 §7.5)."""
    MailboxMethods(services).register(methods)
    ThreadMethods(services).register(methods)
    emails = EmailMethods(services)
    emails.register(methods)
    EmailQuery(services).register(methods)
    SnippetMethods(services).register(methods)
    return emails


def account_capability(services: MailServices) -> dict[str, Any]:
    """RFC 8621 §1.3.1: the mail capability of an account."""
    return {
        "maxMailboxesPerEmail": None,
        "maxMailboxDepth": None,
        "maxSizeMailboxName": 255,
        "maxSizeAttachmentsPerEmail": services.max_message_size,
        "emailQuerySortOptions": ["receivedAt", "size", "from", "to", "subject", "sentAt",
                                  "hasKeyword", "allInThreadHaveKeyword",
                                  "someInThreadHaveKeyword"],
        "mayCreateTopLevelMailbox": True,
    }


__all__ = ["MAIL", "MAX_LIMIT", "MailServices", "account_capability", "register"]
