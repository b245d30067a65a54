"""POP3 server (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595), AUTH (RFC 5034), UTF8 (RFC 6856).

``protocol.py`` is the sans-I/O wire format, ``maildrop.py`` the INBOX snapshot and the
commit at QUIT, ``session.py`` the state machine with its dispatch and state tables, and
``server.py`` what the composition root wires to the pop3/pop3s listeners.
"""
