"""Loading configuration files: defaults, overrides, paths, and errors a person can act on."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from mailstead.config import Settings, load_settings
from mailstead.config.schema import format_size, parse_size
from mailstead.core.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "mailstead.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(tmp_path: Path, text: str) -> ConfigError:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    return info.value


def test_defaults_are_the_dev_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(None, env={})
    assert settings.hostname == "localhost"
    assert settings.data_dir == tmp_path / "mailstead-data"
    assert settings.store.backend == "sqlite"
    assert settings.store.gc_grace_seconds == 3600
    assert settings.auth.allow_plaintext is False
    assert settings.limits.max_message_size == 50 * 1024 * 1024
    assert settings.limits.smtp_idle_timeout_seconds == 300
    assert settings.limits.imap_idle_timeout_seconds == 1800
    assert settings.smtp.reject_bare_lf is True
    assert settings.tls.cert == tmp_path / "mailstead-data" / "tls" / "cert.pem"
    assert settings.tls.key == tmp_path / "mailstead-data" / "tls" / "key.pem"
    ports = {name: (lst.port, lst.tls, lst.address) for name, lst in settings.listeners.items()}
    assert ports == {
        "smtp": (2525, "starttls", "127.0.0.1"),
        "submission": (2587, "starttls", "127.0.0.1"),
        "submissions": (2465, "implicit", "127.0.0.1"),
        "imap": (2143, "starttls", "127.0.0.1"),
        "imaps": (2993, "implicit", "127.0.0.1"),
        "pop3": (2110, "starttls", "127.0.0.1"),
        "pop3s": (2995, "implicit", "127.0.0.1"),
        "http": (8080, "none", "127.0.0.1"),
        "https": (8443, "implicit", "127.0.0.1"),
    }


def test_a_listener_section_keeps_the_other_defaults_of_that_listener(tmp_path: Path) -> None:
    path = write(tmp_path, '[listeners.imaps]\nport = 993\naddress = "::"\n')
    settings = load_settings(path, env={})
    assert settings.listeners.imaps.port == 993
    assert settings.listeners.imaps.tls == "implicit"
    assert settings.listeners.imaps.address == "::"
    assert settings.listeners.imap.port == 2143


def test_file_values_and_sizes(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'hostname = "mail.example.org"\n[limits]\nmax_message_size = "10M"\n'
        '[store]\nbackend = "sqlite"\ngc_grace_seconds = 60\n',
    )
    settings = load_settings(path, env={})
    assert settings.hostname == "mail.example.org"
    assert settings.limits.max_message_size == 10 * 1024 * 1024
    assert settings.store.gc_grace_seconds == 60


def test_relative_paths_resolve_against_the_file_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path = write(etc, 'data_dir = "data"\n[tls]\ncert = "certs/c.pem"\nkey = "/abs/k.pem"\n')
    settings = load_settings(path, env={})
    assert settings.data_dir == etc / "data"
    assert settings.tls.cert == etc / "certs" / "c.pem"
    assert settings.tls.key == Path("/abs/k.pem")


def test_without_a_file_relative_paths_resolve_against_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings(None, env={"MAILSTEAD_DATA": "d"}).data_dir == tmp_path / "d"


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, 'data_dir = "/from/file"\n')
    assert load_settings(path, env={}).data_dir == Path("/from/file")
    env = {"MAILSTEAD_DATA": "/from/env"}
    assert load_settings(path, env=env).data_dir == Path("/from/env")
    assert load_settings(path, env=env, data_dir_override="/from/flag").data_dir == Path(
        "/from/flag"
    )
    # The generated certificate follows the data dir that wins.
    assert load_settings(path, env=env).tls.cert == Path("/from/env/tls/cert.pem")


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        (
            '[listeners.imap]\nport = "abc"\n',
            "listeners.imap.port",
            "must be an integer between 1 and 65535, got 'abc'",
        ),
        (
            "[listeners.imap]\nport = 70000\n",
            "listeners.imap.port",
            "must be an integer between 1 and 65535, got 70000",
        ),
        ("colour = 1\n", "colour", "unknown key"),
        ("[listeners.imap]\nprot = 1\n", "listeners.imap.prot", "unknown key"),
        ("[listeners.gopher]\nport = 70\n", "listeners.gopher", "unknown key"),
        (
            '[listeners.http]\ntls = "starttls"\n',
            "listeners.http.tls",
            "must be one of 'none', 'implicit', got 'starttls'",
        ),
        (
            '[listeners.pop3]\ntls = "ssl"\n',
            "listeners.pop3.tls",
            "must be one of 'none', 'starttls', 'implicit', got 'ssl'",
        ),
        (
            '[auth]\nallow_plaintext = "yes"\n',
            "auth.allow_plaintext",
            "must be true or false, got 'yes'",
        ),
        (
            '[limits]\nmax_message_size = "lots"\n',
            "limits.max_message_size",
            "must be a size such as 500M, 2G or a number of bytes, got 'lots'",
        ),
        (
            '[limits]\nmax_spool_in_flight = "10M"\n',
            "limits",
            "max_spool_in_flight (10M) must be at least max_message_size (50M), or the "
            "largest message could never be received",
        ),
        (
            '[limits]\nmax_message_size = "300M"\n',
            "limits",
            "max_spool_per_client (256M) must be at least max_message_size (300M), or the "
            "largest message could never be received",
        ),
        (
            '[limits]\nmax_input_in_flight = "100K"\n',
            "limits",
            "max_input_in_flight (100K) must be at least spool_threshold (1M), or a message "
            "could never be received",
        ),
        ("hostname = 42\n", "hostname", "must be a string (in quotes), got 42"),
        ('hostname = ""\n', "hostname", "must not be empty"),
        ("store = 3\n", "store", "must be a table of settings, got 3"),
        (
            '[store]\nbackend = "postgres"\n',
            "store.backend",
            "must be one of 'sqlite', got 'postgres'",
        ),
    ],
)
def test_validation_errors_name_file_key_and_problem(
    tmp_path: Path, text: str, key: str, message: str
) -> None:
    error = load_error(tmp_path, text)
    assert error.file == str(tmp_path / "mailstead.toml")
    assert error.key == key
    assert error.reason == message
    assert str(error) == f"{tmp_path / 'mailstead.toml'}: {key}: {message}"
    assert "\n" not in str(error)


def test_several_problems_report_the_first_and_count_the_rest(tmp_path: Path) -> None:
    error = load_error(tmp_path, "a = 1\nb = 2\nc = 3\n")
    assert error.key == "a"
    assert error.reason == "unknown key (and 2 more problems)"


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    error = load_error(tmp_path, 'hostname = "x"\n\n[limits\nmax = 1\n')
    assert error.file == str(tmp_path / "mailstead.toml")
    assert error.reason.startswith("invalid TOML")
    assert "line 3" in error.reason


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_settings(tmp_path / "nope.toml", env={})
    assert info.value.file == str(tmp_path / "nope.toml")


def test_effective_toml_round_trips(tmp_path: Path) -> None:
    path = write(tmp_path, 'hostname = "mx.example.net"\n[listeners.pop3]\nenabled = false\n')
    settings = load_settings(path, env={})
    text = settings.effective_toml()
    assert 'hostname = "mx.example.net"' in text
    assert "# this server's name" in text
    again = Settings.model_validate(tomllib.loads(text))
    assert again == settings


def test_settings_are_immutable() -> None:
    settings = Settings()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error type
        settings.listeners.imap.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0),
        ("unlimited", 0),
        ("500M", 500 * 1024**2),
        ("2G", 2 * 1024**3),
        ("1.5k", 1536),
        ("10MiB", 10 * 1024**2),
        ("123", 123),
        (77, 77),
    ],
)
def test_parse_size(text: str | int, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1", "5X", "M"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(text)


def test_format_size() -> None:
    assert format_size(0) == "0"
    assert format_size(1536) == "1.5K"
    assert format_size(2 * 1024**3) == "2G"


def test_max_message_size_has_no_unlimited(tmp_path: Path) -> None:
    """0 meant unlimited for SMTP and about 1 MiB for IMAP; now it is refused, by name."""
    path = tmp_path / "zero.toml"
    path.write_text("[limits]\nmax_message_size = 0\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert info.value.key == "limits.max_message_size"
