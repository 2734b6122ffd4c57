"""Secret references (literal, env:, file:) and masking secrets in the config text."""

from __future__ import annotations

from pathlib import Path

import pytest

from irisgate.config.hujson import HuJSONSyntaxError, parse
from irisgate.config.model import ConfigError
from irisgate.config.schema import build_config
from irisgate.config.secrets import (
    REDACTED,
    SecretSource,
    mask_text,
    resolve_secret,
    secret_paths,
    unmask,
    unresolved_reason,
)

CONFIG = """\
{
  // the production key
  "providers": {
    "openai": {"baseurl": "https://api.openai.com", "apikey": "sk-live-123", "models": ["gpt-5"]},
    "anthropic": {
      "baseurl": "https://api.anthropic.com",
      "apikey": "env:ANTHROPIC_API_KEY", // a reference, not a secret
      "models": ["claude-sonnet-4-5"],
    },
    "local": {"baseurl": "http://gpu.example.ts.net:8000", "apikey": "", "models": ["m"]},
  },
  "hooks": {"guard": {"url": "https://guard.example.com/hook", "apikey": "hook-secret"}},
  "exporters": {"s3": {"bucket_name": "b", "region": "us-east-1", "access_key_id": "AKIAEXAMPLE",
                       "access_secret": "file:/run/secrets/s3-secret"}},
  "connectors": {"servers": {
    "github": {"protocol": "mcp", "url": "https://api.githubcopilot.com/mcp/",
               "auth": {"type": "bearer_token", "token": "ghp_abc"}},
    "crm": {"protocol": "http", "url": "https://crm.example.com/api",
            "auth": {"type": "oauth2_client_credentials", "token_url": "https://crm.example.com/token",
                     "client_id": "irisgate", "client_secret": "cs-1"}},
  }},
  "mcp": {"servers": {"old": {"url": "https://old.example.com/mcp", "auth": {"password": "pw"}}}},
}
"""


def test_literal_secret_is_its_own_value() -> None:
    secret = resolve_secret("sk-123", {})
    assert (secret.ref, secret.value, secret.is_literal) == ("sk-123", "sk-123", True)
    assert "sk-123" not in repr(secret)


def test_env_secret_comes_from_the_given_mapping_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IRISGATE_TEST_KEY", "from-os-environ")
    assert resolve_secret("env:IRISGATE_TEST_KEY", {"IRISGATE_TEST_KEY": "given"}).value == "given"
    assert resolve_secret("env:IRISGATE_TEST_KEY", {}).value is None


def test_empty_env_variable_counts_as_unset() -> None:
    secret = resolve_secret("env:KEY", {"KEY": ""})
    assert secret.value is None
    assert unresolved_reason("apikey", secret) == "apikey env:KEY is not set"


def test_file_secret_strips_the_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_text("s3cr3t\n", encoding="utf-8")
    secret = resolve_secret(f"file:{path}", SecretSource({}, tmp_path))
    assert secret.value == "s3cr3t"
    assert not secret.is_literal


def test_unreadable_file_secret_has_no_value(tmp_path: Path) -> None:
    secret = resolve_secret(f"file:{tmp_path / 'missing'}", SecretSource({}, tmp_path))
    assert secret.value is None
    assert (
        unresolved_reason("apikey", secret) == f"apikey file:{tmp_path / 'missing'} cannot be read"
    )
    assert unresolved_reason("apikey", resolve_secret("x", {})) is None


def test_file_secrets_are_read_only_inside_the_secrets_directory(tmp_path: Path) -> None:
    secrets, elsewhere = tmp_path / "secrets", tmp_path / "elsewhere"
    (secrets / "team").mkdir(parents=True)
    elsewhere.mkdir()
    (secrets / "team" / "key").write_text("sk-inside\n", encoding="utf-8")
    (elsewhere / "key").write_text("sk-outside\n", encoding="utf-8")
    (secrets / "link").symlink_to(elsewhere / "key")
    source = SecretSource({}, secrets)
    assert resolve_secret(f"file:{secrets}/team/key", source).value == "sk-inside"
    assert resolve_secret("file:team/key", source).value == "sk-inside"  # relative: inside
    for ref in (
        f"file:{elsewhere}/key",
        f"file:{secrets}/../elsewhere/key",
        "file:../elsewhere/key",
        f"file:{secrets}/link",  # a link out of the folder
        "file:/etc/passwd",
    ):
        secret = resolve_secret(ref, source)
        assert secret.value is None, ref
        assert secret.problem.startswith(f"{ref} is outside the secrets directory {secrets}")
        assert "--secrets-dir" in unresolved_reason("apikey", secret)  # type: ignore[operator]
    # a plain mapping: only the default folder
    assert resolve_secret(f"file:{secrets}/team/key", {}).problem.startswith(
        f"file:{secrets}/team/key is outside the secrets directory /run/secrets"
    )


@pytest.mark.parametrize("value", ["sk-\x00abc", "sk-abc\nX-Injected: 1", "sk-\x1b[0m", "sk\x7f"])
def test_secrets_with_control_characters_are_refused(tmp_path: Path, value: str) -> None:
    (tmp_path / "key").write_text(value + "\n", encoding="utf-8")
    source = SecretSource({"KEY": value}, tmp_path)
    literal = resolve_secret(value, source)
    assert literal.value is None
    assert literal.problem == "the literal secret contains a control character"
    assert value not in repr(literal)
    env = resolve_secret("env:KEY", source)
    assert (env.value, env.problem) == (None, "env:KEY contains a control character")
    file = resolve_secret("file:key", source)
    assert (file.value, file.problem) == (None, "file:key contains a control character")


def test_secret_paths_lists_only_literal_secrets() -> None:
    paths = secret_paths(parse(CONFIG).value)
    assert sorted(paths, key=str) == sorted(
        [
            ("providers", "openai", "apikey"),
            ("hooks", "guard", "apikey"),
            ("exporters", "s3", "access_key_id"),
            ("connectors", "servers", "github", "auth", "token"),
            ("connectors", "servers", "crm", "auth", "client_secret"),
            ("mcp", "servers", "old", "auth", "password"),
        ],
        key=str,
    )


def test_secret_paths_tolerates_wrong_types() -> None:
    assert secret_paths({"providers": ["x"], "connectors": {"servers": {"a": 1}}}) == []
    assert secret_paths([]) == []


def test_mask_text_hides_literal_secrets_and_keeps_everything_else() -> None:
    masked = mask_text(CONFIG)
    for secret in ("sk-live-123", "hook-secret", "AKIAEXAMPLE", "ghp_abc", "cs-1", '"pw"'):
        assert secret not in masked
    assert masked.count(f'"{REDACTED}"') == 6
    assert "// the production key" in masked
    assert "// a reference, not a secret" in masked
    assert '"apikey": "env:ANTHROPIC_API_KEY"' in masked
    assert '"access_secret": "file:/run/secrets/s3-secret"' in masked
    assert '"apikey": ""' in masked  # empty keys are not secrets
    assert masked.splitlines()[3] == (
        '    "openai": {"baseurl": "https://api.openai.com", "apikey": "[redacted]", '
        '"models": ["gpt-5"]},'
    )
    assert len(masked.splitlines()) == len(CONFIG.splitlines())


def test_unmask_restores_stored_literals() -> None:
    edited = mask_text(CONFIG).replace('"gpt-5"]', '"gpt-5", "gpt-5-mini"]')
    restored = unmask(edited, CONFIG)
    assert restored == CONFIG.replace('"gpt-5"]', '"gpt-5", "gpt-5-mini"]')
    config, _ = build_config(restored, {"ANTHROPIC_API_KEY": "k"})
    assert config.providers["openai"].apikey.value == "sk-live-123"
    assert config.connectors["github"].auth.secrets["token"].value == "ghp_abc"


def test_unmask_keeps_new_literals_and_references() -> None:
    edited = mask_text(CONFIG).replace(
        f'/hook", "apikey": "{REDACTED}"', '/hook", "apikey": "new-hook-secret"'
    )
    edited = edited.replace(
        f'"apikey": "{REDACTED}", "models"', '"apikey": "env:OPENAI_KEY", "models"'
    )
    restored = unmask(edited, CONFIG)
    assert '"apikey": "env:OPENAI_KEY"' in restored
    assert '"apikey": "new-hook-secret"' in restored
    assert '"token": "ghp_abc"' in restored
    assert REDACTED not in restored


def test_unmask_refuses_redacted_value_without_stored_secret() -> None:
    renamed = mask_text(CONFIG).replace('"openai": {', '"openai2": {')
    renamed = renamed.replace('"guard": {', '"guard2": {')
    with pytest.raises(ConfigError) as caught:
        unmask(renamed, CONFIG)
    issues = caught.value.issues
    assert [issue.path for issue in issues] == [
        "providers.openai2.apikey",
        "hooks.guard2.apikey",
    ]
    assert issues[0].line == 4
    assert issues[1].line == 12
    assert "no secret is stored" in issues[0].message


def test_unmask_moves_the_secrets_of_a_renamed_connector() -> None:
    renamed = mask_text(CONFIG).replace('"github": {', '"gh": {')
    restored = unmask(renamed, CONFIG)
    config, _ = build_config(restored, {"ANTHROPIC_API_KEY": "k"})
    assert "github" not in config.connectors
    assert config.connectors["gh"].auth.secrets["token"].value == "ghp_abc"
    assert config.connectors["crm"].auth.secrets["client_secret"].value == "cs-1"


def test_unmask_does_not_guess_between_several_renamed_connectors() -> None:
    renamed = mask_text(CONFIG).replace('"github": {', '"gh": {').replace('"crm": {', '"sales": {')
    with pytest.raises(ConfigError) as caught:
        unmask(renamed, CONFIG)
    assert [issue.path for issue in caught.value.issues] == [
        "connectors.servers.gh.auth.token",
        "connectors.servers.sales.auth.client_secret",
    ]


def test_unmask_without_any_stored_config() -> None:
    with pytest.raises(ConfigError) as caught:
        unmask(mask_text(CONFIG), "")
    assert len(caught.value.issues) == 6


def test_unmask_leaves_text_without_redactions_untouched() -> None:
    assert unmask(CONFIG, "") == CONFIG


def test_mask_text_rejects_malformed_text() -> None:
    with pytest.raises(HuJSONSyntaxError):
        mask_text('{"providers": ')


def test_a_cloud_credential_may_span_lines_but_holds_no_other_control(tmp_path: Path) -> None:
    pasted = 'keyfile::{\n\t"type": "service_account",\n\t"client_email": "a@b.iam"\n}'
    (tmp_path / "sa").write_text(pasted + "\n", encoding="utf-8")
    source = SecretSource({}, tmp_path)
    assert resolve_secret("file:sa", source).value == pasted
    assert resolve_secret('sigv4::{"access_key_id": "AK\x00"}', source).problem == (
        "the literal secret contains a control character"
    )


def test_each_literal_key_of_a_list_is_masked_and_restored() -> None:
    text = (
        '{"providers": {"p": {"baseurl": "https://x.example", "models": ["m"],\n'
        '  "apikey": ["sk-first-secret", "env:KEY_B", "sk-third-secret"]}}}\n'
    )
    masked = mask_text(text)
    assert "sk-first-secret" not in masked and "sk-third-secret" not in masked
    assert f'["{REDACTED}", "env:KEY_B", "{REDACTED}"]' in masked
    assert unmask(masked, text) == text
    config, _ = build_config(unmask(masked, text), {"KEY_B": "sk-b"})
    assert [config.providers["p"].key_at(i) for i in range(3)] == [
        "sk-first-secret",
        "sk-b",
        "sk-third-secret",
    ]
