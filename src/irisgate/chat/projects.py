"""Chat projects: a login's groups of conversations, each with instructions shared by every
conversation in it and the connector tools its conversations may use.

Like conversations, projects are their owner's only: every query is scoped to the login, so
another user's project id behaves exactly like one that does not exist. A project narrows,
never widens: its `tools` (None: every tool the user is granted) are intersected with the
tools a conversation switches on, and every call still passes `/v1/mcp`'s grant check.
Deleting a project keeps its conversations, outside any project.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import delete, func, insert, select, update

from irisgate.store.database import Database
from irisgate.store.tables import chat_conversations as conv
from irisgate.store.tables import chat_projects as proj

#: the most projects one login may have
MAX_PROJECTS = 100


def _tools(text: str | None) -> list[str] | None:
    if text is None:
        return None
    loaded = orjson.loads(text)
    return [t for t in loaded if isinstance(t, str)] if isinstance(loaded, list) else []


def _project(row: Any, conversations: int = 0) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "instructions": row.instructions,
        "tools": _tools(row.tools),
        "conversations": conversations,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _stored(changes: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if v is None else orjson.dumps(list(v)).decode()) if k == "tools" else v
        for k, v in changes.items()
    }


def _owned(login: str, project_id: str) -> Any:
    return (proj.c.id == project_id) & (proj.c.login_name == login)


def instructions(project: dict[str, Any] | None, own: str) -> str:
    """What a round of a conversation sends as its system prompt: the project's instructions,
    then the conversation's own."""
    shared = project["instructions"] if project is not None else ""
    return "\n\n".join(text for text in (shared, own) if text)


def allowed(project: dict[str, Any] | None, switched_on: list[str]) -> set[str]:
    """The tools a conversation may offer and call: those switched on in it that its project
    allows (all of them outside a project, or in one that allows every tool)."""
    if project is None or project["tools"] is None:
        return set(switched_on)
    return set(switched_on) & set(project["tools"])


def not_allowed(tool: str) -> str:
    return (
        f"tool {tool!r} is not switched on in this conversation (or its project does not allow it)"
    )


class Projects:
    """The project store of one runtime."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self, login: str) -> list[dict[str, Any]]:
        """By name, each with its number of conversations."""
        counts = (
            select(conv.c.project_id, func.count().label("n"))
            .where(conv.c.login_name == login, conv.c.project_id != "")
            .group_by(conv.c.project_id)
            .subquery()
        )
        statement = (
            select(proj, func.coalesce(counts.c.n, 0).label("n"))
            .outerjoin(counts, counts.c.project_id == proj.c.id)
            .where(proj.c.login_name == login)
            .order_by(func.lower(proj.c.name), proj.c.id)
            .limit(MAX_PROJECTS)
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(statement)).all()
        return [_project(row, int(row.n)) for row in rows]

    async def count(self, login: str) -> int:
        statement = select(func.count()).select_from(proj).where(proj.c.login_name == login)
        async with self._db.connect() as conn:
            return int((await conn.execute(statement)).scalar_one())

    async def create(
        self, login: str, *, name: str, instructions: str, tools: tuple[str, ...] | None
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        values = {
            "id": "p_" + secrets.token_urlsafe(12),
            "login_name": login,
            "name": name,
            "instructions": instructions,
            "created_at": now,
            "updated_at": now,
            **_stored({"tools": tools}),
        }
        async with self._db.begin() as conn:
            await conn.execute(insert(proj).values(**values))
            row = (await conn.execute(select(proj).where(proj.c.id == values["id"]))).one()
        return _project(row)

    async def get(self, login: str, project_id: str) -> dict[str, Any] | None:
        if not project_id:
            return None
        async with self._db.connect() as conn:
            row = (await conn.execute(select(proj).where(_owned(login, project_id)))).first()
        return None if row is None else _project(row)

    async def update(
        self, login: str, project_id: str, changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Change `name`, `instructions` and/or `tools` (None: all granted); None when not
        found."""
        values = {**_stored(changes), "updated_at": datetime.now(UTC)}
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(proj).where(_owned(login, project_id)).values(**values)
            )
            if result.rowcount == 0:
                return None
            row = (await conn.execute(select(proj).where(proj.c.id == project_id))).one()
        return _project(row)

    async def delete(self, login: str, project_id: str) -> bool:
        """Delete the project; its conversations stay, outside any project."""
        async with self._db.begin() as conn:
            result = await conn.execute(delete(proj).where(_owned(login, project_id)))
            if result.rowcount == 0:
                return False
            await conn.execute(
                update(conv)
                .where(conv.c.login_name == login, conv.c.project_id == project_id)
                .values(project_id="")
            )
        return True
