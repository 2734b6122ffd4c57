"""Failover: one request's upstream attempts, until one answers or none is left to try.

    response = await Attempts(...).first_answer()

The routes come best first (access/routing.py), each with its keys in the order health
gives (access/health.py: resting, dropped and open-circuit ones left out). An attempt is
retried on the next (provider, key) only while nothing has reached the client: the relay
(relaycore.py) starts on the answer this returns, so a failure once the answer's head came
is never retried here. Retried are:

- no answer: a connect error, or a timeout before the answer's head (the connect and read
  timeouts of `wire/http1.py`): the next provider;
- a 5xx: the next provider; a 429: the next key of the same provider, else the next one;
- a 401 to a key irisgate injected (`auth_mode` override): the next key, then provider.

No more than `attempts` in all, and none started once `budget` seconds passed since the
first. When no further attempt may be made, the last answer goes to the client as the
upstream gave it (or, with none, irisgate's 502/504). The request body is the same bytes on
every attempt (`build` makes headers and URL per provider and key). Every attempt is
reported to health and listed in `log` (provider, key index, status, error, milliseconds
to the answer's head); hooks, quota and charging are the pipeline's, once per request.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from irisgate.access.health import Health, Outcome, retry_after_seconds
from irisgate.access.routing import Route
from irisgate.gateway.relaycore import Unanswered
from irisgate.wire.errors import GatewayError
from irisgate.wire.http1 import Http1Client, Response, UpstreamError
from irisgate.wire.upstream import UpstreamRequest

Build = Callable[[Route, int], Awaitable[UpstreamRequest]]


@dataclass(slots=True)
class Attempts:
    """One request's attempts (see the module doc)."""

    routes: list[Route]
    build: Build
    client: Http1Client
    health: Health
    version: int  # the config version (a 401 drops a key until it changes)
    session: str  # spreads keys (the same session, the same key while healthy)
    attempts: int
    budget: float
    #: (provider, key, status, error, ms) per attempt; `entries()` as records keep them
    log: list[tuple[str, int, int, str, float]] = field(default_factory=list)
    last: UpstreamRequest | None = None  # the last request sent (the answer's, once one came)

    def _plan(self) -> tuple[list[tuple[Route, int]], bool]:
        """The (route, key) pairs to try in order, and whether that is one provider with
        one key that nothing is known against (then health needs no asking)."""
        routes = self.routes
        if len(routes) == 1:  # the common case, made cheap: one provider, one healthy key
            provider = routes[0].provider
            if not provider.keys and self.health.calm(provider.id):
                return [(routes[0], 0)], True
        pairs: list[tuple[Route, int]] = []
        for route in routes:
            provider = route.provider
            keys = self.health.keys(provider.id, provider.key_count, self.version, self.session)
            pairs.extend((route, key) for key in keys if provider.usable_key(key))
        return pairs, False

    def entries(self) -> list[dict[str, Any]]:
        """The attempts as the request record keeps them."""
        return [
            {"provider": provider, "key": key, "status": status, "error": error, "ms": ms}
            for provider, key, status, error, ms in self.log
        ]

    async def first_answer(self) -> Response:
        """The answer to relay: the first that needs no retry, or the last one made."""
        pairs, calm = self._plan()
        skipped: set[str] = set()  # providers not to try again in this request
        started = time.monotonic()
        index = made = 0
        health = self.health
        while index < len(pairs):
            route, key = pairs[index]
            index += 1
            provider = route.provider.id
            if provider in skipped or not (calm or health.allows(provider)):
                continue
            made += 1
            opened = time.perf_counter()
            try:
                request = self.last = await self.build(route, key)
                response = await self.client.request(
                    request.method, request.url, request.headers, request.body
                )
            except (TimeoutError, UpstreamError) as exc:
                error = str(exc) or type(exc).__name__
                self._note(provider, key, 0, error, opened)
                health.report(provider, key, "failed", error=error)
                skipped.add(provider)
                if self._more(pairs, index, skipped, made, started):
                    continue
                raise Unanswered(exc, timed_out=isinstance(exc, TimeoutError)) from exc
            except BaseException:  # cancelled, or irisgate's own error building it
                health.report(provider, key, "abandoned")
                raise
            status = response.status
            if status < 401 or (401 < status < 429) or (429 < status < 500):  # answered
                if self.log or route.provider.keys:  # else the record's `provider` says it all
                    self._note(provider, key, status, "", opened)
                if not calm:
                    health.report(provider, key, "ok")
                return response
            outcome = _outcome(status, route)
            retry_after: float | None = None
            if outcome == "rate_limited":
                retry_after = retry_after_seconds(_header(response, b"retry-after"))
            error = _describe(status, retry_after) if outcome != "ok" else ""
            self._note(provider, key, status, error, opened)
            health.report(
                provider, key, outcome, version=self.version, retry_after=retry_after, error=error
            )
            if outcome == "failed":
                skipped.add(provider)
            if outcome != "ok" and self._more(pairs, index, skipped, made, started):
                response.close()
                continue
            return response
        raise self._nothing_to_try()

    def _note(self, provider: str, key: int, status: int, error: str, opened: float) -> None:
        ms = round((time.perf_counter() - opened) * 1000, 3)
        self.log.append((provider, key, status, error, ms))

    def _more(
        self,
        pairs: list[tuple[Route, int]],
        index: int,
        skipped: set[str],
        made: int,
        started: float,
    ) -> bool:
        """Whether another attempt may start: one is left, within count and budget."""
        if made >= self.attempts or time.monotonic() - started >= self.budget:
            return False
        return any(route.provider.id not in skipped for route, _ in pairs[index:])

    def _nothing_to_try(self) -> GatewayError:
        """Every route is out of rotation: 429 when keys rest, 503 when circuits are open,
        with `Retry-After` for the soonest one back."""
        waits = [
            self.health.wait(r.provider.id, r.provider.key_count, self.version) for r in self.routes
        ]
        known = [w for w in waits if w is not None]
        soonest = min(known) if known else 1.0
        names = ", ".join(f"'{r.provider.id}'" for r in self.routes)
        if soonest == float("inf"):
            return GatewayError(
                "unavailable",
                f"provider {names} refused every configured key (401) since the config was "
                "loaded; an administrator must fix the keys",
                code="upstream_keys_refused",
            )
        seconds = max(1, int(soonest + 0.999))
        headers = {"retry-after": str(seconds)}
        if self._resting():
            return GatewayError(
                "rate_limit",
                f"provider {names} is rate-limited by the upstream; retry in {seconds} s",
                code="upstream_rate_limited",
                headers=headers,
            )
        return GatewayError(
            "unavailable",
            f"provider {names} is out of rotation after repeated failures; retry in {seconds} s",
            code="upstream_unavailable",
            headers=headers,
        )

    def _resting(self) -> bool:
        """Whether some route's circuit would let a request through (so it is keys that
        rest, not circuits that are open)."""
        views = self.health.views(
            ((r.provider.id, r.provider.key_count) for r in self.routes), self.version
        )
        return any(view.state != "open" for view in views)


def _outcome(status: int, route: Route) -> Outcome:
    if status == 429:
        return "rate_limited"
    if status >= 500:
        return "failed"
    if status == 401 and route.provider.auth_mode == "override":
        return "unauthorized"
    return "ok"


def _describe(status: int, retry_after: float | None) -> str:
    """An attempt's error as records and the dashboard show it: the status, never the
    upstream's body (a vendor's 401 may quote part of the key)."""
    if status == 429:
        rest = f", Retry-After {retry_after:g} s" if retry_after is not None else ""
        return f"upstream answered 429 (rate limited{rest})"
    if status == 401:
        return "upstream answered 401: the key was refused"
    return f"upstream answered {status}"


def _header(response: Response, name: bytes) -> str | None:
    for key, value in response.raw_headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None
