"""Validation of `quotas`, `hooks`, `exporters`, `database`, `flags` (reference §2.5-2.10) and
`chat`.

Each reader takes the top-level `Section`, logs every problem it finds and returns what is
valid; `schema.build_config` refuses the config when anything was logged as an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from irisgate.config.model import (
    AUTHORIZATION_STYLES,
    EXPORT_FORMATS,
    PURGE_CATEGORIES,
    RATE_PERIODS,
    ChatModel,
    DatabaseSettings,
    FilterableHeader,
    Hook,
    Quota,
    RateKind,
    RateLimit,
    Retention,
    S3Exporter,
    Secret,
)
from irisgate.config.reader import IssueLog, Section, parse_header_line
from irisgate.config.secrets import unresolved_reason
from irisgate.config.units import (
    parse_days_or_duration,
    parse_dollars,
    parse_go_duration,
    parse_rate,
)

T = TypeVar("T")

TEMPLATE_VARIABLES: tuple[str, ...] = ("<user>", "<node>")
FAIL_POLICIES: tuple[str, ...] = ("fail_open", "fail_closed")
RETENTION_MIN_SECONDS = 3600
RETENTION_MAX_SECONDS = 3650 * 86400
S3_LIMIT_MAX = 10_000

_TEMPLATE_VARIABLE = re.compile(r"<[^<>]*>")


# --- quotas -------------------------------------------------------------------------------


def read_quotas(root: Section) -> tuple[dict[str, Quota], dict[str, str]]:
    """The `quotas` map: (bucket template -> Quota, bucket template -> why it is invalid).

    An invalid quota does not make the whole config unusable: its problems are logged as
    contained errors (`config check` still fails on them) and the requests that would charge
    it are refused with 429 naming it (fail closed, reference §5.3).
    """
    section = root.child("quotas")
    if section is None:
        return {}, {}
    quotas: dict[str, Quota] = {}
    broken: dict[str, str] = {}
    for template, value in section.items():
        own = IssueLog(root.log.document)
        own_section = Section(own, section.path, section.data)
        template_ok = _check_template(own_section, template)
        quota_section = Section.of(own, section.at(template), value)
        quota = _quota(template, quota_section) if quota_section is not None else None
        root.log.warnings.extend(own.warnings)
        root.log.contained.extend(own.errors)
        if quota is not None and template_ok and not own.errors:
            quotas[template] = quota
        elif own.errors:
            broken[template] = "; ".join(f"{i.path}: {i.message}" for i in own.errors)
    return quotas, broken


def _check_template(section: Section, template: str, what: str = "bucket name") -> bool:
    """A bucket (or rate limit) name may hold only the variables `<user>` and `<node>`."""
    if template.strip() == "":
        section.error(template, f"{what} must not be empty")
        return False
    unknown = [v for v in _TEMPLATE_VARIABLE.findall(template) if v not in TEMPLATE_VARIABLES]
    rest = _TEMPLATE_VARIABLE.sub("", template)
    if unknown:
        section.error(
            template,
            f"unknown template variable {', '.join(unknown)} "
            f"(known: {', '.join(TEMPLATE_VARIABLES)})",
        )
        return False
    if "<" in rest or ">" in rest:
        section.error(template, f"unbalanced '<' or '>' in {what}")
        return False
    if "<node>" in template:
        section.warn(
            template,
            "<node> is the calling device's node id, which only the tailscale identity mode"
            " knows; in serve, dev and oidc modes and for API keys it becomes user:LOGIN"
            f" (one {what.split(maxsplit=1)[0]} per person)",
        )
    return True


def _quota(template: str, section: Section) -> Quota | None:
    section.check_keys(("capacity", "rate", "on_exceed", "default_estimate"))
    capacity_text = section.required_text("capacity", 'a dollar amount like "$10.00"')
    rate_text = section.required_text("rate", 'a rate like "$5.00/day"')
    section.choice("on_exceed", ("reject",), "reject")
    capacity = _parsed(section, "capacity", capacity_text, parse_dollars)
    if capacity is not None and capacity <= 0:
        section.error("capacity", f'must be more than $0, not "{capacity_text}"')
        capacity = None
    rate = _parsed(section, "rate", rate_text, parse_rate)
    estimate_text = section.text("default_estimate", "$0.01")
    estimate = _parsed(section, "default_estimate", estimate_text, parse_dollars)
    if capacity is None or rate is None or capacity_text is None or rate_text is None:
        return None
    if estimate is None:
        return None
    return Quota(
        template=template,
        capacity_nanodollars=capacity,
        rate_nanodollars=rate[0],
        rate_period_seconds=rate[1],
        rate_text=rate_text,
        capacity_text=capacity_text,
        on_exceed="reject",
        default_estimate_nanodollars=estimate,
        default_estimate_given=section.has("default_estimate"),
    )


def _parsed(section: Section, key: str, text: str | None, parser: Callable[[str], T]) -> T | None:
    """`parser(text)`, logging its ValueError at `key`; None when `text` is None or bad."""
    if text is None:
        return None
    try:
        return parser(text)
    except ValueError as exc:
        section.error(key, str(exc))
        return None


# --- rate limits --------------------------------------------------------------------------

RATE_KINDS: tuple[RateKind, ...] = ("requests", "tokens", "concurrent")
#: the largest limit accepted (far above any real one; keeps the arithmetic in 64 bits)
RATE_LIMIT_MAX = 10**12


def read_rate_limits(root: Section) -> dict[str, RateLimit]:
    """The `rate_limits` map: template -> RateLimit. Each template is exactly one of
    `{"requests": N, "per": P}`, `{"tokens": N, "per": P}` (P: second, minute or hour) or
    `{"concurrent": N}`; every problem is an error (the config does not load)."""
    section = root.child("rate_limits")
    if section is None:
        return {}
    limits: dict[str, RateLimit] = {}
    for template, value in section.items():
        errors_before = len(root.log.errors)
        template_ok = _check_template(section, template, "rate limit name")
        limit_section = Section.of(root.log, section.at(template), value)
        limit = _rate_limit(template, limit_section) if limit_section is not None else None
        if limit is not None and template_ok and len(root.log.errors) == errors_before:
            limits[template] = limit
    return limits


def _rate_limit(template: str, section: Section) -> RateLimit | None:
    section.check_keys((*RATE_KINDS, "per"))
    kinds = [kind for kind in RATE_KINDS if section.has(kind)]
    if len(kinds) != 1:
        found = f"it has {' and '.join(kinds)}" if kinds else "it has none"
        section.log.error(
            section.path,
            'must have exactly one of "requests", "tokens" or "concurrent" '
            f'(e.g. {{"requests": 60, "per": "minute"}}); {found}',
        )
        return None
    kind = kinds[0]
    value = section.data[kind]
    if not (isinstance(value, int) and not isinstance(value, bool)) or not (
        0 < value <= RATE_LIMIT_MAX
    ):
        section.error(kind, f"must be a whole number from 1 to {RATE_LIMIT_MAX}, not {value!r}")
        return None
    if kind == "concurrent":
        if section.has("per"):
            section.error("per", 'a "concurrent" limit has no period; remove "per"')
            return None
        return RateLimit(template=template, kind=kind, limit=value)
    if not section.has("per"):
        section.error("per", f'is required with "{kind}": one of {", ".join(RATE_PERIODS)}')
        return None
    per = section.data["per"]
    if per not in RATE_PERIODS:
        section.error("per", f"must be one of {', '.join(RATE_PERIODS)}, not {per!r}")
        return None
    return RateLimit(
        template=template, kind=kind, limit=value, period_seconds=RATE_PERIODS[per], per=per
    )


# --- hooks --------------------------------------------------------------------------------


def read_hooks(root: Section, env: Mapping[str, str]) -> dict[str, Hook]:
    """The `hooks` map: name -> Hook."""
    section = root.child("hooks")
    if section is None:
        return {}
    hooks: dict[str, Hook] = {}
    for name, value in section.items():
        hook_section = Section.of(root.log, section.at(name), value)
        hook = _hook(name, hook_section, env) if hook_section is not None else None
        if hook is not None:
            hooks[name] = hook
    return hooks


def _hook(name: str, section: Section, env: Mapping[str, str]) -> Hook | None:
    errors_before = len(section.log.errors)
    section.check_keys(
        ("url", "apikey", "authorization", "timeout", "disabled", "fail_policy", "preference")
    )
    url = section.url("url")
    apikey = section.secret("apikey", env)
    warn_unresolved(section, "apikey", apikey)
    authorization = (
        section.choice("authorization", ("", *AUTHORIZATION_STYLES), "bearer") or "bearer"
    )
    timeout_text = section.text("timeout", "5s")
    timeout = _parsed(section, "timeout", timeout_text, parse_go_duration)
    if timeout is not None and timeout <= 0:
        section.error("timeout", f'must be longer than 0, not "{timeout_text}"')
    fail_policy = section.choice("fail_policy", FAIL_POLICIES, "fail_open")
    hook = Hook(
        name=name,
        url=url or "",
        apikey=apikey,
        authorization=authorization,
        timeout_seconds=timeout or 5.0,
        disabled=section.flag("disabled", False),
        fail_policy="fail_closed" if fail_policy == "fail_closed" else "fail_open",
        preference=section.integer("preference", 0),
    )
    return hook if len(section.log.errors) == errors_before else None


def warn_unresolved(section: Section, key: str, secret: Secret) -> None:
    """Warn when a secret field's `env:`/`file:` reference has no value."""
    reason = unresolved_reason(key, secret)
    if reason is not None:
        section.warn(key, f"{reason}; used as empty until it is")


# --- exporters ----------------------------------------------------------------------------

_S3_KEYS = (
    "bucket_name",
    "region",
    "access_key_id",
    "access_secret",
    "endpoint",
    "prefix",
    "every",
    "limit",
    "format",
)


def read_s3_exporter(root: Section, env: Mapping[str, str]) -> S3Exporter | None:
    """`exporters.s3`; None when absent or when `bucket_name` is empty (export off)."""
    exporters = root.child("exporters")
    if exporters is None:
        return None
    exporters.check_keys(("s3",))
    section = exporters.child("s3")
    if section is None:
        return None
    section.check_keys(_S3_KEYS)
    bucket_name = section.text("bucket_name", "")
    if bucket_name == "":
        return None
    errors_before = len(section.log.errors)
    region = section.required_text("region", "the bucket's region, also for non-AWS S3")
    access_key_id = section.secret("access_key_id", env)
    access_secret = section.secret("access_secret", env)
    for key, secret in (("access_key_id", access_key_id), ("access_secret", access_secret)):
        warn_unresolved(section, key, secret)
    endpoint = section.url("endpoint", required=False) if section.data.get("endpoint") else ""
    prefix = section.text("prefix", "")
    if prefix.endswith("/"):
        section.error("prefix", f'"{prefix}" must not end with "/"')
    exporter = S3Exporter(
        bucket_name=bucket_name,
        region=region or "",
        access_key_id=access_key_id,
        access_secret=access_secret,
        endpoint=endpoint or "",
        prefix=prefix,
        every_seconds=_bounded(section, "every", 3600, 1, None),
        limit=_bounded(section, "limit", 1000, 1, S3_LIMIT_MAX),
        format=section.choice("format", EXPORT_FORMATS, "cbor.zstd"),
    )
    return exporter if len(section.log.errors) == errors_before else None


def _bounded(section: Section, key: str, default: int, low: int, high: int | None) -> int:
    value = section.integer(key, default)
    if value < low or (high is not None and value > high):
        limits = f"between {low} and {high}" if high is not None else f"at least {low}"
        section.error(key, f"must be {limits}, not {value}")
        return default
    return value


# --- database -----------------------------------------------------------------------------


def read_database(root: Section) -> DatabaseSettings:
    """`database`: retention, indexed headers and raw-body settings."""
    section = root.child("database")
    if section is None:
        return DatabaseSettings()
    section.check_keys(("retention", "headers", "save_raws", "keep_encrypted_blobs"))
    return DatabaseSettings(
        retention=_retention(section.child("retention")),
        filterable_headers=_filterable_headers(section.child("headers")),
        save_raws=section.flag("save_raws", False),
        keep_encrypted_blobs=section.flag("keep_encrypted_blobs", False),
    )


def _retention(section: Section | None) -> Retention:
    if section is None:
        return Retention()
    section.check_keys(("duration", "purge", "require_export"))
    return Retention(
        duration_seconds=_retention_duration(section),
        purge=_purge_categories(section),
        require_export=section.flag("require_export", False),
    )


def _purge_categories(section: Section) -> tuple[str, ...]:
    """`purge`: known categories only; an unknown one is reported and ignored (not fatal, so
    an Aperture file naming categories irisgate does not keep still loads)."""
    known: list[str] = []
    for category in section.texts("purge"):
        if category in PURGE_CATEGORIES:
            known.append(category)
        else:
            section.warn(
                "purge",
                f'"{category}" is not a category irisgate keeps '
                f"({', '.join(PURGE_CATEGORIES)}); ignored",
            )
    return tuple(known)


def _retention_duration(section: Section) -> int | None:
    """None: keep forever (absent); 0: never write bodies ("0"); else 1 hour .. 3650 days."""
    text = section.text("duration", "")
    if text == "":
        return None
    if text == "0":
        return 0
    seconds = _parsed(section, "duration", text, parse_days_or_duration)
    if seconds is None:
        return None
    if not RETENTION_MIN_SECONDS <= seconds <= RETENTION_MAX_SECONDS:
        section.error("duration", f'"{text}" must be "0" or between 1h and 3650d')
        return None
    return int(seconds)


def _filterable_headers(section: Section | None) -> tuple[FilterableHeader, ...]:
    if section is None:
        return ()
    section.check_keys(("filterable",))
    headers: list[FilterableHeader] = []
    for item in section.objects("filterable"):
        item.check_keys(("name", "redact_values"))
        name = item.required_text("name", "a header name")
        redact = item.flag("redact_values", False)
        problem = parse_header_line(f"{name}: x") if name is not None else None
        if isinstance(problem, str):
            item.error("name", problem)
        elif name is not None:
            headers.append(FilterableHeader(name=name.lower(), redact_values=redact))
    return tuple(headers)


# --- flags and top-level scalars ----------------------------------------------------------


def read_flags(root: Section) -> dict[str, Any]:
    """`flags`: name -> {"value": ...}, unwrapped to name -> value."""
    section = root.child("flags")
    if section is None:
        return {}
    flags: dict[str, Any] = {}
    for name, value in section.items():
        flag = Section.of(root.log, section.at(name), value)
        if flag is None:
            continue
        flag.check_keys(("value",))
        if not flag.has("value"):
            flag.error("value", 'is required: flags are written {"value": ...}')
            continue
        flags[name] = flag.data["value"]
    return flags


# --- chat ---------------------------------------------------------------------------------

#: the most entries `chat.models` may have, and the longest model glob and label
CHAT_MODELS_MAX = 500
CHAT_MODEL_LIMIT = 300
CHAT_LABEL_LIMIT = 100


def read_chat(root: Section) -> tuple[ChatModel, ...] | None:
    """`chat`: `{"models": [{"model": "<provider/model glob>", "label": "..."}]}`, the
    chat's curated model picker; None when there is no `models` list (every chat model)."""
    section = root.child("chat")
    if section is None:
        return None
    section.check_keys(("models",))
    if not section.has("models"):
        return None
    value = section.data["models"]
    if isinstance(value, list) and len(value) > CHAT_MODELS_MAX:
        section.error("models", f"has {len(value)} entries; at most {CHAT_MODELS_MAX}")
        return None
    entries: list[ChatModel] = []
    for item in section.objects("models"):
        item.check_keys(("model", "label"))
        model = item.required_text("model", 'a model id or glob ("openai/gpt-4o", "anthropic/*")')
        label = item.text("label")
        if model is not None and len(model) > CHAT_MODEL_LIMIT:
            item.error("model", f"is longer than {CHAT_MODEL_LIMIT} characters")
        elif len(label) > CHAT_LABEL_LIMIT:
            item.error("label", f"is longer than {CHAT_LABEL_LIMIT} characters")
        elif model is not None:
            if "/" not in model:
                item.warn("model", f'matches no model: write provider/model ("*/{model}")')
            entries.append(ChatModel(model=model, label=label.strip()))
    return tuple(entries)
