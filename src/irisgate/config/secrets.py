"""Secret references in config files, and masking literal secrets in API responses.

A secret field holds either the secret itself (a literal) or a reference: `env:NAME` (an
environment variable, looked up in the mapping the settings pass in, never `os.environ`
directly) or `file:PATH` (the file's content without its trailing newline). A `file:` path
must lie in the secrets directory (`--secrets-dir`, default `/run/secrets`; a relative path
is taken inside it), symbolic links followed: otherwise a config could send any file irisgate
can read (`file:/etc/shadow`, its own database) as a provider key to a `baseurl` of its
choosing. A secret whose value holds a control character is refused too: it would end up in
an HTTP header.

The management API shows the config text to admins with every literal secret replaced by
`"[redacted]"`; `mask_text` does that in place, keeping comments and layout. When an admin
saves text that still holds `"[redacted]"` at a secret field, `unmask` puts the stored literal
back. References (`env:`, `file:`, `keyid:`) are not secret and are never masked.

`keyid:ID` is Aperture's reference into its hosted key store, which irisgate does not have:
such a field resolves to no value (the provider leaves routing, `config check` says what to
write instead) and the reference itself is never sent anywhere as a key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from irisgate.config.cloudkeys import is_cloud_key
from irisgate.config.hujson import Document, KeyPath, parse, render_path
from irisgate.config.model import ConfigError, ConfigIssue, Secret

REDACTED = "[redacted]"
#: Aperture's hosted key-store reference (`keyid:anthropic-prod`); irisgate cannot resolve it
KEYID_PREFIX = "keyid:"

#: Secret fields of a connector's `auth` object (`key` is api_key's alias of `secret`).
CONNECTOR_SECRET_FIELDS: tuple[str, ...] = ("token", "secret", "key", "password", "client_secret")
S3_SECRET_FIELDS: tuple[str, ...] = ("access_key_id", "access_secret")
#: where `file:` secrets may be read from when nothing else is set
DEFAULT_SECRETS_DIR = Path("/run/secrets")
#: C0 controls and DEL: never part of a key, and they would corrupt the header carrying it
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: in a cloud credential (`keyfile::` / `sigv4::` JSON, never sent as it is) line breaks and
#: tabs are JSON whitespace, as in a service account file pasted whole; the rest is refused
_CLOUD_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class SecretSource(Mapping[str, str]):
    """The environment `env:` references read, plus the one directory `file:` ones may read.

    It is the environment mapping the config readers already take; a plain mapping given
    instead allows `file:` references in DEFAULT_SECRETS_DIR only.
    """

    def __init__(self, env: Mapping[str, str], files_dir: Path = DEFAULT_SECRETS_DIR) -> None:
        self._env = env
        self.files_dir = files_dir

    def __getitem__(self, name: str) -> str:
        return self._env[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._env)

    def __len__(self) -> int:
        return len(self._env)


def resolve_secret(ref: str, env: Mapping[str, str]) -> Secret:
    """Resolve one secret field: a literal, `env:NAME` from `env`, or `file:PATH` inside the
    secrets directory (see SecretSource).

    An unset or empty variable and an unreadable file resolve to `value=None`; the caller
    decides what that means (a provider leaves routing, see `unresolved_reason`). A path
    outside the directory, or a value with a control character, resolves to `value=None`
    with `problem` saying why (a config error).
    """
    if ref.startswith("env:"):
        secret = Secret(ref, env.get(ref[4:]) or None)
    elif ref.startswith(KEYID_PREFIX):
        secret = Secret(ref, None)
    elif ref.startswith("file:"):
        files_dir = env.files_dir if isinstance(env, SecretSource) else DEFAULT_SECRETS_DIR
        secret = _read_secret_file(ref, files_dir)
    else:
        secret = Secret(ref, ref)
    control = _CLOUD_CONTROL if is_cloud_key(secret.value) else _CONTROL
    if secret.value is not None and control.search(secret.value):
        what = "the literal secret" if secret.is_literal else ref
        return Secret(ref, None, f"{what} contains a control character")
    return secret


def _read_secret_file(ref: str, files_dir: Path) -> Secret:
    """The file's content (trailing newline removed), if the file is in `files_dir`."""
    try:
        allowed = files_dir.resolve()
        path = (allowed / ref[5:]).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return Secret(ref, None)
    if not path.is_relative_to(allowed):
        return Secret(
            ref,
            None,
            f"{ref} is outside the secrets directory {files_dir} (set --secrets-dir /"
            " IRISGATE_SECRETS_DIR to the folder holding the key files)",
        )
    try:
        content = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return Secret(ref, None)
    return Secret(ref, content.rstrip("\r\n"))


def unresolved_reason(field_name: str, secret: Secret) -> str | None:
    """Why `secret` has no value, e.g. "apikey env:OPENAI_API_KEY is not set"; None if it has."""
    if secret.value is not None:
        return None
    if secret.problem:
        return f"{field_name} {secret.problem}"
    if secret.ref.startswith("env:"):
        return f"{field_name} {secret.ref} is not set"
    if secret.ref.startswith(KEYID_PREFIX):
        return (
            f"{field_name} {secret.ref} refers to Aperture's hosted key store, which irisgate"
            " does not have: write the key as env:NAME (an environment variable), file:PATH"
            " (a file in the secrets directory) or the key itself"
        )
    return f"{field_name} {secret.ref} cannot be read"


def secret_paths(raw: Any) -> list[KeyPath]:
    """Key paths of the secret fields in `raw` that hold literal (non-empty) secrets.

    Covers providers.*.apikey (each entry of a list of keys), hooks.*.apikey, exporters.s3
    access_key_id / access_secret, alerts.channels.*.url, alerts.smtp.password, and the auth
    secrets of connectors.servers.* and of the deprecated mcp.servers.*. Values of the wrong
    type are skipped: this runs on unvalidated input too.
    """
    return [path for path in _secret_fields(raw) if _is_literal_secret(_lookup(raw, path))]


def _secret_fields(raw: Any) -> Iterator[KeyPath]:
    """Every path where a secret may sit in `raw`, whether or not a value is there."""
    for section in ("providers", "hooks"):
        for name in _keys(raw, (section,)):
            keys = _lookup(raw, (section, name, "apikey"))
            if section == "providers" and isinstance(keys, list):  # several keys
                yield from ((section, name, "apikey", index) for index in range(len(keys)))
            else:
                yield (section, name, "apikey")
    for field in S3_SECRET_FIELDS:
        yield ("exporters", "s3", field)
    for name in _keys(raw, ("alerts", "channels")):
        yield ("alerts", "channels", name, "url")  # a webhook URL is its own credential
    yield ("alerts", "smtp", "password")
    for section in ("connectors", "mcp"):
        for name in _keys(raw, (section, "servers")):
            for field in CONNECTOR_SECRET_FIELDS:
                yield (section, "servers", name, "auth", field)


def _keys(raw: Any, path: KeyPath) -> list[str]:
    node = _lookup(raw, path)
    return list(node) if isinstance(node, dict) else []


def _lookup(raw: Any, path: KeyPath) -> Any:
    node = raw
    for part in path:
        if isinstance(part, int):
            if not isinstance(node, list) or not 0 <= part < len(node):
                return None
        elif not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _is_literal_secret(value: Any) -> bool:
    return isinstance(value, str) and value != "" and Secret(value, None).is_literal


def mask_text(text: str) -> str:
    """`text` with every literal secret value replaced by `"[redacted]"`.

    Comments, key order and layout are kept. Raises `HuJSONSyntaxError` if `text` is not
    valid HuJSON (a stored config always is).
    """
    document = parse(text)
    return _replace(document, {path: json.dumps(REDACTED) for path in secret_paths(document.value)})


def unmask(new_raw_text: str, current_text: str) -> str:
    """`new_raw_text` with each `"[redacted]"` secret replaced by the literal stored now.

    A `"[redacted]"` value at a secret path is restored from the same path of `current_text`
    (token text copied as written); a renamed connector's come from its old id (see
    `_renamed_connector`). If the current text holds no literal secret there (the
    provider was renamed, or the field is new), raise `ConfigError` naming every such path:
    the admin has to type the secret. An empty `current_text` means nothing is stored.
    Raises `HuJSONSyntaxError` if `new_raw_text` is not valid HuJSON.
    """
    new = parse(new_raw_text)
    redacted = [path for path in secret_paths(new.value) if _lookup(new.value, path) == REDACTED]
    if not redacted:
        return new_raw_text
    current = parse(current_text) if current_text.strip() else None
    moved = _renamed_connector(new.value, current.value if current else None)
    replacements: dict[KeyPath, str] = {}
    issues: list[ConfigIssue] = []
    for path in redacted:
        token = _stored_token(current, path)
        if token is None and path[:3] in moved:
            token = _stored_token(current, moved[path[:3]] + path[3:])
        if token is None:
            issues.append(_missing_secret_issue(new, path))
        else:
            replacements[path] = token
    if issues:
        raise ConfigError(issues)
    return _replace(new, replacements)


def _renamed_connector(new: Any, current: Any) -> dict[KeyPath, KeyPath]:
    """{new id's path: old id's path} when this save renames one connector.

    A save that removes exactly one connector id and adds exactly one is a rename (the
    dashboard's connector editor saves a rename that way): the new entry's `"[redacted]"`
    secrets come from the old one. Anything more ambiguous restores nothing.
    """
    if current is None:
        return {}
    base = ("connectors", "servers")
    old_ids, new_ids = set(_keys(current, base)), set(_keys(new, base))
    removed, added = old_ids - new_ids, new_ids - old_ids
    if len(removed) != 1 or len(added) != 1:
        return {}
    return {(*base, added.pop()): (*base, removed.pop())}


def _stored_token(document: Document | None, path: KeyPath) -> str | None:
    """The literal secret at `path` as written in the document's text; None if there is none."""
    if document is None:
        return None
    value = _lookup(document.value, path)
    span = document.span_of(path)
    if span is None or not _is_literal_secret(value) or value == REDACTED:
        return None
    return document.text[span[0] : span[1]]


def _missing_secret_issue(document: Document, path: KeyPath) -> ConfigIssue:
    return ConfigIssue(
        render_path(path),
        f'is "{REDACTED}" but no secret is stored at this path to restore; enter the secret',
        document.line_of(path),
    )


def _replace(document: Document, replacements: Mapping[KeyPath, str]) -> str:
    """The document's text with the value token at each path replaced by the given text."""
    spans = sorted(
        (span, token)
        for path, token in replacements.items()
        if (span := document.span_of(path)) is not None
    )
    out: list[str] = []
    position = 0
    for (start, end), token in spans:
        out.append(document.text[position:start])
        out.append(token)
        position = end
    out.append(document.text[position:])
    return "".join(out)
