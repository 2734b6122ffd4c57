"""The operator subcommands' command line: `db upgrade|check`.

Kept apart from `irisgate.cli` (which only registers and dispatches them) and light to
import: the work is imported when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from irisgate.settings import FLAG_ENV, Settings, SettingsError, load_settings

COMMANDS = ("db",)
#: the settings the `db` commands read (the database's location)
_DB_FLAGS = ("database", "data_dir")


def add_parsers(sub: Any) -> None:
    """Add `db` to the `irisgate` subparsers `sub`."""
    db = sub.add_parser("db", help="database schema: upgrade or check it")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser(
        "upgrade", help="migrate the schema to this version's (safe with several instances)"
    )
    check = db_sub.add_parser(
        "check", help="say whether the schema is current (exit 0), behind (1) or newer (3)"
    )
    for parser in (upgrade, check):
        _add_flags(parser, _DB_FLAGS)


def run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings({name: getattr(args, name) for name in _DB_FLAGS})
    except SettingsError as exc:
        print(f"irisgate: {exc}", file=sys.stderr)
        return 2
    return _db(args.db_command, settings)


def _db(command: str, settings: Settings) -> int:
    from irisgate.operations import schema

    return schema.upgrade(settings) if command == "upgrade" else schema.check(settings)


def _add_flags(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    for name in names:
        env, help_text = FLAG_ENV[name]
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"{help_text} [{env}]")
