"""Fixtures of the server-level tests."""

from tests.server.line_client import connect

__all__ = ["connect"]
