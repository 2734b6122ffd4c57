"""Images attached in chat, stored once each and served from their own endpoint.

`POST /api/chat/conversations/<id>/attachments` takes the image's bytes as the body, sent
with its type (`Content-Type: image/png`...; a type a cross-site form cannot send without a
CORS preflight, like JSON) and `?name=` its file name. The type kept is the one its bytes
say (sniffed), which must be PNG, JPEG, GIF or WebP whatever the browser declared; a file is
at most `MAX_IMAGE_BYTES` (so its base64 stays within Anthropic's 5 MB per image) and a
login's attachments together at most `--max-chat-attachments` (200 MB). A user message
then names its images by id (`irisgate.chat.parts`), and the conversation's JSON carries
their URLs, not their bytes.

`GET /api/chat/attachments/<id>` serves one to its owner only (anyone else gets the 404 of
an id that does not exist) with the sniffed `Content-Type`, `nosniff`, an inline
`Content-Disposition` naming the id (never the uploaded name) and a private cache: an id
always names the same bytes. Deleting a conversation deletes its attachments.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select
from starlette.requests import Request
from starlette.responses import Response

from irisgate.chat.access import require_chat
from irisgate.chat.conversations import Conversations
from irisgate.handlers import ApiError, json_response, query_value, runtime_of
from irisgate.store.database import Database
from irisgate.store.tables import chat_attachments as att
from irisgate.wire.bodylimit import BodyTooLarge, ClientGone, read_body

MAX_IMAGE_BYTES = 3_750_000
NAME_LIMIT = 200
#: media type -> file name extension of the types every chat API takes
EXTENSIONS: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
}
KINDS = "PNG, JPEG, GIF or WebP"


def sniff(data: bytes) -> str | None:
    """The image type `data` starts like, among `EXTENSIONS`; None for anything else."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def url_of(attachment_id: str) -> str:
    return f"/api/chat/attachments/{attachment_id}"


def _reference(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "media_type": row.media_type,
        "size": row.size,
        "url": url_of(row.id),
    }


class Attachments:
    """The attachment store of one runtime; every query is scoped to a login."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def used(self, login: str) -> int:
        statement = select(func.coalesce(func.sum(att.c.size), 0)).where(att.c.login_name == login)
        async with self._db.connect() as conn:
            return int((await conn.execute(statement)).scalar_one())

    async def add(
        self, login: str, conversation_id: str, name: str, media_type: str, data: bytes
    ) -> dict[str, Any]:
        values = {
            "id": "a_" + secrets.token_urlsafe(16),
            "login_name": login,
            "conversation_id": conversation_id,
            "name": name,
            "media_type": media_type,
            "size": len(data),
            "data": data,
            "created_at": datetime.now(UTC),
        }
        async with self._db.begin() as conn:
            await conn.execute(insert(att).values(**values))
        return {k: values[k] for k in ("id", "name", "media_type", "size")} | {
            "url": url_of(str(values["id"]))
        }

    async def references(
        self, login: str, conversation_id: str, ids: list[str]
    ) -> dict[str, dict[str, Any]]:
        """id -> {id, name, media_type, size, url} of those of `ids` that are the login's in
        this conversation."""
        if not ids:
            return {}
        statement = select(att.c.id, att.c.name, att.c.media_type, att.c.size).where(
            att.c.id.in_(ids),
            att.c.login_name == login,
            att.c.conversation_id == conversation_id,
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(statement)).all()
        return {row.id: _reference(row) for row in rows}

    async def size(self, login: str, ids: list[str]) -> int:
        """Bytes of those of `ids` that are the login's, together."""
        if not ids:
            return 0
        statement = select(func.coalesce(func.sum(att.c.size), 0)).where(
            att.c.id.in_(ids), att.c.login_name == login
        )
        async with self._db.connect() as conn:
            return int((await conn.execute(statement)).scalar_one())

    async def data(self, login: str, ids: list[str]) -> dict[str, tuple[str, bytes]]:
        """id -> (media type, bytes) of those of `ids` that are the login's."""
        if not ids:
            return {}
        statement = select(att.c.id, att.c.media_type, att.c.data).where(
            att.c.id.in_(ids), att.c.login_name == login
        )
        async with self._db.connect() as conn:
            rows = (await conn.execute(statement)).all()
        return {row.id: (row.media_type, bytes(row.data)) for row in rows}


def _store(request: Request) -> Attachments:
    return Attachments(runtime_of(request).db)


async def upload(request: Request) -> Response:
    """Store one image of a conversation of the caller's; 201 with its reference."""
    caller = await require_chat(request)
    login = caller.identity.login_name
    conversation_id = request.path_params["conversation_id"]
    declared = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if declared not in EXTENSIONS:
        raise ApiError(
            415,
            f"an attachment must be a {KINDS} image sent with its Content-Type "
            f"(this request had {declared or 'none'!r})",
        )
    name = (query_value(request, "name") or "").strip()
    if len(name) > NAME_LIMIT:
        raise ApiError(400, f"'name' is longer than {NAME_LIMIT} characters")
    if await Conversations(runtime_of(request).db).settings(login, conversation_id) is None:
        raise ApiError(404, f"conversation {conversation_id!r} not found")
    setting = f"the chat's limit of {MAX_IMAGE_BYTES} bytes per image"
    try:
        data = await read_body(request.receive, request.scope["headers"], MAX_IMAGE_BYTES, setting)
    except BodyTooLarge:
        what = name or "the image"
        raise ApiError(413, f"{what} is larger than {MAX_IMAGE_BYTES} bytes") from None
    except ClientGone:
        raise ApiError(400, "the client disconnected before its request body ended") from None
    media_type = sniff(data)
    if media_type is None:
        raise ApiError(415, f"{name or 'the file'} is not a {KINDS} image")
    store = _store(request)
    used = await store.used(login)
    most = runtime_of(request).settings.max_chat_attachments
    if used + len(data) > most:
        raise ApiError(
            413,
            f"your chat images take {used} bytes and at most {most} are kept"
            " (--max-chat-attachments): delete conversations with images to make room",
        )
    stored = await store.add(login, conversation_id, name, media_type, data)
    return json_response(stored, status=201)


async def serve(request: Request) -> Response:
    """One attachment, to its owner only."""
    caller = await require_chat(request)
    attachment_id = request.path_params["attachment_id"]
    found = (await _store(request).data(caller.identity.login_name, [attachment_id])).get(
        attachment_id
    )
    if found is None:
        raise ApiError(404, f"attachment {attachment_id!r} not found")
    media_type, data = found
    safe = "".join(c for c in attachment_id if c.isascii() and (c.isalnum() or c in "_-"))
    headers = {
        "x-content-type-options": "nosniff",
        "content-disposition": f'inline; filename="{safe}.{EXTENSIONS[media_type]}"',
        "cache-control": "private, max-age=31536000, immutable",
        "content-security-policy": "default-src 'none'; sandbox",
    }
    return Response(data, 200, headers, media_type)
