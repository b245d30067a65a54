"""Read a TOML file into :class:`Settings`, with errors a person can act on.

A bad file is answered with one line naming the file, the dotted key and what is wrong in
plain words (``mailstead.toml: listeners.imap.port: must be an integer between 1 and
65535, got 'abc'``); pydantic's own messages are translated here so no caller ever shows
a validation dump.

Precedence for the data directory: ``--data`` > ``MAILSTEAD_DATA`` > the file > the
default. Relative paths in the file are resolved against the file's directory, so a
configuration works from any working directory; paths given on the command line or in
the environment are relative to the working directory, as a shell user expects.
"""

from __future__ import annotations

import os
import tomllib
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from mailstead.config.schema import Settings
from mailstead.core.errors import ConfigError

DATA_ENV = "MAILSTEAD_DATA"


def load_settings(
    path: Path | None,
    *,
    data_dir_override: str | None = None,
    env: Mapping[str, str] = os.environ,
) -> Settings:
    """Load, validate and resolve the configuration. Raises :class:`ConfigError`."""
    raw: dict[str, Any] = {}
    base = Path.cwd()
    file_label: str | None = None
    if path is not None:
        file_label = str(path)
        raw = read_toml(path)
        base = path.resolve().parent
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise translate_error(exc, file_label) from None
    return resolve_paths(settings, base, data_dir_override or env.get(DATA_ENV) or None)


def read_toml(path: Path) -> dict[str, Any]:
    """Parse the file; syntax errors name the file and the line."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError("file does not exist", file=str(path)) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a configuration file", file=str(path)) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text", file=str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        # tomllib says e.g. "Invalid value (at line 3, column 8)".
        raise ConfigError(f"invalid TOML: {exc}", file=str(path)) from None


def resolve_paths(settings: Settings, base: Path, data_dir_override: str | None) -> Settings:
    """Make every path absolute; fill in the generated certificate's location."""
    if data_dir_override:
        data_dir = Path(data_dir_override).expanduser().absolute()
    else:
        data_dir = (base / settings.data_dir.expanduser()).absolute()
    cert = base / settings.tls.cert if settings.tls.cert else data_dir / "tls" / "cert.pem"
    key = base / settings.tls.key if settings.tls.key else data_dir / "tls" / "key.pem"
    tls = settings.tls.model_copy(update={"cert": cert.absolute(), "key": key.absolute()})
    acme = settings.acme
    if acme.ca_bundle is not None:
        acme = acme.model_copy(update={"ca_bundle": (base / acme.ca_bundle).absolute()})
    return settings.model_copy(update={"data_dir": data_dir, "tls": tls, "acme": acme})


# -- turning pydantic errors into one plain sentence ---------------------------------------


def translate_error(exc: ValidationError, file: str | None) -> ConfigError:
    """The first problem as a :class:`ConfigError`; the count of the others is appended."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = tuple(str(part) for part in first["loc"])
    message = _describe(first, _field_at(Settings, loc))
    if len(errors) > 1:
        others = len(errors) - 1
        message += f" (and {others} more problem{'s' if others > 1 else ''})"
    return ConfigError(message, file=file, key=".".join(loc) or None)


def _field_at(model: type[BaseModel], loc: tuple[str, ...]) -> FieldInfo | None:
    """Follow ``loc`` through nested models to the field it names, if it is one."""
    info: FieldInfo | None = None
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None or part not in current.model_fields:
            return None
        info = current.model_fields[part]
        annotation = info.annotation
        current = (
            annotation
            if isinstance(annotation, type) and issubclass(annotation, BaseModel)
            else None
        )
    return info


def _bounds(info: FieldInfo) -> tuple[int | None, int | None]:
    low = high = None
    for meta in info.metadata:
        low = getattr(meta, "ge", None) if getattr(meta, "ge", None) is not None else low
        high = getattr(meta, "le", None) if getattr(meta, "le", None) is not None else high
    return low, high


def _choices(annotation: object) -> tuple[str, ...] | None:
    """The allowed strings of a ``Literal`` (possibly inside ``X | None``)."""
    if get_origin(annotation) is Literal:
        return tuple(str(arg) for arg in get_args(annotation))
    for arg in get_args(annotation):
        found = _choices(arg)
        if found:
            return found
    return None


def _expected(info: FieldInfo | None) -> str | None:
    """What a valid value looks like, in words, from the field's declaration."""
    if info is None:
        return None
    annotation = info.annotation
    choices = _choices(annotation)
    if choices:
        return "must be one of " + ", ".join(repr(choice) for choice in choices)
    if annotation is bool:
        return "must be true or false"
    if annotation is int:
        low, high = _bounds(info)
        if low is not None and high is not None:
            return f"must be an integer between {low} and {high}"
        if low is not None:
            return f"must be an integer of at least {low}"
        return "must be an integer"
    if annotation is str:
        return "must be a string (in quotes)"
    if annotation in (Path, Path | None) or Path in get_args(annotation):
        return "must be a path (a string in quotes)"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "must be a table of settings"
    return None


def _describe(error: Any, info: FieldInfo | None) -> str:
    kind = error["type"]
    value = error.get("input")
    got = f", got {value!r}" if not isinstance(value, dict) else ", got a table"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "string_too_short":
        return "must not be empty"
    expected = _expected(info)
    if expected:
        return expected + got
    return typing.cast(str, error["msg"]).lower() + got
