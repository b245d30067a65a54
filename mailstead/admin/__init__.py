"""Operations an administrator performs, shared by every front end that offers them.

The command line (``cli/``) and the admin API (``http/``) call the same functions here, so
a domain added over HTTP is checked, audited and stored exactly as one added with
``mailstead domain add``. Nothing here parses a command line or an HTTP request.
"""
