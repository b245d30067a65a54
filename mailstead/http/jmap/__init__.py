"""JMAP (RFC 8620 core, RFC 8621 mail) over the HTTP front end.

The core is here: the request object and its result references (request.py), method
dispatch (dispatch.py), the standard method arguments (standard.py), the session resource
(session.py) and the HTTP endpoints (app.py). The Mail methods live in ``mail/`` and plug
into :class:`~mailstead.http.jmap.dispatch.Methods`.
"""
