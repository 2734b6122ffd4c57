"""Validation of the `alerts` section: what raises alerts and where they go.

    "alerts": {
      "budgets": {"daily:<user>": [50, 80, 100], "team": [80, 100]},
      "spend_spike": {"multiple": 3, "days": 7, "minimum": "$1.00"},
      "upstream_errors": {"rate": 0.5, "min_attempts": 20},
      "providers": true, "hooks": true, "exports": true, "storage": true,
      "channels": {
        "ops": {"type": "slack", "url": "env:SLACK_WEBHOOK", "min_severity": "warning"},
        "finance": {"type": "email", "to": ["finance@example.com"], "kinds": ["budget"]}
      },
      "smtp": {"host": "smtp.example.com", "port": 587, "security": "starttls",
               "username": "irisgate", "password": "env:SMTP_PASSWORD",
               "from": "irisgate@example.com"},
      "retry": {"first": "30s", "max": "1h", "attempts": 10}
    }

Every problem is an error with its key path (the config does not load), except unknown keys
(warnings, as everywhere). Webhook URLs and the SMTP password are secrets: literal, `env:`
or `file:`, masked in the management API like the providers' keys.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from irisgate.config.model import (
    ALERT_CHANNEL_TYPES,
    ALERT_KINDS,
    SEVERITIES,
    SMTP_SECURITY,
    AlertChannel,
    AlertSettings,
    Secret,
    SmtpServer,
    SpendSpike,
    UpstreamErrors,
)
from irisgate.config.reader import Section, is_http_url, not_one_of
from irisgate.config.schema_sections import warn_unresolved
from irisgate.config.units import parse_dollars, parse_go_duration

#: most thresholds one bucket template may have, and most channels / recipients
MAX_THRESHOLDS = 10
MAX_CHANNELS = 50
MAX_RECIPIENTS = 50
#: a threshold may go above 100 %: a bucket with overdraft spends beyond its capacity only
#: through the next bucket, but an admin's `set` can still leave it there
MAX_THRESHOLD_PERCENT = 1000
_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+")
_KEYS = (
    "budgets",
    "spend_spike",
    "upstream_errors",
    "providers",
    "hooks",
    "exports",
    "storage",
    "channels",
    "smtp",
    "retry",
)


def read_alerts(root: Section, env: Mapping[str, str], quotas: Collection[str]) -> AlertSettings:
    """The `alerts` section; `quotas`: the bucket templates the file defines."""
    section = root.child("alerts")
    if section is None:
        return AlertSettings()
    section.check_keys(_KEYS)
    smtp = _smtp(section.child("smtp"), env)
    channels = _channels(section, env)
    if smtp is None:
        for name, channel in channels.items():
            if channel.type == "email":
                section.log.error(
                    (*section.at("channels"), name, "type"),
                    'an "email" channel needs "alerts.smtp" (the server that sends it)',
                )
    first, most, attempts = _retry(section.child("retry"))
    return AlertSettings(
        budgets=_budgets(section, quotas),
        spend_spike=_spend_spike(section),
        upstream_errors=_upstream_errors(section),
        providers=section.flag("providers", True),
        hooks=section.flag("hooks", True),
        exports=section.flag("exports", True),
        storage=section.flag("storage", True),
        channels=channels,
        smtp=smtp,
        retry_first_seconds=first,
        retry_max_seconds=most,
        max_attempts=attempts,
    )


def _budgets(section: Section, quotas: Collection[str]) -> dict[str, tuple[int, ...]]:
    """Bucket template -> thresholds in percent of its capacity, each 1..1000, ascending."""
    budgets = section.child("budgets")
    if budgets is None:
        return {}
    out: dict[str, tuple[int, ...]] = {}
    for template, value in budgets.items():
        if template not in quotas:
            budgets.error(template, f'bucket "{template}" is not defined in quotas')
            continue
        if not isinstance(value, list) or not value or len(value) > MAX_THRESHOLDS:
            budgets.error(
                template,
                f"must be a list of 1 to {MAX_THRESHOLDS} percentages of the bucket's"
                " capacity, e.g. [50, 80, 100]",
            )
            continue
        thresholds: list[int] = []
        for index, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int | float):
                budgets.log.error((*budgets.at(template), index), f"must be a number, not {item!r}")
            elif not 1 <= item <= MAX_THRESHOLD_PERCENT or item != int(item):
                budgets.log.error(
                    (*budgets.at(template), index),
                    f"must be a whole percentage from 1 to {MAX_THRESHOLD_PERCENT}, not {item}",
                )
            else:
                thresholds.append(int(item))
        if len(thresholds) == len(value):
            out[template] = tuple(sorted(set(thresholds)))
    return out


def _spend_spike(section: Section) -> SpendSpike | None:
    spike = section.child("spend_spike")
    if spike is None:
        return None
    spike.check_keys(("multiple", "days", "minimum"))
    multiple = spike.number("multiple", 3.0)
    if not 1.0 < multiple <= 1000:
        spike.error("multiple", f"must be more than 1 and at most 1000, not {multiple}")
    days = spike.integer("days", 7)
    if not 1 <= days <= 90:
        spike.error("days", f"must be from 1 to 90, not {days}")
    minimum = _dollars(spike, "minimum", "$1.00")
    return SpendSpike(multiple=multiple, days=days, minimum_nanodollars=minimum)


def _upstream_errors(section: Section) -> UpstreamErrors | None:
    if section.data.get("upstream_errors") is False:
        return None
    errors = section.child("upstream_errors")
    if errors is None:
        return UpstreamErrors()
    errors.check_keys(("rate", "min_attempts"))
    rate = errors.number("rate", 0.5)
    if not 0 < rate <= 1:
        errors.error("rate", f"must be a fraction of attempts above 0 and at most 1, not {rate}")
    attempts = errors.integer("min_attempts", 20)
    if not 1 <= attempts <= 100:
        errors.error("min_attempts", f"must be from 1 to 100 (the attempts kept), not {attempts}")
    return UpstreamErrors(rate=rate, min_attempts=attempts)


def _channels(section: Section, env: Mapping[str, str]) -> dict[str, AlertChannel]:
    channels = section.child("channels")
    if channels is None:
        return {}
    if len(channels.data) > MAX_CHANNELS:
        section.error("channels", f"at most {MAX_CHANNELS} channels")
        return {}
    out: dict[str, AlertChannel] = {}
    for name, value in channels.items():
        channel = Section.of(section.log, channels.at(name), value)
        if channel is None:
            continue
        errors_before = len(section.log.errors)
        parsed = _channel(name, channel, env)
        if parsed is not None and len(section.log.errors) == errors_before:
            out[name] = parsed
    return out


def _channel(name: str, section: Section, env: Mapping[str, str]) -> AlertChannel | None:
    section.check_keys(("type", "url", "to", "kinds", "min_severity"))
    kind = section.required_text("type", f"one of {', '.join(ALERT_CHANNEL_TYPES)}")
    if kind is not None and kind not in ALERT_CHANNEL_TYPES:
        section.error("type", not_one_of(kind, ALERT_CHANNEL_TYPES))
        return None
    kinds = section.texts("kinds")
    for index, item in enumerate(kinds):
        if item not in ALERT_KINDS:
            section.log.error((*section.at("kinds"), index), not_one_of(item, ALERT_KINDS))
    severity = section.choice("min_severity", SEVERITIES, "info")
    if kind == "email":
        to = section.texts("to", required=True)
        if len(to) > MAX_RECIPIENTS:
            section.error("to", f"at most {MAX_RECIPIENTS} recipients")
        for index, address in enumerate(to):
            if not _ADDRESS.fullmatch(address):
                section.log.error(
                    (*section.at("to"), index), f'"{address}" is not an e-mail address'
                )
        if section.has("url"):
            section.error("url", 'an "email" channel has no url; it sends to "to"')
        return AlertChannel(name, "email", to=to, kinds=kinds, min_severity=severity)
    if kind is None:
        return None
    if section.has("to"):
        section.error("to", f'a "{kind}" channel has no "to"; it posts to "url"')
    url = _secret_url(section, env)
    return AlertChannel(name, kind, url=url, kinds=kinds, min_severity=severity)


def _secret_url(section: Section, env: Mapping[str, str]) -> Secret | None:
    """The channel's URL: a secret (a Slack webhook URL is its own credential). Its value,
    once resolved, must be an absolute http(s) URL; messages never repeat it."""
    if not section.has("url"):
        section.error("url", "is required (the webhook's URL, or env:NAME / file:PATH)")
        return None
    url = section.secret("url", env)
    if url.ref == "":
        section.error("url", "must not be empty")
        return None
    warn_unresolved(section, "url", url)
    if url.value is not None and not is_http_url(url.value):
        where = "the literal value" if url.is_literal else f"the value of {url.ref}"
        section.error("url", f"{where} must be an absolute http(s) URL")
    return url


def _smtp(section: Section | None, env: Mapping[str, str]) -> SmtpServer | None:
    if section is None:
        return None
    section.check_keys(("host", "port", "security", "username", "password", "from", "timeout"))
    host = section.required_text("host", "the SMTP server's host name")
    security = section.choice("security", SMTP_SECURITY, "starttls")
    port = section.integer("port", 465 if security == "tls" else 587)
    if not 1 <= port <= 65535:
        section.error("port", f"must be from 1 to 65535, not {port}")
    sender = section.required_text("from", "the sender's e-mail address")
    if sender is not None and not _ADDRESS.fullmatch(sender):
        section.error("from", f'"{sender}" is not an e-mail address')
    username = section.text("username", "")
    password = section.secret("password", env)
    warn_unresolved(section, "password", password)
    if username and not password.ref:
        section.error("password", 'is required with "username"')
    if security == "none" and username:
        section.error(
            "security", '"none" would send the password in clear text: use starttls or tls'
        )
    timeout = _duration(section, "timeout", "10s")
    if host is None or sender is None:
        return None
    return SmtpServer(
        host=host,
        port=port,
        security=security,
        username=username,
        password=password,
        sender=sender,
        timeout_seconds=timeout,
    )


def _retry(section: Section | None) -> tuple[float, float, int]:
    """`retry`: first back-off, longest back-off, attempts before a delivery is given up."""
    if section is None:
        return 30.0, 3600.0, 10
    section.check_keys(("first", "max", "attempts"))
    first = _duration(section, "first", "30s")
    most = _duration(section, "max", "1h")
    if most < first:
        section.error("max", f"must not be shorter than first ({first:g} s)")
    attempts = section.integer("attempts", 10)
    if not 1 <= attempts <= 100:
        section.error("attempts", f"must be from 1 to 100, not {attempts}")
    return first, most, attempts


def _duration(section: Section, key: str, default: str) -> float:
    """A Go duration ("30s", "1h"), more than 0 and at most a day."""
    text = section.text(key, default)
    try:
        seconds = parse_go_duration(text)
    except ValueError as exc:
        section.error(key, str(exc))
        return parse_go_duration(default)
    if not 0 < seconds <= 86400:
        section.error(key, f'must be longer than 0 and at most 24h, not "{text}"')
        return parse_go_duration(default)
    return seconds


def _dollars(section: Section, key: str, default: str) -> int:
    text = section.text(key, default)
    try:
        return parse_dollars(text)
    except ValueError as exc:
        section.error(key, str(exc))
        return parse_dollars(default)
