"""The rate-limit stage of the gateway: which limits apply, admission, settlement.

Every capability that applies to the request's model (unscoped, or its `models` glob
matches) contributes its `rate_limits` templates, expanded like quota buckets (`<user>`:
the caller's login name, also for an API key: its owner's; `<node>`: the node id, or
`user:LOGIN` without one). The pipeline calls `admit` after routing, before the quota
stage (a 429 with `Retry-After` in the caller's format, naming the limit, when one is
reached) and `settle` when the request is done, with its recorded tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from irisgate.access.grants import Access
from irisgate.access.routing import Route
from irisgate.config.model import Config, RateLimit
from irisgate.identity import Identity
from irisgate.quotas.charges import expand
from irisgate.quotas.estimate import TypicalOutput, output_limit
from irisgate.quotas.ratelimits import Counter, Limiter, Permit, RateRefused, others_of
from irisgate.quotas.ratesync import RateSync
from irisgate.snapshot import Snapshot
from irisgate.store.database import Database
from irisgate.telemetry.metrics import Metrics
from irisgate.wire.errors import GatewayError

#: (expanded name, template, its limit or None when the config does not define it)
Applied = tuple[tuple[str, str, RateLimit | None], ...]


def limits_for(config: Config, access: Access, identity: Identity, fqn: str) -> Applied:
    """The limits a request for `fqn` by `identity` takes; () when none applies. Kept with
    the caller's `Access`, like the quota chains."""
    key = ("rate-limits", fqn, identity.login_name, identity.node_id)
    applied: Applied = access.memo(key, lambda: _limits(config, access, identity, fqn))
    return applied


def _limits(config: Config, access: Access, identity: Identity, fqn: str) -> Applied:
    out: dict[str, tuple[str, str, RateLimit | None]] = {}
    for capability in access.scoped(fqn):
        for template in capability.rate_limits:
            name = expand(template, identity)
            out.setdefault(name, (name, template, config.rate_limits.get(template)))
    return tuple(out.values())


def own_limits(config: Config, access: Access, identity: Identity) -> Applied:
    """Every limit some capability of the caller lists, whatever the model."""
    out: dict[str, tuple[str, str, RateLimit | None]] = {}
    for capability in access.capabilities:
        for template in capability.rate_limits:
            name = expand(template, identity)
            out.setdefault(name, (name, template, config.rate_limits.get(template)))
    return tuple(out.values())


class RateGate:
    def __init__(
        self,
        db: Database,
        typical: TypicalOutput,
        active: Callable[[], bool],
        metrics: Metrics | None = None,
    ) -> None:
        self.limiter = Limiter()
        self.sync = RateSync(db, self.limiter, active)
        self.typical = typical  # the quota stage's: what a typical answer of a model costs
        self.metrics = metrics

    def start(self) -> None:
        self.sync.start()

    async def stop(self) -> None:
        await self.sync.stop()

    def admit(
        self,
        snapshot: Snapshot,
        *,
        access: Access,
        identity: Identity,
        route: Route,
        body: dict[str, Any],
        body_size: int,
    ) -> Permit | None:
        """Take the request from every limit that applies; None when none does."""
        applied = limits_for(snapshot.config, access, identity, route.fqn)
        if not applied:
            return None
        limits: list[tuple[str, RateLimit]] = []
        tokens = 0
        for name, template, limit in applied:
            if limit is None:  # named by a capability from outside the file (a CapMap)
                raise GatewayError(
                    "rate_limit",
                    f'rate limit "{template}" is not defined in rate_limits; '
                    "requests it applies to are refused",
                    code="rate_limit_exceeded",
                )
            if limit.kind == "tokens" and not tokens:
                tokens = self._estimate(route, body, body_size)
            limits.append((name, limit))
        try:
            permit = self.limiter.admit(limits, tokens, time.time(), time.monotonic())
        except RateRefused as exc:
            if self.metrics is not None:
                self.metrics.rate_limited(exc.template)
            raise GatewayError(
                "rate_limit",
                exc.message,
                code="rate_limit_exceeded",
                headers={"Retry-After": str(exc.retry_after)},
            ) from None
        if self.limiter.unsynced:
            self.sync.wake()
        return permit

    def _estimate(self, route: Route, body: dict[str, Any], body_size: int) -> int:
        """Tokens the request may use: its prompt (JSON size / 4, more than the real count)
        plus its output limit, or its model's typical answer without one."""
        limit = output_limit(body)
        model = f"{route.provider.id}/{route.model}"
        output = limit if limit is not None else self.typical.of(model)
        return body_size // 4 + 1 + output

    def settle(self, permit: Permit, tokens: int) -> None:
        """The request is done: release what it held; token limits count `tokens`."""
        self.limiter.settle(permit, tokens, time.time())

    def status(self, config: Config, access: Access, identity: Identity) -> dict[str, Any]:
        """The caller's limits and their use as this instance enforces them: its own, and
        the other live instances' as of the last sync (at most `SYNC_SECONDS` old)."""
        now = time.time()
        out: list[dict[str, Any]] = []
        for name, template, limit in own_limits(config, access, identity):
            entry: dict[str, Any] = {"name": name, "template": template}
            if limit is None:
                out.append({**entry, "error": "not defined in rate_limits; requests get 429"})
                continue
            local = self.limiter.counters.get(name)
            counter = Counter(name, limit)
            if local is not None and local.limit == limit:
                counter = local
            else:
                rows = self.limiter.remote.get(name, ())
                counter.others = others_of(counter, rows, self.limiter.remote_at)
            used = round(counter.used(now))
            entry.update(
                kind=limit.kind,
                limit=limit.limit,
                per=limit.per or None,
                description=limit.describe(),
                used=used,
                remaining=max(0, limit.limit - used),
            )
            if limit.kind != "requests":
                held = counter.own.held + counter.others.held
                entry["in_flight" if limit.kind == "concurrent" else "reserved"] = held
            out.append(entry)
        out.sort(key=lambda e: str(e["name"]))
        return {"rate_limits": out, "instances": self.limiter.instances}
