"""Process settings: command-line flags, each with an `IRISGATE_*` environment variable.

This is the only module that reads the environment. The environment mapping is kept on the
settings so config secrets (`env:NAME`) resolve against the same snapshot.
"""

from __future__ import annotations

import base64
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

IdentityMode = Literal["tailscale", "serve", "dev", "oidc", "keys"]
IDENTITY_MODES: tuple[str, ...] = ("tailscale", "serve", "dev", "oidc", "keys")
#: modes that identify callers from anywhere, without a network identity: chosen explicitly
#: for a gateway listening on more than loopback (see `unidentified_exposure`); their
#: browsers sign in and hold a session (irisgate.web.signin)
SIGN_IN_MODES: tuple[str, ...] = ("oidc", "keys")
DEFAULT_SOCKET = "/var/run/tailscale/tailscaled.sock"
DEFAULT_DATA_DIR = "irisgate-data"
DEFAULT_SECRETS_DIR = "/run/secrets"
MAX_WORKERS = 64
KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True)
class OidcSettings:
    """Sign-in through an OpenID provider (`--identity oidc`); see irisgate.identity.oidc."""

    issuer: str
    client_id: str
    #: the client secret or a reference to it (`env:NAME`, `file:PATH`), resolved at start
    client_secret: str = field(repr=False)
    #: the gateway's own address as browsers reach it (`https://ai.example.com`): the
    #: provider sends people back to BASE_URL/auth/callback; https makes cookies Secure
    base_url: str
    login_claim: str = "email"
    groups_claim: str = "groups"
    scopes: str = "openid email profile"
    #: how long a sign-in lasts before the person signs in again
    session_hours: float = 12.0


@dataclass(frozen=True)
class Settings:
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080  # 0: a free port the system picks (see port_file)
    #: after binding, the port actually listened on is written here (for `--listen HOST:0`)
    port_file: Path | None = None
    database_url: str = ""  # "" means SQLite under data_dir
    data_dir: Path = Path(DEFAULT_DATA_DIR)
    identity: IdentityMode = "dev"
    oidc: OidcSettings | None = None  # with identity "oidc" only
    config_file: Path | None = None
    tailscaled_socket: str = DEFAULT_SOCKET
    dev_login: str = "dev@localhost"
    whois_cache_seconds: float = 10.0
    #: seconds a key owner's groups and capabilities, as last seen, stay usable by their keys
    key_owner_max_age: float = 30 * 86400.0
    #: hours a browser sign-in lasts (modes oidc and keys)
    session_hours: float = 12.0
    #: mode keys: irisgate's address as browsers reach it; https makes the sign-in cookie
    #: `__Host-` and Secure ("": not known, the cookie is neither)
    base_url: str = ""
    upstream_connect_timeout: float = 10.0
    upstream_read_timeout: float = 600.0  # longest silence allowed between upstream bytes
    #: most upstream attempts one request makes (1: no failover; gateway/attempts.py)
    failover_attempts: int = 3
    #: no further attempt starts once this many seconds passed since the first began
    failover_budget: float = 30.0
    #: seconds a provider whose circuit opened (5 failures in a row) is left out before a probe
    circuit_cool_down: float = 30.0
    config_poll_seconds: float = 1.0
    #: seconds requests in flight get to finish after SIGTERM before they are cut
    shutdown_grace: float = 30.0
    #: processes serving the same listening socket and database (1: this process serves)
    workers: int = 1
    log_format: Literal["json", "console"] = "console"
    log_level: str = "info"
    #: Fernet key (urlsafe base64 of 32 bytes) for connector tokens at rest; "" means the key
    #: file `connector.key` in data_dir, generated on first start
    connector_key: str = field(default="", repr=False)
    #: let connector and OAuth URLs reach loopback and link-local addresses (tests, labs)
    allow_local_connectors: bool = False
    otel: bool = False  # OpenTelemetry traces (needs the `otel` extra)
    #: answers to budgeted LLM requests carry the caller's remaining budget
    #: (`x-irisgate-budget-remaining`, `x-irisgate-budget-bucket`)
    budget_headers: bool = False
    #: Host names clients may use besides IP addresses, localhost and (tailscale mode) the
    #: node's own MagicDNS names: exact names, `*.domain` for a domain, `*` for any
    allowed_hosts: tuple[str, ...] = ()
    #: the only folder `file:` secret references may read (relative ones are taken inside it)
    secrets_dir: Path = Path(DEFAULT_SECRETS_DIR)
    #: request body limits in bytes: LLM paths, connectors (HTTP and MCP), /api/ and /chat/
    max_request_body: int = 64 * MIB
    max_connector_body: int = 16 * MIB
    max_api_body: int = 8 * MIB
    #: stored request and response bodies are cut to this many bytes (marked as cut)
    max_capture_body: int = 16 * MIB
    #: the longest MCP connector answer read (a JSON answer, or one event of an SSE answer)
    max_connector_answer: int = 16 * MIB
    #: the longest answer read from a hook; a longer one is a hook failure
    max_hook_answer: int = 16 * MIB
    #: what one user's chat attachments (images) may take together, in bytes
    max_chat_attachments: int = 200 * 1000 * 1000
    #: seconds a client may take to send a request's line and headers
    header_timeout: float = 10.0
    #: seconds a request body may stall (no byte arriving while irisgate waits for one)
    body_timeout: float = 60.0
    #: seconds an answer may stall (the client accepting no byte while irisgate has some to send)
    send_timeout: float = 60.0
    #: seconds an idle keep-alive connection stays open
    keepalive_timeout: float = 5.0
    #: a request's line and headers: total bytes, and number of header fields
    max_header_bytes: int = 64 * KIB
    max_headers: int = 100
    #: open client connections; past it the oldest idle one is closed for a new one
    max_connections: int = 10_000
    #: flush each request record in the spool (DATA_DIR/spool) to the disk before its answer
    #: ends, so that a machine crash loses none (a process crash never does)
    spool_fsync: bool = False
    #: the spool's size limit; when full, new LLM requests are refused with 503
    spool_max_mb: int = 1024
    #: serve brings the schema to head at start; False: it refuses a schema not at head
    migrate: bool = True
    #: most PostgreSQL connections one process opens (irisgate.store.connections)
    db_pool_size: int = 15
    #: nanodollars a request without an output limit reserves at most (irisgate.quotas.estimate)
    quota_max_reservation: int = 100_000_000
    #: the dashboard's Feedback link (http(s) or mailto); "" shows none
    feedback_url: str = ""
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
    "identity": ("IRISGATE_IDENTITY", "identity mode: tailscale, serve, dev, oidc or keys"),
    "oidc_issuer": (
        "IRISGATE_OIDC_ISSUER",
        "mode oidc: the OpenID provider's issuer URL (its discovery document is read from"
        " ISSUER/.well-known/openid-configuration)",
    ),
    "oidc_client_id": ("IRISGATE_OIDC_CLIENT_ID", "mode oidc: irisgate's client id there"),
    "oidc_client_secret": (
        "IRISGATE_OIDC_CLIENT_SECRET",
        "mode oidc: the client secret, or env:NAME / file:PATH naming where it is",
    ),
    "oidc_base_url": (
        "IRISGATE_OIDC_BASE_URL",
        "mode oidc: irisgate's address as browsers reach it (https://ai.example.com); the"
        " provider returns people to BASE_URL/auth/callback",
    ),
    "oidc_login_claim": (
        "IRISGATE_OIDC_LOGIN_CLAIM",
        "mode oidc: the ID token claim that is the login name (default email)",
    ),
    "oidc_groups_claim": (
        "IRISGATE_OIDC_GROUPS_CLAIM",
        "mode oidc: the ID token claim listing the person's groups, for grants' group:NAME"
        " (default groups)",
    ),
    "oidc_scopes": (
        "IRISGATE_OIDC_SCOPES",
        "mode oidc: scopes asked for at sign-in (default: openid email profile)",
    ),
    "session_hours": (
        "IRISGATE_SESSION_HOURS",
        "modes oidc and keys: hours a browser sign-in lasts (default 12)",
    ),
    "base_url": (
        "IRISGATE_BASE_URL",
        "mode keys: irisgate's address as browsers reach it (https://ai.example.com); https"
        " makes the browser sign-in cookie Secure and __Host- (mode oidc: --oidc-base-url)",
    ),
    "key_owner_max_age": (
        "IRISGATE_KEY_OWNER_MAX_AGE",
        "how long an API key keeps its owner's groups and tailnet capabilities as last seen"
        " (30d, 12h, 90m or 45s; default 30d); older, the key has its owner's login only",
    ),
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
    "failover_attempts": (
        "IRISGATE_FAILOVER_ATTEMPTS",
        "most upstream attempts per request, over providers and keys (default 3; 1: none)",
    ),
    "failover_budget": (
        "IRISGATE_FAILOVER_BUDGET",
        "seconds after a request's first attempt when no further one starts (default 30)",
    ),
    "circuit_cool_down": (
        "IRISGATE_CIRCUIT_COOL_DOWN",
        "seconds a provider is left out after 5 failures in a row, before a probe (default 30)",
    ),
    "shutdown_grace": (
        "IRISGATE_SHUTDOWN_GRACE",
        "seconds requests in flight get to finish after SIGTERM before they are cut and"
        " recorded (default 30)",
    ),
    "workers": (
        "IRISGATE_WORKERS",
        f"processes serving the same port and database (1 to {MAX_WORKERS}, default 1)",
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
    "budget_headers": (
        "IRISGATE_BUDGET_HEADERS",
        "true: answers to budgeted LLM requests carry the caller's remaining budget in"
        " x-irisgate-budget-remaining (dollars) and x-irisgate-budget-bucket (default false)",
    ),
    "allowed_hosts": (
        "IRISGATE_ALLOWED_HOSTS",
        "comma-separated Host names clients may use besides IP addresses, localhost and the"
        " node's MagicDNS names (*.example.com for a domain, * for any)",
    ),
    "secrets_dir": (
        "IRISGATE_SECRETS_DIR",
        "the only folder file:PATH secrets may be read from (default /run/secrets)",
    ),
    "max_request_body": (
        "IRISGATE_MAX_REQUEST_BODY",
        "largest request body on the LLM paths, in bytes (default 64MiB; KiB/MiB suffixes ok)",
    ),
    "max_connector_body": (
        "IRISGATE_MAX_CONNECTOR_BODY",
        "largest request body on /v1/connectors/ and /v1/mcp (default 16MiB)",
    ),
    "max_api_body": (
        "IRISGATE_MAX_API_BODY",
        "largest request body on /api/ and /chat/ (default 8MiB)",
    ),
    "max_capture_body": (
        "IRISGATE_MAX_CAPTURE_BODY",
        "request and response bodies are stored up to this size, then cut (default 16MiB)",
    ),
    "max_connector_answer": (
        "IRISGATE_MAX_CONNECTOR_ANSWER",
        "longest MCP connector answer read, or event of a streamed one (default 16MiB)",
    ),
    "max_hook_answer": (
        "IRISGATE_MAX_HOOK_ANSWER",
        "longest hook answer read; a longer one is a hook failure (default 16MiB)",
    ),
    "max_chat_attachments": (
        "IRISGATE_MAX_CHAT_ATTACHMENTS",
        "bytes one user's chat images may take together (default 200000000)",
    ),
    "header_timeout": (
        "IRISGATE_HEADER_TIMEOUT",
        "seconds a client may take to send a request's line and headers (default 10)",
    ),
    "body_timeout": (
        "IRISGATE_BODY_TIMEOUT",
        "seconds a request body may stall before the connection is closed (default 60)",
    ),
    "send_timeout": (
        "IRISGATE_SEND_TIMEOUT",
        "seconds a client may accept no byte of an answer before the connection is cut "
        "(default 60)",
    ),
    "keepalive_timeout": (
        "IRISGATE_KEEPALIVE_TIMEOUT",
        "seconds an idle keep-alive client connection stays open (default 5)",
    ),
    "max_header_bytes": (
        "IRISGATE_MAX_HEADER_BYTES",
        "largest request line plus headers, in bytes (default 64KiB)",
    ),
    "max_headers": ("IRISGATE_MAX_HEADERS", "most header fields in a request (default 100)"),
    "max_connections": (
        "IRISGATE_MAX_CONNECTIONS",
        "open client connections; past it the oldest idle one is closed (default 10000)",
    ),
    "spool_fsync": (
        "IRISGATE_SPOOL_FSYNC",
        "true: flush every request record to disk before its answer ends, so that even a"
        " machine crash loses none (default false: a process crash loses none)",
    ),
    "spool_max_mb": (
        "IRISGATE_SPOOL_MAX_MB",
        "MiB of request records the spool (DATA_DIR/spool) may hold while the database is"
        " unavailable; when full, new requests get 503 (default 1024)",
    ),
    "migrate": (
        "IRISGATE_MIGRATE",
        "true (default): serve upgrades the database schema at start; false: serve refuses"
        " a schema that is not current (run `irisgate db upgrade` as its own step)",
    ),
    "db_pool_size": (
        "IRISGATE_DB_POOL_SIZE",
        "most PostgreSQL connections one irisgate process opens (default 15, 5 kept open)",
    ),
    "quota_max_reservation": (
        "IRISGATE_QUOTA_MAX_RESERVATION",
        "most a request without an output limit reserves in a quota, in dollars (default 0.10)",
    ),
    "feedback_url": (
        "IRISGATE_FEEDBACK_URL",
        "where the dashboard's Feedback link goes: an https://, http:// or mailto: address"
        " (default: no link)",
    ),
}


class SettingsError(ValueError):
    """A flag or environment variable has a value irisgate cannot use; the message names it."""


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
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
        oidc=_oidc(pick) if identity == "oidc" else None,
        config_file=Path(config) if config else None,
        tailscaled_socket=socket,
        dev_login=pick("dev_login") or "dev@localhost",
        key_owner_max_age=_duration(pick, "key_owner_max_age", 30 * 86400.0),
        session_hours=_session_hours(pick),
        base_url=_web_url(pick, "base_url") if pick("base_url") else "",
        upstream_connect_timeout=_seconds(pick, "upstream_connect_timeout", 10.0),
        upstream_read_timeout=_seconds(pick, "upstream_read_timeout", 600.0),
        failover_attempts=_count(pick, "failover_attempts", 3),
        failover_budget=_seconds(pick, "failover_budget", 30.0),
        circuit_cool_down=_seconds(pick, "circuit_cool_down", 30.0),
        shutdown_grace=_seconds(pick, "shutdown_grace", 30.0, zero=True),
        workers=_workers(pick("workers")),
        log_format=log_format,  # type: ignore[arg-type]  # checked above
        log_level=(pick("log_level") or "info").lower(),
        connector_key=_fernet_key(pick("connector_key") or ""),
        allow_local_connectors=_flag(pick, "allow_local_connectors"),
        otel=_flag(pick, "otel"),
        budget_headers=_flag(pick, "budget_headers"),
        allowed_hosts=_hosts(pick("allowed_hosts") or ""),
        secrets_dir=Path(pick("secrets_dir") or DEFAULT_SECRETS_DIR),
        max_request_body=_size(pick, "max_request_body", 64 * MIB),
        max_connector_body=_size(pick, "max_connector_body", 16 * MIB),
        max_api_body=_size(pick, "max_api_body", 8 * MIB),
        max_capture_body=_size(pick, "max_capture_body", 16 * MIB),
        max_connector_answer=_size(pick, "max_connector_answer", 16 * MIB),
        max_hook_answer=_size(pick, "max_hook_answer", 16 * MIB),
        max_chat_attachments=_size(pick, "max_chat_attachments", 200 * 1000 * 1000),
        header_timeout=_seconds(pick, "header_timeout", 10.0),
        body_timeout=_seconds(pick, "body_timeout", 60.0),
        send_timeout=_seconds(pick, "send_timeout", 60.0),
        keepalive_timeout=_seconds(pick, "keepalive_timeout", 5.0),
        max_header_bytes=_size(pick, "max_header_bytes", 64 * KIB),
        max_headers=_size(pick, "max_headers", 100),
        max_connections=_size(pick, "max_connections", 10_000),
        spool_fsync=_flag(pick, "spool_fsync"),
        spool_max_mb=_megabytes(pick, "spool_max_mb", 1024),
        migrate=_flag(pick, "migrate", default=True),
        db_pool_size=_count(pick, "db_pool_size", 15),
        quota_max_reservation=_dollars(pick, "quota_max_reservation", 100_000_000),
        feedback_url=_link(pick("feedback_url") or ""),
        test_exit_after_export_upload=environ.get("IRISGATE_TEST_EXIT_AFTER_EXPORT_UPLOAD") == "1",
        env=environ,
    )


def unidentified_exposure(settings: Settings) -> str | None:
    """Why `serve` must not start: it would listen beyond loopback with no way to know who
    calls (dev mode, chosen or defaulted to); None when it may."""
    if settings.identity != "dev" or _loopback_host(settings.listen_host):
        return None
    return (
        f"refusing to listen on {settings.listen_host}:{settings.listen_port} in identity mode"
        " dev: it has no network identity, so nobody but this machine could be told apart."
        " Choose how callers are identified with --identity: tailscale (tailnet, the"
        " default where tailscaled runs), serve (behind tailscale serve), "
        + ", ".join(SIGN_IN_MODES)
        + " (sign-in or API keys without Tailscale); or listen on 127.0.0.1 for one-person use"
    )


def _loopback_host(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _oidc(pick: Callable[[str], str | None]) -> OidcSettings:
    """The sign-in settings of mode oidc; every one it cannot work without is required."""
    missing = [
        "--" + name.replace("_", "-")
        for name in ("oidc_issuer", "oidc_client_id", "oidc_client_secret", "oidc_base_url")
        if not pick(name)
    ]
    if missing:
        raise SettingsError(f"--identity oidc needs {', '.join(missing)}")
    issuer, base_url = _web_url(pick, "oidc_issuer"), _web_url(pick, "oidc_base_url")
    hours = _session_hours(pick)
    scopes = pick("oidc_scopes") or "openid email profile"
    if "openid" not in scopes.split():
        raise SettingsError(f"--oidc-scopes must include openid, got {scopes!r}")
    return OidcSettings(
        issuer=issuer,
        client_id=pick("oidc_client_id") or "",
        client_secret=pick("oidc_client_secret") or "",
        base_url=base_url,
        login_claim=pick("oidc_login_claim") or "email",
        groups_claim=pick("oidc_groups_claim") or "groups",
        scopes=scopes,
        session_hours=hours,
    )


def _session_hours(pick: Callable[[str], str | None]) -> float:
    raw_hours = pick("session_hours") or "12"
    try:
        hours = float(raw_hours)
    except ValueError:
        hours = math.nan
    if not 0 < hours <= 24 * 90:  # NaN fails too
        raise SettingsError(
            f"--session-hours must be a number of hours above 0, at most 2160, got {raw_hours!r}"
        )
    return hours


_DURATION = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,9})?)([dhms])")
_DURATION_S = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}


def _duration(pick: Callable[[str], str | None], name: str, default: float) -> float:
    """A positive duration with its unit: `30d`, `12h`, `90m` or `45s`, in seconds."""
    raw = pick(name)
    if raw is None:
        return default
    match = _DURATION.fullmatch(raw.strip().lower())
    if match is None or float(match[1]) <= 0:
        flag = "--" + name.replace("_", "-")
        raise SettingsError(f"{flag} must be a duration like 30d, 12h, 90m or 45s, got {raw!r}")
    return float(match[1]) * _DURATION_S[match[2]]


def _web_url(pick: Callable[[str], str | None], name: str) -> str:
    """An http(s) URL without query or fragment, its trailing slash removed."""
    raw = (pick(name) or "").strip()
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        flag = "--" + name.replace("_", "-")
        raise SettingsError(f"{flag} must be an http(s) URL like https://host/path, got {raw!r}")
    return raw.rstrip("/")


def _hosts(raw: str) -> tuple[str, ...]:
    names = tuple(h.strip().lower().rstrip(".") for h in raw.split(",") if h.strip())
    for name in names:
        wildcard = name.startswith("*") and not name.startswith("*.")
        if name != "*" and ("*" in name[2:] or wildcard):
            raise SettingsError(f"--allowed-hosts entries are names, *.domain or *; got {name!r}")
    return names


def _seconds(
    pick: Callable[[str], str | None], name: str, default: float, *, zero: bool = False
) -> float:
    """A number of seconds: positive, or (`zero`) at least 0; never NaN or infinite."""
    raw = pick(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"--{name.replace('_', '-')} must be a number of seconds") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        qualifier = "0 or more" if zero else "positive"
        raise SettingsError(f"--{name.replace('_', '-')} must be {qualifier}, got {raw!r}")
    return value


def _workers(raw: str | None) -> int:
    if raw is None:
        return 1
    if not raw.strip().isdigit() or not 1 <= int(raw) <= MAX_WORKERS:
        raise SettingsError(f"--workers must be a number from 1 to {MAX_WORKERS}, got {raw!r}")
    return int(raw)


_SIZE_UNITS = {"": 1, "b": 1, "kib": KIB, "kb": KIB, "k": KIB, "mib": MIB, "mb": MIB, "m": MIB}


def _size(pick: Callable[[str], str | None], name: str, default: int) -> int:
    """A positive count (bytes, connections); sizes may end in KiB or MiB (binary units)."""
    raw = pick(name)
    if raw is None:
        return default
    text = raw.strip().lower().replace(" ", "")
    digits = text.rstrip("kmgib")
    unit = _SIZE_UNITS.get(text[len(digits) :])
    if not digits.isdigit() or unit is None or int(digits) <= 0:
        raise SettingsError(
            f"--{name.replace('_', '-')} must be a positive whole number"
            f" (bytes may end in KiB or MiB), got {raw!r}"
        )
    return int(digits) * unit


def _megabytes(pick: Callable[[str], str | None], name: str, default: int) -> int:
    raw = pick(name)
    if raw is None:
        return default
    if not raw.strip().isdigit() or int(raw) < 1:
        raise SettingsError(f"--{name.replace('_', '-')} must be a whole number of MiB, at least 1")
    return int(raw)


def _count(pick: Callable[[str], str | None], name: str, default: int) -> int:
    """A whole number from 1 to 1000."""
    raw = pick(name)
    if raw is None:
        return default
    if not raw.strip().isdigit() or not 1 <= int(raw) <= 1000:
        flag = "--" + name.replace("_", "-")
        raise SettingsError(f"{flag} must be a whole number from 1 to 1000, got {raw!r}")
    return int(raw)


def _dollars(pick: Callable[[str], str | None], name: str, default: int) -> int:
    """A dollar amount (`0.10` or `$0.10`) in nanodollars; more than $0."""
    raw = pick(name)
    if raw is None:
        return default
    flag = "--" + name.replace("_", "-")
    match = re.fullmatch(r"\$?([0-9]{1,9})(?:\.([0-9]{1,9}))?", raw.strip())
    if match is None or not int(match[1] + (match[2] or "").ljust(9, "0")):
        raise SettingsError(f"{flag} must be a dollar amount above 0 like 0.10, got {raw!r}")
    return int(match[1] + (match[2] or "").ljust(9, "0"))


def _flag(pick: Callable[[str], str | None], name: str, *, default: bool = False) -> bool:
    raw = (pick(name) or str(default)).strip().lower()
    if raw not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
        raise SettingsError(f"--{name.replace('_', '-')} must be true or false, got {raw!r}")
    return raw in ("true", "1", "yes", "on")


def _link(value: str) -> str:
    """ "" or an address a page may link to: https://, http:// or mailto:, nothing that runs
    (`javascript:`) and no whitespace or control characters."""
    value = value.strip()
    if not value:
        return ""
    scheme = value.split(":", 1)[0].lower()
    if scheme not in ("https", "http", "mailto") or any(c <= " " or c == "\x7f" for c in value):
        raise SettingsError(
            f"--feedback-url must be an https://, http:// or mailto: address, got {value[:80]!r}"
        )
    return value


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
