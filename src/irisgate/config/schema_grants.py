"""Validation of `grants` and the legacy `temp_grants` (reference §2.4, §4.2).

Each grant's `app` maps capability names to lists. The `tailscale.com/cap/aperture` items
become `Capability` objects; every other capability is kept opaque for hooks. The legacy alpha
form (`temp_grants`) is translated into the same `Grant` objects.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any

from irisgate.config.hujson import KeyPath
from irisgate.config.model import Capability, Grant, HookRef, QuotaRef, Role
from irisgate.config.reader import IssueLog, Section, not_one_of

APERTURE_CAPABILITY = "tailscale.com/cap/aperture"
ROLES: dict[str, Role] = {"user": "user", "admin": "admin"}
HOOK_EVENTS: tuple[str, ...] = ("pre_request", "entire_request", "tool_call_entire_request")
HOOK_SEND: tuple[str, ...] = (
    "request_body",
    "response_body",
    "raw_responses",
    "user_message",
    "tools",
    "grants",
    "estimated_cost",
    "quotas",
)

_MODEL_GLOB = re.compile(r"[A-Za-z0-9._:@+/*?-]+")
_GRANT_KEYS = ("src", "dst", "ip", "app")
_CAPABILITY_KEYS = (
    "role",
    "models",
    "quotas",
    "rate_limits",
    "send_hooks",
    "add_headers",
    "connectors",
    "enable_chat_ui",
    "read_metrics",
    "read_pricing",
    "set_cors",
    "filterable_headers",
)
#: Capability keys accepted and kept in `Capability.raw` without validation.
_KEPT_CAPABILITY_KEYS = (
    "mcp_tools",
    "mcp_resources",
    "mcp_templates",
    "direct_paths",
    "skills",
    "cors_paths",
    "Access-Control-Allow-Origin",
    "Access-Control-Allow-Methods",
    "Access-Control-Allow-Headers",
)
_DEPRECATED_MCP_KEYS = ("mcp_tools", "mcp_resources", "mcp_templates")


@dataclass(frozen=True, slots=True)
class Names:
    """Names defined elsewhere in the file that grants may refer to; None skips the check."""

    quotas: Collection[str] | None = None
    rate_limits: Collection[str] | None = None
    hooks: Collection[str] | None = None


def read_grants(log: IssueLog, root: Section, names: Names) -> list[Grant]:
    """The `grants` list; items with errors are logged and left out."""
    if not root.has("grants"):
        return []
    value = root.data["grants"]
    if not isinstance(value, list):
        log.wrong_type(root.at("grants"), "a list of grants", value)
        return []
    grants: list[Grant] = []
    for index, item in enumerate(value):
        section = Section.of(log, ("grants", index), item)
        grant = _grant(section, names) if section is not None else None
        if grant is not None:
            grants.append(grant)
    return grants


def _grant(section: Section, names: Names) -> Grant | None:
    errors_before = len(section.log.errors)
    section.check_keys(_GRANT_KEYS)
    src = section.texts("src", required=True)
    section.texts("dst")
    section.texts("ip")
    if not section.has("app"):
        section.error("app", "is required (an object of capability name -> list)")
    app = section.child("app")
    capabilities, opaque = _app(app, names) if app is not None else ([], {})
    if len(section.log.errors) > errors_before:
        return None
    return Grant(src=src, capabilities=tuple(capabilities), opaque=opaque)


def _app(app: Section, names: Names) -> tuple[list[Capability], dict[str, tuple[Any, ...]]]:
    """Aperture capabilities and the opaque others of one grant's `app` object."""
    capabilities: list[Capability] = []
    opaque: dict[str, tuple[Any, ...]] = {}
    for name, items in app.items():
        if not isinstance(items, list):
            app.log.wrong_type(app.at(name), "a list", items)
        elif name == APERTURE_CAPABILITY:
            capabilities.extend(_capabilities(app.log, app.at(name), items, names))
        else:
            opaque[name] = tuple(items)
    return capabilities, opaque


def _capabilities(log: IssueLog, path: KeyPath, items: list[Any], names: Names) -> list[Capability]:
    capabilities: list[Capability] = []
    for index, item in enumerate(items):
        section = Section.of(log, (*path, index), item)
        capability = read_capability(section, names) if section is not None else None
        if capability is not None:
            capabilities.append(capability)
    return capabilities


def read_capability(section: Section, names: Names) -> Capability | None:
    """One `tailscale.com/cap/aperture` object; None (errors logged) when it is invalid."""
    errors_before = len(section.log.errors)
    section.check_keys(_CAPABILITY_KEYS, kept=_KEPT_CAPABILITY_KEYS)
    role = ROLES.get(section.choice("role", ROLES, "")) if section.has("role") else None
    for key in _DEPRECATED_MCP_KEYS:
        if section.has(key):
            section.typed(key, str, "a glob string", "")
            section.warn(key, "is deprecated (kept but not enforced); use connectors globs")
    section.flag("read_pricing", False)
    section.flag("set_cors", False)
    capability = Capability(
        role=role,
        models=_models(section),
        quotas=_quota_refs(section, names.quotas),
        rate_limits=_rate_limit_refs(section, names.rate_limits),
        send_hooks=_hook_refs(section, names.hooks),
        add_headers=section.header_lines("add_headers"),
        connectors=section.texts("connectors"),
        enable_chat_ui=section.optional_flag("enable_chat_ui"),
        read_metrics=section.flag("read_metrics", False),
        filterable_headers=tuple(h.lower() for h in section.texts("filterable_headers")),
        raw=dict(section.data),
    )
    return capability if len(section.log.errors) == errors_before else None


def _models(section: Section) -> tuple[str, ...]:
    """`models`: one glob string or a list of them, each `provider/model` with glob chars."""
    if not section.has("models"):
        return ()
    value = section.data["models"]
    path = section.at("models")
    if isinstance(value, str):
        if value == "":
            section.log.error(path, "must not be empty (a provider/model glob)")
        candidates: list[tuple[KeyPath, str]] = [(path, value)]
    elif isinstance(value, list):
        list(section.list_texts(path, value))  # logs items that are not non-empty strings
        candidates = [((*path, i), g) for i, g in enumerate(value) if isinstance(g, str)]
    else:
        section.log.wrong_type(path, "a glob string or a list of them", value)
        return ()
    return tuple(g for p, g in candidates if g and _valid_model_glob(section.log, p, g))


def _valid_model_glob(log: IssueLog, path: KeyPath, glob: str) -> bool:
    if _MODEL_GLOB.fullmatch(glob):
        return True
    bad = sorted({c for c in glob if not _MODEL_GLOB.fullmatch(c)})
    log.error(
        path,
        f'model glob "{glob}" contains {", ".join(repr(c) for c in bad)}; allowed are letters, '
        "digits and . _ - : @ + / * ?",
    )
    return False


def _quota_refs(section: Section, defined: Collection[str] | None) -> tuple[QuotaRef, ...]:
    refs: list[QuotaRef] = []
    for item in section.objects("quotas"):
        item.check_keys(("bucket", "overdraft"))
        bucket = item.required_text("bucket", "the name of a bucket in quotas")
        if bucket is not None:
            _require_defined(item, ("bucket",), bucket, defined, "quotas")
        overdraft = item.texts("overdraft")
        for index, name in enumerate(overdraft):
            _require_defined(item, ("overdraft", index), name, defined, "quotas")
            if name == bucket or name in overdraft[:index]:
                item.log.error(
                    (*item.at("overdraft"), index),
                    f'"{name}" appears twice in this overdraft chain (each bucket once)',
                )
        if bucket is not None:
            refs.append(QuotaRef(bucket=bucket, overdraft=overdraft))
    return tuple(refs)


def _rate_limit_refs(section: Section, defined: Collection[str] | None) -> tuple[str, ...]:
    """`rate_limits`: names of `rate_limits` templates, each defined (an error otherwise:
    a limit that does not exist would silently not limit)."""
    names = section.texts("rate_limits")
    for index, name in enumerate(names):
        _require_defined(section, ("rate_limits", index), name, defined, "rate_limits")
    return tuple(dict.fromkeys(names))


def _hook_refs(section: Section, defined: Collection[str] | None) -> tuple[HookRef, ...]:
    refs: list[HookRef] = []
    for item in section.objects("send_hooks"):
        item.check_keys(("name", "events", "send"))
        name = item.required_text("name", "the name of a hook in hooks")
        if name is not None:
            _require_defined(item, ("name",), name, defined, "hooks")
        events = _subset(item, "events", HOOK_EVENTS)
        if not item.has("events"):
            item.warn("events", "no events listed: this hook never fires")
        send = _subset(item, "send", HOOK_SEND)
        if name is not None:
            refs.append(HookRef(name=name, events=events, send=send))
    return tuple(refs)


def _subset(section: Section, key: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    values = section.texts(key)
    for index, value in enumerate(values):
        if value not in allowed:
            section.log.error((*section.at(key), index), not_one_of(value, allowed))
    return tuple(v for v in values if v in allowed)


def _require_defined(
    section: Section, key: KeyPath, name: str, defined: Collection[str] | None, where: str
) -> None:
    if defined is None or name in defined:
        return
    known = ", ".join(sorted(defined)) or "none"
    message = f'"{name}" is not defined in {where} (defined: {known})'
    if where == "quotas":  # the grant still works; requests charging the bucket get 429
        section.log.contain((*section.path, *key), f"{message}; requests charging it get 429")
    else:
        section.log.error((*section.path, *key), message)


def read_temp_grants(log: IssueLog, root: Section, names: Names) -> list[Grant]:
    """Translate the legacy alpha `temp_grants` into grants (reference §4.2).

    `{"src": [...], "grants": [{"role": "admin"}, {"providers": [{"provider": "*",
    "model": "*"}]}]}`: each inner object becomes one capability; provider/model pairs become
    model globs: ("*", "*") -> "**", (p, "*") -> "p/**", ("*", m) -> "*/m", (p, m) -> "p/m".
    Other inner keys are read as capability fields.
    """
    if not root.has("temp_grants"):
        return []
    root.warn("temp_grants", "is the legacy alpha grant syntax; translated to grants")
    grants: list[Grant] = []
    for section in root.objects("temp_grants"):
        errors_before = len(log.errors)
        section.check_keys(("src", "grants"))
        src = section.texts("src", required=True)
        if not section.has("grants"):
            section.error("grants", "is required (a list of legacy grant objects)")
        capabilities = [_temp_capability(inner, names) for inner in section.objects("grants")]
        if len(log.errors) == errors_before:
            grants.append(Grant(src=src, capabilities=tuple(c for c in capabilities if c)))
    return grants


def _temp_capability(section: Section, names: Names) -> Capability | None:
    data = {k: v for k, v in section.data.items() if k != "providers"}
    globs = [_provider_glob(pair) for pair in section.objects("providers")]
    if section.has("providers"):
        data["models"] = [g for g in globs if g is not None]
    translated = read_capability(Section(section.log, section.path, data), names)
    return None if translated is None else replace(translated, raw=dict(section.data))


def _provider_glob(pair: Section) -> str | None:
    pair.check_keys(("provider", "model"))
    provider = pair.required_text("provider", 'a provider id or "*"')
    model = pair.required_text("model", 'a model id or "*"')
    if provider is None or model is None:
        return None
    if model == "*":
        glob = "**" if provider == "*" else f"{provider}/**"
    else:
        glob = f"{provider}/{model}"
    return glob if _valid_model_glob(pair.log, pair.path, glob) else None
