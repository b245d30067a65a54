"""Render settings back to TOML: what ``mailstead config check`` prints.

The output is a complete, valid configuration file: every key with its effective value and
its description as a comment, so it doubles as a starting point for a real file. tomllib
only reads TOML, so this small writer covers the value types the schema uses.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel


def toml_value(value: object) -> str:
    """One TOML value. Strings use basic strings; JSON escaping is a subset TOML accepts."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        # An inline table; keys are quoted because domain names contain dots.
        items = ", ".join(f"{json.dumps(str(k), ensure_ascii=False)} = {toml_value(v)}"
                          for k, v in value.items())
        return "{ " + items + " }" if items else "{}"
    raise TypeError(f"cannot render {type(value).__name__} as TOML")


def _render_table(model: BaseModel, path: tuple[str, ...], out: list[str]) -> None:
    fields = type(model).model_fields
    tables: list[tuple[str, BaseModel]] = []
    scalars: list[str] = []
    for name, info in fields.items():
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            tables.append((name, value))
            continue
        if info.description:
            scalars.append(f"# {info.description}")
        if value is None:
            scalars.append(f"# {name} = (not set)")
        else:
            scalars.append(f"{name} = {toml_value(value)}")
    if scalars:
        if path:
            doc = (type(model).__doc__ or "").strip().splitlines()
            if out:
                out.append("")
            out.append(f"[{'.'.join(path)}]")
            if doc:
                out.append(f"# {doc[0]}")
        out.extend(scalars)
    for name, child in tables:
        _render_table(child, (*path, name), out)


def render_settings(settings: BaseModel) -> str:
    """The whole settings tree as a TOML document."""
    out: list[str] = []
    _render_table(settings, (), out)
    return "\n".join(out) + "\n"
