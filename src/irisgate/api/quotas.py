"""Quota endpoints: bucket status for everyone, manual balance changes for admins (§5.5).

- `GET /api/quotas`: the caller's own buckets (admins: every bucket of the config, or their
  own with `?own=1`), the buckets of the caller's API keys' own budgets (`key:<id>`; admins:
  of every key), with balance, capacity, rate, last update, the grants and model globs
  that charge them, and which configured models charge them when the caller uses them.
- `POST /api/quotas/refill` `{"bucket", "amount"}`: add money, never above capacity.
- `POST /api/quotas/set` `{"bucket", "balance"}`: set the balance (0 .. capacity).
- With each of the caller's own buckets: `burn_per_day`, what the caller spent per day on
  the models that charge it over the last 7 days, and `days_left` at that rate.
- `GET /api/quotas/changes[?bucket=NAME]`: the audit log of manual changes (who, when,
  what), of one bucket or of all.

Amounts are accepted as dollars (decimal string, with or without `$`, or a number); money
is shown both as integer nanodollars and as a dollar string.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from irisgate.api.body import json_object
from irisgate.config.model import Config, Quota
from irisgate.handlers import (
    ApiError,
    Caller,
    int_param,
    json_response,
    query_value,
    require_admin,
    require_role,
    runtime_of,
)
from irisgate.quotas import balances
from irisgate.quotas.amounts import dollars, parse_amount
from irisgate.quotas.balances import BucketRow
from irisgate.quotas.charges import charges_for, expand, template_of
from irisgate.quotas.refill import refilled
from irisgate.store import keys as stored_keys
from irisgate.store import queries

#: the days a bucket's burn rate averages over (today included)
BURN_DAYS = 7


def _used_by(config: Config) -> dict[str, list[dict[str, Any]]]:
    """Template -> the grants (src) and model globs whose capabilities charge it."""
    uses: dict[str, list[dict[str, Any]]] = {}
    for grant in config.grants:
        for capability in grant.capabilities:
            for ref in capability.quotas:
                for template in (ref.bucket, *ref.overdraft):
                    use = {"src": list(grant.src), "models": list(capability.models or ("**",))}
                    if use not in uses.setdefault(template, []):
                        uses[template].append(use)
    return uses


def _own_names(caller: Caller) -> dict[str, str]:
    """Bucket name -> template, for every bucket the caller's capabilities charge."""
    names: dict[str, str] = {}
    for capability in caller.access.capabilities:
        for ref in capability.quotas:
            for template in (ref.bucket, *ref.overdraft):
                names[expand(template, caller.identity)] = template
    return names


def _caller_models(config: Config, caller: Caller) -> dict[str, list[str]]:
    """Bucket name -> the configured models (`provider/model`) whose requests by the caller
    charge it, computed with the gateway's own charging rules so the dashboard never
    re-implements glob matching."""
    models: dict[str, list[str]] = {}
    for provider in config.providers.values():
        if not provider.enabled:  # the gateway routes nothing to it, so it charges nothing
            continue
        for model in provider.models:
            fqn = f"{provider.id}/{model}"
            if not caller.access.may_use_model(fqn):
                continue
            for chain in charges_for(config, caller.access, caller.identity, fqn):
                for link in chain:
                    if fqn not in models.setdefault(link.name, []):
                        models[link.name].append(fqn)
    return models


def _entry(
    request: Request,
    name: str,
    template: str,
    row: BucketRow | None,
    *,
    uses: list[Any],
    caller_models: list[str],
) -> dict[str, Any]:
    config = runtime_of(request).snapshot.config
    quota = config.quotas.get(template)
    entry: dict[str, Any] = {
        "name": name,
        "template": template,
        "used_by": uses,
        "caller_models": caller_models,
    }
    if quota is None:
        problem = config.broken_quotas.get(template, "not defined in quotas")
        return {**entry, "error": f"invalid quota, requests charging it get 429: {problem}"}
    balance, updated_at = _balance(request, name, quota, row)
    return {
        **entry,
        "balance": dollars(balance),
        "balance_nanodollars": balance,
        "capacity": dollars(quota.capacity_nanodollars),
        "capacity_nanodollars": quota.capacity_nanodollars,
        "rate": quota.rate_text,
        "updated_at": updated_at.isoformat().replace("+00:00", "Z") if updated_at else None,
    }


def _balance(
    request: Request, name: str, quota: Quota, row: BucketRow | None
) -> tuple[int, datetime | None]:
    """Balance now: the row's, less this instance's unreported spending, refilled to now."""
    if row is None or row.refilled_at is None:
        return quota.capacity_nanodollars, None
    local = runtime_of(request).quotas.ledger.known(name)
    unreported = local.spent if local is not None else 0
    balance, _ = refilled(
        row.balance - unreported,
        quota.capacity_nanodollars,
        rate=quota.rate_nanodollars,
        period_s=quota.rate_period_seconds,
        since=row.refilled_at,
        now=datetime.now(UTC),
    )
    return balance, row.updated_at


async def list_quotas(request: Request) -> Response:
    caller = await require_role(request)
    runtime = runtime_of(request)
    config = runtime.snapshot.config
    rows = await balances.rows(runtime.db)
    uses = _used_by(config)
    own = _own_names(caller)
    everyone = caller.is_admin and query_value(request, "own") not in ("1", "true")
    if everyone:
        names = {
            name: row.template
            for name, row in rows.items()
            if row.template in config.quotas or row.template in config.broken_quotas
        }
        for template in (*config.quotas, *config.broken_quotas):
            if "<" not in template:
                names.setdefault(template, template)
        for name, template in own.items():
            names.setdefault(name, template)
    else:
        names = dict(own)
    for key in await stored_keys.listed(
        runtime.db, None if everyone else caller.identity.login_name
    ):
        if key.quota and key.revoked_at is None:  # the key's budget now, not its row's
            names[f"key:{key.id}"] = key.quota
    models = _caller_models(config, caller)
    buckets = [
        _entry(
            request,
            name,
            template,
            rows.get(name),
            uses=uses.get(template, []),
            caller_models=models.get(name, []),
        )
        for name, template in sorted(names.items())
    ]
    since = datetime.now(UTC).date() - timedelta(days=BURN_DAYS - 1)
    spent = await queries.spend_by_model(runtime.db, caller.identity.login_name, since)
    for bucket in buckets:
        if bucket["name"] in own and "balance_nanodollars" in bucket:
            _burn(bucket, spent)
    return json_response({"buckets": buckets})


def _burn(bucket: dict[str, Any], spent: dict[str, int]) -> None:
    """The caller's burn rate on a bucket of theirs: what they spent per day, over the last
    BURN_DAYS UTC days (today included), on the models that charge it, and the days the
    balance lasts at that rate (null when nothing was spent)."""
    per_day = sum(spent.get(model, 0) for model in bucket["caller_models"]) // BURN_DAYS
    bucket["burn_per_day"] = dollars(per_day)
    bucket["burn_per_day_nanodollars"] = per_day
    balance = max(bucket["balance_nanodollars"], 0)
    bucket["days_left"] = round(balance / per_day, 1) if per_day else None


async def _change_request(request: Request, amount_key: str) -> tuple[Caller, str, str, int]:
    caller = await require_admin(request)
    payload = await json_object(request, f'{{"bucket": "<name>", "{amount_key}": "5.00"}}')
    bucket = payload.get("bucket")
    if not isinstance(bucket, str) or not bucket:
        raise ApiError(400, "'bucket' must be a bucket name, e.g. \"daily:alice@example.com\"")
    if amount_key not in payload:
        raise ApiError(400, f"'{amount_key}' is required (dollars, e.g. \"5.00\")")
    try:
        amount = parse_amount(payload[amount_key])
    except ValueError as exc:
        raise ApiError(400, f"'{amount_key}' {exc}") from None
    config = runtime_of(request).snapshot.config
    template = template_of(config, bucket)
    if template is None:
        raise ApiError(404, f"no quota in the config matches bucket {bucket!r}")
    return caller, bucket, template, amount


async def _apply(request: Request, action: str, amount_key: str) -> Response:
    caller, bucket, template, amount = await _change_request(request, amount_key)
    runtime = runtime_of(request)
    quota = runtime.snapshot.config.quotas[template]
    if action == "refill" and amount <= 0:
        raise ApiError(400, f"'{amount_key}' must be more than $0")
    if action == "set" and amount > quota.capacity_nanodollars:
        raise ApiError(
            400,
            f"'{amount_key}' {dollars(amount)} is above the bucket's capacity "
            f"{dollars(quota.capacity_nanodollars)}",
        )
    row = await runtime.quotas.ledger.adjust(
        bucket, template, quota, action=action, amount=amount, who=caller.identity.login_name
    )
    config = runtime.snapshot.config
    uses = _used_by(config).get(template, [])
    models = _caller_models(config, caller).get(bucket, [])
    return json_response(
        {"bucket": _entry(request, bucket, template, row, uses=uses, caller_models=models)}
    )


async def refill(request: Request) -> Response:
    return await _apply(request, "refill", "amount")


async def set_balance(request: Request) -> Response:
    return await _apply(request, "set", "balance")


async def list_changes(request: Request) -> Response:
    await require_admin(request)
    bucket = query_value(request, "bucket") or None
    limit = int_param(request, "limit", 50, 1, 500)
    changes = await balances.changes(runtime_of(request).db, bucket, limit)
    return json_response(
        {
            "changes": [
                {
                    "bucket": change["bucket"],
                    "action": change["action"],
                    "changed_by": change["changed_by"],
                    "changed_at": change["changed_at"].isoformat().replace("+00:00", "Z"),
                    "amount": dollars(change["amount_nanodollars"]),
                    "amount_nanodollars": change["amount_nanodollars"],
                    "balance_before_nanodollars": change["balance_before_nanodollars"],
                    "balance_after_nanodollars": change["balance_after_nanodollars"],
                }
                for change in changes
            ]
        }
    )


routes = [
    Route("/api/quotas", list_quotas, methods=["GET"]),
    Route("/api/quotas/refill", refill, methods=["POST"]),
    Route("/api/quotas/set", set_balance, methods=["POST"]),
    Route("/api/quotas/changes", list_changes, methods=["GET"]),
]
