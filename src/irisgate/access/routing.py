"""Model routing: which provider serves a model for a given API format and caller.

Built once per config version. A model may be named bare (`claude-sonnet-4-5`) or
provider-qualified (`anthropic/claude-sonnet-4-5`). Among enabled providers that serve the model
and accept the format, the caller must be granted `provider/model`; the highest `preference`
wins (ties: provider id, for a stable choice).

`granted` gives all of them, best first, for failover (gateway/attempts.py): providers of
equal `preference` are put in an order spread by their `weight` and the request's session
(weighted rendezvous hashing, access/health.py), so that each gets its share of the sessions
and every request of one session goes to the same provider while it is healthy (the
vendors' prompt caches are per provider and per key).
"""

from __future__ import annotations

from dataclasses import dataclass

from irisgate.access.grants import Access
from irisgate.access.health import spread
from irisgate.config.model import Config, Provider
from irisgate.telemetry.record import recorded_name
from irisgate.wire.errors import GatewayError


@dataclass(frozen=True, slots=True)
class Route:
    provider: Provider
    model: str  # the bare model id the provider knows
    qualified: bool  # the caller named it provider/model (the body's model must be rewritten)

    @property
    def fqn(self) -> str:
        return f"{self.provider.id}/{self.model}"


class RouteTable:
    def __init__(self, config: Config) -> None:
        ordered = sorted(config.providers.values(), key=lambda p: (-p.preference, p.id))
        self._by_model: dict[str, list[Provider]] = {}
        self._qualified: dict[str, tuple[Provider, str]] = {}
        for provider in ordered:
            for model in provider.models:
                self._by_model.setdefault(model, []).append(provider)
                self._qualified[f"{provider.id}/{model}"] = (provider, model)
        # (model as named, format flag) -> candidate routes, enabled and accepting the format
        self._candidates: dict[tuple[str, str], list[Route]] = {}

    def models(self) -> dict[str, list[Provider]]:
        return self._by_model

    def resolve(self, model: str, flag: str, title: str, access: Access) -> Route:
        """The route for `model`, or a GatewayError naming why there is none."""
        return self.granted(model, flag, title, access)[0]

    def granted(
        self, model: str, flag: str, title: str, access: Access, session: str = ""
    ) -> list[Route]:
        """The routes for `model` the caller is granted, in the order to try them (see the
        module doc), or a GatewayError naming why there is none."""
        candidates = self._candidates.get((model, flag))
        if candidates is None:
            candidates = self._build(model, flag, title)
        if len(candidates) == 1:  # the common case: nothing to order
            if access.may_use_model(candidates[0].fqn):
                return candidates
        else:
            routes = [route for route in candidates if access.may_use_model(route.fqn)]
            if routes:
                return _ordered(routes, session) if len(routes) > 1 else routes
        raise GatewayError(
            "permission",
            f"access denied: model '{recorded_name(model)}' is not granted to you",
            code="model_not_granted",
        )

    def translatable(
        self, model: str, flags: tuple[str, ...], access: Access, session: str = ""
    ) -> list[tuple[Route, str]]:
        """The routes for `model` through providers with `translate` on, each with the first
        of `flags` (API formats irisgate can translate to, in preference order) the provider
        accepts; granted to the caller, in the order to try them. [] when there is none: the
        caller then gets the error `granted` gave."""
        qualified = self._qualified.get(model)
        if qualified is not None and model not in self._by_model:
            providers, bare, is_q = [qualified[0]], qualified[1], True
        else:
            providers, bare, is_q = self._by_model.get(model, []), model, False
        flag_of: dict[str, str] = {}
        routes: list[Route] = []
        for provider in providers:
            if not (provider.translate and provider.enabled):
                continue
            flag = next((f for f in flags if provider.accepts(f)), None)
            route = Route(provider, bare, is_q)
            if flag is not None and access.may_use_model(route.fqn):
                flag_of[provider.id] = flag
                routes.append(route)
        if len(routes) > 1:
            routes = _ordered(routes, session)
        return [(route, flag_of[route.provider.id]) for route in routes]

    def _build(self, model: str, flag: str, title: str) -> list[Route]:
        qualified = self._qualified.get(model)
        if qualified is not None and model not in self._by_model:
            providers, bare, is_q = [qualified[0]], qualified[1], True
        else:
            providers, bare, is_q = self._by_model.get(model, []), model, False
        if not providers:
            raise GatewayError(
                "not_found",
                f"model '{recorded_name(model)}' is not served by any provider",
                code="model_not_found",
            )
        enabled = [p for p in providers if p.enabled]
        if not enabled:
            reasons = "; ".join(
                f"provider '{p.id}' is disabled"
                if p.disabled
                else f"provider '{p.id}' is unavailable ({p.unavailable_reason})"
                for p in providers
            )
            raise GatewayError(
                "not_found",
                f"model '{recorded_name(model)}' is unavailable: {reasons}",
                code="model_not_found",
            )
        routes = [Route(p, bare, is_q) for p in enabled if p.accepts(flag)]
        if not routes:
            names = ", ".join(p.id for p in enabled)
            raise GatewayError(
                "not_found",
                f"model '{recorded_name(model)}' is not available through the {title} API "
                f"(provider {names} does not enable '{flag}')",
                code="model_not_found",
            )
        if len(self._candidates) < 10_000:
            self._candidates[(model, flag)] = routes
        return routes


def _ordered(routes: list[Route], session: str) -> list[Route]:
    """Routes by `preference` (they come sorted), each group of equal preference spread by
    weight for `session`."""
    out: list[Route] = []
    start = 0
    while start < len(routes):
        preference = routes[start].provider.preference
        end = start
        while end < len(routes) and routes[end].provider.preference == preference:
            end += 1
        group = routes[start:end]
        if len(group) > 1:
            by_id = {route.provider.id: route for route in group}
            order = spread(session, [(r.provider.id, r.provider.weight) for r in group])
            group = [by_id[provider_id] for provider_id in order]
        out.extend(group)
        start = end
    return out
