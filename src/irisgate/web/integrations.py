"""The Integrations page's catalogue: guardrail and logging services wired as hooks, and where
request records and metrics can go, each with the config snippet that sets it up.

Snippets are HuJSON fragments of a whole config (the sections they add); the tests merge
each into a working config and check it, so a snippet shown here always loads.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Integration:
    key: str
    title: str
    kind: str  # "hook" (a guardrail or logging webhook) | "exporter" (records, metrics)
    summary: str
    snippet: str
    link: str = ""


_OSO = """{
  "hooks": {
    "oso": {"url": "https://oso.example.ts.net/aperture", "apikey": "env:OSO_API_KEY"},
  },
  "grants": [
    {"src": ["*"], "app": {"tailscale.com/cap/aperture": [
      {"send_hooks": [{"name": "oso", "events": ["tool_call_entire_request"],
                       "send": ["user_message", "tools", "request_body", "response_body"]}]},
    ]}},
  ],
}"""

_CERBOS = """{
  "hooks": {
    "cerbos": {"url": "https://cerbos.example.ts.net/aperture/hook", "timeout": "2s"},
  },
  "grants": [
    {"src": ["*"], "app": {"tailscale.com/cap/aperture": [
      {"send_hooks": [{"name": "cerbos", "events": ["entire_request"],
                       "send": ["tools", "user_message", "grants"]}]},
    ]}},
  ],
}"""

_CRIBL = """{
  "hooks": {
    "cribl": {"url": "https://cribl.example.com:10080/cribl/_bulk",
              "apikey": "env:CRIBL_TOKEN", "authorization": "bearer"},
  },
  "grants": [
    {"src": ["*"], "app": {"tailscale.com/cap/aperture": [
      {"send_hooks": [{"name": "cribl", "events": ["entire_request"],
                       "send": ["estimated_cost", "quotas"]}]},
    ]}},
  ],
}"""

_GUARDRAIL = """{
  "hooks": {
    // blocks or rewrites a request before it reaches the provider
    "guardrail": {"url": "https://guard.example.ts.net/check", "apikey": "env:GUARD_KEY",
                  "fail_policy": "fail_closed", "timeout": "1s", "preference": 10},
  },
  "grants": [
    {"src": ["*"], "app": {"tailscale.com/cap/aperture": [
      {"send_hooks": [{"name": "guardrail", "events": ["pre_request"],
                       "send": ["request_body", "user_message"]}]},
    ]}},
  ],
}"""

_HEADROOM = """{
  "hooks": {
    // compresses long prompts: answers "allow" or "modify" with a shorter request_body
    "headroom": {"url": "http://tsheadroom.example.ts.net:8787/hook", "timeout": "30s"},
  },
  "grants": [
    {"src": ["*"], "app": {"tailscale.com/cap/aperture": [
      {"send_hooks": [{"name": "headroom", "events": ["pre_request"], "send": ["request_body"]}]},
    ]}},
  ],
}"""

_S3 = """{
  "exporters": {
    "s3": {"bucket_name": "irisgate-records", "region": "us-east-1",
           "access_key_id": "env:AWS_ACCESS_KEY_ID", "access_secret": "env:AWS_SECRET_ACCESS_KEY",
           "prefix": "prod", "every": 3600},
  },
}"""

_S3_COMPATIBLE = """{
  "exporters": {
    "s3": {"bucket_name": "irisgate-records", "region": "auto",
           "endpoint": "https://minio.example.ts.net:9000",
           "access_key_id": "env:S3_KEY_ID", "access_secret": "env:S3_SECRET",
           "format": "jsonl.gz"},
  },
}"""

_METRICS = """{
  "grants": [
    // the Prometheus server's node may scrape GET /metrics
    {"src": ["tag:prometheus"], "app": {"tailscale.com/cap/aperture": [{"read_metrics": true}]}},
  ],
}"""

INTEGRATIONS: tuple[Integration, ...] = (
    Integration(
        "guardrail",
        "Pre-request guardrail (Highflame, your own)",
        "hook",
        "Sees each request before the provider does and answers allow, block (with a status "
        "and message the caller gets) or modify (a replacement body). fail_closed refuses "
        "requests while the guardrail is down.",
        _GUARDRAIL,
    ),
    Integration(
        "oso",
        "Oso",
        "hook",
        "Authorization decisions over tool calls: receives every completed request that "
        "contained tool calls, with the prompt, the tools and both bodies.",
        _OSO,
    ),
    Integration(
        "cerbos",
        "Cerbos",
        "hook",
        "Policy audit of every completed request: tools used, the last user message and the "
        "caller's own (non-irisgate) grant capabilities.",
        _CERBOS,
    ),
    Integration(
        "cribl",
        "Cribl",
        "hook",
        "Cost and quota telemetry into a Cribl pipeline after every request, with bearer "
        "authentication.",
        _CRIBL,
    ),
    Integration(
        "headroom",
        "tsheadroom",
        "hook",
        "Prompt compression before the provider: the hook returns a shorter request body.",
        _HEADROOM,
    ),
    Integration(
        "s3",
        "Amazon S3",
        "exporter",
        "Every request record exported in batches (cbor.zstd by default) to a bucket, "
        "`every` seconds.",
        _S3,
    ),
    Integration(
        "s3-compatible",
        "S3-compatible stores (MinIO, Cloudflare R2, Ceph)",
        "exporter",
        "The same export to any S3 API: set `endpoint`; `region` is still required.",
        _S3_COMPATIBLE,
    ),
    Integration(
        "prometheus",
        "Prometheus",
        "exporter",
        "Request, token, cost and latency metrics at GET /metrics, for callers granted "
        "read_metrics.",
        _METRICS,
    ),
)
