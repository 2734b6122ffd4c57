"""OpenAI's audio, files and batches endpoints for `FakeLLM`, in the vendor's wire shapes.

    POST /v1/audio/transcriptions, /v1/audio/translations   multipart in; JSON, verbose_json
                                                            or text out (`response_format`)
    POST /v1/audio/speech                                   JSON in; audio out, chunked
    POST /v1/files (multipart), GET /v1/files, GET|DELETE /v1/files/{id},
    GET /v1/files/{id}/content
    POST /v1/batches, GET /v1/batches, GET /v1/batches/{id}, POST /v1/batches/{id}/cancel

Uploads are read part by part as they arrive (never `request.post()`), so a test can send
one bigger than any buffer; `uploads` records each one's fields and, per file part, its
size and SHA-256.

Transcriptions: a model whose name contains `transcribe` reports token usage
(`gpt-4o-transcribe` style: input = `audio_tokens_per_second` times the WAV's duration, output
= the words of the text); others (`whisper-1`) report `{"type": "duration", "seconds"}`,
and `verbose_json` adds `duration` and one segment. The duration is read from the uploaded
WAV header (stdlib `wave`), 0 for anything else. The text is `transcript_text`.

Batches move one step per retrieve: `validating` → `in_progress` → `finalizing` →
`completed`, like a real batch seen by a client polling it. On completion the output file
holds one result per input line, a `chat.completion` (or `response`) body whose usage
counts the line's prompt words in and `batch_output_tokens` out. A cancel answers
`cancelling`; the next retrieve says `cancelled`.

Speech sends `speech_chunks` pieces of `speech_chunk_size` bytes with chunked transfer
encoding; with `speech_gate` (a `threading.Event`) set up, it sends the first piece and
waits for the gate before the rest (so a test sees audio arrive before the answer ends).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
import time
import wave
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import BodyPartReader, web

from irisgate.testing import fake_openai
from irisgate.testing.fake_reply import count_prompt_tokens, count_words, new_id

_INDENT = orjson.OPT_INDENT_2
_SPEECH_TYPES = {
    "mp3": "audio/mpeg",
    "opus": "audio/opus",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
}
_POLL = 0.005


@dataclass(slots=True)
class Upload:
    """One multipart request as the fake read it."""

    path: str
    fields: dict[str, str]
    files: list[dict[str, Any]]  # name, filename, content_type, bytes, sha256


@dataclass(slots=True)
class StoredFile:
    obj: dict[str, Any]
    content: bytes


@dataclass(slots=True)
class StoredBatch:
    obj: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)


def file_object(file_id: str, filename: str, purpose: str, size: int) -> dict[str, Any]:
    return {
        "object": "file",
        "id": file_id,
        "purpose": purpose,
        "filename": filename,
        "bytes": size,
        "created_at": int(time.time()),
        "expires_at": None,
        "status": "processed",
        "status_details": None,
    }


def batch_object(batch_id: str, body: Mapping[str, Any], total: int) -> dict[str, Any]:
    now = int(time.time())
    return {
        "id": batch_id,
        "object": "batch",
        "endpoint": body.get("endpoint"),
        "model": None,
        "errors": None,
        "input_file_id": body.get("input_file_id"),
        "completion_window": body.get("completion_window", "24h"),
        "status": "validating",
        "output_file_id": None,
        "error_file_id": None,
        "created_at": now,
        "in_progress_at": None,
        "expires_at": now + 86400,
        "finalizing_at": None,
        "completed_at": None,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": total, "completed": 0, "failed": 0},
        "usage": None,
        "metadata": body.get("metadata"),
    }


def list_of(data: list[dict[str, Any]], has_more: bool = False) -> bytes:
    return orjson.dumps(
        {
            "object": "list",
            "data": data,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
            "has_more": has_more,
        },
        option=_INDENT,
    )


def wav_seconds(data: bytes) -> float:
    """The duration of a WAV file, 0.0 when `data` is not one."""
    try:
        with wave.open(io.BytesIO(data)) as audio:
            rate = audio.getframerate()
            return audio.getnframes() / rate if rate else 0.0
    except (wave.Error, EOFError):
        return 0.0


class FakeOpenAIObjects:
    """The state and handlers behind the endpoints above (`FakeLLM.objects`)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.transcript_text = "the quick brown fox jumps over the lazy dog"
        self.audio_tokens_per_second = 10
        self.batch_output_tokens = 7
        self.speech_chunks = 8
        self.speech_chunk_size = 4096
        self.speech_gate: threading.Event | None = None
        self.speech_started = threading.Event()
        self.uploads: list[Upload] = []
        self.files: dict[str, StoredFile] = {}
        self.batches: dict[str, StoredBatch] = {}

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/v1/audio/transcriptions", self._transcribe)
        router.add_post("/v1/audio/translations", self._transcribe)
        router.add_post("/v1/audio/speech", self._speech)
        router.add_post("/v1/files", self._file_create)
        router.add_get("/v1/files", self._file_list)
        router.add_get("/v1/files/{file_id}", self._file_get)
        router.add_delete("/v1/files/{file_id}", self._file_delete)
        router.add_get("/v1/files/{file_id}/content", self._file_content)
        router.add_post("/v1/batches", self._batch_create)
        router.add_get("/v1/batches", self._batch_list)
        router.add_get("/v1/batches/{batch_id}", self._batch_get)
        router.add_post("/v1/batches/{batch_id}/cancel", self._batch_cancel)

    # -- uploads ---------------------------------------------------------------------------

    async def _read_upload(self, request: web.Request) -> tuple[Upload, dict[str, bytes]]:
        """Fields and files of a multipart request, read part by part."""
        reader = await request.multipart()
        upload = Upload(request.path, {}, [])
        contents: dict[str, bytes] = {}
        while True:
            part = await reader.next()
            if part is None:
                break
            assert isinstance(part, BodyPartReader)
            if part.filename is None:
                upload.fields[part.name or ""] = (await part.read()).decode()
                continue
            digest, size, pieces = hashlib.sha256(), 0, []
            while chunk := await part.read_chunk(256 * 1024):
                digest.update(chunk)
                size += len(chunk)
                pieces.append(chunk)
            upload.files.append(
                {
                    "name": part.name,
                    "filename": part.filename,
                    "content_type": part.headers.get("Content-Type", ""),
                    "bytes": size,
                    "sha256": digest.hexdigest(),
                }
            )
            contents[part.name or ""] = b"".join(pieces)
        self.uploads.append(upload)
        return upload, contents

    @staticmethod
    def _error(status: int, message: str, param: str | None = None) -> web.Response:
        body = fake_openai.error_body(status, message, param=param)
        return web.Response(status=status, body=body, content_type="application/json")

    @staticmethod
    def _json(payload: bytes | dict[str, Any] | list[Any]) -> web.Response:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload, option=_INDENT)
        return web.Response(body=body, content_type="application/json")

    # -- audio -----------------------------------------------------------------------------

    async def _transcribe(self, request: web.Request) -> web.StreamResponse:
        upload, contents = await self._read_upload(request)
        model = upload.fields.get("model")
        if not model:
            return self._error(400, "you must provide a model parameter", "model")
        if "file" not in contents:
            return self._error(400, "you must provide a file parameter", "file")
        seconds = wav_seconds(contents["file"])
        text = self.transcript_text
        fmt = upload.fields.get("response_format", "json")
        if fmt == "text":
            return web.Response(text=text + "\n", content_type="text/plain")
        body: dict[str, Any] = {"text": text}
        if "transcribe" in model:
            audio = round(seconds * self.audio_tokens_per_second)
            words = count_words(text)
            body["usage"] = {
                "type": "tokens",
                "input_tokens": audio,
                "input_token_details": {"text_tokens": 0, "audio_tokens": audio},
                "output_tokens": words,
                "total_tokens": audio + words,
            }
        else:
            body["usage"] = {"type": "duration", "seconds": round(seconds + 0.499)}
        if fmt == "verbose_json":
            task = "translate" if request.path.endswith("translations") else "transcribe"
            segment = {"id": 0, "seek": 0, "start": 0.0, "end": seconds, "text": text}
            body = {"task": task, "language": "english", "duration": seconds, **body}
            body["segments"] = [segment]
        return self._json(body)

    async def _speech(self, request: web.Request) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._error(400, fake_openai.INVALID_JSON_MESSAGE)
        if not isinstance(body, dict) or not isinstance(body.get("input"), str):
            return self._error(400, "you must provide an input parameter", "input")
        content_type = _SPEECH_TYPES.get(str(body.get("response_format", "mp3")), "audio/mpeg")
        response = web.StreamResponse(headers={"Content-Type": content_type})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for index in range(self.speech_chunks):
            await response.write(bytes([index % 256]) * self.speech_chunk_size)
            if index == 0:
                self.speech_started.set()
                while self.speech_gate is not None and not self.speech_gate.is_set():  # noqa: ASYNC110
                    await asyncio.sleep(_POLL)
        await response.write_eof()
        return response

    # -- files -----------------------------------------------------------------------------

    async def _file_create(self, request: web.Request) -> web.StreamResponse:
        upload, contents = await self._read_upload(request)
        purpose = upload.fields.get("purpose")
        if not purpose:
            return self._error(400, "you must provide a purpose parameter", "purpose")
        if "file" not in contents:
            return self._error(400, "you must provide a file parameter", "file")
        file_id = new_id("file-", 22)
        filename = upload.files[-1]["filename"]
        obj = file_object(file_id, filename, purpose, len(contents["file"]))
        self.files[file_id] = StoredFile(obj, contents["file"])
        return self._json(obj)

    async def _file_list(self, request: web.Request) -> web.StreamResponse:
        data = [stored.obj for stored in reversed(self.files.values())]
        return self._json(list_of(data))

    def _file_missing(self, file_id: str) -> web.Response:
        return self._error(404, f"No such File object: {file_id}", "id")

    async def _file_get(self, request: web.Request) -> web.StreamResponse:
        stored = self.files.get(request.match_info["file_id"])
        if stored is None:
            return self._file_missing(request.match_info["file_id"])
        return self._json(stored.obj)

    async def _file_delete(self, request: web.Request) -> web.StreamResponse:
        file_id = request.match_info["file_id"]
        if self.files.pop(file_id, None) is None:
            return self._file_missing(file_id)
        return self._json({"object": "file", "id": file_id, "deleted": True})

    async def _file_content(self, request: web.Request) -> web.StreamResponse:
        stored = self.files.get(request.match_info["file_id"])
        if stored is None:
            return self._file_missing(request.match_info["file_id"])
        return web.Response(body=stored.content, content_type="application/octet-stream")

    # -- batches ---------------------------------------------------------------------------

    async def _batch_create(self, request: web.Request) -> web.StreamResponse:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return self._error(400, fake_openai.INVALID_JSON_MESSAGE)
        source = self.files.get(str(body.get("input_file_id")))
        if source is None:
            return self._file_missing(str(body.get("input_file_id")))
        lines = [orjson.loads(line) for line in source.content.splitlines() if line.strip()]
        batch_id = new_id("batch_", 32)
        self.batches[batch_id] = StoredBatch(batch_object(batch_id, body, len(lines)), lines)
        return self._json(self.batches[batch_id].obj)

    async def _batch_list(self, request: web.Request) -> web.StreamResponse:
        return self._json(list_of([b.obj for b in reversed(self.batches.values())]))

    async def _batch_get(self, request: web.Request) -> web.StreamResponse:
        batch_id = request.match_info["batch_id"]
        stored = self.batches.get(batch_id)
        if stored is None:
            return self._error(404, f"No such Batch object: {batch_id}", "batch_id")
        self._advance(stored)
        return self._json(stored.obj)

    async def _batch_cancel(self, request: web.Request) -> web.StreamResponse:
        batch_id = request.match_info["batch_id"]
        stored = self.batches.get(batch_id)
        if stored is None:
            return self._error(404, f"No such Batch object: {batch_id}", "batch_id")
        obj = stored.obj
        if obj["status"] in ("completed", "failed", "expired", "cancelled"):
            message = f"Cannot cancel a batch with status '{obj['status']}'."
            return self._error(409, message)
        obj.update(status="cancelling", cancelling_at=int(time.time()))
        return self._json(obj)

    def _advance(self, stored: StoredBatch) -> None:
        obj, now = stored.obj, int(time.time())
        status = obj["status"]
        if status == "validating":
            obj.update(status="in_progress", in_progress_at=now)
        elif status == "in_progress":
            obj.update(status="finalizing", finalizing_at=now)
        elif status == "finalizing":
            output = b"".join(orjson.dumps(self._result(line)) + b"\n" for line in stored.lines)
            file_id = new_id("file-", 22)
            name = f"{obj['id']}_output.jsonl"
            self.files[file_id] = StoredFile(
                file_object(file_id, name, "batch_output", len(output)), output
            )
            total = len(stored.lines)
            obj.update(
                status="completed",
                completed_at=now,
                output_file_id=file_id,
                request_counts={"total": total, "completed": total, "failed": 0},
            )
        elif status == "cancelling":
            obj.update(status="cancelled", cancelled_at=now)

    def _result(self, line: dict[str, Any]) -> dict[str, Any]:
        body = line.get("body") if isinstance(line.get("body"), dict) else {}
        assert isinstance(body, dict)
        prompt, output = count_prompt_tokens(body), self.batch_output_tokens
        model = f"{body.get('model')}-2025-01-01"
        if line.get("url") == "/v1/responses":
            answer: dict[str, Any] = {
                "id": new_id("resp_", 48),
                "object": "response",
                "model": model,
                "status": "completed",
                "usage": {
                    "input_tokens": prompt,
                    "output_tokens": output,
                    "total_tokens": prompt + output,
                },
            }
        else:
            answer = {
                "id": new_id("chatcmpl-", 29),
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok", "refusal": None},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt,
                    "completion_tokens": output,
                    "total_tokens": prompt + output,
                },
            }
        return {
            "id": new_id("batch_req_", 32),
            "custom_id": line.get("custom_id"),
            "response": {"status_code": 200, "request_id": new_id("", 32), "body": answer},
            "error": None,
        }
