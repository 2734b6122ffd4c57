"""Budget thresholds: a bucket's use crossing a percentage of its capacity.

Use is `capacity - balance` (what is spent and not yet refilled). For each configured
threshold the bucket is either at or above it (the alert holds) or below it (cleared, so
that the next crossing alerts again). The alert of a `<user>` bucket concerns that user, who
sees it on their own notification list.
"""

from __future__ import annotations

import re
from functools import lru_cache

from irisgate.alerts.signal import Signal
from irisgate.quotas.amounts import dollars


def severity_of(threshold: int) -> str:
    """100 % and above: critical (requests are refused); 80 % and above: warning."""
    if threshold >= 100:
        return "critical"
    if threshold >= 80:
        return "warning"
    return "info"


def budget_signals(
    name: str, template: str, capacity: int, balance: int, thresholds: tuple[int, ...]
) -> list[Signal]:
    """One signal per threshold of the bucket `name` (expanded from `template`)."""
    used = capacity - balance
    login = user_of(name, template)
    refused = "; requests charging it are refused until it refills" if balance <= 0 else ""
    message = (
        f"{dollars(used)} of {dollars(capacity)} used ({used * 100 // capacity} %), "
        f"{dollars(max(balance, 0))} left{refused}"
    )
    signals = []
    for threshold in thresholds:
        signal = Signal("budget", name, str(threshold), active=False)
        if used * 100 >= threshold * capacity:
            signal = Signal(
                "budget",
                name,
                str(threshold),
                severity=severity_of(threshold),
                message=f"bucket {name} reached {threshold} % of its capacity: {message}",
                login_name=login,
            )
        signals.append(signal)
    return signals


def user_of(name: str, template: str) -> str:
    """The login a bucket belongs to when its template holds `<user>`, else ""."""
    if "<user>" not in template:
        return ""
    match = _pattern(template).fullmatch(name)
    return match.group("user") if match else ""


@lru_cache(maxsize=256)
def _pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(<user>|<node>)", template)
    out: list[str] = []
    seen = False
    for part in parts:
        if part == "<user>" and not seen:
            out.append("(?P<user>.+)")
            seen = True
        elif part in ("<user>", "<node>"):
            out.append(".+")
        else:
            out.append(re.escape(part))
    return re.compile("".join(out))
