"""The operator subcommands' command line: `db upgrade|check` and `doctor`.

Kept apart from `irisgate.cli` (which only registers and dispatches them) and light to
import: the work is imported when a command runs.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from irisgate.settings import FLAG_ENV, Settings, SettingsError, load_settings

COMMANDS = ("db", "doctor", "keys")
#: the settings the `db` commands read (the database's location)
_DB_FLAGS = ("database", "data_dir")


def add_parsers(sub: Any) -> None:
    """Add `db` and `doctor` to the `irisgate` subparsers `sub`."""
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
    doctor = sub.add_parser(
        "doctor", help="check config, database, identity and provider keys; exit 1 on problems"
    )
    _add_flags(doctor, tuple(FLAG_ENV))
    keys = sub.add_parser("keys", help="API keys: make one (the first, in identity mode keys)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser(
        "create", help="make an API key for OWNER and print its secret (shown only once)"
    )
    create.add_argument("owner", help="login name the key acts as (a user, or NAME@service)")
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument("--expires-at", dest="expires_at", help="RFC 3339 time it stops working")
    create.add_argument(
        "--models", default="", help="comma-separated provider/model globs it is limited to"
    )
    _add_flags(create, _DB_FLAGS)
    doctor.add_argument(
        "--probe",
        action="store_true",
        help="also send one small request to each provider (costs a few tokens)",
    )


def run(args: argparse.Namespace) -> int:
    names = _DB_FLAGS if args.command in ("db", "keys") else tuple(FLAG_ENV)
    try:
        settings = load_settings({name: getattr(args, name) for name in names})
    except SettingsError as exc:
        print(f"irisgate: {exc}", file=sys.stderr)
        return 2
    if args.command == "doctor":
        from irisgate.operations import doctor

        return doctor.run(settings, probe=args.probe)
    if args.command == "keys":
        from irisgate.operations import keys

        return keys.create(settings, args.owner, args.name, args.expires_at, args.models)
    return _db(args.db_command, settings)


def _db(command: str, settings: Settings) -> int:
    from irisgate.operations import schema

    return schema.upgrade(settings) if command == "upgrade" else schema.check(settings)


def _add_flags(parser: argparse.ArgumentParser, names: tuple[str, ...]) -> None:
    for name in names:
        env, help_text = FLAG_ENV[name]
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"{help_text} [{env}]")
