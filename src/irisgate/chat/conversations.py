"""Chat conversations in the database: each belongs to one login, and every query is scoped
to that login, so one user can neither read nor change another's conversations (an id of
someone else's conversation behaves exactly like an id that does not exist).

The turns themselves run through the gateway as the user's ordinary requests; this module
only keeps what the chat app shows again after a reload or a restart.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import delete, exists, func, insert, or_, select, update

from irisgate.store.database import Database
from irisgate.store.tables import chat_attachments as att
from irisgate.store.tables import chat_conversations as conv
from irisgate.store.tables import chat_messages as msg

#: What an assistant turn ended with (the empty string: not an assistant turn, or unknown).
OUTCOMES: tuple[str, ...] = ("", "completed", "error", "cancelled", "refused", "truncated")
ROLES: tuple[str, ...] = ("user", "assistant")
#: The longest list a search or the sidebar gets back.
LIST_LIMIT = 200
#: Columns holding a JSON list ('' in the database: an empty list).
JSON_LISTS: frozenset[str] = frozenset({"tools", "attachments", "tool_calls"})


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    content: str
    model: str = ""
    outcome: str = ""
    request_id: str = ""
    #: images of a user message: {id, name, media_type, size, url} (irisgate.chat.attachments;
    #: messages kept before it: {name, media_type, data (base64)})
    attachments: tuple[dict[str, Any], ...] = ()
    #: tool rounds of an assistant turn: {text, calls: [{id, name, arguments, output, is_error}]}
    tool_calls: tuple[dict[str, Any], ...] = ()
    reasoning: str = ""


def _dump(value: Any) -> str:
    return orjson.dumps(list(value)).decode() if value else ""


def _load(text: str) -> list[Any]:
    loaded = orjson.loads(text) if text else []
    return loaded if isinstance(loaded, list) else []


def _stored(changes: dict[str, Any]) -> dict[str, Any]:
    """Values as the columns hold them (JSON lists as text)."""
    return {k: _dump(v) if k in JSON_LISTS else v for k, v in changes.items()}


def _conversation(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "title": row.title,
        "model": row.model,
        "instructions": row.instructions,
        "tools": _load(row.tools),
        "reasoning_effort": row.reasoning_effort,
        "project_id": row.project_id,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def _message(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "role": row.role,
        "content": row.content,
        "model": row.model,
        "outcome": row.outcome,
        "request_id": row.request_id,
        "attachments": _load(row.attachments),
        "tool_calls": _load(row.tool_calls),
        "reasoning": row.reasoning,
        "created_at": row.created_at.isoformat(),
    }


def _owned(login: str, conversation_id: str) -> Any:
    return (conv.c.id == conversation_id) & (conv.c.login_name == login)


class Conversations:
    """The conversation store of one runtime (its database opens at start)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def list(self, login: str, query: str = "") -> list[dict[str, Any]]:
        """Newest first; `query` keeps those whose title or any message contains it
        (case-insensitive)."""
        statement = select(conv).where(conv.c.login_name == login)
        needle = query.strip().lower()
        if needle:
            in_messages = exists().where(
                msg.c.conversation_id == conv.c.id,
                func.lower(msg.c.content).contains(needle, autoescape=True),
            )
            statement = statement.where(
                or_(func.lower(conv.c.title).contains(needle, autoescape=True), in_messages)
            )
        statement = statement.order_by(conv.c.updated_at.desc(), conv.c.id).limit(LIST_LIMIT)
        async with self._db.connect() as conn:
            rows = (await conn.execute(statement)).all()
        return [_conversation(row) for row in rows]

    async def create(
        self,
        login: str,
        *,
        title: str,
        model: str,
        instructions: str,
        tools: tuple[str, ...] = (),
        reasoning_effort: str = "",
        project_id: str = "",
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        values = {
            "id": "c_" + secrets.token_urlsafe(12),
            "login_name": login,
            "title": title,
            "model": model,
            "instructions": instructions,
            "tools": _dump(tools),
            "reasoning_effort": reasoning_effort,
            "project_id": project_id,
            "created_at": now,
            "updated_at": now,
        }
        async with self._db.begin() as conn:
            await conn.execute(insert(conv).values(**values))
            row = (await conn.execute(select(conv).where(conv.c.id == values["id"]))).one()
        return _conversation(row)

    async def get(self, login: str, conversation_id: str) -> dict[str, Any] | None:
        """The conversation with its messages in order, or None when the login has none
        with this id."""
        async with self._db.connect() as conn:
            row = (await conn.execute(select(conv).where(_owned(login, conversation_id)))).first()
            if row is None:
                return None
            messages = (
                await conn.execute(
                    select(msg).where(msg.c.conversation_id == conversation_id).order_by(msg.c.id)
                )
            ).all()
        return {**_conversation(row), "messages": [_message(m) for m in messages]}

    async def settings(self, login: str, conversation_id: str) -> dict[str, Any] | None:
        """The conversation without its messages (its tools, project...), or None when the
        login has none with this id."""
        async with self._db.connect() as conn:
            row = (await conn.execute(select(conv).where(_owned(login, conversation_id)))).first()
        return None if row is None else _conversation(row)

    async def update(
        self, login: str, conversation_id: str, changes: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Change `title`, `model`, `instructions`, `tools` (a list of tool names),
        `reasoning_effort` and/or `project_id` ('' for none); None when not found."""
        values: dict[str, Any] = {**_stored(changes), "updated_at": datetime.now(UTC)}
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(conv).where(_owned(login, conversation_id)).values(**values)
            )
            if result.rowcount == 0:
                return None
            row = (await conn.execute(select(conv).where(conv.c.id == conversation_id))).one()
        return _conversation(row)

    async def delete(self, login: str, conversation_id: str) -> bool:
        async with self._db.begin() as conn:
            owned = (
                await conn.execute(select(conv.c.id).where(_owned(login, conversation_id)))
            ).first()
            if owned is None:
                return False
            await conn.execute(delete(msg).where(msg.c.conversation_id == conversation_id))
            await conn.execute(delete(att).where(att.c.conversation_id == conversation_id))
            await conn.execute(delete(conv).where(conv.c.id == conversation_id))
        return True

    async def add_message(
        self, login: str, conversation_id: str, message: Message
    ) -> dict[str, Any] | None:
        """Append a message (and bump the conversation to the top); None when not found."""
        now = datetime.now(UTC)
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(conv).where(_owned(login, conversation_id)).values(updated_at=now)
            )
            if result.rowcount == 0:
                return None
            inserted = await conn.execute(
                insert(msg)
                .values(
                    conversation_id=conversation_id,
                    role=message.role,
                    content=message.content,
                    model=message.model,
                    outcome=message.outcome,
                    request_id=message.request_id,
                    attachments=_dump(message.attachments),
                    tool_calls=_dump(message.tool_calls),
                    reasoning=message.reasoning,
                    created_at=now,
                )
                .returning(*msg.c)
            )
            row = inserted.one()
        return _message(row)

    async def truncate(self, login: str, conversation_id: str, message_id: int) -> int | None:
        """Delete message `message_id` and every later one (a retry replaces the last answer).
        The number deleted, or None when the conversation is not found."""
        async with self._db.begin() as conn:
            result = await conn.execute(
                update(conv)
                .where(_owned(login, conversation_id))
                .values(updated_at=datetime.now(UTC))
            )
            if result.rowcount == 0:
                return None
            deleted = await conn.execute(
                delete(msg).where(msg.c.conversation_id == conversation_id, msg.c.id >= message_id)
            )
        return int(deleted.rowcount)
