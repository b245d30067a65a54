"""Apache James MPT IMAP scripts against the real mailstead server.

One test per script in ``shared/conformance/james-mpt``. Each script runs with the
preconditions James's suite classes give it (``mpt/impl/imap-mailbox/.../suite/*.java`` via
``BasicImapCommands``): the greeting; ``LOGIN imapuser password``; for the SelectedState,
Fetch, FetchBodyStructure, PartialFetch and Rename suites also ``SelectedStateSetup.test``
(mailbox "selected" with four messages, selected) and ``SelectedStateCleanup.test`` after.

Only the free human-readable text after a status word is relaxed (see ``mpt.relax``). James
always sends OBJECTID's ``[MAILBOXID (...)]`` and CONDSTORE's ``[HIGHESTMODSEQ n]``; when
mailstead does not advertise those extensions they are removed from the expectations (a
server must not send them then).
mailstead accounts are e-mail addresses, so the fixture's user is ``imapuser@example.org``
and the runner rewrites the user name in ``LOGIN imapuser ...`` lines.

Scripts for extensions mailstead does not advertise are skipped (``NEEDS_CAPABILITY``, checked
against the live CAPABILITY answer, so they start running when the capability appears).
Scripts that fail today are in ``EXPECTED_FAILURES`` (xfail strict): a fixed script fails CI
until its entry is removed. ``mpt_tally.py`` prints the tally at the end of the run.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from mpt import Client, Element, Script, Server, Unordered, load, run_script

from mailstead.testing.paths import SHARED
from mailstead.testing.server import ServerThread

ROOT = Path(
    str(SHARED) + "/conformance/james-mpt/mpt/impl/imap-mailbox/core/src/main/resources"
    "/org/apache/james/imap/scripts"
)
USER, PASSWORD = "imapuser", "password"
ACCOUNT = "imapuser@example.org"

#: Scripts James runs in the NonAuthenticatedState suite: greeting only.
NON_AUTHENTICATED = {
    "Login",
    "ValidAuthenticated",
    "ValidSelected",
    "Authenticate",
    "AuthenticatePlain",
    "Capability",
    "Noop",
    "Logout",
}
#: Scripts of the suites that call BasicImapCommands.prepareMailbox.
SELECTED = {
    "Check",
    "Expunge",
    "Search",
    "FetchSingleMessage",
    "FetchMultipleMessages",
    "FetchPeek",
    "Store",
    "Copy",
    "Uid",
    "Namespace",  # SelectedState
    "FetchEnvelope",
    "FetchText",
    "FetchBodyNoSection",
    "FetchRFC822",
    "FetchRFC822Text",
    "FetchRFC822Header",
    "FetchInternalDate",
    "FetchRFC822Mixed",
    "FetchSaveDate",  # Fetch
    "SearchSaveDate",  # its SEARCHes expect the four messages of the selected mailbox
    "ObjectId",  # fetches message 1 without selecting
    "FetchSimpleBodyStructure",
    "FetchMultipartBodyStructure",
    "FetchStructureEmbedded",
    "FetchStructureComplex",  # FetchBodyStructure
    "BodyPartialFetch",
    "TextPartialFetch",
    "MimePartialFetch",
    "HeaderPartialFetch",
    "Rename",
    "RenameHierarchy",
    "RenameSelected",
    "RenameInbox",  # Rename
    "Move",
    "MoveNoMSG",  # Move
    "FetchPartial",  # these use the "selected" mailbox without creating it
    "CreateErrorWithLongName",  # MailboxWithLongNameError
}
#: Setup scripts, not tests of their own.
FIXTURES = {"SelectedStateSetup", "SelectedStateCleanup"}
#: Mailboxes James's Java suite creates through its mailbox manager before a script runs
#: (``system.createMailbox(MailboxPath.forUser(USER, name))``), so the runner creates them
#: in the store, not over IMAP. ListSpecialChar: the Java test method is neither in the
#: shared copy nor in the code index; the names are the three the script lists besides
#: INBOX, decoded from modified UTF-7 (``projects &- abc``, ``&AOk-valuations``).
MAILBOXES_BEFORE: dict[str, tuple[str, ...]] = {
    "ListSpecialChar": ("projects & abc", "évaluations", "mailbox #17"),
}

_ACL = "ACL and shared mailboxes (RFC 4314, decision 0028)"
#: script -> (capability that must be advertised, why the script needs it)
NEEDS_CAPABILITY: dict[str, tuple[str, str]] = {
    **{
        name: ("ACL", _ACL)
        for name in (
            "ACLCommandsOnOtherUser",
            "ACLCommandsOnOwner",
            "Rights",
            "SharedMailbox",
            "ListWithSharedMailbox",
            "RenameSharedMailbox",
            "SharingAccessL",
            "SharingAccessLR",
            "SharingAccessLRA",
            "SharingAccessLRI",
            "SharingAccessLRK",
            "SharingAccessLRS",
            "SharingAccessLRT",
            "SharingAccessLRTE",
            "SharingAccessLRW",
            "SharingAccessLRX",
        )
    },
    # NAMESPACE itself works (the personal namespace); the script also expects an "other
    # users" namespace (#user.), which exists only with shared mailboxes.
    "Namespace": ("ACL", "the other users' namespace needs shared mailboxes: " + _ACL),
    "Metadata": ("METADATA", "METADATA (RFC 5464)"),
    "MetadataWithBinaryData": ("METADATA", "METADATA (RFC 5464)"),
    "MetadataWithLimitation": ("METADATA", "METADATA (RFC 5464)"),
    "CondstoreEnable": ("CONDSTORE", "CONDSTORE (RFC 7162)"),
    "ObjectId": ("OBJECTID", "OBJECTID (RFC 8474)"),
    "XList": ("XLIST", "Gmail's XLIST"),
    "Replace": ("REPLACE", "REPLACE (RFC 8508)"),
    "ListPlus": (
        "LIST-MYRIGHTS",
        "LIST-MYRIGHTS (RFC 8440): LIST ... RETURN (MYRIGHTS), which needs ACL (RFC 4314)",
    ),
    "FetchPartial": ("PARTIAL", "PARTIAL (RFC 9394): FETCH 2:5 (UID) (PARTIAL 2:3)"),
    "FetchSaveDate": ("SAVEDATE", "SAVEDATE (RFC 8514)"),
    "SearchSaveDate": ("SAVEDATE", "SAVEDATE (RFC 8514)"),
}
#: Scripts that do not apply to mailstead: account names the runner cannot adapt, or a James
#: configuration mailstead does not have.
NOT_APPLICABLE: dict[str, str] = {
    "AuthenticatePlain": "SASL PLAIN blobs carry the bare user name 'imapuser'; mailstead "
    "accounts are e-mail addresses",
    "UidSearchAtomsIndexer": "waits for James's asynchronous search indexer (AWAIT)",
    "ListWithPercentWildcardInMailboxName": "creates names with '*' and '%', which James "
    "itself refuses by default; its suite runs this script only with relaxed validation "
    "(james.relaxed.mailbox.name.validation=true, ListingWithRelaxedMailboxName). mailstead "
    "refuses them: LIST patterns (RFC 9051 §6.3.9) could not name them",
    "CondstoreDisable": "checks a James server configured without CONDSTORE; mailstead "
    "always offers CONDSTORE (RFC 7162)",
    "FetchNILSaveDate": "checks a James mailbox backend that keeps no save dates (SAVEDATE "
    "NIL); mailstead keeps one for every message (RFC 8514)",
    "Quota": "expects James's quota root name (#private&imapuser) and a MESSAGE limit of 7 "
    "that its Java test sets in James's quota manager; mailstead's one root is \"User quota\" "
    "with STORAGE only (RFC 9208 §3.2: root names are the server's), and its SETQUOTA line "
    "sends two resource lists, which RFC 9208 §7 does not allow",
}
#: script -> one-line reason; xfail(strict=True). Each is a difference where mailstead follows
#: the RFC (or an extension is not advertised, or the script itself is broken); the same list
#: with explanations is docs/imap-compatibility.md. Shrink it as the server changes.
_EXAMINE = (
    "EXAMINE: mailstead sends PERMANENTFLAGS () since nothing can be changed read-only "
    "(RFC 9051 §6.3.3, §7.1); James lists the system flags"
)
_CASE = (
    "BODY/BODYSTRUCTURE case: mailstead is byte-identical to Dovecot, its reference; "
    "James upper-cases types (RFC 2045 §5.1: case-insensitive)"
)
_BODY31 = (
    "BODY[3.1]: James answers an empty literal, mailstead the part's octets "
    "(RFC 9051 §6.4.5 part specifier)"
)
_PEEK = (
    "the script expects FLAGS in RFC 9051 order (\\Answered \\Flagged ...) where every other "
    "James script expects alphabetical, and hard-codes James's UIDVALIDITY"
)
_ATOMS = (
    "BODY the: James matches message 5 through 'Another' in an attached message's Subject "
    "(yet not 'thy' in that message's From); mailstead, like Dovecot, searches the decoded "
    "parts for BODY and every header, attached messages' too, for TEXT (RFC 9051 §6.4.4). "
    "SearchAtoms also echoes PARTIAL -5:-1 as James's -1:-5 (RFC 9394 §4: the same range)"
)
_ACL_NAMES = (
    "identifiers are James's bare user names ('Boby', 'imapuser', which its Java suite "
    "creates); mailstead's are account addresses (an unknown identifier is NO [CANNOT])"
)
_ACL_RIGHTS = (
    "James shows rights as one quoted, alphabetical string without the obsolete c/d "
    "(\"aeiklprstwx\"); mailstead, like Dovecot, in RFC 4314 order with c and d "
    "(lrswipkxtecda, RFC 4314 §2.1.1) and LISTRIGHTS as its own groups"
)
_ACL_SHARED = (
    "other users' mailboxes that James's Java suite creates (users boby and diana, the "
    "rights in their names) under James's \"#user.boby.\" names; mailstead's are "
    "\"Other Users.boby@<domain>.<name>\" and the runner has no such accounts"
)
#: aclIntegration/*: run by James's ACLIntegration Java class, which creates user Boby,
#: grants imapuser the rights in the script's name on James's "user.Boby" and fills it.
_ACL_INTEGRATION = (
    "needs James's ACLIntegration fixture (user Boby, James's \"user.Boby\" name, rights "
    "set per script) and answers SELECT in James's order with URLMECH INTERNAL; "
    "tests/imap/test_imap_acl.py checks every right with two real accounts instead"
)
EXPECTED_FAILURES: dict[str, str] = {
    "Metadata": (
        "James answers a value holding CRLF as a quoted string, which RFC 9051 §4.3 forbids "
        "(mailstead sends a literal); the script also expects James's own extensions: "
        "GETMETADATA without entries lists all, option lists after the mailbox one per "
        "option, MAXSIZE 0 and /private/vendor/x refused, NO [TRYCREATE] for a missing mailbox"
    ),
    "MetadataWithBinaryData": (
        "James answers a value holding CRLF as a quoted string, which RFC 9051 §4.3 forbids "
        "(mailstead sends a literal)"
    ),
    "AppendExamineInbox": _EXAMINE,
    "ConcurrentExistsResponse": (
        "a message appended while three other sessions have the mailbox selected: James "
        "reports it \\Recent (* 1 RECENT) in all three; RFC 3501 §2.3.2 gives \\Recent to "
        "one session, the first notified (mailstead: the one that polls first)"
    ),
    "Create": (
        "three lines: CREATE .. is a valid astring naming empty levels, so NO [CANNOT] "
        "(RFC 5530; Dovecot too), James BAD; CREATE \"one&AC4-two\" spells '.' in base64, "
        "which RFC 3501 §5.1.3 forbids (printable ASCII MUST represent itself), so BAD "
        "(Dovecot NO), James decodes it into the hierarchy one.two; CREATE #user is an "
        "ordinary name in mailstead's namespace (Dovecot OK too), James refuses it"
    ),
    "ExamineEmpty": _EXAMINE,
    "ExamineReadOnly": _EXAMINE,
    "FetchMultipartBodyStructure": _BODY31,
    "FetchSimpleBodyStructure": _CASE,
    "FetchSingleMessage": _CASE,
    "FetchStructureComplex": _BODY31,
    "FetchStructureEmbedded": _CASE,
    "InboxDeleteMessages": "script defect: line 24 expects the DELETE reply without its tag",
    "ListNamespace": (
        'James\'s personal namespace is "#private"; mailstead\'s is "" (RFC 2342 §4 leaves '
        "the prefix to the server)"
    ),
    "ListSubscribed": (
        'LIST (REMOTE): RFC 5258 §3.1 lists local mailboxes "as well as" remote ones; '
        "James lists none"
    ),
    "Move": (
        "MOVE: mailstead sends COPYUID in an untagged OK before the EXPUNGEs (RFC 6851 §4.3); "
        "James puts it in the tagged OK"
    ),
    "MoveNoMSG": (
        "UID MOVE of a UID that does not exist: James BAD, mailstead OK (RFC 9051 §6.4.9: "
        "not an error)"
    ),
    "PeekMultipartAlternative": _PEEK,
    "PeekMultipartMixed": _PEEK,
    "PeekMultipartMixedComplex": _PEEK,
    "RenameHierarchy": (
        'RENAME one.two alpha.beta: mailstead creates the superior "alpha" (RFC 9051 '
        "§6.3.6 SHOULD), James does not"
    ),
    "Replace": (
        "the REPLACE responses match line for line; then UID FETCH 1:* (BODY[TEXT]): James "
        "puts the implied UID between FLAGS and BODY[TEXT], mailstead after the items asked "
        "for (RFC 9051 §7.5.2 leaves the order of FETCH items free)"
    ),
    "SearchAtoms": _ATOMS,
    "SearchOptionSave": (
        "SEARCH RETURN (SAVE) alone: no result response (RFC 5182 §2.1); James sends "
        "* SEARCH"
    ),
    "UidSearchAtoms": _ATOMS,
    # ACL (RFC 4314, decision 0028): James's names and rights strings, not the RFC's.
    "ACLCommandsOnOwner": _ACL_NAMES + "; GETACL lists the owner as 'imapuser'",
    "ACLCommandsOnOtherUser": _ACL_NAMES + "; Boby's mailbox is James's 'user.Boby'",
    "Rights": _ACL_RIGHTS,
    "ListPlus": "LIST RETURN (MYRIGHTS): " + _ACL_RIGHTS,
    "Namespace": (
        "James's other users' namespace is \"#user.\"; mailstead's is \"Other Users.\" "
        "(RFC 2342 §5 leaves the prefix to the server)"
    ),
    "SharedMailbox": (
        "James's personal namespace \"#private.\" and its \"#any.\" names; mailstead's "
        "personal namespace is \"\" and has no prefixed aliases"
    ),
    **{name: _ACL_SHARED for name in (
        "ListWithSharedMailbox", "RenameSharedMailbox", "SharingAccessL", "SharingAccessLR",
        "SharingAccessLRA", "SharingAccessLRI", "SharingAccessLRK", "SharingAccessLRS",
        "SharingAccessLRT", "SharingAccessLRTE", "SharingAccessLRW", "SharingAccessLRX",
    )},
}


def _scripts() -> list[Path]:
    if not ROOT.is_dir():
        return []
    return sorted(p for p in ROOT.rglob("*.test") if p.stem not in FIXTURES)


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT).with_suffix(""))


def _params() -> list[object]:
    params = []
    for path in _scripts():
        name = _name(path)
        marks = []
        if name in EXPECTED_FAILURES:
            marks.append(pytest.mark.xfail(reason=EXPECTED_FAILURES[name], strict=True))
        params.append(pytest.param(path, id=name, marks=marks))
    return params


@dataclass(frozen=True)
class Target:
    """The server a script runs against: its IMAP port and advertised capabilities, and the
    store behind it for preconditions James sets up outside IMAP."""

    port: int
    capabilities: set[str]
    server: ServerThread
    user_id: int

    def create_mailboxes(self, names: tuple[str, ...]) -> None:
        async def create() -> None:
            for name in names:
                await self.server.store.create_mailbox(self.user_id, name)

        self.server.call(create())


#: Limits a script tests, set as James's test configuration sets them (server settings,
#: not relaxations). MetadataWithLimitation: James allows 1024 octets a value and 10
#: entries a mailbox; mailstead counts entries per account, and the script keeps 11.
SCRIPT_LIMITS: dict[str, dict[str, int]] = {
    "MetadataWithLimitation": {"imap_metadata_max_size": 1024, "imap_metadata_max_entries": 11},
}


@pytest.fixture
def imap_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Target]:
    """A fresh mailstead server with James's user (James gives every script a new host
    system)."""
    callspec = getattr(request.node, "callspec", None)
    path = callspec.params.get("path") if callspec is not None else None
    limits = SCRIPT_LIMITS.get(path.stem, {}) if isinstance(path, Path) else {}
    # James's scripts use "." as the hierarchy separator: a server setting, not a relaxation.
    config = {"auth": {"allow_plaintext": True}, "imap": {"hierarchy_separator": "."},
              "limits": limits}
    with ServerThread(tmp_path, config) as server:
        user = server.add_user(ACCOUNT, PASSWORD)
        _only_inbox(server, user.id)
        port = server.port("imap")
        yield Target(port, _capabilities(port), server, user.id)


def _only_inbox(server: ServerThread, user_id: int) -> None:
    """James's users start with INBOX alone; mailstead creates Sent, Drafts, Trash, Junk and
    Archive with every account, so the fixture removes them (a precondition, like the user)."""

    async def prune() -> None:
        for box in await server.store.list_mailboxes(user_id):
            if box.name != "INBOX":
                await server.store.delete_mailbox(user_id, box.name)
        for name in await server.store.list_subscriptions(user_id):
            if name != "INBOX":
                await server.store.set_subscribed(user_id, name, False)

    server.call(prune())


def _capabilities(port: int) -> set[str]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        f = sock.makefile("rwb")
        f.readline()
        f.write(b"c CAPABILITY\r\n")
        f.flush()
        caps: set[str] = set()
        while True:
            line = f.readline().decode("utf-8", "replace").strip()
            if line.startswith("* CAPABILITY "):
                caps.update(line.split()[2:])
            if not line or line.startswith("c "):
                return {c.upper() for c in caps}


_LOGIN = re.compile(rf"^(\S+ LOGIN ){USER}( .*)$", re.IGNORECASE)
# James always sends OBJECTID's MAILBOXID code (RFC 8474) and CONDSTORE's HIGHESTMODSEQ
# (RFC 7162); a server that does not advertise those extensions must not.
_MAILBOXID_CODE = re.compile(r" \\\[MAILBOXID \\\(\.[+*]\\\)\\\]")
_EXTENSION_LINE = {
    "OBJECTID": re.compile(r"^\\\* OK \\\[MAILBOXID "),
    "CONDSTORE": re.compile(r"^\\\* OK \\\[HIGHESTMODSEQ "),
}


def _adapt(elements: list[Element], capabilities: set[str]) -> list[Element]:
    """Account name in LOGIN; drop what James sends for extensions mailstead lacks."""
    out: list[Element] = []
    for e in elements:
        if isinstance(e, Client):
            m = _LOGIN.match(e.line)
            if m:
                e = Client(e.session, m.group(1) + ACCOUNT + m.group(2), e.lineno)
        elif isinstance(e, Server):
            if any(
                cap not in capabilities and rx.match(e.pattern)
                for cap, rx in _EXTENSION_LINE.items()
            ):
                continue
            if "OBJECTID" not in capabilities:
                e = Server(e.session, _MAILBOXID_CODE.sub("", e.pattern), e.lineno)
        elif isinstance(e, Unordered):
            patterns = tuple(
                p
                for p in e.patterns
                if not any(
                    cap not in capabilities and rx.match(p) for cap, rx in _EXTENSION_LINE.items()
                )
            )
            e = Unordered(e.session, patterns, e.lineno)
        out.append(e)
    return out


def _preconditions(name: str) -> tuple[list[Element], list[Element]]:
    """James's pre- and post-elements for a script (BasicImapCommands)."""
    pre: list[Element] = [Server(-1, r"\* OK IMAP4rev1 Server ready", 0)]
    post: list[Element] = []
    if name in NON_AUTHENTICATED:
        return pre, post
    pre += [Client(-1, f"a001 LOGIN {ACCOUNT} {PASSWORD}", 0), Server(-1, "a001 OK .*", 0)]
    if name in SELECTED:
        pre += load(ROOT / "SelectedStateSetup.test").elements
        post += load(ROOT / "SelectedStateCleanup.test").elements
    return pre, post


@pytest.mark.parametrize("path", _params())
def test_james_script(path: Path, imap_server: Target) -> None:
    port, capabilities = imap_server.port, imap_server.capabilities
    name = _name(path)
    stem = path.stem
    if name.startswith("aclIntegration/"):
        pytest.skip(_ACL_INTEGRATION)
    if stem in NEEDS_CAPABILITY:
        capability, why = NEEDS_CAPABILITY[stem]
        if capability not in capabilities:
            pytest.skip(f"mailstead does not advertise {capability}: {why}")
    if stem in NOT_APPLICABLE:
        pytest.skip(NOT_APPLICABLE[stem])
    if stem in MAILBOXES_BEFORE:
        imap_server.create_mailboxes(MAILBOXES_BEFORE[stem])
    script: Script = load(path)
    # A script that starts with the greeting is run without any preconditions.
    first = next(iter(script.elements), None)
    if isinstance(first, Server) and "Server ready" in first.pattern:
        pre, post = [], []
    else:
        pre, post = _preconditions(stem)
    elements = _adapt(pre + script.elements, capabilities)
    run_script(elements, script.sessions, port, post=_adapt(post, capabilities))
