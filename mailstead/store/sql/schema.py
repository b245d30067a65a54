"""The mailstore schema and its migrations (SQLite dialect; PostgreSQL mirrors it).

Migrations are numbered and applied in order inside one transaction each; the applied number
lives in ``PRAGMA user_version``. Never edit a released migration: add the next one.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema. Mod-sequences and expunge records exist from the start because
    # retrofitting CONDSTORE/QRESYNC later is a rewrite.
    """
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE domains (
        name    TEXT PRIMARY KEY,
        created TEXT NOT NULL
    );
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        address       TEXT NOT NULL,
        addr_key      TEXT NOT NULL UNIQUE,
        domain        TEXT NOT NULL REFERENCES domains(name),
        password_hash TEXT NOT NULL,
        quota_bytes   INTEGER NOT NULL DEFAULT 0,
        used_bytes    INTEGER NOT NULL DEFAULT 0,
        pop3_policy   TEXT NOT NULL DEFAULT 'delete',
        plus_folders  INTEGER NOT NULL DEFAULT 0,
        disabled      INTEGER NOT NULL DEFAULT 0,
        created       TEXT NOT NULL
    );
    CREATE INDEX users_domain ON users(domain);
    CREATE TABLE aliases (
        source_key TEXT NOT NULL,
        source     TEXT NOT NULL,
        domain     TEXT NOT NULL REFERENCES domains(name),
        target     TEXT NOT NULL,
        position   INTEGER NOT NULL,
        PRIMARY KEY (source_key, target)
    );
    CREATE INDEX aliases_domain ON aliases(domain);
    CREATE TABLE groups (
        id       INTEGER PRIMARY KEY,
        address  TEXT NOT NULL,
        addr_key TEXT NOT NULL UNIQUE,
        domain   TEXT NOT NULL REFERENCES domains(name)
    );
    CREATE TABLE group_members (
        group_id INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        member   TEXT NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (group_id, member)
    );
    CREATE TABLE mailboxes (
        id            INTEGER PRIMARY KEY,
        user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name          TEXT NOT NULL,
        uidvalidity   INTEGER NOT NULL,
        uidnext       INTEGER NOT NULL DEFAULT 1,
        highestmodseq INTEGER NOT NULL DEFAULT 1,
        special_use   TEXT,
        UNIQUE (user_id, name)
    );
    CREATE TABLE subscriptions (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name    TEXT NOT NULL,
        PRIMARY KEY (user_id, name)
    );
    CREATE TABLE blobs (
        id        TEXT PRIMARY KEY,
        size      INTEGER NOT NULL,
        structure BLOB
    );
    CREATE TABLE messages (
        mailbox_id   INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid          INTEGER NOT NULL,
        modseq       INTEGER NOT NULL,
        flags        TEXT NOT NULL,
        seen         INTEGER NOT NULL,
        deleted      INTEGER NOT NULL,
        internaldate TEXT NOT NULL,
        size         INTEGER NOT NULL,
        blob_id      TEXT NOT NULL REFERENCES blobs(id),
        PRIMARY KEY (mailbox_id, uid)
    ) WITHOUT ROWID;
    CREATE INDEX messages_blob ON messages(blob_id);
    CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
    CREATE TABLE expunged (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        uid        INTEGER NOT NULL,
        modseq     INTEGER NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
    ) WITHOUT ROWID;
    CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);
    """,
    # 2: the durable outbound queue. A queued message shares the blobs table with stored
    # messages (one body, referenced); recipients carry their RFC 3461 DSN parameters and
    # their own delivery state, so one message to many domains is retried per recipient.
    """
    CREATE TABLE queue_messages (
        id        INTEGER PRIMARY KEY,
        blob_id   TEXT NOT NULL REFERENCES blobs(id),
        size      INTEGER NOT NULL,
        mail_from TEXT NOT NULL,
        envid     TEXT,
        ret       TEXT,
        body      TEXT,
        smtputf8  INTEGER NOT NULL DEFAULT 0,
        auth_user TEXT,
        created   TEXT NOT NULL
    );
    CREATE INDEX queue_messages_blob ON queue_messages(blob_id);
    CREATE TABLE queue_recipients (
        id           INTEGER PRIMARY KEY,
        message_id   INTEGER NOT NULL REFERENCES queue_messages(id) ON DELETE CASCADE,
        address      TEXT NOT NULL,
        notify       TEXT NOT NULL DEFAULT '',
        orcpt        TEXT,
        status       TEXT NOT NULL DEFAULT 'queued',
        attempts     INTEGER NOT NULL DEFAULT 0,
        next_attempt TEXT NOT NULL,
        last_error   TEXT
    );
    CREATE INDEX queue_recipients_message ON queue_recipients(message_id);
    CREATE INDEX queue_recipients_due ON queue_recipients(status, next_attempt);
    """,
    # 3: outbound delivery state (the scheduler). Where the last attempt went and
    # over which TLS version, whether the delay notice went out, whether the final DSN
    # owed for a recipient was sent (so a restart neither loses nor repeats it), and
    # messages an operator put on hold.
    """
    ALTER TABLE queue_recipients ADD COLUMN last_attempt TEXT;
    ALTER TABLE queue_recipients ADD COLUMN remote TEXT;
    ALTER TABLE queue_recipients ADD COLUMN tls TEXT;
    ALTER TABLE queue_recipients ADD COLUMN status_code TEXT;
    ALTER TABLE queue_recipients ADD COLUMN delay_notified INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queue_recipients ADD COLUMN settled INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queue_messages ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
    """,
    # 4: small bodies live in the database (docs/decisions/0002): the body and the rows
    # that reference it become durable with one WAL fsync. NULL means the body is a file.
    """
    ALTER TABLE blobs ADD COLUMN data BLOB;
    """,
    # 5: RFC 9051 §6.3.5: deleting a mailbox that has children empties it and marks it
    # \Noselect instead of removing the name.
    """
    ALTER TABLE mailboxes ADD COLUMN noselect INTEGER NOT NULL DEFAULT 0;
    """,
    # 6: RFC 8514 SAVEDATE: when the message was saved to its mailbox (APPEND, delivery,
    # COPY, MOVE). Rows from before have NULL and read as their internal date.
    """
    ALTER TABLE messages ADD COLUMN savedate TEXT;
    """,
    # 7: since when this database knows every body file written beside it (Unix seconds):
    # garbage collection removes a file no row knows only when it is newer than this, so
    # files from before (another database, an older install) are never taken for crash
    # leftovers.
    """
    INSERT OR IGNORE INTO meta (key, value)
        VALUES ('bodies_known_since', CAST(strftime('%s', 'now') AS TEXT));
    """,
    # 8: the id a queued message was received with (its Received header's, the 250 reply's):
    # log lines of its delivery name it, where a row id could be reused after a deletion.
    """
    ALTER TABLE queue_messages ADD COLUMN trace_id TEXT;
    """,
    # 9: credentials of the HTTP APIs (only a hash of each secret) and the audit log of
    # administrative changes, written in the transaction of the change (store/audit.py).
    """
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        scope TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created TEXT NOT NULL,
        created_by TEXT NOT NULL,
        last_used TEXT,
        last_used_from TEXT,
        revoked TEXT
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        source TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX audit_log_target ON audit_log (target);
    """,
    # 10: which sender addresses an account may submit with, "own" or "any"
    # (mailstead user send-as; docs/decisions/0015). Existing accounts keep "own".
    """
    ALTER TABLE users ADD COLUMN send_as TEXT NOT NULL DEFAULT 'own';
    """,
    # 11: IMAP METADATA (RFC 5464, decision 0029). Entries of a mailbox go with its row
    # (RENAME keeps the id, DELETE cascades); the server entries an account sees are the
    # account's. Values are bytes as written. Each row counts towards the account's limit,
    # so user_id is kept on mailbox entries too and indexed.
    """
    CREATE TABLE mailbox_metadata (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name       TEXT NOT NULL,
        value      BLOB NOT NULL,
        PRIMARY KEY (mailbox_id, name)
    ) WITHOUT ROWID;
    CREATE INDEX mailbox_metadata_user ON mailbox_metadata(user_id);
    CREATE TABLE server_metadata (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name    TEXT NOT NULL,
        value   BLOB NOT NULL,
        PRIMARY KEY (user_id, name)
    ) WITHOUT ROWID;
    """,
    # 12: SCRAM-SHA-256 keys (docs/decisions/0026), in PostgreSQL's text form; NULL until the
    # password is next set or used to log in. Existing accounts start without.
    """
    ALTER TABLE users ADD COLUMN scram_sha256 TEXT;
    """,
    # 13: RFC 4314 ACL: who besides the owner may do what with a mailbox (decision 0028). A
    # grant names an account (grantee_id) or, with NULL, "anyone"; both go with the
    # mailbox or the grantee's account. Rights are canonical letters (core/rights.py).
    """
    CREATE TABLE mailbox_acl (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        grantee_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
        rights TEXT NOT NULL
    );
    CREATE UNIQUE INDEX mailbox_acl_grant ON mailbox_acl (mailbox_id, coalesce(grantee_id, 0));
    CREATE INDEX mailbox_acl_grantee ON mailbox_acl (grantee_id);
    """,
    # 14: per-user \Seen in other accounts' mailboxes (decision 0028): the messages a grantee
    # has seen, apart from the owner's \Seen flag. Rows go with the message (expunge
    # removes them), the mailbox and the grantee's account.
    """
    CREATE TABLE private_seen (
        mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        uid INTEGER NOT NULL,
        PRIMARY KEY (mailbox_id, user_id, uid)
    ) WITHOUT ROWID;
    """,
    # 15: the trigram full-text index behind IMAP SEARCH text keys (docs/decisions/0027).
    # One row per body that a message references (bodies are shared), the folded text per
    # column; ``search_bodies`` maps a body to its row and says whether the text was cut to
    # the indexed-text limit. The trigger notes in ``search_gone`` a body whose last
    # message went (expunge, MOVE source, a mailbox or account deleted); the background
    # purge removes such rows a few at a time, since FTS5 re-tokenises a row's text to
    # delete it and a large expunge would otherwise hold the writer for seconds. A row of a
    # body no message references matches nothing (searches join the messages). Bodies
    # stored before have no row until the server's background catch-up or ``mailstead
    # index rebuild`` indexes them; searches scan them meanwhile.
    """
    CREATE VIRTUAL TABLE search_text USING fts5(
        subject, addr_from, addr_to, addr_cc, addr_bcc, hvalues, headers, body,
        tokenize = 'trigram case_sensitive 1', columnsize = 0
    );
    CREATE TABLE search_bodies (
        id       INTEGER PRIMARY KEY,
        blob_id  TEXT NOT NULL UNIQUE,
        complete INTEGER NOT NULL
    );
    CREATE TABLE search_gone (blob_id TEXT PRIMARY KEY) WITHOUT ROWID;
    CREATE TRIGGER search_bodies_unreferenced AFTER DELETE ON messages
    WHEN NOT EXISTS (SELECT 1 FROM messages WHERE blob_id = OLD.blob_id)
         AND EXISTS (SELECT 1 FROM search_bodies WHERE blob_id = OLD.blob_id)
    BEGIN
        INSERT OR IGNORE INTO search_gone (blob_id) VALUES (OLD.blob_id);
    END;
    """,
    # 16: what SORT and THREAD compare of each body (store.models.SortKeys, decision 0031),
    # so they read a narrow row per message instead of decoding its structure. Written at
    # delivery; bodies stored before get theirs the first time a SORT or THREAD needs them.
    # Per body, so copies share it; it goes with the body.
    """
    CREATE TABLE sort_keys (
        blob_id    TEXT PRIMARY KEY REFERENCES blobs(id) ON DELETE CASCADE,
        version    INTEGER NOT NULL,
        sent       REAL,
        from_key   TEXT NOT NULL,
        to_key     TEXT NOT NULL,
        cc_key     TEXT NOT NULL,
        subject    TEXT NOT NULL,
        reply      INTEGER NOT NULL,
        message_id TEXT,
        refs       TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 17: account-wide change state for JMAP (decision 0033, store/sql/emails.py). The
    # account's mod-sequence starts at the highest of its mailboxes; each body an account
    # holds becomes an email in a thread of its own (mail stored before keeps that; new
    # mail joins the thread of the message it answers). Mailboxes existing now count as
    # created at mod-sequence 0, before any state a client can hold. An email's received
    # time is its earliest copy's INTERNALDATE; ``mixed`` marks one whose copies differ,
    # which keeps its account's queries off the ordered index scan, and ``dup`` one with
    # two copies in one mailbox, which makes a mailbox's email count a distinct count.
    """
    ALTER TABLE users ADD COLUMN modseq INTEGER NOT NULL DEFAULT 1;
    UPDATE users SET modseq = coalesce(
        (SELECT max(highestmodseq) FROM mailboxes WHERE user_id = users.id), 1);
    ALTER TABLE mailboxes ADD COLUMN created_modseq INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE mailboxes ADD COLUMN changed_modseq INTEGER NOT NULL DEFAULT 0;
    CREATE UNIQUE INDEX mailboxes_uidvalidity ON mailboxes (user_id, uidvalidity);
    CREATE TABLE mailboxes_gone (
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        uidvalidity INTEGER NOT NULL,
        modseq      INTEGER NOT NULL,
        PRIMARY KEY (user_id, uidvalidity)
    ) WITHOUT ROWID;
    CREATE TABLE emails (
        user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        blob_id   TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        created   INTEGER NOT NULL,
        changed   INTEGER NOT NULL,
        received  TEXT NOT NULL,
        mixed     INTEGER NOT NULL DEFAULT 0,
        dup       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user_id, blob_id)
    ) WITHOUT ROWID;
    CREATE INDEX emails_thread ON emails (user_id, thread_id);
    CREATE INDEX emails_received ON emails (user_id, received);
    CREATE INDEX emails_mixed ON emails (user_id) WHERE mixed = 1;
    CREATE INDEX emails_dup ON emails (user_id) WHERE dup = 1;
    CREATE INDEX messages_received ON messages (mailbox_id, internaldate);
    CREATE INDEX emails_changed ON emails (user_id, changed);
    CREATE TABLE emails_gone (
        user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        blob_id   TEXT NOT NULL,
        thread_id TEXT NOT NULL,
        modseq    INTEGER NOT NULL,
        PRIMARY KEY (user_id, blob_id)
    ) WITHOUT ROWID;
    CREATE INDEX emails_gone_modseq ON emails_gone (user_id, modseq);
    CREATE INDEX sort_keys_message_id ON sort_keys (message_id);
    INSERT INTO emails (user_id, blob_id, thread_id, created, changed, received, mixed, dup)
        SELECT b.user_id, m.blob_id, 'T' || substr(m.blob_id, 1, 24), min(m.modseq),
               max(m.modseq), min(m.internaldate),
               min(m.internaldate) != max(m.internaldate),
               count(*) != count(DISTINCT m.mailbox_id)
        FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
        GROUP BY b.user_id, m.blob_id;
    """,
    # 18: blobs a JMAP client uploaded (RFC 8620 §6.1), its own until used or expired
    # (uploads.py); content-addressed per account, so uploading the same octets twice
    # keeps one row.
    """
    CREATE TABLE uploads (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        blob_id TEXT NOT NULL,
        type    TEXT NOT NULL,
        size    INTEGER NOT NULL,
        created TEXT NOT NULL,
        data    BLOB NOT NULL,
        PRIMARY KEY (user_id, blob_id)
    ) WITHOUT ROWID;
    CREATE INDEX uploads_created ON uploads (created);
    """,
    # 19: JMAP identities (RFC 8621 §6) and email submissions (§7), with the account
    # mod-sequence of their creation and last change and a record of the ones destroyed
    # (identities.py, submissions.py). A submission keeps the Received id its message was
    # committed with and the outbound queue entry it became; when the queue retires that
    # entry, the recipients' final states are copied into ``delivery`` (queue.py).
    """
    CREATE TABLE identities (
        id             INTEGER PRIMARY KEY,
        user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name           TEXT NOT NULL DEFAULT '',
        email          TEXT NOT NULL,
        reply_to       TEXT,
        bcc            TEXT,
        text_signature TEXT NOT NULL DEFAULT '',
        html_signature TEXT NOT NULL DEFAULT '',
        is_default     INTEGER NOT NULL DEFAULT 0,
        created_modseq INTEGER NOT NULL,
        changed_modseq INTEGER NOT NULL
    );
    CREATE INDEX identities_user ON identities (user_id);
    CREATE TABLE identities_gone (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        id      INTEGER NOT NULL,
        modseq  INTEGER NOT NULL,
        PRIMARY KEY (user_id, id)
    ) WITHOUT ROWID;
    CREATE TABLE submissions (
        id             INTEGER PRIMARY KEY,
        user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        identity_id    INTEGER NOT NULL,
        blob_id        TEXT NOT NULL,
        thread_id      TEXT NOT NULL,
        envelope       TEXT NOT NULL,
        send_at        TEXT NOT NULL,
        undo_status    TEXT NOT NULL,
        trace_id       TEXT NOT NULL,
        queue_id       INTEGER,
        delivery       TEXT NOT NULL DEFAULT '{}',
        created_modseq INTEGER NOT NULL,
        changed_modseq INTEGER NOT NULL
    );
    CREATE INDEX submissions_user ON submissions (user_id);
    CREATE INDEX submissions_queue ON submissions (queue_id) WHERE queue_id IS NOT NULL;
    CREATE TABLE submissions_gone (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        id      INTEGER NOT NULL,
        modseq  INTEGER NOT NULL,
        PRIMARY KEY (user_id, id)
    ) WITHOUT ROWID;
    CREATE INDEX queue_messages_trace ON queue_messages (trace_id);
    """,
    # 20: JMAP push subscriptions (RFC 8620 §7.2): the URL a client registered, its Web
    # Push keys (RFC 8291), the code sent to prove it and whether the client echoed it,
    # and when it expires (ISO 8601 UTC text); ``types`` a JSON array or NULL for all
    # (push_subscriptions.py). No mod-sequence: they have no state (§7.2, no /changes).
    """
    CREATE TABLE push_subscriptions (
        id                INTEGER PRIMARY KEY,
        user_id           INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        device_client_id  TEXT NOT NULL,
        url               TEXT NOT NULL,
        keys_p256dh       TEXT,
        keys_auth         TEXT,
        verification_code TEXT NOT NULL,
        verified          INTEGER NOT NULL DEFAULT 0,
        expires           TEXT NOT NULL,
        types             TEXT
    );
    CREATE INDEX push_subscriptions_user ON push_subscriptions (user_id);
    CREATE INDEX push_subscriptions_active ON push_subscriptions (verified, expires);
    """,
    # 21: the vacation auto-reply (vacations.py). One setting per account, the JMAP
    # VacationResponse singleton (RFC 8621 §8), with the account mod-sequence of its last
    # change; and the senders already answered per response ``handle`` until ``expires``
    # (RFC 5230 §4.2, :days / :seconds), purged hourly once expired.
    """
    CREATE TABLE vacation_responses (
        user_id        INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
        is_enabled     INTEGER NOT NULL DEFAULT 0,
        from_date      TEXT,
        to_date        TEXT,
        subject        TEXT,
        text_body      TEXT,
        html_body      TEXT,
        changed_modseq INTEGER NOT NULL
    );
    CREATE TABLE auto_replies (
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        handle  TEXT NOT NULL,
        sender  TEXT NOT NULL,
        expires TEXT NOT NULL,
        PRIMARY KEY (user_id, handle, sender)
    ) WITHOUT ROWID;
    CREATE INDEX auto_replies_expires ON auto_replies (expires);
    """,
)


def statements(script: str) -> list[str]:
    """The script's statements one by one. A ``;`` ends a statement only where SQLite
    says the statement is complete, so a trigger's body stays whole."""
    out: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                out.append(pending)
            pending = ""
    if pending.strip(" \n;"):
        out.append(pending)
    return out


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database to the newest schema; returns the version now in place."""
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS, start=1):
        if number <= version:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        version = number
    return version
