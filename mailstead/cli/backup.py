"""``mailstead backup DIR`` and ``mailstead restore DIR``: everything a mailstore needs,
copied while the server runs, and put back into an empty data directory.

A backup holds the store (the database and the body files, see store/sql/backup.py), the
DKIM keys (without them restored mail is signed with new keys that the published DNS
records do not match), the generated TLS certificate and key, and the configuration file
the command was given; ``BACKUP.json`` says what and when.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import click

from mailstead.cli.admin import CliState
from mailstead.cli.serve import lock_data_dir, make_data_dir, restore_store
from mailstead.core.errors import MailsteadError

MANIFEST = "BACKUP.json"
#: Directories of the data directory that go into a backup beside the store.
EXTRA = ("dkim", "tls", "acme")


@click.command("backup")
@click.argument("target", type=click.Path(file_okay=False, path_type=Path))
@click.pass_obj
def backup(state: CliState, target: Path) -> None:
    """Copy the mailstore, DKIM keys, TLS and ACME files and configuration into TARGET (a
    new or empty directory), consistently, while the server runs."""
    settings = state.settings()
    if target.exists() and any(target.iterdir()):
        raise MailsteadError(f"{target} is not empty: back up into a new directory")
    make_data_dir(target)  # private like the data directory: it holds the same secrets
    report = state.run(lambda store: store.backup(target), create=False)
    extras = []
    for name in EXTRA:
        if (settings.data_dir / name).is_dir():
            shutil.copytree(settings.data_dir / name, target / name)
            extras.append(name)
    if state.config is not None:
        shutil.copyfile(state.config, target / "mailstead.toml")
        extras.append("mailstead.toml")
    manifest = {
        "mailstead": version("mailstead"),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "data_dir": str(settings.data_dir),
        "database_bytes": report.database_bytes,
        "bodies": report.bodies,
        "also": extras,
        "missing_bodies": list(report.missing),
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    click.echo(f"backed up {settings.data_dir} into {target}: database "
               f"({report.database_bytes} bytes), {report.bodies} body files"
               + "".join(f", {name}" for name in extras))
    if report.missing:
        click.echo(f"warning: {len(report.missing)} message(s) were deleted while the backup "
                   "ran; their bodies are not in it", err=True)


@click.command("restore")
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.pass_obj
def restore(state: CliState, source: Path) -> None:
    """Put the backup in SOURCE into the data directory, which must hold no mailstore
    (the server must not be running on it). Checks the result like `mailstead check`."""
    settings = state.settings()
    data_dir = settings.data_dir
    make_data_dir(data_dir)
    lock = lock_data_dir(data_dir)  # refuses while a server has this directory
    try:
        bodies = restore_store(settings, source)
        restored = []
        for name in EXTRA:
            if (source / name).is_dir():
                shutil.copytree(source / name, data_dir / name, dirs_exist_ok=True)
                restored.append(name)
    finally:
        os.close(lock)
    problems = state.run(lambda store: store.integrity_check(), create=False)
    click.echo(f"restored {source} into {data_dir}: {bodies} body files"
               + "".join(f", {name}" for name in restored))
    if (source / "mailstead.toml").is_file():
        click.echo(f"the configuration it was taken with is {source / 'mailstead.toml'}")
    if problems:
        for problem in problems:
            click.echo(f"problem: {problem}", err=True)
        raise click.exceptions.Exit(1)
    click.echo("mailstore OK")
