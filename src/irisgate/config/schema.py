"""Config text -> validated, immutable `Config` (reference §2).

The file is Aperture's HuJSON config; an Aperture file loads unchanged. Validation reports
every problem at once, each with its key path and line: errors make the config unusable
(`ConfigError`), warnings (unknown keys, deprecated sections, unset `env:` secrets) do not.
Each section has its own reader module; this one runs them in order and assembles `Config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from irisgate.config import hujson
from irisgate.config.model import Capability, Config, ConfigError, ConfigIssue
from irisgate.config.reader import IssueLog, Section, type_name
from irisgate.config.schema_alerts import read_alerts
from irisgate.config.schema_connectors import check_deprecated_mcp, read_connectors
from irisgate.config.schema_grants import Names, read_capability, read_grants, read_temp_grants
from irisgate.config.schema_providers import read_providers
from irisgate.config.schema_sections import (
    read_chat,
    read_database,
    read_flags,
    read_hooks,
    read_quotas,
    read_rate_limits,
    read_s3_exporter,
)

TOP_LEVEL_KEYS: tuple[str, ...] = (
    "providers",
    "grants",
    "temp_grants",
    "quotas",
    "rate_limits",
    "hooks",
    "exporters",
    "connectors",
    "mcp",
    "database",
    "flags",
    "chat",
    "auto_cost_basis",
    "alerts",
)


@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything known about one config text: the Config when it has no errors."""

    config: Config | None
    errors: list[ConfigIssue] = field(default_factory=list)
    warnings: list[ConfigIssue] = field(default_factory=list)
    #: errors that leave the config usable: what they affect fails closed (invalid quotas)
    contained: list[ConfigIssue] = field(default_factory=list)

    @property
    def issues(self) -> list[ConfigIssue]:
        """Errors and warnings together, in file order (issues without a line last)."""
        return sort_issues([*self.errors, *self.contained, *self.warnings])


def build_config(text: str, env: Mapping[str, str]) -> tuple[Config, list[ConfigIssue]]:
    """Parse and validate `text`; return the Config and its warnings (contained errors too:
    an invalid quota is reported but only the requests it would charge are refused).

    `env` resolves `env:NAME` secrets (settings pass the process environment in). Raises
    `ConfigError` carrying every error, a HuJSON syntax error included (as one issue at its
    line).
    """
    analysis = analyze(text, env)
    if analysis.config is None:
        raise ConfigError(analysis.errors)
    return analysis.config, sort_issues([*analysis.contained, *analysis.warnings])


def analyze(text: str, env: Mapping[str, str]) -> Analysis:
    """Parse and validate `text`, collecting errors and warnings instead of raising."""
    try:
        document = hujson.parse(text)
    except hujson.HuJSONSyntaxError as exc:
        return Analysis(config=None, errors=[syntax_issue(exc)])
    if not isinstance(document.value, dict):
        message = f"the config must be a JSON object, not {type_name(document.value)}"
        return Analysis(config=None, errors=[ConfigIssue("", message, document.line_of(()))])
    log = IssueLog(document)
    config = _read_config(Section(log, (), document.value), env)
    errors = sort_issues(log.errors)
    return Analysis(
        config=None if errors else config,
        errors=errors,
        warnings=sort_issues(log.warnings),
        contained=sort_issues(log.contained),
    )


def syntax_issue(exc: hujson.HuJSONSyntaxError) -> ConfigIssue:
    """A HuJSON syntax error as a ConfigIssue of the whole file, located by line."""
    return ConfigIssue("", f"syntax error at column {exc.column}: {exc.message}", exc.line)


def sort_issues(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    return sorted(issues, key=lambda i: (i.line is None, i.line or 0))


def _read_config(root: Section, env: Mapping[str, str]) -> Config:
    """Every section of the file, in an order where references can be checked."""
    root.check_keys(TOP_LEVEL_KEYS)
    names = Names(
        quotas=_names(root.data, "quotas"),
        rate_limits=_names(root.data, "rate_limits"),
        hooks=_names(root.data, "hooks"),
    )
    providers = read_providers(root, env)
    quotas, broken_quotas = read_quotas(root)
    rate_limits = read_rate_limits(root)
    hooks = read_hooks(root, env)
    grants = read_grants(root.log, root, names) + read_temp_grants(root.log, root, names)
    s3_exporter = read_s3_exporter(root, env)
    connectors = read_connectors(root, env)
    check_deprecated_mcp(root)
    return Config(
        providers=providers,
        grants=tuple(grants),
        quotas=quotas,
        broken_quotas=broken_quotas,
        rate_limits=rate_limits,
        hooks=hooks,
        s3_exporter=s3_exporter,
        connectors=connectors,
        database=read_database(root),
        flags=read_flags(root),
        chat_models=read_chat(root),
        auto_cost_basis=root.flag("auto_cost_basis", True),
        alerts=read_alerts(root, env, names.quotas or ()),
        raw=root.data,
    )


def _names(raw: Mapping[str, Any], section: str) -> frozenset[str]:
    """The keys of a top-level map (quota buckets, hook names), whatever their values hold."""
    value = raw.get(section)
    return frozenset(value) if isinstance(value, dict) else frozenset()


def parse_capability(raw: Any) -> Capability | None:
    """One `tailscale.com/cap/aperture` object from outside the file (a caller's CapMap).

    Quota and hook names are not checked against a config here. Returns None when the object
    is invalid: a malformed capability grants nothing.
    """
    log = IssueLog()
    section = Section.of(log, (), raw)
    capability = read_capability(section, Names()) if section is not None else None
    return capability if not log.errors else None
