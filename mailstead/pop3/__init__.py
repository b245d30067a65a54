"""POP3 server (RFC 1939) with CAPA (RFC 2449), STLS (RFC 2595), AUTH (RFC 5034), UTF8 (RFC 6856).

``protocol.py`` is the sans-I/O wire format; ``errors.py`` the ``-ERR`` outcomes and
response codes; ``states.py`` the three session states with their data; ``maildrop.py``
the INBOX snapshot and the commit at QUIT; ``session.py`` the read loop, its limits and the
dispatch; ``commands/`` the command table with one module per command or small group
(``arguments.py`` the grammars); ``server.py`` what the composition root wires to the
pop3/pop3s listeners.
"""
