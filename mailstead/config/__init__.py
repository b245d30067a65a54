"""Typed configuration: the schema, the TOML loader and the generated reference."""

from mailstead.config.load import load_settings
from mailstead.config.schema import Settings

__all__ = ["Settings", "load_settings"]
