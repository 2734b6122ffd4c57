"""The quota stage of the gateway: charges, estimate, admission, settlement.

The pipeline calls `admit` after routing (a 429 in the caller's format when refused) and
`settle` once the cost is known; everything else lives in the modules beside this one.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

from irisgate.access.grants import Access
from irisgate.access.routing import Route
from irisgate.identity import Identity
from irisgate.quotas.charges import Chain, charges_for
from irisgate.quotas.estimate import Guess, TypicalOutput, estimate
from irisgate.quotas.ledger import (
    BalanceObserver,
    Ledger,
    QuotaRefused,
    QuotaUnavailable,
    Reservation,
)
from irisgate.snapshot import Snapshot
from irisgate.store.database import Database
from irisgate.telemetry.metrics import Metrics
from irisgate.usage.unitprices import Units
from irisgate.wire.errors import GatewayError

#: what stays as it is in a bucket name sent as a header (printable ASCII but space)
_BUCKET_SAFE = "!#$%&'()*+,-./:;<=>?@[]^_`{|}~"


@dataclass(slots=True)
class Admission:
    chains: tuple[Chain, ...]
    reservation: Reservation
    guess: Guess


class QuotaGate:
    def __init__(
        self,
        db: Database,
        data_dir: Path,
        max_reservation: int,
        metrics: Metrics | None = None,
        observe: BalanceObserver | None = None,
    ) -> None:
        """`observe`: told each bucket's balance after a sync (see `Ledger`)."""
        self.ledger = Ledger(db, data_dir, observe=observe)
        self.typical = TypicalOutput()
        self.max_reservation = max_reservation
        self.metrics = metrics

    def start(self) -> None:
        self.ledger.start()

    async def stop(self) -> None:
        await self.ledger.stop()

    async def admit(
        self,
        snapshot: Snapshot,
        *,
        access: Access,
        identity: Identity,
        route: Route,
        format_basis: str,
        body: dict[str, Any],
        body_size: int,
        units: Units | None = None,
    ) -> Admission | None:
        """Reserve the request's estimate in every bucket it charges; None when none applies.
        `units` is what the request asks for when it may be priced per unit (images)."""
        chains = charges_for(snapshot.config, access, identity, route.fqn)
        if not chains:
            return None
        guess = self.estimate(snapshot, route, format_basis, body, body_size, units=units)
        try:
            reservation = await self.ledger.admit(chains, guess.amount, limited=guess.limited)
        except QuotaRefused as exc:
            if self.metrics is not None:
                for template in exc.templates:
                    self.metrics.quota_rejected(template)
            headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
            raise GatewayError("rate_limit", exc.message, headers=headers) from None
        except QuotaUnavailable as exc:
            raise GatewayError("unavailable", str(exc)) from None
        return Admission(chains, reservation, guess)

    def estimate(
        self,
        snapshot: Snapshot,
        route: Route,
        format_basis: str,
        body: dict[str, Any],
        body_size: int,
        *,
        units: Units | None = None,
    ) -> Guess:
        """What the request may cost (see `quotas.estimate`)."""
        return estimate(
            snapshot.pricer,
            self.typical,
            provider=route.provider,
            format_basis=format_basis,
            model=route.model,
            body=body,
            body_size=body_size,
            cap=self.max_reservation,
            units=units,
        )

    def settle(self, admission: Admission, cost: int | None, output_tokens: int = 0) -> None:
        """Charge the recorded cost (an unpriced request costs nothing: its cost is None).
        `output_tokens` of an answer without an output limit teach its model's typical one."""
        self.ledger.settle(admission.reservation, cost or 0)
        guess = admission.guess
        if not guess.limited and guess.amount is not None and output_tokens > 0:
            self.typical.learn(guess.model, output_tokens)
        if self.metrics is not None:
            # shared buckets only: a per-user or per-node bucket's name holds a login or node
            # id, which would make the label set unbounded (those are in /api/quotas)
            for chain in admission.chains:
                for link in chain:
                    bucket = self.ledger.known(link.name)
                    if bucket is not None and link.name == link.template:
                        self.metrics.quota_balance(link.name, bucket.balance / 1e9)

    def remaining(self, admission: Admission) -> tuple[str, int] | None:
        """The tightest of the request's budgets, from what this instance knows (no database
        call): (the first bucket of the chain with the least money left, that money in
        nanodollars: the chain's balances less what requests in flight reserve, this one
        included). None when no bucket of it is known here."""
        tightest: tuple[str, int] | None = None
        for chain in admission.chains:
            buckets = [self.ledger.known(link.name) for link in chain]
            if not chain or any(b is None for b in buckets):
                continue
            left = sum(b.balance - b.reserved for b in buckets if b is not None)
            if tightest is None or left < tightest[1]:
                tightest = (chain[0].name, left)
        return tightest

    def headers(self, admission: Admission) -> list[tuple[bytes, bytes]]:
        """`x-irisgate-budget-remaining` (dollars, as a decimal) and `x-irisgate-budget-bucket`
        (percent-encoded beyond printable ASCII) of the tightest budget (`--budget-headers`)."""
        tightest = self.remaining(admission)
        if tightest is None:
            return []
        name, left = tightest
        return [
            (b"x-irisgate-budget-remaining", f"{Decimal(left).scaleb(-9):f}".encode()),
            (b"x-irisgate-budget-bucket", quote(name, safe=_BUCKET_SAFE).encode()),
        ]

    def describe(self, admission: Admission | None) -> dict[str, dict[str, Any]]:
        """The hook metadata `quotas` block: bucket -> current, capacity (nanodollars), rate."""
        if admission is None:
            return {}
        out: dict[str, dict[str, Any]] = {}
        for chain in admission.chains:
            for link in chain:
                bucket = self.ledger.known(link.name)
                if bucket is None or link.quota is None:
                    continue
                out[link.name] = {
                    "current": bucket.balance,
                    "capacity": link.quota.capacity_nanodollars,
                    "rate": link.quota.rate_text,
                }
        return out
