"""The configuration schema: every setting, its default and its documentation in one place.

Each field carries its default and a one-line description beside its declaration; the
configuration reference (``docs/configuration.md``) is generated from these models by
:mod:`mailstead.config.docs`, and a test fails if the committed file drifts from them.

The defaults are the *dev profile*: listeners on loopback and on unprivileged ports, data
under ``./mailstead-data``, SQLite. A production file changes the addresses, the ports and
the hostname. Unknown keys are errors (``extra="forbid"``) so a typo never silently falls
back to a default, and types are strict (``port = "25"`` is rejected, not coerced).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(value: int | str) -> int:
    """``"50M"`` -> bytes. Accepts K/M/G/T (binary units, optional ``B``/``iB``), a plain
    integer, and ``0``/``"unlimited"`` meaning no limit (returned as 0)."""
    if isinstance(value, bool):
        raise ValueError(f"must be a size such as 500M or 2G, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"must not be negative, got {value}")
        return value
    if isinstance(value, str):
        if value.strip().lower() in ("unlimited", "none"):
            return 0
        match = _SIZE_RE.match(value)
        if match:
            number, unit = match.groups()
            return int(float(number) * _SIZE_UNITS[unit.upper()])
    raise ValueError(f"must be a size such as 500M, 2G or a number of bytes, got {value!r}")


def format_size(size: int) -> str:
    """Bytes -> a short human form (``1.5M``); the inverse of :func:`parse_size`, roughly."""
    for unit in ("T", "G", "M", "K"):
        factor = _SIZE_UNITS[unit]
        if size >= factor:
            text = f"{size / factor:.1f}".removesuffix(".0")
            return f"{text}{unit}"
    return str(size)


def _coerce_size(value: object) -> object:
    if isinstance(value, int | str) and not isinstance(value, bool):
        return parse_size(value)
    return value


#: Byte counts: an integer, or a string with a binary unit such as ``"50M"``.
Size = Annotated[int, BeforeValidator(_coerce_size), Field(ge=0)]
#: File system paths come from TOML strings; relative ones are resolved by the loader.
PathSetting = Annotated[Path, Field(strict=False)]
Port = Annotated[int, Field(ge=1, le=65535)]
TLSMode = Literal["none", "starttls", "implicit"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class StoreSettings(_Section):
    """Where accounts, mailboxes and messages live."""

    backend: Literal["sqlite"] = Field(
        "sqlite", description="mailstore backend: sqlite (embedded, zero set-up; the only one "
        "in this version)"
    )
    gc_grace_seconds: int = Field(
        3600, ge=0, description="age before an unreferenced message body is deleted"
    )
    index_text_limit: Size = Field(
        1024 * 1024,
        ge=1024,
        description="characters of each text field of a message "
        "(body text, all header fields, ...) kept in the IMAP SEARCH full-text index; a "
        "message with more is still found exactly, by scanning it (docs/decisions/0027)",
    )


class TLSSettings(_Section):
    """Certificate and key; both are re-read on SIGHUP so a renewed certificate needs no restart."""

    cert: PathSetting | None = Field(
        None,
        description="PEM certificate chain; default data_dir/tls/cert.pem, "
        "self-signed for hostname on first start",
    )
    key: PathSetting | None = Field(
        None, description="PEM private key; default data_dir/tls/key.pem"
    )


class AuthSettings(_Section):
    """Logins: plaintext policy, failure throttling, password hashing cost and the rules for
    passwords people choose."""

    allow_plaintext: bool = Field(
        False, description="allow LOGIN/PLAIN/USER-PASS (and SCRAM) over connections without TLS"
    )
    scram: bool = Field(
        False,
        description="offer SASL SCRAM-SHA-256 and SCRAM-SHA-256-PLUS, storing SCRAM keys "
        "beside each argon2id hash when a password is set or next used; the keys are far "
        "cheaper to guess against than argon2id if the database is stolen (decision 0026)",
    )
    scram_iterations: int = Field(
        4096,
        ge=4096,
        le=1_000_000,
        description="PBKDF2 iterations for new SCRAM keys (RFC "
        "7677 minimum, Dovecot's and PostgreSQL's default); every client pays it at each login",
    )
    max_failures: int = Field(
        5, ge=1, description="failed logins per account or IP within window before slowing down"
    )
    window_seconds: int = Field(900, ge=1, description="window for counting failed logins")
    lockout_failures: int = Field(
        20, ge=1, description="failed logins within window that lock the account or IP out "
        "(an address the account logged in from in the last 30 days stays let through)"
    )
    argon2_time_cost: int = Field(2, ge=1, description="argon2id iterations for new hashes")
    argon2_memory_kib: int = Field(
        19456, ge=8, description="argon2id memory in KiB for new hashes (OWASP minimum)"
    )
    argon2_parallelism: int = Field(1, ge=1, description="argon2id lanes for new hashes")
    password_min_length: int = Field(
        10, ge=8, le=1024, description="fewest characters in a password a person chooses "
        "(user add, user passwd, the API); NIST SP 800-63B-4 asks 15 for a single factor"
    )
    password_check_common: bool = Field(
        True, description="refuse chosen passwords that are on the list of the 30,000 most "
        "common breached passwords, also with a few digits or symbols added"
    )


class LimitsSettings(_Section):
    """Resource limits enforced in every session's read loop."""

    max_message_size: Size = Field(
        50 * 1024**2, ge=1,
        description="largest message accepted (SMTP SIZE, IMAP APPENDLIMIT, import); there "
        "is no 'unlimited': 0 is refused, as it once meant unlimited for SMTP and 1 MiB "
        "for IMAP",
    )
    max_input_in_flight: Size = Field(
        128 * 1024**2, ge=1,
        description="message data held in memory by all connections together (SMTP DATA "
        "and BDAT, IMAP literals, each up to spool_threshold); past it new data is refused "
        "with a temporary error (451 4.3.2, NO [UNAVAILABLE]). At least spool_threshold",
    )
    spool_threshold: Size = Field(
        1024**2, ge=4096,
        description="message data a connection keeps in memory; past it the message goes "
        "to a file in data_dir/spool until it is stored",
    )
    max_spool_in_flight: Size = Field(
        4 * 1024**3, ge=1,
        description="message data in spool files for all connections together; past it "
        "new messages are refused with a temporary error (451 4.3.2, NO [UNAVAILABLE]). "
        "At least max_message_size",
    )
    max_spool_per_client: Size = Field(
        256 * 1024**2, ge=1,
        description="message data in spool files from one client address (an IPv6 /64) "
        "at once, so that one source cannot take max_spool_in_flight from everyone; past "
        "it that client's new data is refused with a temporary error. At least "
        "max_message_size",
    )
    smtp_max_line_length: int = Field(
        4096, ge=1000, description="longest SMTP command or text line (RFC 5321 §4.5.3.1)"
    )
    imap_max_line_length: int = Field(
        65536, ge=1000, description="longest IMAP command line, literals excluded"
    )
    pop3_max_line_length: int = Field(
        4096, ge=255, description="longest POP3 command line (RFC 2449 §4 allows 255+)"
    )
    max_connections: int = Field(1000, ge=1, description="open connections per listener")
    max_connections_per_ip: int = Field(
        20, ge=1, description="open connections per client IPv4 address or IPv6 /64"
    )
    smtp_idle_timeout_seconds: int = Field(
        300, ge=1, description="SMTP idle timeout (RFC 5321 §4.5.3.2: at least 5 minutes)"
    )
    imap_idle_timeout_seconds: int = Field(
        1800, ge=1, description="IMAP auto-logout timer (RFC 9051 §5.4: at least 30 minutes)"
    )
    imap_notify_max_backlog: int = Field(
        10000, ge=1, description="IMAP NOTIFY (RFC 5465 §5.8): change events a session may "
        "have waiting for delivery; past it the session gets OK [NOTIFICATIONOVERFLOW] and "
        "its NOTIFY ends, as if it had sent NOTIFY NONE"
    )
    pop3_idle_timeout_seconds: int = Field(
        600, ge=1, description="POP3 inactivity timer (RFC 1939 §3: at least 10 minutes)"
    )
    login_timeout_seconds: int = Field(
        180, ge=1, description="longest time a connection may stay unauthenticated on IMAP, "
        "POP3 and submission, however active (Dovecot's is 3 minutes too)"
    )
    transfer_timeout_seconds: int = Field(
        1200, ge=1, description="longest time one message's data may take to arrive (SMTP "
        "DATA or a BDAT transaction, an IMAP literal), however steadily it trickles"
    )
    max_errors_per_session: int = Field(
        10, ge=1, description="bad commands tolerated before the connection is closed"
    )
    max_commands_per_session: int = Field(
        100000, ge=1, description="commands in one session before it is closed"
    )
    imap_metadata_max_size: Size = Field(
        64 * 1024, ge=1, le=1024**2,
        description="largest value of one IMAP METADATA entry (RFC 5464; larger: NO "
        "[METADATA MAXSIZE n]); at most 1 MiB, the largest literal outside APPEND",
    )
    imap_metadata_max_entries: int = Field(
        500, ge=1,
        description="IMAP METADATA entries one account may keep, on all its mailboxes and "
        "the server together (more: NO [METADATA TOOMANY]); with imap_metadata_max_size "
        "this bounds what an account stores outside its quota",
    )

    @model_validator(mode="after")
    def _budget_holds_a_message(self) -> LimitsSettings:
        for name in ("max_spool_in_flight", "max_spool_per_client"):
            value = getattr(self, name)
            if value < self.max_message_size:
                raise ValueError(
                    f"{name} ({format_size(value)}) must be at least max_message_size "
                    f"({format_size(self.max_message_size)}), or the largest message could "
                    "never be received"
                )
        if self.max_input_in_flight < min(self.spool_threshold, self.max_message_size):
            raise ValueError(
                f"max_input_in_flight ({format_size(self.max_input_in_flight)}) must be at "
                f"least spool_threshold ({format_size(self.spool_threshold)}), or a message "
                "could never be received"
            )
        return self


class ListenerSettings(_Section):
    """One listening socket. The subclasses only change the defaults."""

    enabled: bool = Field(True, description="start this listener")
    address: str = Field(
        "127.0.0.1",
        description='IP address to bind; loopback by default, "::" or "0.0.0.0" to serve '
        "the network",
    )
    port: Port = Field(0, description="TCP port")
    tls: TLSMode = Field("none", description="none, starttls (upgrade in the session) or implicit")


class SMTPListener(ListenerSettings):
    """SMTP (MX): mail from other servers for local recipients; standard port 25."""

    port: Port = Field(2525, description="TCP port (standard: 25)")
    tls: TLSMode = Field("starttls", description="none, starttls or implicit")


class SubmissionListener(ListenerSettings):
    """Authenticated users send mail (STARTTLS, then AUTH); standard port 587."""

    port: Port = Field(2587, description="TCP port (standard: 587)")
    tls: TLSMode = Field("starttls", description="none, starttls or implicit")


class SubmissionsListener(ListenerSettings):
    """Submission over implicit TLS (RFC 8314); standard port 465."""

    port: Port = Field(2465, description="TCP port (standard: 465)")
    tls: TLSMode = Field("implicit", description="none, starttls or implicit")


class IMAPListener(ListenerSettings):
    """IMAP with STARTTLS; standard port 143."""

    port: Port = Field(2143, description="TCP port (standard: 143)")
    tls: TLSMode = Field("starttls", description="none, starttls or implicit")


class IMAPSListener(ListenerSettings):
    """IMAP over implicit TLS; standard port 993."""

    port: Port = Field(2993, description="TCP port (standard: 993)")
    tls: TLSMode = Field("implicit", description="none, starttls or implicit")


class POP3Listener(ListenerSettings):
    """POP3 with STLS; standard port 110."""

    port: Port = Field(2110, description="TCP port (standard: 110)")
    tls: TLSMode = Field("starttls", description="none, starttls or implicit")


class POP3SListener(ListenerSettings):
    """POP3 over implicit TLS; standard port 995."""

    port: Port = Field(2995, description="TCP port (standard: 995)")
    tls: TLSMode = Field("implicit", description="none, starttls or implicit")


class HTTPListener(ListenerSettings):
    """HTTP: health, and the APIs and web pages to come; standard port 80."""

    port: Port = Field(8080, description="TCP port (standard: 80)")
    tls: Literal["none", "implicit"] = Field("none", description="none or implicit")


class HTTPSListener(ListenerSettings):
    """HTTP over TLS; standard port 443."""

    port: Port = Field(8443, description="TCP port (standard: 443)")
    tls: Literal["none", "implicit"] = Field("implicit", description="none or implicit")


class ListenersSettings(_Section):
    """Every listener has a section ``[listeners.<name>]``; omitted ones keep their defaults."""

    smtp: SMTPListener = Field(default_factory=SMTPListener, description="SMTP (MX)")
    submission: SubmissionListener = Field(
        default_factory=SubmissionListener, description="SMTP submission"
    )
    submissions: SubmissionsListener = Field(
        default_factory=SubmissionsListener, description="SMTP submission over TLS"
    )
    imap: IMAPListener = Field(default_factory=IMAPListener, description="IMAP")
    imaps: IMAPSListener = Field(default_factory=IMAPSListener, description="IMAP over TLS")
    pop3: POP3Listener = Field(default_factory=POP3Listener, description="POP3")
    pop3s: POP3SListener = Field(default_factory=POP3SListener, description="POP3 over TLS")
    http: HTTPListener = Field(default_factory=HTTPListener, description="HTTP")
    https: HTTPSListener = Field(default_factory=HTTPSListener, description="HTTP over TLS")

    def items(self) -> list[tuple[str, ListenerSettings]]:
        """``(name, listener)`` pairs in declaration order."""
        return [(name, getattr(self, name)) for name in type(self).model_fields]


class HTTPSettings(_Section):
    """Limits of the HTTP listeners, per request."""

    max_body_size: Size = Field(
        10 * 1024**2, ge=1,
        description="largest request body; a larger one is answered 413 before it is read",
    )
    max_header_size: Size = Field(
        64 * 1024, ge=4096,
        description="request line and header fields together; past it 431, and the "
        "connection closes",
    )
    request_timeout_seconds: int = Field(
        60, ge=1, description="time for a whole request to arrive, however steadily it "
        "trickles; past it 408 and the connection closes",
    )
    keepalive_timeout_seconds: int = Field(
        75, ge=1, description="idle time between requests on one connection",
    )
    metrics_from: list[str] = Field(
        ["127.0.0.0/8", "::1/128"],
        description="networks (CIDR) whose clients may read /metrics; others get 403. "
        '["0.0.0.0/0", "::/0"] opens it to all, [] closes it',
    )

    @field_validator("metrics_from")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ValueError(f"not a network: {network!r}") from None
        return value


class JMAPSettings(_Section):
    """JMAP (RFC 8620, RFC 8621) at /jmap on the HTTP listeners: the limits of the core
    capability, announced in the session resource and enforced."""

    enabled: bool = Field(True, description="serve JMAP: the session, API, upload and "
                          "download endpoints under /jmap")
    max_size_upload: Size = Field(
        50 * 1024**2, ge=1, description="largest blob upload (maxSizeUpload); no more than "
        "http.max_body_size is announced or accepted",
    )
    max_concurrent_upload: int = Field(
        4, ge=1, description="uploads one account may run at once (maxConcurrentUpload)",
    )
    max_size_request: Size = Field(
        10 * 1024**2, ge=1, description="largest API request body (maxSizeRequest); no more "
        "than http.max_body_size is announced or accepted",
    )
    max_concurrent_requests: int = Field(
        4, ge=1, description="API requests one account may run at once "
        "(maxConcurrentRequests)",
    )
    max_calls_in_request: int = Field(
        64, ge=1, description="method calls in one API request (maxCallsInRequest)",
    )
    max_objects_in_get: int = Field(
        500, ge=1, description="ids one /get may ask for (maxObjectsInGet)",
    )
    max_objects_in_set: int = Field(
        500, ge=1, description="creates, updates and destroys in one /set (maxObjectsInSet)",
    )
    push_subscription_max_days: int = Field(
        7, ge=1, le=365, description="longest life of a PushSubscription (RFC 8620 §7.2): a "
        "later or missing expires is set to this many days from now; the client renews it",
    )
    push_max_subscriptions: int = Field(
        20, ge=1, description="PushSubscriptions one account may hold at once",
    )
    push_allow_http: bool = Field(
        False, description="accept push URLs over plain http (tests, a relay on this machine); "
        "otherwise only https",
    )
    push_allow_private_destinations: bool = Field(
        False, description="let push URLs lead to loopback and private network addresses; off, "
        "a client cannot make the server POST into its own network",
    )


class SMTPSettings(_Section):
    """SMTP session policy shared by the MX and submission listeners."""

    max_recipients: int = Field(100, ge=1, description="RCPT TO commands accepted per message")
    require_tls_for_auth: bool = Field(
        True, description="offer AUTH only after STARTTLS or on implicit TLS"
    )
    reject_bare_lf: bool = Field(
        True,
        description="reject message data with bare LF line endings from unauthenticated "
        "clients (SMTP smuggling); authenticated submissions get them turned into CRLF",
    )
    plus_separator: str = Field(
        "+",
        description="subaddress separator: user+tag@domain delivers to user@domain; empty disables",
    )


class RelaySettings(_Section):
    """A smarthost: every remote recipient without a static route goes through it."""

    host: str = Field(
        "", description='relay host name or IP address; empty delivers directly by MX lookup'
    )
    port: Port = Field(587, description="relay port (587 submission, 465 implicit TLS, 25)")
    tls: Literal["starttls", "implicit", "opportunistic", "none"] = Field(
        "starttls",
        description="starttls (required), implicit (TLS on connect), opportunistic, or none",
    )
    verify_certificate: bool = Field(
        True, description="check the relay's certificate against the system CAs and its name"
    )
    username: str = Field("", description="AUTH user name at the relay; empty sends without AUTH")
    password_file: PathSetting | None = Field(
        None, description="file holding the AUTH password (first line), readable only by us"
    )


class DeliverySettings(_Section):
    """Outbound delivery: the queue scheduler, MX routing, retries and bounces."""

    enabled: bool = Field(True, description="run the outbound queue (deliver to remote servers)")
    smtp_port: Port = Field(
        25, description="port of remote MX hosts (25; tests point it at a local instance)"
    )
    helo_name: str = Field("", description="name sent in EHLO; empty uses hostname")
    nameservers: list[str] = Field(
        default_factory=list,
        description="DNS resolvers (IP addresses) for MX/A/AAAA; empty uses /etc/resolv.conf",
    )
    dns_port: Port = Field(53, description="port of the nameservers above")
    dns_timeout_seconds: int = Field(10, ge=1, description="time limit for one DNS lookup")
    ip_version: Literal["any", "ipv4", "ipv6"] = Field(
        "any", description="address families used to reach remote hosts"
    )
    routes: dict[str, str] = Field(
        default_factory=dict,
        description='static routes, domain -> "host[:port]" (host may be [IP]); '
        "they win over MX and relay",
    )
    require_tls: list[str] = Field(
        default_factory=list,
        description="domains that get mail only over STARTTLS (others: TLS when offered)",
    )
    verify_required_tls: bool = Field(
        False, description="also check the certificate of hosts for require_tls domains"
    )
    retry_intervals_seconds: list[int] = Field(
        default_factory=lambda: [60, 300, 900, 1800, 3600],
        description="waits between attempts after a temporary failure; the last one repeats",
    )
    max_age_seconds: int = Field(
        5 * 86400, ge=60, description="give up (and bounce) a message queued this long"
    )
    delay_warning_seconds: int = Field(
        4 * 3600, ge=0, description="send a delay notice after this long in the queue; 0: never"
    )
    max_connections: int = Field(100, ge=1, description="outbound SMTP connections in all")
    max_connections_per_domain: int = Field(
        10, ge=1, description="outbound connections to one destination domain (or route)"
    )
    max_connections_per_host: int = Field(
        10, ge=1, description="outbound connections to one remote host address"
    )
    max_messages_per_connection: int = Field(
        100, ge=1, description="messages sent over one connection before it is closed"
    )
    connection_reuse_seconds: int = Field(
        2, ge=0, description="how long an idle connection waits for more mail to the same "
        "destination before QUIT; 0: close at once"
    )
    max_recipients_per_message: int = Field(
        100, ge=1, description="RCPTs per transaction (RFC 5321 §4.5.3.1.8: at least 100)"
    )
    connect_timeout_seconds: int = Field(30, ge=1, description="time limit for a TCP connect")
    command_timeout_seconds: int = Field(
        300, ge=1, description="time limit for a reply (RFC 5321 §4.5.3.2: 5 minutes)"
    )
    data_timeout_seconds: int = Field(
        600, ge=1, description="time limit for the reply to the final dot (RFC 5321: 10 minutes)"
    )
    poll_seconds: float = Field(
        1.0, gt=0, description="how often the scheduler looks for newly queued mail"
    )
    relay: RelaySettings = Field(default_factory=RelaySettings, description="smarthost")


class DKIMSettings(_Section):
    """DKIM signing of mail that authenticated users send (keys from `mailstead dkim keygen`)."""

    enabled: bool = Field(
        True, description="sign outgoing mail for every domain with a key in data_dir/dkim"
    )


class IMAPSettings(_Section):
    """IMAP protocol choices that clients can see."""

    hierarchy_separator: Literal["/", "."] = Field(
        "/",
        description='hierarchy separator shown to IMAP clients; with "." a client\'s "a.b" is '
        'the folder a/b and names containing "/" are refused',
    )
    max_errors_before_login: int = Field(
        1,
        ge=1,
        description="lines before login that are no IMAP command (no tag, unknown command, "
        "over-long line) that end the connection: the one that reaches it gets only BYE "
        "(ALPACA: 1 drops a misdirected HTTP request at its first line); a known command with "
        "bad arguments gets BAD; after login limits.max_errors_per_session applies",
    )
    server_admin: str = Field(
        "",
        description="the server's administrator as IMAP clients read it (METADATA entry "
        "/shared/admin of the server, RFC 5464 §6.2.2): an address (mailto: is added), "
        "mailto:ADDRESS or an https:// URL; empty: the entry is not there",
    )
    server_comment: str = Field(
        "", max_length=1024,
        description="a comment about the server for IMAP clients (METADATA entry "
        "/shared/comment of the server, RFC 5464 §6.2.1); empty: the entry is not there",
    )

    @field_validator("server_admin")
    @classmethod
    def _admin_uri(cls, value: str) -> str:
        return _report_uri(value)


_REPORT_ADDRESS = re.compile(r"^[^\s@,;!]+@[A-Za-z0-9.-]+$")
_MX_PATTERN = re.compile(r"^(\*\.)?([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                         r"[A-Za-z0-9-]{2,63}$")
_SPF_TERM = re.compile(r"^[+?~-]?(a|mx|ip4|ip6|include|exists)([:/][^\s]{1,253})?$",
                       re.IGNORECASE)


def _report_uri(value: str) -> str:
    """``""``, a mailbox, ``mailto:`` a mailbox, or an ``https:`` URL -> a report URI
    (RFC 7489 §6.2, RFC 8460 §3); a bare address gets ``mailto:``."""
    value = value.strip()
    if not value:
        return ""
    if len(value) > 255:
        raise ValueError("must be at most 255 characters")
    if value.lower().startswith("https://"):
        if any(c.isspace() or c in ",;!" for c in value):
            raise ValueError(f"not a report URL: {value!r} (no spaces, commas, ';' or '!')")
        return value
    address = value[len("mailto:"):] if value.lower().startswith("mailto:") else value
    if not _REPORT_ADDRESS.match(address):
        raise ValueError(f"not a report address: {value!r} (an e-mail address, mailto:ADDRESS "
                         "or an https:// URL)")
    return "mailto:" + address


class DNSSettings(_Section):
    """What ``mailstead dns records`` tells to publish beyond the MX, and ``dns check``
    expects: the DMARC policy, where reports go, what else may send as the domain."""

    dmarc_policy: Literal["none", "quarantine", "reject"] = Field(
        "quarantine",
        description="DMARC p= for the hosted domains: none (only reports), quarantine "
        "(receivers put failing mail in spam) or reject (they refuse it); decision 0013 "
        "says why quarantine is the start",
    )
    dmarc_rua: str = Field(
        "", description="where receivers send DMARC aggregate reports (an address, "
        "mailto:ADDRESS or https://...); empty asks for none",
    )
    tls_rpt_rua: str = Field(
        "", description="where senders send TLS reports (RFC 8460: an address, "
        "mailto:ADDRESS or https://...); empty: postmaster@<domain>",
    )
    spf_extra: list[str] = Field(
        default_factory=list,
        description='other senders allowed in the SPF record, as SPF terms such as '
        '"include:relay.example.net" or "ip4:192.0.2.0/24" (a smarthost in '
        "delivery.relay needs its own here)",
    )

    @field_validator("dmarc_rua", "tls_rpt_rua")
    @classmethod
    def _report_addresses(cls, value: str) -> str:
        return _report_uri(value)

    @field_validator("spf_extra")
    @classmethod
    def _spf_terms(cls, value: list[str]) -> list[str]:
        if len(value) > 8:
            raise ValueError("at most 8 terms (RFC 7208 §4.6.4 allows 10 DNS lookups in all)")
        for term in value:
            if not _SPF_TERM.match(term):
                raise ValueError(f"not an SPF mechanism: {term!r} (such as include:NAME, "
                                 "a:NAME, mx, ip4:ADDRESS/BITS, ip6:ADDRESS/BITS)")
        return value


class MTASTSSettings(_Section):
    """MTA-STS (RFC 8461): the policy senders fetch from https://mta-sts.<domain>/ to
    learn that mail to the domain must go over verified TLS to the listed MX hosts."""

    mode: Literal["testing", "enforce", "none"] = Field(
        "testing",
        description="testing (senders report failures but deliver), enforce (they refuse "
        "to deliver without verified TLS to a listed MX) or none (withdraw a policy)",
    )
    max_age_seconds: int = Field(
        604800, ge=86400, le=31557600,
        description="how long senders keep the policy (RFC 8461 §3.2: at most a year; "
        "weeks are usual once it is enforced)",
    )
    extra_mx: list[str] = Field(
        default_factory=list,
        description='MX hosts besides hostname that may receive mail for the domains, '
        'such as a backup MX ("backup.example.net" or "*.example.net")',
    )

    @field_validator("extra_mx")
    @classmethod
    def _mx_patterns(cls, value: list[str]) -> list[str]:
        if len(value) > 16:
            raise ValueError("at most 16 MX patterns")
        for pattern in value:
            if not _MX_PATTERN.match(pattern):
                raise ValueError(f"not an MX host name or *.domain pattern: {pattern!r}")
        return [p.lower() for p in value]


LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
ChallengeType = Literal["http-01", "tls-alpn-01"]
_CHALLENGE_PREFERENCE: tuple[ChallengeType, ...] = ("http-01", "tls-alpn-01")
_DNS_NAME = re.compile(
    r"^(?=.{1,253}$)(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$"
)


class ACMESettings(_Section):
    """Certificates from Let's Encrypt or any ACME server (RFC 8555), renewed while serving."""

    enabled: bool = Field(
        False, description="obtain and renew the certificate by ACME; it is kept in "
        "data_dir/acme and served instead of [tls] once issued"
    )
    directory: str = Field(
        LETS_ENCRYPT, min_length=1, max_length=2000, pattern=r"^https?://\S+$",
        description="the ACME server's directory URL; Let's Encrypt production by default, "
        "https://acme-staging-v02.api.letsencrypt.org/directory to try things out",
    )
    contact: str = Field(
        "", max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+$",
        description="e-mail address the ACME server may write to about the certificate; "
        "empty registers without one",
    )
    names: list[str] = Field(
        default_factory=list, max_length=100,
        description="names the certificate is for; empty means just hostname (add e.g. "
        "mta-sts.example.org and autoconfig.example.org when they point here)",
    )
    challenges: list[ChallengeType] = Field(
        default_factory=lambda: list(_CHALLENGE_PREFERENCE), min_length=1, max_length=2,
        description="challenge types to answer, in order of preference: http-01 on the "
        "http listener (port 80), tls-alpn-01 on the TLS listeners (port 443)",
    )
    renew_before_days: int = Field(
        30, ge=1, le=365, description="renew a certificate this many days before it expires"
    )
    check_interval_seconds: int = Field(
        43200, ge=1, le=7 * 86400,
        description="how often the server checks whether the certificate needs renewing",
    )
    retry_seconds: int = Field(
        600, ge=1, le=7 * 86400,
        description="wait after a failed attempt; it doubles with each failure in a row, "
        "up to check_interval_seconds",
    )
    ca_bundle: PathSetting | None = Field(
        None, description="PEM CA certificates to trust for the ACME server's own HTTPS "
        "(a test CA such as Pebble's); default: the system's",
    )

    @field_validator("names")
    @classmethod
    def _dns_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _DNS_NAME.match(name):
                raise ValueError(f"not a DNS name: {name[:80]!r}")
        return value

    @field_validator("challenges")
    @classmethod
    def _distinct(cls, value: list[ChallengeType]) -> list[ChallengeType]:
        if len(set(value)) != len(value):
            raise ValueError("each challenge type may be listed once")
        return value



class LogSettings(_Section):
    """Logging to standard error, one line per event."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="minimum level logged"
    )
    format: Literal["text", "json"] = Field(
        "text",
        description='"text": one readable line per event; "json": one JSON object per line '
        "(time in RFC 3339 UTC, level, logger, message, session/peer/user on a connection's "
        "lines, exc for a traceback) for log shippers",
    )


class Settings(_Section):
    """The whole configuration. Every key is optional."""

    hostname: str = Field(
        "localhost",
        min_length=1,
        description="this server's name: SMTP greeting, certificate, first domain",
    )
    data_dir: PathSetting = Field(
        Path("./mailstead-data"),
        description="database, message bodies and certificates; MAILSTEAD_DATA and --data "
        "override it",
    )
    store: StoreSettings = Field(default_factory=StoreSettings, description="mailstore")
    tls: TLSSettings = Field(default_factory=TLSSettings, description="TLS certificate")
    auth: AuthSettings = Field(default_factory=AuthSettings, description="authentication")
    limits: LimitsSettings = Field(default_factory=LimitsSettings, description="limits")
    listeners: ListenersSettings = Field(
        default_factory=ListenersSettings, description="listening sockets"
    )
    smtp: SMTPSettings = Field(default_factory=SMTPSettings, description="SMTP policy")
    delivery: DeliverySettings = Field(
        default_factory=DeliverySettings, description="outbound delivery"
    )
    dkim: DKIMSettings = Field(default_factory=DKIMSettings, description="DKIM signing")
    imap: IMAPSettings = Field(default_factory=IMAPSettings, description="IMAP")
    http: HTTPSettings = Field(default_factory=HTTPSettings, description="HTTP")
    jmap: JMAPSettings = Field(default_factory=JMAPSettings, description="JMAP")
    dns: DNSSettings = Field(default_factory=DNSSettings, description="DNS records to publish")
    mta_sts: MTASTSSettings = Field(default_factory=MTASTSSettings, description="MTA-STS policy")
    acme: ACMESettings = Field(default_factory=ACMESettings, description="ACME certificates")
    log: LogSettings = Field(default_factory=LogSettings, description="logging")

    @property
    def cert_path(self) -> Path:
        """The certificate in use: the configured one or the generated one in the data dir."""
        return self.tls.cert or self.data_dir / "tls" / "cert.pem"

    @property
    def key_path(self) -> Path:
        return self.tls.key or self.data_dir / "tls" / "key.pem"

    @property
    def acme_names(self) -> list[str]:
        """The names the ACME certificate is for: ``[acme] names``, or just the hostname."""
        return [name.lower().rstrip(".") for name in self.acme.names] or [self.hostname]

    def effective_toml(self) -> str:
        """The configuration as TOML, every key present and commented (``config check``)."""
        from mailstead.config.render import render_settings

        return render_settings(self)
