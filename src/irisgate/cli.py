"""The `irisgate` command line: serve, config check, version."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from irisgate import __version__
from irisgate.settings import FLAG_ENV, SettingsError, load_settings

if TYPE_CHECKING:
    import asyncio
    import socket

    import uvicorn


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
    sub.add_parser("version", help="print the version")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(f"irisgate {__version__}")
        return 0
    if args.command == "config":
        return _config_check(args.file)
    return _serve(args)


def _config_check(path: Path, *, serving: bool = False) -> int:
    """`config check`; when `serving`, contained errors (invalid quotas, which fail closed
    at run time) are printed but do not stop the server."""
    from irisgate.config.check import format_issues
    from irisgate.config.schema import analyze

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    analysis = analyze(text, os.environ)
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
    import uvicorn

    from irisgate.app import build_app
    from irisgate.logs import configure
    from irisgate.telemetry.tracing import TracingUnavailable

    flags = {name: getattr(args, name) for name in FLAG_ENV}
    try:
        settings = load_settings(flags, tty=sys.stderr.isatty())
    except SettingsError as exc:
        print(f"irisgate: {exc}", file=sys.stderr)
        return 2
    if settings.config_file is not None and _config_check(settings.config_file, serving=True) != 0:
        return 1
    configure(settings)
    try:
        app = build_app(settings)
    except TracingUnavailable as exc:  # --otel 1 without the otel extra
        print(f"irisgate: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(
        app,
        host=settings.listen_host,
        port=settings.listen_port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=30,
        server_header=False,
        # never rewrite the peer address from X-Forwarded-For: identity depends on the real
        # TCP peer (tailscale mode) or on it being loopback (serve and dev modes)
        proxy_headers=False,
    )
    server = _server_class(settings.port_file)(config)
    server.run()
    if not server.started:
        return 1
    return 1 if getattr(server.lifespan, "shutdown_failed", False) else 0


def _server_class(port_file: Path | None) -> type[uvicorn.Server]:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn's server, except that a SIGTERM or SIGINT it handled (a graceful stop:
        connections drained, the capture writer drained in the lifespan shutdown) ends the
        process with status 0 instead of being re-raised to kill it (status -15 / -2), and
        that it writes the port it listens on to `port_file` once it serves."""

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets)
            if port_file is None:
                return
            try:
                _write_port_file(port_file, self.servers)
            except OSError as exc:
                # as uvicorn does when it cannot bind: nobody can find the server
                print(f"irisgate: cannot write --port-file {port_file}: {exc}", file=sys.stderr)
                await self.lifespan.shutdown()
                sys.exit(1)

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            handled = (signal.SIGINT, signal.SIGTERM)
            original = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
            try:
                yield
            finally:
                for sig, handler in original.items():
                    signal.signal(sig, handler)

    return GracefulServer


def _write_port_file(path: Path, servers: list[asyncio.Server]) -> None:
    """The port of the first listening socket, then a newline, written whole or not at all
    (a new file renamed into place), so a reader polling for the file never sees half of it."""
    sockets = [sock for server in servers for sock in server.sockets]
    port = int(sockets[0].getsockname()[1])
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(f"{port}\n", encoding="ascii")
    partial.replace(path)
