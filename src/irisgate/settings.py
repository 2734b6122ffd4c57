"""Process settings: command-line flags, each with an `IRISGATE_*` environment variable.

This is the only module that reads the environment. The environment mapping is kept on the
settings so config secrets (`env:NAME`) resolve against the same snapshot.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

IdentityMode = Literal["tailscale", "serve", "dev"]
IDENTITY_MODES: tuple[str, ...] = ("tailscale", "serve", "dev")
DEFAULT_SOCKET = "/var/run/tailscale/tailscaled.sock"
DEFAULT_DATA_DIR = "irisgate-data"


@dataclass(frozen=True)
class Settings:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080  # 0: a free port the system picks (see port_file)
    #: after binding, the port actually listened on is written here (for `--listen HOST:0`)
    port_file: Path | None = None
    database_url: str = ""  # "" means SQLite under data_dir
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    identity: IdentityMode = "dev"
    config_file: Path | None = None
    tailscaled_socket: str = DEFAULT_SOCKET
    dev_login: str = "dev@localhost"
    whois_cache_seconds: float = 10.0
    upstream_connect_timeout: float = 10.0
    upstream_read_timeout: float = 600.0  # longest silence allowed between upstream bytes
    config_poll_seconds: float = 1.0
    log_format: Literal["json", "console"] = "console"
    log_level: str = "info"
    #: Fernet key (urlsafe base64 of 32 bytes) for connector tokens at rest; "" means the key
    #: file `connector.key` in data_dir, generated on first start
    connector_key: str = field(default="", repr=False)
    #: let connector and OAuth URLs reach loopback and link-local addresses (tests, labs)
    allow_local_connectors: bool = False
    otel: bool = False  # OpenTelemetry traces (needs the `otel` extra)
    #: Host names clients may use besides IP addresses, localhost and (tailscale mode) the
    #: node's own MagicDNS names: exact names, `*.domain` for a domain, `*` for any
    allowed_hosts: tuple[str, ...] = ()
    # test-only (IRISGATE_TEST_EXIT_AFTER_EXPORT_UPLOAD=1): the S3 exporter kills its own
    # process right after an upload, before the export cursor moves, to test crash recovery
    test_exit_after_export_upload: bool = False
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'irisgate.db'}"


# flag name -> (environment variable, help text); the CLI builds its parser from this table
FLAG_ENV: dict[str, tuple[str, str]] = {
    "config": ("IRISGATE_CONFIG", "config file (HuJSON) imported as a new version when it changed"),
    "listen": (
        "IRISGATE_LISTEN",
        "HOST:PORT to serve on (default 127.0.0.1:8080); port 0 picks a free port",
    ),
    "port_file": (
        "IRISGATE_PORT_FILE",
        "file to write the listening port to once serving (default: none)",
    ),
    "database": ("IRISGATE_DATABASE", "database URL: sqlite:///PATH or postgresql://..."),
    "identity": ("IRISGATE_IDENTITY", "identity mode: tailscale, serve or dev"),
    "data_dir": ("IRISGATE_DATA_DIR", "folder for the SQLite database (default ./irisgate-data)"),
    "tailscaled_socket": ("IRISGATE_TAILSCALED_SOCKET", "tailscaled LocalAPI unix socket"),
    "dev_login": ("IRISGATE_DEV_LOGIN", "login name of the single user in dev mode"),
    "upstream_connect_timeout": (
        "IRISGATE_UPSTREAM_CONNECT_TIMEOUT",
        "seconds to wait for an upstream connection (default 10)",
    ),
    "upstream_read_timeout": (
        "IRISGATE_UPSTREAM_READ_TIMEOUT",
        "seconds of upstream silence before giving up with 504 (default 600)",
    ),
    "log_format": ("IRISGATE_LOG_FORMAT", "json or console (default: console on a terminal)"),
    "log_level": ("IRISGATE_LOG_LEVEL", "debug, info, warning or error (default info)"),
    "connector_key": (
        "IRISGATE_CONNECTOR_KEY",
        "key encrypting connector OAuth tokens at rest (default: DATA_DIR/connector.key)",
    ),
    "allow_local_connectors": (
        "IRISGATE_ALLOW_LOCAL_CONNECTORS",
        "true: connectors may reach loopback and link-local addresses (default false)",
    ),
    "otel": ("IRISGATE_OTEL", "true to emit OpenTelemetry traces (install irisgate[otel])"),
    "allowed_hosts": (
        "IRISGATE_ALLOWED_HOSTS",
        "comma-separated Host names clients may use besides IP addresses, localhost and the"
        " node's MagicDNS names (*.example.com for a domain, * for any)",
    ),
}


class SettingsError(ValueError):
    """A flag or environment variable has a value irisgate cannot use; the message names it."""


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise SettingsError(f"--listen must be HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def load_settings(
    flags: Mapping[str, str | None], env: Mapping[str, str] | None = None, *, tty: bool = False
) -> Settings:
    """Settings from flags (None = not given), falling back to `IRISGATE_*` variables."""
    environ = dict(os.environ if env is None else env)

    def pick(name: str) -> str | None:
        given = flags.get(name)
        return given if given is not None else environ.get(FLAG_ENV[name][0]) or None

    host, port = parse_listen(pick("listen") or "127.0.0.1:8080")
    socket = pick("tailscaled_socket") or DEFAULT_SOCKET
    identity = pick("identity") or ("tailscale" if Path(socket).exists() else "dev")
    if identity not in IDENTITY_MODES:
        raise SettingsError(
            f"--identity must be one of {', '.join(IDENTITY_MODES)}, got {identity!r}"
        )
    log_format = pick("log_format") or ("console" if tty else "json")
    if log_format not in ("json", "console"):
        raise SettingsError(f"--log-format must be json or console, got {log_format!r}")
    config = pick("config")
    port_file = pick("port_file")
    return Settings(
        listen_host=host,
        listen_port=port,
        port_file=Path(port_file) if port_file else None,
        database_url=pick("database") or "",
        data_dir=Path(pick("data_dir") or DEFAULT_DATA_DIR),
        identity=identity,  # type: ignore[arg-type]  # checked against IDENTITY_MODES above
        config_file=Path(config) if config else None,
        tailscaled_socket=socket,
        dev_login=pick("dev_login") or "dev@localhost",
        upstream_connect_timeout=_seconds(pick, "upstream_connect_timeout", 10.0),
        upstream_read_timeout=_seconds(pick, "upstream_read_timeout", 600.0),
        log_format=log_format,  # type: ignore[arg-type]  # checked above
        log_level=(pick("log_level") or "info").lower(),
        connector_key=_fernet_key(pick("connector_key") or ""),
        allow_local_connectors=_flag(pick, "allow_local_connectors"),
        otel=_flag(pick, "otel"),
        allowed_hosts=_hosts(pick("allowed_hosts") or ""),
        test_exit_after_export_upload=environ.get("IRISGATE_TEST_EXIT_AFTER_EXPORT_UPLOAD") == "1",
        env=environ,
    )


def _hosts(raw: str) -> tuple[str, ...]:
    names = tuple(h.strip().lower().rstrip(".") for h in raw.split(",") if h.strip())
    for name in names:
        wildcard = name.startswith("*") and not name.startswith("*.")
        if name != "*" and ("*" in name[2:] or wildcard):
            raise SettingsError(
                f"--allowed-hosts entries are names, *.domain or *; got {name!r}"
            )
    return names


def _seconds(pick: Callable[[str], str | None], name: str, default: float) -> float:
    raw = pick(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"--{name.replace('_', '-')} must be a number of seconds") from None
    if value <= 0:
        raise SettingsError(f"--{name.replace('_', '-')} must be positive")
    return value


def _flag(pick: Callable[[str], str | None], name: str) -> bool:
    raw = (pick(name) or "false").strip().lower()
    if raw not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise SettingsError(f"--{name.replace('_', '-')} must be true or false, got {raw!r}")
    return raw in ("true", "1", "yes", "on")


def _fernet_key(value: str) -> str:
    """ "" or a Fernet key: urlsafe base64 of 32 bytes."""
    if not value:
        return ""
    try:
        raw = base64.urlsafe_b64decode(value.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) != 32:
        raise SettingsError("--connector-key must be a Fernet key (urlsafe base64 of 32 bytes)")
    return value
