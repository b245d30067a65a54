"""The HTTP front end (decision 0011): an ASGI application served over HTTP/1.1 (h11) on
mailstead's own listeners; ``server.py`` is the connection, ``app.py`` the routes."""
