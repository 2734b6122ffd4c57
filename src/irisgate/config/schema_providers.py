"""Validation of `providers` (reference §2.3, §3.1-3.5).

A provider whose key is an unresolvable `env:`/`file:` reference stays in the config with
`unavailable_reason` set (and a warning), so the rest of the gateway keeps working and the
dashboard can say why the provider is out of routing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from irisgate.config import cloudkeys as cloud_keys
from irisgate.config.model import (
    AUTHORIZATION_STYLES,
    COMPATIBILITY_FLAGS,
    COST_BASES,
    DEFAULT_COMPATIBILITY,
    AuthMode,
    CostMapEntry,
    Provider,
    Secret,
)
from irisgate.config.reader import Section, is_number, not_one_of
from irisgate.config.secrets import KEYID_PREFIX, resolve_secret, unresolved_reason

_PROVIDER_ID = re.compile(r"[A-Za-z0-9_-]+")
AUTH_MODES: dict[str, AuthMode] = {
    "": "override",
    "override": "override",
    "passthrough": "passthrough",
    "none": "none",
}
_PROVIDER_KEYS = (
    "baseurl",
    "apikey",
    "models",
    "authorization",
    "compatibility",
    "name",
    "description",
    "preference",
    "disabled",
    "cost_basis",
    "model_cost_map",
    "add_headers",
    "auth_mode",
    "weight",
    "translate",
)
#: the most keys one provider may list
MAX_KEYS = 64
#: Keys Aperture's validator knows whose meaning is not documented: kept in raw, not used.
_KEPT_PROVIDER_KEYS = ("upstream", "tailnet")


def read_providers(root: Section, env: Mapping[str, str]) -> dict[str, Provider]:
    """The `providers` map; providers with errors are logged and left out."""
    section = root.child("providers")
    if section is None:
        return {}
    providers: dict[str, Provider] = {}
    for provider_id, value in section.items():
        if not _PROVIDER_ID.fullmatch(provider_id):
            section.error(provider_id, "provider id may contain only letters, digits, - and _")
            continue
        provider_section = Section.of(root.log, section.at(provider_id), value)
        if provider_section is None:
            continue
        provider = _provider(provider_id, provider_section, env)
        if provider is not None:
            providers[provider_id] = provider
    return providers


def _provider(provider_id: str, section: Section, env: Mapping[str, str]) -> Provider | None:
    errors_before = len(section.log.errors)
    section.check_keys(_PROVIDER_KEYS, kept=_KEPT_PROVIDER_KEYS)
    baseurl = _baseurl(section)
    models = _models(section)
    keys = _keys(section, env)
    if keys:  # the first that resolved stands for them where one key is meant
        apikey = next((key for key in keys if key.value is not None), keys[0])
    elif isinstance(section.data.get("apikey"), list):  # a bad list: already an error
        apikey = Secret("", "")
    else:
        apikey = section.secret("apikey", env)
    auth_mode = AUTH_MODES.get(section.choice("auth_mode", AUTH_MODES, ""), "override")
    provider = Provider(
        id=provider_id,
        baseurl=baseurl or "",
        apikey=apikey,
        models=models,
        authorization=_authorization(section),
        compatibility=_compatibility(section),
        name=section.text("name", "") or provider_id,
        description=section.text("description", ""),
        preference=section.integer("preference", 0),
        disabled=section.flag("disabled", False),
        cost_basis=_cost_basis(section),
        model_cost_map=_model_cost_map(section),
        add_headers=section.header_lines("add_headers"),
        auth_mode=auth_mode,
        unavailable_reason=_unavailable_reason(
            section, keys or (apikey,), auth_mode, baseurl or ""
        ),
        keys=keys,
        weight=_weight(section),
        translate=section.flag("translate", False),
    )
    return provider if len(section.log.errors) == errors_before else None


def _keys(section: Section, env: Mapping[str, str]) -> tuple[Secret, ...]:
    """`apikey` as a list: each entry a secret reference of a plain API key (requests are
    spread over them). () when `apikey` is a single string or absent."""
    value = section.data.get("apikey")
    if not isinstance(value, list):
        return ()
    path = section.at("apikey")
    if not value:
        section.error("apikey", "must not be an empty list (leave apikey out for no key)")
        return ()
    if len(value) > MAX_KEYS:
        section.error("apikey", f"lists {len(value)} keys; at most {MAX_KEYS} are allowed")
        return ()
    keys: list[Secret] = []
    for index, item in enumerate(value):
        if not isinstance(item, str) or not item:
            section.log.wrong_type((*path, index), "a non-empty string (a key or reference)", item)
            continue
        secret = resolve_secret(item, env)
        if secret.problem:
            section.log.error((*path, index), secret.problem)
        elif cloud_keys.is_cloud_key(secret.value):
            section.log.error(
                (*path, index), "a list of keys holds API keys only, not cloud credentials"
            )
        elif secret.value is None:
            reason = unresolved_reason(f"apikey[{index}]", secret)
            section.log.warn((*path, index), f"{reason}: this key is left out of rotation")
        keys.append(secret)
    return tuple(keys) if len(keys) == len(value) else ()


def _weight(section: Section) -> int:
    weight = section.integer("weight", 1)
    if section.has("weight") and not 1 <= weight <= 1000:
        section.error("weight", f"must be from 1 to 1000, not {section.data['weight']}")
        return 1
    return weight


def _baseurl(section: Section) -> str | None:
    """`baseurl` without trailing "/"; a trailing `/v1` is allowed but warned about."""
    url = section.url("baseurl")
    if url is None:
        return None
    url = url.rstrip("/")
    if url.endswith("/v1"):
        section.warn(
            "baseurl",
            "ends in /v1, but irisgate appends the whole API path (/v1/chat/completions, ...);"
            " drop /v1 unless the server really serves under /v1/v1",
        )
    return url


def _models(section: Section) -> tuple[str, ...]:
    models = section.texts("models", required=True)
    seen: set[str] = set()
    for index, model in enumerate(models):
        if model in seen:
            section.log.warn((*section.at("models"), index), f'model "{model}" is listed twice')
        seen.add(model)
    return tuple(dict.fromkeys(models))


def _authorization(section: Section) -> str:
    value = section.text("authorization", "bearer") or "bearer"
    if value in AUTHORIZATION_STYLES:
        return value
    section.error("authorization", not_one_of(value, AUTHORIZATION_STYLES))
    return "bearer"


def _compatibility(section: Section) -> dict[str, bool]:
    """Absent: Aperture's default (openai_chat only). Given: exactly the flags it sets."""
    if not section.has("compatibility"):
        return dict(DEFAULT_COMPATIBILITY)
    block = section.child("compatibility")
    if block is None:
        return dict(DEFAULT_COMPATIBILITY)
    flags: dict[str, bool] = {}
    for name, _value in block.items():
        if name not in COMPATIBILITY_FLAGS:
            block.error(
                name, f"unknown compatibility flag (known: {', '.join(COMPATIBILITY_FLAGS)})"
            )
            continue
        flags[name] = block.flag(name, False)
    return flags


def _cost_basis(section: Section) -> str | None:
    value = section.text("cost_basis", "")
    if value == "":
        return None
    if value in COST_BASES:
        return value
    section.error("cost_basis", not_one_of(value, COST_BASES))
    return None


def _model_cost_map(section: Section) -> tuple[CostMapEntry, ...]:
    entries: list[CostMapEntry] = []
    for item in section.objects("model_cost_map"):
        item.check_keys(("match", "as", "adjustment"))
        match = item.required_text("match", "a model glob")
        as_model = item.required_text("as", "a model name to price as")
        adjustment = item.number("adjustment", 1.0)
        if item.has("adjustment") and is_number(item.data["adjustment"]) and adjustment <= 0:
            item.error("adjustment", f"must be greater than 0, not {item.data['adjustment']}")
        if match is not None and as_model is not None:
            entries.append(CostMapEntry(match=match, as_model=as_model, adjustment=adjustment))
    return tuple(entries)


def _unavailable_reason(
    section: Section, keys: tuple[Secret, ...], auth_mode: AuthMode, baseurl: str
) -> str | None:
    """Why the provider cannot be routed to although enabled: its injected key is missing
    (every key of a list), or is a cloud credential (`keyfile::`, `sigv4::`) that cannot be
    used as written."""
    resolved = [key for key in keys if key.value is not None]
    apikey = resolved[0] if resolved else keys[0]
    cloud_problem = cloud_keys.problem(apikey.value, baseurl)
    if cloud_problem is not None and auth_mode != "none":
        section.warn("apikey", f"{cloud_problem}: provider is out of routing until it is fixed")
        return cloud_problem
    reason = unresolved_reason("apikey", apikey)
    if reason is None:
        return None
    if auth_mode != "override":  # passthrough / none never need the configured key
        if apikey.ref.startswith(KEYID_PREFIX):
            section.warn("apikey", f"{reason}; until then no key is sent on the caller's behalf")
        return None
    section.warn("apikey", f"{reason}: provider is out of routing until it is")
    return reason
