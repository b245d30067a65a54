"""Certificates from an ACME server (RFC 8555): ordering, challenges, renewal, installation."""
