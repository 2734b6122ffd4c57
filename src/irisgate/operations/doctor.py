"""`irisgate doctor`: check a setup the way a new operator needs it checked.

It reads the same settings as `serve` and looks at what `serve` would use: the database
(reachable, schema current), the config (the `--config` file, else the newest version stored
in the database, else the built-in default), the identity mode (tailscaled's socket, status
and WhoIs; loopback-only modes listening elsewhere; the host names browsers may use) and
every provider's key (resolved, never printed). `--probe` also sends one tiny request to each
provider with its key. One line per finding: `ok`, `warn` or `FIX` (with what to do); the
exit code is 1 when any line says `FIX`.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import orjson

from irisgate.config.check import format_issues
from irisgate.config.defaults import DEFAULT_CONFIG_TEXT
from irisgate.config.model import Config, Provider
from irisgate.config.schema import analyze
from irisgate.config.secrets import SecretSource
from irisgate.identity.localapi import WhoIsClient
from irisgate.identity.oidc import OidcClient, SignInFailed
from irisgate.identity.resolver import OidcResolver, is_loopback, make_resolver
from irisgate.operations import schema
from irisgate.operations.probe import Level, probe_provider
from irisgate.settings import Settings, SettingsError, unidentified_exposure
from irisgate.store import configs
from irisgate.store.database import schema_status

#: config paths of provider keys (reported per provider, not as config warnings)
_PROVIDER_KEY = re.compile(r"providers\.[^.]+\.apikey")
#: longest wait for one provider's probe answer
PROBE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    topic: str
    text: str

    def line(self) -> str:
        return f"{self.level:<4} {self.topic}: {self.text}"


def run(settings: Settings, *, probe: bool = False) -> int:
    findings = asyncio.run(examine(settings, probe=probe))
    for finding in findings:
        print(finding.line())
    problems = sum(f.level == "FIX" for f in findings)
    print(f"{problems} problem(s) to fix" if problems else "everything checked is fine")
    return 1 if problems else 0


async def examine(settings: Settings, *, probe: bool = False) -> list[Finding]:
    """Every finding, in the order an operator fixes them."""
    findings: list[Finding] = []
    stored_config = await _database(settings, findings)
    config = _config(settings, stored_config, findings)
    await _identity(settings, findings)
    if config is not None:
        for provider in config.providers.values():
            findings.append(_provider_key(provider))
        if probe:
            findings += await _probes(config)
    return findings


async def _database(settings: Settings, findings: list[Finding]) -> str | None:
    """Database findings; returns the newest stored config text, if any."""
    try:
        db = await schema.connect(settings)
    except schema.NoDatabaseYet as exc:
        level: Level = "ok" if settings.migrate else "FIX"
        findings.append(Finding(level, "database", str(exc)))
        return None
    except schema.Unreachable as exc:
        findings.append(Finding("FIX", "database", f"{exc}: check --database / IRISGATE_DATABASE"))
        return None
    try:
        status = await schema_status(db)
        state = status.state
        if state == "current":
            findings.append(Finding("ok", "database", f"{db.url}: {schema.describe(status)}"))
        elif state in ("empty", "behind") and settings.migrate:
            where = status.revision or "empty"
            findings.append(
                Finding("ok", "database", f"{db.url}: {where}; serve upgrades it to {status.head}")
            )
        else:
            findings.append(Finding("FIX", "database", f"{db.url}: {schema.describe(status)}"))
        if state in ("current", "behind"):
            latest = await configs.latest(db)
            return latest.content if latest is not None else None
        return None
    finally:
        await db.close()


def _config(settings: Settings, stored: str | None, findings: list[Finding]) -> Config | None:
    if settings.config_file is not None:
        name = str(settings.config_file)
        try:
            text = settings.config_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            findings.append(Finding("FIX", "config", f"{name}: cannot read: {reason}"))
            return None
    elif stored is not None:
        name, text = "stored config", stored
    else:
        name, text = "built-in default config", DEFAULT_CONFIG_TEXT
    analysis = analyze(text, SecretSource(settings.env, settings.secrets_dir))
    for issue in analysis.issues:
        if issue.severity == "warning" and _PROVIDER_KEY.fullmatch(issue.path):
            continue  # an unresolved provider key: its provider's own line says what to do
        level: Level = "warn" if issue.severity == "warning" else "FIX"
        findings.append(Finding(level, "config", format_issues(name, [issue])))
    if analysis.config is None:
        findings.append(Finding("FIX", "config", f"{name} has errors: nothing can be served"))
        return None
    findings.append(Finding("ok", "config", f"{name} is valid"))
    return analysis.config


async def _identity(settings: Settings, findings: list[Finding]) -> None:
    mode = settings.identity
    listen = f"{settings.listen_host}:{settings.listen_port}"
    if mode == "serve" and not is_loopback(settings.listen_host):
        findings.append(
            Finding(
                "warn",
                "identity",
                f"mode {mode} accepts loopback clients only, but irisgate listens on {listen}:"
                " others are refused (use --listen 127.0.0.1:PORT)",
            )
        )
    if (refusal := unidentified_exposure(settings)) is not None:
        findings.append(Finding("FIX", "identity", refusal))
    if mode == "dev":
        findings.append(
            Finding("ok", "identity", f"mode dev: every local caller is {settings.dev_login}")
        )
        return
    if mode == "oidc":
        findings.append(await _oidc(settings))
        return
    if mode == "keys":
        findings.append(
            Finding("ok", "identity", "mode keys: every caller needs an irisgate API key")
        )
        return
    names = await _tailscaled(settings, findings, required=mode == "tailscale")
    if mode == "serve":
        if names:  # tailscaled answered: does `tailscale serve` send requests here?
            findings.append(await _serve_config(settings))
        findings.append(_serve_hosts(settings, names))


async def _oidc(settings: Settings) -> Finding:
    """Mode oidc: the client secret resolves, and the provider's discovery document and keys
    can be read."""
    import httpx2

    try:
        resolver = make_resolver(settings)
    except SettingsError as exc:
        return Finding("FIX", "identity", str(exc))
    assert isinstance(resolver, OidcResolver)
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(10.0), trust_env=False) as http:
        client = OidcClient(resolver.settings, "", http)
        try:
            keys = await client.check()
        except SignInFailed as exc:
            return Finding("FIX", "identity", f"mode oidc: {exc}")
    return Finding(
        "ok",
        "identity",
        f"mode oidc: people sign in at {resolver.settings.issuer} ({keys} signing keys);"
        f" the provider must allow the redirect URI {client.redirect_uri}",
    )


async def _tailscaled(
    settings: Settings, findings: list[Finding], *, required: bool
) -> frozenset[str]:
    """Ask tailscaled for its status and a WhoIs; returns the node's names."""
    socket = settings.tailscaled_socket
    level: Level = "FIX" if required else "warn"
    client = WhoIsClient(socket)
    try:
        status, body = await client.ask("/localapi/v0/status", {"peers": "false"})
        if status != 200:
            text = f"{socket}: status answered HTTP {status}"
            findings.append(Finding(level, "tailscaled", text))
            return frozenset()
        answer = orjson.loads(body)
        me = answer.get("Self") if isinstance(answer, dict) else None
        me = me if isinstance(me, dict) else {}
        node = str(me.get("DNSName") or "").rstrip(".")
        ips = [str(ip) for ip in me.get("TailscaleIPs") or []]
        findings.append(Finding("ok", "tailscaled", f"{socket}: this node is {node or '?'}"))
        addr = {"addr": f"{ips[0]}:1"} if ips else {}
        whois, whois_body = await client.ask("/localapi/v0/whois", addr)
        findings.append(_whois_finding(whois, whois_body, level))
        return frozenset({node, node.split(".", 1)[0]} - {""})
    except (aiohttp.ClientError, OSError, TimeoutError, orjson.JSONDecodeError) as exc:
        missing = isinstance(exc, aiohttp.ClientConnectorError) and isinstance(
            exc.os_error, FileNotFoundError
        )
        reason = "no such socket" if missing else str(exc) or type(exc).__name__
        findings.append(
            Finding(
                level,
                "tailscaled",
                f"cannot reach tailscaled at {socket} ({reason[:200]}): start tailscaled, or"
                " set --tailscaled-socket / IRISGATE_TAILSCALED_SOCKET to its socket",
            )
        )
        return frozenset()
    finally:
        await client.close()


def _whois_finding(status: int, body: bytes, level: Level) -> Finding:
    # 404 ("no match") still proves WhoIs is answered for this user
    if status in (200, 404):
        return Finding("ok", "tailscaled", "WhoIs answers")
    text = body.decode("utf-8", "replace").strip()[:200]
    fix = (
        ": run irisgate as root or as tailscaled's operator (tailscale set --operator=USER)"
        if status == 403
        else ""
    )
    return Finding(level, "tailscaled", f"WhoIs answered HTTP {status} {text}{fix}")


async def _serve_config(settings: Settings) -> Finding:
    """Whether `tailscale serve` proxies to the address irisgate listens on."""
    client = WhoIsClient(settings.tailscaled_socket)
    try:
        status, body = await client.ask("/localapi/v0/serve-config", {})
        config = orjson.loads(body) if status == 200 else None
    except (aiohttp.ClientError, OSError, TimeoutError, orjson.JSONDecodeError):
        config = None
    finally:
        await client.close()
    if not isinstance(config, dict):
        return Finding("warn", "tailscale serve", "cannot read tailscaled's serve config")
    listen = f"127.0.0.1:{settings.listen_port}"
    routes = [
        (f"https://{host.removesuffix(':443')}{path}", proxy)
        for host, path, proxy in _serve_routes(config)
        if _reaches(proxy, settings.listen_port)
    ]
    if routes:
        url, proxy = routes[0]
        return Finding("ok", "tailscale serve", f"{url} is proxied to {proxy}")
    return Finding(
        "FIX",
        "tailscale serve",
        f"nothing is proxied to irisgate ({listen}): run `tailscale serve --bg http://{listen}`",
    )


def _serve_routes(config: dict[str, object]) -> list[tuple[str, str, str]]:
    """(host:port, path, proxy target) of every web handler in an ipn.ServeConfig, the
    foreground sessions' included."""
    configs = [config]
    foreground = config.get("Foreground")
    if isinstance(foreground, dict):
        configs += [c for c in foreground.values() if isinstance(c, dict)]
    routes = []
    for one in configs:
        web = one.get("Web")
        for host, server in web.items() if isinstance(web, dict) else ():
            handlers = server.get("Handlers") if isinstance(server, dict) else None
            for path, handler in handlers.items() if isinstance(handlers, dict) else ():
                proxy = handler.get("Proxy") if isinstance(handler, dict) else None
                if isinstance(proxy, str) and proxy:
                    routes.append((str(host), str(path), proxy))
    return routes


def _reaches(proxy: str, port: int) -> bool:
    """Whether a serve proxy target (`http://127.0.0.1:8080`, `localhost:8080`, `8080`)
    is irisgate's loopback port."""
    target = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    try:
        target_port = int(proxy) if proxy.isdigit() else target.port
    except ValueError:
        return False
    host = "127.0.0.1" if proxy.isdigit() else target.hostname or ""
    return target_port == port and (host == "localhost" or is_loopback(host))


def _serve_hosts(settings: Settings, names: frozenset[str]) -> Finding:
    allowed = sorted(names | set(settings.allowed_hosts))
    if allowed:
        return Finding("ok", "hosts", f"browsers may use {', '.join(allowed)} (and IPs, localhost)")
    return Finding(
        "FIX",
        "hosts",
        "mode serve, and no host name is known: requests for the node's name are refused;"
        " set --allowed-hosts / IRISGATE_ALLOWED_HOSTS to the name(s) tailscale serve uses",
    )


def _provider_key(provider: Provider) -> Finding:
    topic = f"provider {provider.id}"
    if provider.disabled:
        return Finding("ok", topic, "disabled in the config")
    if provider.unavailable_reason is not None:
        return Finding(
            "FIX",
            topic,
            f"{provider.unavailable_reason}: set it where irisgate runs, or disable the provider",
        )
    ref = provider.apikey.ref
    if not ref:
        return Finding("ok", topic, f"no key configured (auth_mode {provider.auth_mode or 'none'})")
    where = "a literal key in the config" if provider.apikey.value == ref else ref
    return Finding("ok", topic, f"key resolves ({where})")


async def _probes(config: Config) -> list[Finding]:
    usable = [p for p in config.providers.values() if p.enabled and p.models]
    results = await asyncio.gather(*(probe_provider(p, PROBE_TIMEOUT_S) for p in usable))
    return [
        Finding(level, f"probe {p.id}", text)
        for p, (level, text) in zip(usable, results, strict=True)
    ]
