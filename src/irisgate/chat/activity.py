"""The admin "Chat activity" report: per UTC day, conversations started, user messages,
assistant turns and how the turns ended (completed, error, cancelled, refused, truncated).

Chat traffic is human-paced (a message is something a person typed), so the report reads the
messages of the range and sums them per day here, which keeps days in UTC on every backend.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import select

from irisgate.chat.conversations import OUTCOMES
from irisgate.store.database import Database
from irisgate.store.reports import Filters
from irisgate.store.tables import chat_conversations as conv
from irisgate.store.tables import chat_messages as msg

#: Outcomes of assistant turns, in the order the page shows them.
TURN_OUTCOMES: tuple[str, ...] = tuple(o for o in OUTCOMES if o)


def _start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _empty(day: date) -> dict[str, Any]:
    return {
        "day": day.isoformat(),
        "conversations": 0,
        "user_messages": 0,
        "assistant_turns": 0,
        "users": 0,
        "outcomes": dict.fromkeys(TURN_OUTCOMES, 0),
    }


async def chat_activity(db: Database, filters: Filters) -> dict[str, Any]:
    """`days` (every day of the range, oldest first) and `totals` over the range."""
    since, until = _start(filters.since), _start(filters.until)
    messages = (
        select(msg.c.role, msg.c.outcome, msg.c.created_at, conv.c.login_name)
        .join(conv, conv.c.id == msg.c.conversation_id)
        .where(msg.c.created_at >= since, msg.c.created_at < until)
    )
    started = select(conv.c.created_at, conv.c.login_name).where(
        conv.c.created_at >= since, conv.c.created_at < until
    )
    if filters.login_name is not None:
        messages = messages.where(conv.c.login_name == filters.login_name)
        started = started.where(conv.c.login_name == filters.login_name)
    async with db.connect() as conn:
        message_rows = (await conn.execute(messages)).all()
        started_rows = (await conn.execute(started)).all()
    days: dict[date, dict[str, Any]] = {}
    day = filters.since
    while day < filters.until:
        days[day] = _empty(day)
        day += timedelta(days=1)
    users: dict[date, set[str]] = {}
    for first in started_rows:
        days[first.created_at.date()]["conversations"] += 1
    for row in message_rows:
        entry = days[row.created_at.date()]
        if row.role == "user":
            entry["user_messages"] += 1
            users.setdefault(row.created_at.date(), set()).add(row.login_name)
        else:
            entry["assistant_turns"] += 1
            entry["outcomes"][row.outcome or "completed"] += 1
    for when, logins in users.items():
        days[when]["users"] = len(logins)
    totals = _empty(filters.since)
    del totals["day"]
    totals["users"] = len({row.login_name for row in message_rows if row.role == "user"})
    for entry in days.values():
        for key in ("conversations", "user_messages", "assistant_turns"):
            totals[key] += entry[key]
        for outcome, count in entry["outcomes"].items():
            totals["outcomes"][outcome] += count
    return {"days": list(days.values()), "totals": totals}
