"""SMTP front end: the MX (port 25) and submission (587, 465) listeners (RFC 5321, RFC 6409)."""
