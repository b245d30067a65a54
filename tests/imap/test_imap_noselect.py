"""DELETE of a mailbox with inferior hierarchical names (RFC 9051 §6.3.5): the messages go,
the name stays as \\Noselect for its children, and nothing can be selected in or put into it."""

from __future__ import annotations

import imaplib

from tests.imap.conftest import Raw, append, status_of


def test_delete_parent_leaves_noselect(raw: Raw, client: imaplib.IMAP4) -> None:
    assert client.create("Parent/Child")[0] == "OK"
    append(client, mailbox="Parent")
    append(client, mailbox="Parent/Child")
    assert client.subscribe("Parent")[0] == "OK"
    typ, data = client.delete("Parent")
    assert typ == "OK", data
    assert client.list('""', "Parent*")[1] == [
        b'(\\Noselect \\HasChildren) "/" "Parent"',
        b'(\\HasNoChildren) "/" "Parent/Child"',
    ]
    assert client.lsub('""', "Parent")[1] == [b'(\\Noselect) "/" "Parent"']
    lines = raw.command('LIST (SUBSCRIBED) "" "Parent"')
    assert lines[0] == b'* LIST (\\Noselect \\HasChildren \\Subscribed) "/" "Parent"\r\n'
    # LIST-STATUS (RFC 5819 §2): no STATUS for a \Noselect mailbox.
    lines = raw.command('LIST "" "Parent*" RETURN (STATUS (MESSAGES))')
    assert b'* STATUS "Parent" ' not in b"".join(lines)
    assert b'* STATUS "Parent/Child" (MESSAGES 1)\r\n' in lines

    for command in ("SELECT Parent", "EXAMINE Parent", "STATUS Parent (MESSAGES)"):
        lines = raw.command(command)
        assert lines[-1].split(b" ", 3)[1:3] == [b"NO", b"[NONEXISTENT]"], lines
    typ, data = client.append("Parent", None, None, b"Subject: x\r\n\r\nbody\r\n")
    assert typ == "NO" and data[0].startswith(b"[CANNOT]")
    assert client.select("Parent/Child")[0] == "OK"
    for command in ("COPY 1 Parent", "MOVE 1 Parent", "UID COPY 1:* Parent"):
        typ, data = client._simple_command(*command.split(" ", 1))
        assert typ == "NO", (command, data)
    client.close()

    # A \Noselect mailbox with children cannot be deleted; once they are gone it can.
    typ, data = client.delete("Parent")
    assert typ == "NO" and data[0].startswith(b"[INUSE]")
    assert client.delete("Parent/Child")[0] == "OK"
    assert client.delete("Parent")[0] == "OK"
    assert client.list('""', "Parent*")[1] == [None]


def test_delete_parent_expunges_and_create_restores(raw: Raw, client: imaplib.IMAP4) -> None:
    assert client.create("Box/Sub")[0] == "OK"
    append(client, mailbox="Box")
    append(client, mailbox="Box")
    other = raw
    assert status_of(other.command("SELECT Box")) == b"OK"
    assert client.delete("Box")[0] == "OK"
    # The other session sees the messages go (RFC 9051 §7.5.1 EXPUNGE).
    lines = other.command("NOOP")
    assert lines.count(b"* 1 EXPUNGE\r\n") == 2, lines
    assert client.create("Box")[0] == "OK"  # selectable again, not ALREADYEXISTS
    assert client.list('""', "Box")[1] == [b'(\\HasChildren) "/" "Box"']
    typ, data = client.select("Box")
    assert typ == "OK" and data == [b"0"]
    append(client, mailbox="Box")
    assert client.create("Box")[1][0].startswith(b"[ALREADYEXISTS]")
