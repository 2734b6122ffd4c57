"""Grants: what one caller may do, computed from the config and the caller's identity.

Deny by default, additive, no deny rules (reference §4.2). A grant applies when one of its
`src` entries is `*`, the caller's login name (for tagged nodes the sorted comma-joined tags),
one of the node's tags, or one of the caller's groups. Capabilities from the caller's CapMap
(tailnet policy file) join those of the config. `role` is required for anything; admin beats
user. Model globs match `provider/model`: `*` within a segment, `**` across segments.

A caller with an API key is its owner (by login name) narrowed by the key's own model globs:
a model must match both a granted glob and one of the key's (`Access.key_models`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from irisgate.config.model import Capability, Config, Grant, Role
from irisgate.identity import Identity

CapabilityParser = Callable[[Any], Capability | None]


@lru_cache(maxsize=4096)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """`**` matches across `/`, `*` within one segment, `?` one character; the rest literal."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append("[^/]*" if ch == "*" else "[^/]" if ch == "?" else re.escape(ch))
        i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def glob_matches(pattern: str, value: str) -> bool:
    return compile_glob(pattern).match(value) is not None


@dataclass(slots=True)
class Access:
    """The union of every capability granted to one caller under one config version."""

    role: Role | None
    capabilities: tuple[Capability, ...]
    opaque: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    _model_cache: dict[str, bool] = field(default_factory=dict)
    _scoped_cache: dict[str, tuple[Capability, ...]] = field(default_factory=dict)
    #: per-request derivations kept with this caller's access (see `memo`)
    _memo: dict[Any, Any] = field(default_factory=dict)
    #: an API key's model globs: only models matching one of these too (() for no limit)
    key_models: tuple[str, ...] = ()

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_use_model(self, fqn: str) -> bool:
        allowed = self._model_cache.get(fqn)
        if allowed is None:
            allowed = any(glob_matches(g, fqn) for cap in self.capabilities for g in cap.models)
            if allowed and self.key_models:
                allowed = any(glob_matches(g, fqn) for g in self.key_models)
            if len(self._model_cache) < 4096:
                self._model_cache[fqn] = allowed
        return allowed

    def scoped(self, fqn: str) -> tuple[Capability, ...]:
        """Capabilities that apply to a request for `fqn`: unscoped ones and matching ones."""
        found = self._scoped_cache.get(fqn)
        if found is None:
            found = tuple(
                cap
                for cap in self.capabilities
                if not cap.models or any(glob_matches(g, fqn) for g in cap.models)
            )
            if len(self._scoped_cache) < 4096:
                self._scoped_cache[fqn] = found
        return found

    def memo(self, key: Any, make: Callable[[], Any]) -> Any:
        """`make()`, computed once per `key` for this access (it lives as long as the config
        version and identity it was computed for); at most 4096 keys are kept."""
        try:
            return self._memo[key]
        except KeyError:
            value = make()
            if len(self._memo) < 4096:
                self._memo[key] = value
            return value

    def add_headers_for(self, fqn: str) -> list[tuple[str, str]]:
        return [h for cap in self.scoped(fqn) for h in cap.add_headers]

    def may_use_connector(self, connector_id: str) -> bool:
        """Some `connectors` glob reaches this connector (its first segment matches the id)."""
        return any(
            glob_matches(g.split("/", 1)[0], connector_id)
            for cap in self.capabilities
            for g in cap.connectors
        )

    def may_use_connector_item(self, connector_id: str, name: str) -> bool:
        """A `connectors` glob matches `<id>/<name>` (an MCP tool or resource)."""
        fqn = f"{connector_id}/{name}"
        return any(glob_matches(g, fqn) for cap in self.capabilities for g in cap.connectors)

    def may_use_http_path(self, connector_id: str, path: str) -> bool:
        """HTTP connectors: a glob matches `<id>` (the whole API) or `<id>/<path>`."""
        fqn = f"{connector_id}/{path}"
        return any(
            glob_matches(g, connector_id) or glob_matches(g, fqn)
            for cap in self.capabilities
            for g in cap.connectors
        )

    @property
    def read_metrics(self) -> bool:
        return any(cap.read_metrics for cap in self.capabilities)

    @property
    def chat_enabled(self) -> bool:
        """Chat is on unless a matching capability turns it off (reference §2.4)."""
        return all(cap.enable_chat_ui is not False for cap in self.capabilities)


def src_matches(src: str, identity: Identity) -> bool:
    if src in ("*", identity.login_name):
        return True
    if src.startswith("tag:"):
        return src in identity.tags
    if src.startswith("group:"):
        return src in identity.groups or src[6:] in identity.groups
    return src in identity.groups  # SCIM groups named by email


class GrantIndex:
    """Evaluates grants of one config version; results are cached per distinct identity."""

    def __init__(self, config: Config, parse_capability: CapabilityParser) -> None:
        self._grants: tuple[Grant, ...] = config.grants
        self._parse_capability = parse_capability
        self._cache: dict[tuple[str, tuple[str, ...], tuple[str, ...], str, str], Access] = {}

    def access_for(self, identity: Identity) -> Access:
        key_id = identity.key.id if identity.key is not None else ""
        key = (identity.login_name, identity.tags, identity.groups, identity.capmap_key, key_id)
        access = self._cache.get(key)
        if access is None:
            access = self._evaluate(identity)
            if len(self._cache) >= 10_000:
                self._cache.clear()
            self._cache[key] = access
        return access

    def _evaluate(self, identity: Identity) -> Access:
        caps: list[Capability] = []
        opaque: dict[str, list[Any]] = {}
        for grant in self._grants:
            if any(src_matches(s, identity) for s in grant.src):
                caps.extend(grant.capabilities)
                for name, values in grant.opaque.items():
                    opaque.setdefault(name, []).extend(values)
        for raw in identity.aperture_caps:  # grants from the tailnet policy file
            cap = self._parse_capability(raw)
            if cap is not None:
                caps.append(cap)
        for name, values in identity.capmap.items():
            if name != "tailscale.com/cap/aperture":
                opaque.setdefault(name, []).extend(values)
        roles = {cap.role for cap in caps if cap.role}
        role: Role | None = "admin" if "admin" in roles else "user" if "user" in roles else None
        return Access(
            role=role,
            capabilities=tuple(caps),
            opaque={k: tuple(v) for k, v in opaque.items()},
            key_models=identity.key.models if identity.key is not None else (),
        )
