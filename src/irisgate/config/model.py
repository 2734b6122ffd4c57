"""The validated, immutable form of one config version.

`config.schema.build_config` turns the raw JSON of a config file into a `Config`; everything on
the request path reads these objects and nothing else. Raw fields that later features own
(quotas, hooks, exporters, connectors, database, flags) are validated and kept here too, so an
Aperture config loads unchanged even where irisgate does not act on a section yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from irisgate.config.cloudkeys import is_cloud_key

AuthMode = Literal["override", "passthrough", "none"]
Role = Literal["user", "admin"]

#: Compatibility flags known to irisgate, with Aperture's defaults when a provider has no
#: `compatibility` block at all. Once a block is given, flags it omits are false.
#: The flags of the APIs beyond chat (`openai_embeddings` ... `gemini_embed_content`) are
#: off unless set, like every flag but `openai_chat`: a config written for Aperture opens
#: nothing new, and an OpenAI-compatible server need not serve them (docs/configuration.md).
COMPATIBILITY_FLAGS: tuple[str, ...] = (
    "openai_chat",
    "openai_responses",
    "anthropic_messages",
    "gemini_generate_content",
    "google_generate_content",
    "google_raw_predict",
    "bedrock_model_invoke",
    "bedrock_converse",
    "experimental_gemini_cli_vertex_compat",
    "openai_embeddings",
    "openai_images",
    "openai_audio",
    "openai_moderations",
    "openai_batches",
    "gemini_embed_content",
)
DEFAULT_COMPATIBILITY: Mapping[str, bool] = {"openai_chat": True}

AUTHORIZATION_STYLES: tuple[str, ...] = (
    "bearer",
    "x-api-key",
    "x-goog-api-key",
    "hec",
    "cf-aig-authorization",
)

COST_BASES: tuple[str, ...] = (
    "anthropic",
    "openai",
    "google",
    "vertex",
    "bedrock",
    "bedrock-us",
    "bedrock-eu",
    "bedrock-ap",
    "azure",
    "azure-eu",
    "openrouter",
    "vercel",
)


@dataclass(frozen=True, slots=True)
class Secret:
    """A credential from the config: `ref` is what the file says, `value` what it resolves to.

    `ref` is the literal text for literal secrets, or `env:NAME` / `file:PATH` / `keyid:ID`.
    `value` is None when a reference cannot be resolved (variable unset, file unreadable,
    always for Aperture's `keyid:`).
    `repr` never shows the value.
    """

    ref: str
    value: str | None
    #: why the reference was refused (outside the secrets directory, a control character):
    #: a config error; "" otherwise. Never shows the value.
    problem: str = ""

    def __repr__(self) -> str:
        return f"Secret(ref={'<literal>' if self.is_literal else self.ref!r})"

    @property
    def is_literal(self) -> bool:
        return not self.ref.startswith(("env:", "file:", "keyid:"))


@dataclass(frozen=True, slots=True)
class CostMapEntry:
    match: str  # Go path.Match glob on the model id
    as_model: str  # pricing lookup name ("as" in the file)
    adjustment: float = 1.0


@dataclass(frozen=True, slots=True)
class Provider:
    id: str
    baseurl: str  # absolute http(s) URL, trailing "/" removed
    apikey: Secret
    models: tuple[str, ...]
    authorization: str = "bearer"
    compatibility: Mapping[str, bool] = field(default_factory=lambda: dict(DEFAULT_COMPATIBILITY))
    name: str = ""  # display name; defaults to id
    description: str = ""
    preference: int = 0
    disabled: bool = False  # as written in the file
    cost_basis: str | None = None
    model_cost_map: tuple[CostMapEntry, ...] = ()
    add_headers: tuple[tuple[str, str], ...] = ()
    auth_mode: AuthMode = "override"
    #: why the provider is out of routing although the file does not disable it
    #: (e.g. "apikey env:OPENAI_API_KEY is not set"); None when usable.
    unavailable_reason: str | None = None
    #: every key when `apikey` is a list (`apikey` is then its first); () for one key
    keys: tuple[Secret, ...] = ()
    #: share of the requests among providers of equal `preference` (`weight`, default 1)
    weight: int = 1

    @property
    def key_count(self) -> int:
        """How many keys requests are spread over (1 for a single or no key)."""
        return len(self.keys) or 1

    def usable_key(self, index: int) -> bool:
        """Whether key `index` resolved to a value (an unset `env:` entry of a list is not)."""
        if not self.keys:
            return True
        return self.keys[index].value is not None

    def key_at(self, index: int) -> str:
        """Key `index` as sent in a header (see `header_key`)."""
        if not self.keys:
            return self.header_key
        value = self.keys[index].value
        return "" if is_cloud_key(value) else value or ""

    @property
    def enabled(self) -> bool:
        return not self.disabled and self.unavailable_reason is None

    def accepts(self, flag: str) -> bool:
        return bool(self.compatibility.get(flag, False))

    @property
    def header_key(self) -> str:
        """The key irisgate sends in a header: "" for a cloud credential (cloudauth signs
        those requests instead) or none."""
        value = self.apikey.value
        return "" if is_cloud_key(value) else value or ""


@dataclass(frozen=True, slots=True)
class QuotaRef:
    bucket: str  # template, e.g. "daily:<user>"
    overdraft: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HookRef:
    name: str
    events: tuple[str, ...]
    send: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Capability:
    """One object of a `tailscale.com/cap/aperture` list. Fields in one object combine."""

    role: Role | None = None
    models: tuple[str, ...] = ()  # provider/model globs
    quotas: tuple[QuotaRef, ...] = ()
    rate_limits: tuple[str, ...] = ()  # templates of `rate_limits`, e.g. "rpm:<user>"
    send_hooks: tuple[HookRef, ...] = ()
    add_headers: tuple[tuple[str, str], ...] = ()
    connectors: tuple[str, ...] = ()
    enable_chat_ui: bool | None = None
    read_metrics: bool = False
    filterable_headers: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)  # the object as written


@dataclass(frozen=True, slots=True)
class Grant:
    src: tuple[str, ...]
    capabilities: tuple[Capability, ...]
    #: other `app` capability keys (not tailscale.com/cap/aperture), passed opaquely to hooks
    opaque: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Quota:
    template: str
    capacity_nanodollars: int
    rate_nanodollars: int  # refill per `rate_period_seconds`
    rate_period_seconds: int
    rate_text: str  # as written, e.g. "$5.00/day"
    capacity_text: str
    on_exceed: str = "reject"
    #: reserved at admission for a request to an unpriced model, and (only when the file
    #: sets it) for a request without an output limit: irisgate's `default_estimate`, "$0.01"
    #: unless the file says otherwise
    default_estimate_nanodollars: int = 10_000_000
    default_estimate_given: bool = False


#: What a rate limit counts: requests or tokens per period, or requests in flight.
RateKind = Literal["requests", "tokens", "concurrent"]
#: `per` of a rate limit -> seconds
RATE_PERIODS: dict[str, int] = {"second": 1, "minute": 60, "hour": 3600}


@dataclass(frozen=True, slots=True)
class RateLimit:
    """One template of `rate_limits`: at most `limit` requests or tokens per
    `period_seconds`, or `limit` requests in flight at once (`concurrent`, no period)."""

    template: str
    kind: RateKind
    limit: int
    period_seconds: int = 0  # 0 for `concurrent`
    per: str = ""  # as written: second, minute or hour

    def describe(self) -> str:
        """`60 requests per minute`, `200000 tokens per minute`, `4 concurrent requests`."""
        if self.kind == "concurrent":
            return f"{self.limit} concurrent requests"
        return f"{self.limit} {self.kind} per {self.per}"


@dataclass(frozen=True, slots=True)
class Hook:
    name: str
    url: str
    apikey: Secret
    authorization: str = "bearer"
    timeout_seconds: float = 5.0
    disabled: bool = False
    fail_policy: Literal["fail_open", "fail_closed"] = "fail_open"
    preference: int = 0


@dataclass(frozen=True, slots=True)
class S3Exporter:
    bucket_name: str
    region: str
    access_key_id: Secret
    access_secret: Secret
    endpoint: str = ""
    prefix: str = ""
    every_seconds: int = 3600
    limit: int = 1000
    format: str = "cbor.zstd"  # one of EXPORT_FORMATS


@dataclass(frozen=True, slots=True)
class ConnectorAuth:
    type: str  # none | bearer_token | api_key | basic | oauth2_client_credentials | ...
    fields: Mapping[str, Any] = field(default_factory=dict)  # non-secret fields as written
    secrets: Mapping[str, Secret] = field(default_factory=dict)  # secret fields


@dataclass(frozen=True, slots=True)
class Connector:
    id: str
    protocol: Literal["mcp", "http"]
    url: str
    description: str = ""
    context: str = ""
    provider: str = "Custom"
    auth: ConnectorAuth = field(default_factory=lambda: ConnectorAuth(type="none"))
    #: how irisgate talks to an MCP connector: Streamable HTTP, or the legacy (2024-11-05)
    #: SSE transport (GET an event stream, POST to the endpoint it names)
    transport: Literal["streamable_http", "sse"] = "streamable_http"


#: Object formats of the S3 exporter: Aperture's zstd CBOR sequence, gzip JSON Lines, Parquet.
EXPORT_FORMATS: tuple[str, ...] = ("cbor.zstd", "jsonl.gz", "parquet")
#: What the retention purge may remove (`database.retention.purge`); never the usage metrics.
PURGE_CATEGORIES: tuple[str, ...] = ("bodies", "headers", "raws")


@dataclass(frozen=True, slots=True)
class Retention:
    duration_seconds: int | None = None  # None: keep forever; 0: bodies never written
    purge: tuple[str, ...] = ()  # PURGE_CATEGORIES to remove; () means all of them
    require_export: bool = False


@dataclass(frozen=True, slots=True)
class FilterableHeader:
    name: str  # lower-case
    redact_values: bool = False


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    retention: Retention = field(default_factory=Retention)
    filterable_headers: tuple[FilterableHeader, ...] = ()
    save_raws: bool = False
    keep_encrypted_blobs: bool = False


@dataclass(frozen=True, slots=True)
class Config:
    """One validated config version. `raw` is the parsed JSON as written (comments dropped)."""

    providers: Mapping[str, Provider]
    grants: tuple[Grant, ...]
    quotas: Mapping[str, Quota] = field(default_factory=dict)
    #: bucket templates defined in the file but invalid -> why; requests that would charge
    #: them are refused (fail closed) while the rest of the config keeps working
    broken_quotas: Mapping[str, str] = field(default_factory=dict)
    #: template -> limit (`rate_limits`); a config with an invalid one does not load
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    hooks: Mapping[str, Hook] = field(default_factory=dict)
    s3_exporter: S3Exporter | None = None
    connectors: Mapping[str, Connector] = field(default_factory=dict)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    flags: Mapping[str, Any] = field(default_factory=dict)
    auto_cost_basis: bool = True
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """A problem found in a config file, located by key path and (when known) line."""

    path: str  # dotted key path, list items as [i]: "providers.openai.models[2]"
    message: str
    line: int | None = None
    severity: Literal["error", "warning"] = "error"

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.path or '(top level)'}: {self.message}"


class ConfigError(Exception):
    """Raised when a config cannot be used; carries every error found, not just the first."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("; ".join(str(i) for i in issues))
