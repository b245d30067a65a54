"""IMAP4rev2 server (RFC 9051) with IMAP4rev1 compatibility (RFC 3501).

``parse/`` turns bytes into commands without I/O, ``commands/`` holds one module per command
group, ``session.py`` is the state machine between them and the network, and ``server.py``
is what the composition root wires to the imap/imaps listeners.
"""
