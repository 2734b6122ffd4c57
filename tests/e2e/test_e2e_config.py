"""End-to-end: the config file, `irisgate config check`, and `GET/PUT /api/config`.

`python -m irisgate config check FILE` and `irisgate serve` refusing a broken file run as
processes; the management API and the start with and without `--config` run irisgate's app in
the test's process (`InProcessIrisgate`), called as the tailnet admin (alice) or a plain user
(bob) from their own loopback addresses.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from conftest import (
    ALICE_IP,
    ANTHROPIC_KEY,
    BOB_IP,
    NOBODY_IP,
    OPENAI_KEY,
    Gateway,
    _socket_of,
    anthropic_client,
    client_from,
    gateway_config,
    openai_client,
)

from irisgate.config.schema import TOP_LEVEL_KEYS
from irisgate.testing import FakeLLM, FakeLocalAPI
from irisgate.testing.inprocess import InProcessIrisgate
from irisgate.testing.server import free_port

APERTURE = "tailscale.com/cap/aperture"
USER_MSG = [{"role": "user", "content": "hello"}]
REDACTED = '"[redacted]"'
HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")

VALID_HUJSON = """\
// irisgate config with HuJSON niceties
{
  /* providers */
  "providers": {
    "openai": {
      "baseurl": "https://api.openai.com",
      "apikey": "sk-literal-for-check",  // a literal secret
      "models": ["gpt-4o-mini", "gpt-5-mini",],
      "compatibility": {"openai_chat": true, "openai_responses": true,},
    },
  },
  "grants": [
    {
      "src": ["*"],
      "app": {"tailscale.com/cap/aperture": [{"role": "user"}, {"models": "openai/*"},],},
    },
  ],
}
"""

# Four errors and two warnings, one per line.
BROKEN_HUJSON = """\
{
  // two providers, both wrong
  "providers": {
    "openai": {
      "baseurl": "api.openai.com",
      "models": ["gpt-4o-mini"],
    },
    "broken": {
      "baseurl": "https://example.com/v1",
    },
  },
  "grants": [
    {"src": ["*"], "app": {"tailscale.com/cap/aperture": [{"role": "root"}]}},
  ],
  "quotas": {"q": {"capacity": "$0", "rate": "$1/day"}},
  "chat_models": [],
}
"""


def broken_lines(name: str) -> list[str]:
    """What `config check` prints for BROKEN_HUJSON saved as `name`."""
    return [
        f'{name}:5: providers.openai.baseurl: "api.openai.com" must be an absolute http(s) URL',
        f"{name}:8: providers.broken.models: is required (a list of strings)",
        f"{name}:9: warning: providers.broken.baseurl: ends in /v1, but irisgate appends the "
        "whole API path (/v1/chat/completions, ...); drop /v1 unless the server really serves "
        "under /v1/v1",
        f'{name}:13: grants[0].app["tailscale.com/cap/aperture"][0].role: "root" is not one of:'
        " user, admin",
        f'{name}:15: quotas.q.capacity: must be more than $0, not "$0"',
        f"{name}:16: warning: chat_models: unknown key, ignored (known keys: "
        f"{', '.join(TOP_LEVEL_KEYS)})",
        f"{name}: 4 error(s)",
    ]


def irisgate_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "irisgate", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def chat(client: openai.OpenAI, model: str) -> Any:
    return client.chat.completions.create(model=model, messages=USER_MSG)  # type: ignore[arg-type]


def message(client: anthropic.Anthropic, model: str) -> Any:
    return client.messages.create(model=model, max_tokens=16, messages=USER_MSG)  # type: ignore[arg-type]


def get_config(gw: Gateway, ip: str = ALICE_IP) -> httpx2.Response:
    with client_from(ip, gw) as client:
        return client.get("/api/config")


def current(gw: Gateway) -> tuple[str, str]:
    """(masked config text, hash) as the admin sees them."""
    resp = get_config(gw)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    return body["config"], body["hash"]


def put_config(gw: Gateway, text: str, base_hash: str, ip: str = ALICE_IP) -> httpx2.Response:
    with client_from(ip, gw) as client:
        return client.put("/api/config", json={"config": text, "hash": base_hash})


def line_of(text: str, needle: str) -> int:
    """1-based line of the first line containing `needle`."""
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


# -- irisgate config check ------------------------------------------------------------------


def test_config_check_accepts_a_valid_hujson_file(tmp_path: Path) -> None:
    path = tmp_path / "ok.hujson"
    path.write_text(VALID_HUJSON, encoding="utf-8")
    done = irisgate_cli("config", "check", str(path))
    assert (done.returncode, done.stdout, done.stderr) == (0, f"{path}: ok\n", "")


def test_config_check_prints_every_error_with_line_and_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.hujson"
    path.write_text(BROKEN_HUJSON, encoding="utf-8")
    done = irisgate_cli("config", "check", str(path))
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == broken_lines(str(path))


def test_config_check_reports_a_syntax_error_and_an_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "syntax.hujson"
    path.write_text('{\n  "providers": {\n    "p": "x"\n', encoding="utf-8")
    done = irisgate_cli("config", "check", str(path))
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"{path}:2: syntax error at column 16: unterminated object: missing '}}'",
        f"{path}: 1 error(s)",
    ]
    missing = tmp_path / "missing.hujson"
    done = irisgate_cli("config", "check", str(missing))
    assert done.returncode == 2
    assert done.stderr == f"{missing}: cannot read: No such file or directory\n"


def test_serve_refuses_to_start_on_an_invalid_config_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.hujson"
    path.write_text(BROKEN_HUJSON, encoding="utf-8")
    port = free_port()
    done = irisgate_cli(
        "serve",
        "--config",
        str(path),
        "--listen",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(tmp_path / "data"),
        "--identity",
        "dev",
    )
    assert done.returncode != 0
    for line in broken_lines(str(path)):
        assert line in done.stderr.splitlines()
    with pytest.raises(httpx2.ConnectError):
        httpx2.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


# -- GET /api/config --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gateway(
    fake_llm: FakeLLM, localapi: FakeLocalAPI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[InProcessIrisgate]:
    """One irisgate app for the module's API tests (SQLite, tailscale identity)."""
    with InProcessIrisgate(
        gateway_config(fake_llm.base_url),
        data_dir=tmp_path_factory.mktemp("irisgate"),
        identity="tailscale",
        tailscaled_socket=_socket_of(localapi),
    ) as gw:
        yield gw


def test_get_config_masks_literal_secrets(gateway: InProcessIrisgate) -> None:
    assert gateway.config_path is not None
    original = gateway.config_path.read_text(encoding="utf-8")
    resp = get_config(gateway)
    assert resp.status_code == 200
    body = resp.json()
    assert {"config", "hash"} <= set(body)
    assert HEX64.match(body["hash"])
    # the file as written, comment and layout kept, each literal key replaced
    expected = original.replace(json.dumps(OPENAI_KEY), REDACTED).replace(
        json.dumps(ANTHROPIC_KEY), REDACTED
    )
    assert body["config"] == expected
    assert body["config"].count(REDACTED) == 2
    for secret in (OPENAI_KEY, ANTHROPIC_KEY, "upstream-openai-secret", "sk-ant-upstream"):
        assert secret not in resp.text
    with client_from(ALICE_IP, gateway) as client:
        legacy = client.get("/aperture/config")
    assert legacy.status_code == 200
    assert legacy.json() == {"config": expected}


@pytest.mark.parametrize(
    ("ip", "error"),
    [
        (BOB_IP, "access denied: admin role required"),
        (NOBODY_IP, "access denied: no role granted"),
    ],
)
def test_config_api_is_admin_only(gateway: InProcessIrisgate, ip: str, error: str) -> None:
    resp = get_config(gateway, ip)
    assert resp.status_code == 403
    assert resp.json() == {"error": error}
    with client_from(ip, gateway) as client:
        assert client.get("/aperture/config").json() == {"error": error}
    _, base = current(gateway)
    resp = put_config(gateway, "{}", base, ip)
    assert resp.status_code == 403
    assert resp.json() == {"error": error}
    assert current(gateway)[1] == base


# -- PUT /api/config --------------------------------------------------------------------------


@pytest.fixture
def restore(gateway: InProcessIrisgate) -> Iterator[str]:
    """The original config file text; the test's config changes are undone afterwards."""
    assert gateway.config_path is not None
    original = gateway.config_path.read_text(encoding="utf-8")
    yield original
    _, base = current(gateway)
    resp = put_config(gateway, original, base)
    assert resp.status_code == 200, resp.text


def bob_grant(*caps: dict[str, Any]) -> list[dict[str, Any]]:
    """The conftest grants with bob's capabilities replaced."""
    return [
        {"src": ["alice@example.com"], "app": {APERTURE: [{"role": "admin"}, {"models": "**"}]}},
        {"src": ["bob@example.com"], "app": {APERTURE: [{"role": "user"}, *caps]}},
    ]


def test_put_config_takes_effect_on_the_next_request(
    gateway: InProcessIrisgate, fake_llm: FakeLLM, restore: str
) -> None:
    bob = openai_client(gateway, BOB_IP)
    with pytest.raises(openai.PermissionDeniedError):
        chat(bob, "gpt-4o-mini")
    before = get_config(gateway).json()
    text = gateway_config(
        fake_llm.base_url, grants=bob_grant({"models": "anthropic/**"}, {"models": "openai/*"})
    )
    resp = put_config(gateway, text, before["hash"])
    assert resp.status_code == 200, resp.text
    saved = resp.json()
    assert saved["success"] is True
    assert HEX64.match(saved["hash"])
    assert saved["hash"] != before["hash"]
    assert saved["version"] == before["version"] + 1
    assert chat(bob, "gpt-4o-mini").model == "gpt-4o-mini"  # no wait, no reload
    assert fake_llm.last_request.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    after = get_config(gateway).json()
    assert (after["hash"], after["version"]) == (saved["hash"], saved["version"])
    assert after["config"].count(REDACTED) == 2  # the secrets it was given are masked too


def test_put_config_removing_a_provider(
    gateway: InProcessIrisgate, fake_llm: FakeLLM, restore: str
) -> None:
    bob = openai_client(gateway, BOB_IP)
    assert chat(bob, "llama-local").model == "llama-local"
    _, base = current(gateway)
    providers = json.loads(gateway_config(fake_llm.base_url).split("\n", 1)[1])["providers"]
    del providers["local"]
    resp = put_config(gateway, gateway_config(fake_llm.base_url, providers=providers), base)
    assert resp.status_code == 200, resp.text
    with pytest.raises(openai.NotFoundError) as caught:
        chat(bob, "llama-local")
    assert caught.value.body["message"] == (  # type: ignore[index]
        "model 'llama-local' is not served by any provider"
    )
    with client_from(BOB_IP, gateway) as client:
        listed = [p["id"] for p in client.get("/api/providers").json()]
        models = [m["id"] for m in client.get("/v1/models").json()["data"]]
    assert listed == ["openai", "anthropic"]
    assert "llama-local" not in models
    assert message(anthropic_client(gateway, BOB_IP), "claude-haiku-4-5").content
    assert len(fake_llm.requests) == 2


def test_put_config_with_a_stale_hash_is_409(
    gateway: InProcessIrisgate, fake_llm: FakeLLM, restore: str
) -> None:
    _, old = current(gateway)
    first = gateway_config(fake_llm.base_url, grants=bob_grant({"models": "openai/*"}))
    resp = put_config(gateway, first, old)
    assert resp.status_code == 200, resp.text
    newest = resp.json()["hash"]
    second = gateway_config(fake_llm.base_url, grants=bob_grant({"models": "**"}))
    resp = put_config(gateway, second, old)  # based on the version before `first`
    assert resp.status_code == 409
    assert resp.json() == {
        "error": "config changed since you loaded it: reload, reapply your change, and save again",
        "hash": newest,
    }
    assert current(gateway)[1] == newest
    # bob has what `first` granted, not what the refused change would have
    with pytest.raises(anthropic.PermissionDeniedError):
        message(anthropic_client(gateway, BOB_IP), "claude-haiku-4-5")


def test_put_invalid_config_is_400_with_every_error(
    gateway: InProcessIrisgate, fake_llm: FakeLLM, restore: str
) -> None:
    masked, base = current(gateway)
    version = get_config(gateway).json()["version"]
    broken = masked.replace(f'"baseurl": "{fake_llm.base_url}"', '"baseurl": "not a url"', 1)
    broken = broken.replace('"role": "user"', '"role": "superuser"', 1)
    assert broken.count("not a url") == 1
    assert "superuser" in broken
    resp = put_config(gateway, broken, base)
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "config has 2 error(s); the running config is unchanged"
    assert body["errors"] == [
        {
            "path": "providers.openai.baseurl",
            "line": line_of(broken, "not a url"),
            "message": '"not a url" must be an absolute http(s) URL',
        },
        {
            "path": 'grants[1].app["tailscale.com/cap/aperture"][0].role',
            "line": line_of(broken, "superuser"),
            "message": '"superuser" is not one of: user, admin',
        },
    ]
    # a syntax error is reported with its line too
    unclosed = masked.replace('"grants": [', '"grants": [[', 1)
    resp = put_config(gateway, unclosed, base)
    assert resp.status_code == 400
    assert resp.json() == {
        "error": "config has 1 error(s); the running config is unchanged",
        "errors": [
            {
                "path": "",
                "line": len(unclosed.splitlines()),  # the final "}" where "]" was due
                "message": "syntax error at column 1: unexpected character '}'; "
                "expected ',' or ']' after an array item",
            }
        ],
    }
    # nothing changed, and the running config still serves
    after = get_config(gateway).json()
    assert (after["hash"], after["version"], after["config"]) == (base, version, masked)
    assert chat(openai_client(gateway, ALICE_IP), "gpt-4o-mini").model == "gpt-4o-mini"
    assert message(anthropic_client(gateway, BOB_IP), "claude-haiku-4-5").content


def test_put_config_cannot_remove_the_callers_own_admin_role(
    gateway: InProcessIrisgate, fake_llm: FakeLLM, restore: str
) -> None:
    masked, base = current(gateway)
    demoted = masked.replace('"role": "admin"', '"role": "user"', 1)
    assert demoted != masked
    resp = put_config(gateway, demoted, base)
    assert resp.status_code == 403
    assert resp.json() == {"error": "refused: this change would remove your own admin role"}
    assert current(gateway) == (masked, base)
    with client_from(ALICE_IP, gateway) as client:
        assert client.get("/api/whoami").json()["role"] == "admin"
    # handing admin to someone else while keeping your own is fine
    promoted = masked.replace('"role": "user"', '"role": "admin"', 1)  # bob's grant
    resp = put_config(gateway, promoted, base)
    assert resp.status_code == 200, resp.text
    with client_from(BOB_IP, gateway) as client:
        assert client.get("/api/whoami").json()["role"] == "admin"


def test_masked_config_round_trip_keeps_the_real_secrets(
    gateway: InProcessIrisgate, fake_llm: FakeLLM, restore: str
) -> None:
    masked, base = current(gateway)
    assert masked.count(REDACTED) == 2
    # a small edit: bob may also use openai/gpt-4o-mini (instead of local/*)
    edited = masked.replace('"models": "local/*"', '"models": "openai/gpt-4o-mini"', 1)
    assert edited != masked
    edited = edited.replace("// written by the test suite", "// edited through the API", 1)
    resp = put_config(gateway, edited, base)
    assert resp.status_code == 200, resp.text
    assert current(gateway) == (edited, resp.json()["hash"])  # comments kept, still masked
    assert chat(openai_client(gateway, BOB_IP), "gpt-4o-mini").model == "gpt-4o-mini"
    assert fake_llm.last_request.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    assert message(anthropic_client(gateway, BOB_IP), "claude-haiku-4-5").content
    assert fake_llm.last_request.headers["x-api-key"] == ANTHROPIC_KEY


def test_put_config_with_a_redacted_secret_nothing_can_restore_is_400(
    gateway: InProcessIrisgate, fake_llm: FakeLLM, restore: str
) -> None:
    masked, base = current(gateway)
    renamed = masked.replace('"openai": {', '"openai2": {', 1)  # no secret stored for openai2
    resp = put_config(gateway, renamed, base)
    assert resp.status_code == 400
    assert resp.json()["errors"] == [
        {
            "path": "providers.openai2.apikey",
            "line": line_of(renamed, REDACTED),
            "message": 'is "[redacted]" but no secret is stored at this path to restore; '
            "enter the secret",
        }
    ]
    assert current(gateway) == (masked, base)


def rollback(gw: Gateway, version: int, base_hash: object, ip: str = ALICE_IP) -> Any:
    with client_from(ip, gw) as client:
        return client.post(f"/api/config/versions/{version}/rollback", json={"hash": base_hash})


def test_rollback_restores_a_literal_secret_deleted_since(
    gateway: InProcessIrisgate, fake_llm: FakeLLM, restore: str
) -> None:
    before = get_config(gateway).json()
    # remove the openai provider (and its literal key) entirely
    providers = json.loads(gateway_config(fake_llm.base_url).split("\n", 1)[1])["providers"]
    del providers["openai"]
    gone = put_config(
        gateway, gateway_config(fake_llm.base_url, providers=providers), before["hash"]
    )
    assert gone.status_code == 200, gone.text
    with pytest.raises(openai.NotFoundError):
        chat(openai_client(gateway, ALICE_IP), "gpt-4o-mini")
    # the masked old text cannot bring the key back through PUT...
    now = get_config(gateway).json()  # the current version, whose hash a change builds on
    with client_from(ALICE_IP, gateway) as client:
        masked_old = client.get(f"/api/config/versions/{before['version']}").json()["config"]
    assert put_config(gateway, masked_old, now["hash"]).status_code == 400
    # ...a rollback can: it saves the version as stored, and the key works again
    assert rollback(gateway, before["version"], "0" * 64).status_code == 409  # stale base
    assert rollback(gateway, before["version"], None).status_code == 400
    assert rollback(gateway, 999_999, now["hash"]).status_code == 404
    assert rollback(gateway, before["version"], now["hash"], BOB_IP).status_code == 403
    done = rollback(gateway, before["version"], now["hash"])
    assert done.status_code == 200, done.text
    assert done.json()["version"] == now["version"] + 1
    assert chat(openai_client(gateway, ALICE_IP), "gpt-4o-mini").model == "gpt-4o-mini"
    assert fake_llm.last_request.headers["Authorization"] == f"Bearer {OPENAI_KEY}"
    after = get_config(gateway).json()
    assert after["config"] == before["config"]  # the same text, still masked
    assert OPENAI_KEY not in done.text and OPENAI_KEY not in after["config"]
    with client_from(ALICE_IP, gateway) as client:
        versions = client.get("/api/config/versions").json()["versions"]
    assert versions[0]["source"] == "rollback" and versions[0]["created_by"] == "alice@example.com"


# -- starting without a config, and importing --config ----------------------------------------


def _default_server(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path, **env: str
) -> InProcessIrisgate:
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)  # only what the test sets
    return InProcessIrisgate(None, data_dir=data_dir, identity="dev", env=env)


def test_no_config_starts_with_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with _default_server(monkeypatch, tmp_path) as gw:
        with client_from("127.0.0.1", gw) as client:
            me = client.get("/api/whoami").json()
            providers = client.get("/api/providers").json()
            config = client.get("/api/config")
            models = client.get("/v1/models").json()
        assert (me["login_name"], me["role"]) == ("dev@localhost", "admin")  # everyone is admin
        assert [(p["id"], p["disabled"]) for p in providers] == [
            ("openai", True),
            ("anthropic", True),
        ]
        assert config.status_code == 200
        assert '"apikey": "env:OPENAI_API_KEY"' in config.json()["config"]
        assert models == {"object": "list", "data": []}
        with pytest.raises(openai.NotFoundError) as oai:
            chat(openai_client(gw, "127.0.0.1"), "gpt-4o-mini")
        with pytest.raises(anthropic.NotFoundError) as ant:
            message(anthropic_client(gw, "127.0.0.1"), "claude-haiku-4-5")
    text = oai.value.body["message"]  # type: ignore[index]
    assert text.startswith("model 'gpt-4o-mini' is unavailable: provider 'openai' ")
    assert "env:OPENAI_API_KEY is not set" in text
    text = ant.value.body["error"]["message"]  # type: ignore[index]
    assert text.startswith("model 'claude-haiku-4-5' is unavailable: provider 'anthropic' ")
    assert "env:ANTHROPIC_API_KEY is not set" in text


def test_no_config_with_openai_key_in_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key = "sk-from-the-environment-not-real"
    gw = _default_server(monkeypatch, tmp_path, OPENAI_API_KEY=key)
    with gw, client_from("127.0.0.1", gw) as c:
        providers = c.get("/api/providers").json()
        models = [m["id"] for m in c.get("/v1/models").json()["data"]]
        config = c.get("/api/config").text
    assert [(p["id"], p["disabled"]) for p in providers] == [
        ("openai", False),
        ("anthropic", True),
    ]
    assert set(models) == {"gpt-5.1", "gpt-5-mini", "gpt-4.1", "gpt-4o-mini"}
    assert key not in config  # a reference is shown, never the value it resolves to


def test_config_file_import_on_restart(fake_llm: FakeLLM, tmp_path: Path) -> None:
    def start(text: str) -> InProcessIrisgate:
        return InProcessIrisgate(text, data_dir=tmp_path, identity="dev")

    def state(gw: Gateway) -> tuple[str, int, str]:
        with client_from("127.0.0.1", gw) as client:
            body = client.get("/api/config").json()
        return body["hash"], body["version"], body["config"]

    grants = [{"src": ["dev@localhost"], "app": {APERTURE: [{"role": "admin"}, {"models": "**"}]}}]
    first = gateway_config(fake_llm.base_url, grants=grants)
    with start(first) as gw:
        hash1, version1, _ = state(gw)
    with start(first) as gw:  # same file: no new version
        assert state(gw)[:2] == (hash1, version1)
    second = first.replace('"llama-local"', '"llama-local", "llama-big"')
    with start(second) as gw:  # changed file: imported as a new version
        hash2, version2, _ = state(gw)
        assert (hash2 != hash1, version2) == (True, version1 + 1)
        assert chat(openai_client(gw, "127.0.0.1"), "llama-big").model == "llama-big"
        # an admin edits through the API
        masked = state(gw)[2]
        edited = masked.replace('"llama-big"', '"llama-big", "llama-api"')
        resp = put_config(gw, edited, hash2, "127.0.0.1")
        assert resp.status_code == 200, resp.text
        hash3 = resp.json()["hash"]
    with start(second) as gw:  # the unchanged file does not undo the API edit
        assert state(gw)[:2] == (hash3, version2 + 1)
        assert chat(openai_client(gw, "127.0.0.1"), "llama-api").model == "llama-api"
    assert fake_llm.requests[-1].json["model"] == "llama-api"


# -- file: secrets ------------------------------------------------------------------------------


def secret_file_config(upstream: str, apikey: str) -> str:
    config = json.loads(gateway_config(upstream).split("\n", 1)[1])
    config["providers"]["openai"]["apikey"] = apikey
    return json.dumps(config, indent=2)


def test_file_secrets_come_only_from_the_secrets_directory(
    fake_llm: FakeLLM, localapi: Any, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "openai").write_text("sk-from-secrets-dir\n", encoding="utf-8")
    assert localapi.socket_path
    with InProcessIrisgate(
        secret_file_config(fake_llm.base_url, "file:openai"),
        data_dir=tmp_path / "data",
        identity="tailscale",
        tailscaled_socket=localapi.socket_path,
        env={"IRISGATE_SECRETS_DIR": str(secrets)},
    ) as gw:
        assert chat(openai_client(gw), "gpt-4o-mini").model == "gpt-4o-mini"
        assert fake_llm.last_request.headers["Authorization"] == "Bearer sk-from-secrets-dir"
        # an admin (or a page acting as one) cannot point a key at any other file
        outside = tmp_path / "data" / "irisgate.db"
        _, base = current(gw)
        refused = put_config(gw, secret_file_config(fake_llm.base_url, f"file:{outside}"), base)
        assert refused.status_code == 400
        assert f"file:{outside} is outside the secrets directory {secrets}" in refused.text
        assert current(gw)[1] == base  # nothing was saved
    # `irisgate config check` applies the same setting
    path = tmp_path / "outside.hujson"
    path.write_text(secret_file_config(fake_llm.base_url, "file:/etc/passwd"), encoding="utf-8")
    done = irisgate_cli("config", "check", "--secrets-dir", str(secrets), str(path))
    assert done.returncode == 1
    problem = f"file:/etc/passwd is outside the secrets directory {secrets}"
    assert f"providers.openai.apikey: {problem}" in done.stderr


def test_a_secret_with_a_control_character_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nul.hujson"
    path.write_text(secret_file_config("http://127.0.0.1:9", "env:NUL_KEY"), encoding="utf-8")
    env = {**os.environ, "NUL_KEY": "sk-abc\x01def", "IRISGATE_SECRETS_DIR": str(tmp_path)}
    done = irisgate_cli("config", "check", str(path), env=env)
    assert done.returncode == 1
    assert "providers.openai.apikey: env:NUL_KEY contains a control character" in done.stderr
    assert "sk-abc" not in done.stderr
