"""Spend spikes: today's spend (UTC) above a multiple of the trailing daily average, per user
and in total, read from the daily rollup (`usage_daily`, one query per check)."""

from __future__ import annotations

from datetime import date, timedelta

from sqlalchemy import func, select

from irisgate.alerts.signal import Signal
from irisgate.config.model import SpendSpike
from irisgate.quotas.amounts import dollars
from irisgate.store.database import Database
from irisgate.store.tables import usage_daily

#: the subject of the alert about everyone's spend together
TOTAL = "(all users)"


async def spend_by_day(db: Database, first: date, last: date) -> dict[tuple[date, str], int]:
    """(day, login) -> cost in nanodollars, for the days first..last."""
    query = (
        select(
            usage_daily.c.day,
            usage_daily.c.login_name,
            func.sum(usage_daily.c.cost_nanodollars).label("cost"),
        )
        .where(usage_daily.c.day >= first, usage_daily.c.day <= last)
        .group_by(usage_daily.c.day, usage_daily.c.login_name)
    )
    async with db.connect() as conn:
        return {(r.day, r.login_name): int(r.cost or 0) for r in await conn.execute(query)}


def spike_signals(
    spend: dict[tuple[date, str], int], today: date, rule: SpendSpike
) -> list[Signal]:
    """An alert for each login (and the total) whose spend today is at least
    `rule.minimum` and above `rule.multiple` times its average over the `rule.days` before."""
    first = today - timedelta(days=rule.days)
    past: dict[str, int] = {}
    now: dict[str, int] = {}
    for (day, login), cost in spend.items():
        for who in (login, TOTAL):
            if day == today:
                now[who] = now.get(who, 0) + cost
            elif first <= day < today:
                past[who] = past.get(who, 0) + cost
    signals = []
    for who, cost in sorted(now.items()):
        average = past.get(who, 0) / rule.days
        if cost < rule.minimum_nanodollars or cost <= rule.multiple * average:
            continue
        whose = "everyone's spend" if who == TOTAL else f"{who}'s spend"
        signals.append(
            Signal(
                "spend_spike",
                who,
                today.isoformat(),  # one alert per subject and day
                severity="warning",
                message=(
                    f"{whose} today is {dollars(cost)}, more than {rule.multiple:g} times "
                    f"the daily average of the {rule.days} days before "
                    f"({dollars(round(average))})"
                ),
                login_name="" if who == TOTAL else who,
            )
        )
    return signals
