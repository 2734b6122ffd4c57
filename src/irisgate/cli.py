"""The `irisgate` command line: serve, config check, version, launch (and, from
`irisgate.operations`, db upgrade|check and doctor)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from irisgate.operations import commands as operations
from irisgate.settings import (
    FLAG_ENV,
    Settings,
    SettingsError,
    load_settings,
    unidentified_exposure,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="irisgate", description="Self-hosted AI gateway.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    for name, (env, help_text) in FLAG_ENV.items():
        serve.add_argument(f"--{name.replace('_', '-')}", dest=name, help=f"{help_text} [{env}]")
    config = sub.add_parser("config", help="config file tools")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser("check", help="validate a config file; exit 1 on errors")
    check.add_argument("file", type=Path)
    env, help_text = FLAG_ENV["secrets_dir"]
    check.add_argument("--secrets-dir", dest="secrets_dir", help=f"{help_text} [{env}]")
    sub.add_parser("version", help="print the version and the commit it was built from")
    launch = sub.add_parser(
        "launch",
        help="run a coding agent (claude-code, codex, gemini-cli, opencode) through a gateway",
    )
    launch.add_argument("--gateway", help="the gateway's URL [IRISGATE_GATEWAY; default http://ai]")
    launch.add_argument("--model", help="the model to use (default: the first one granted)")
    launch.add_argument(
        "--print", dest="show", action="store_true", help="show the setup instead of running"
    )
    launch.add_argument(
        "--key", help="an irisgate API key, for a gateway off the tailnet [IRISGATE_API_KEY]"
    )
    launch.add_argument("agent", help="claude-code, codex, gemini-cli or opencode")
    launch.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the agent")
    operations.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        from irisgate.version import describe

        print(describe())
        return 0
    if args.command == "config":
        try:
            settings = load_settings({"secrets_dir": args.secrets_dir})
        except SettingsError as exc:
            print(f"irisgate: {exc}", file=sys.stderr)
            return 2
        return _config_check(args.file, settings)
    if args.command == "launch":
        return _launch(args)
    if args.command in operations.COMMANDS:
        return operations.run(args)
    return _serve(args)


def _launch(args: argparse.Namespace) -> int:
    import os

    from irisgate import launch

    environ = dict(os.environ)
    gateway = launch.gateway_from(args.gateway, environ)
    try:
        return launch.main(
            args.agent,
            args.args,
            gateway=gateway,
            model=args.model,
            show=args.show,
            out=sys.stdout,
            environ=environ,
            key=args.key or environ.get("IRISGATE_API_KEY") or None,
        )
    except launch.LaunchError as exc:
        print(f"irisgate launch: {exc}", file=sys.stderr)
        return 2


def _config_check(path: Path, settings: Settings, *, serving: bool = False) -> int:
    """`config check`; when `serving`, contained errors (invalid quotas, which fail closed
    at run time) are printed but do not stop the server."""
    from irisgate.config.check import format_issues
    from irisgate.config.schema import analyze
    from irisgate.config.secrets import SecretSource

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    analysis = analyze(text, SecretSource(settings.env, settings.secrets_dir))
    issues = analysis.issues
    if issues:
        print(format_issues(str(path), issues), file=sys.stderr)
    errors = [i for i in issues if i.severity == "error"]
    if errors:
        print(f"{path}: {len(errors)} error(s)", file=sys.stderr)
    if analysis.errors or (errors and not serving):
        return 1
    if serving and errors:
        print(f"{path}: serving; requests charging an invalid quota get 429", file=sys.stderr)
        return 0
    print(f"{path}: ok")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from irisgate.logs import configure
    from irisgate.telemetry.tracing import TracingUnavailable

    flags = {name: getattr(args, name) for name in FLAG_ENV}
    try:
        settings = load_settings(flags, tty=sys.stderr.isatty())
    except SettingsError as exc:
        print(f"irisgate: {exc}", file=sys.stderr)
        return 2
    if (refusal := unidentified_exposure(settings)) is not None:
        print(f"irisgate: {refusal}", file=sys.stderr)
        return 2
    config_file = settings.config_file
    if config_file is not None and _config_check(config_file, settings, serving=True) != 0:
        return 1
    configure(settings)
    try:
        if settings.workers > 1:
            from irisgate.workers import supervise

            return supervise(settings)
        from irisgate.server import run

        return run(settings)
    except TracingUnavailable as exc:  # --otel 1 without the otel extra
        print(f"irisgate: {exc}", file=sys.stderr)
        return 2
    except SettingsError as exc:  # found building the app: an unresolvable client secret
        print(f"irisgate: {exc}", file=sys.stderr)
        return 2
