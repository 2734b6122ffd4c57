"""An OpenAI batch's files (JSONL), read as they are relayed: the input file for the models
its requests name (`BatchLines`, checked against the caller's grants when the batch is
created), the output file for the usage of its results (`BatchResults`, charged once).

Each line is one request's result:
`{"id", "custom_id", "response": {"status_code", "request_id", "body": {…, "usage"}}, "error"}`.
`BatchResults` is a pass-through chunk filter (the client gets the bytes unchanged) that sums
the usage of the successful results per model, holding at most one line (`MAX_LINE`) at a
time; a longer line is skipped and counted in `unread`. Bodies are Chat Completions,
Responses or Embeddings objects: `usage.prompt_tokens` / `input_tokens` say which.
"""

from __future__ import annotations

from typing import Any

import orjson

from irisgate.gateway.formats import openai_chat, openai_responses
from irisgate.gateway.formats.streamresult import as_dict
from irisgate.usage.tokens import Usage
from irisgate.wire import nesting
from irisgate.wire.errors import GatewayError

#: the longest line read, of a batch's input (one request) or output file (one result)
MAX_LINE = 4 * 1024 * 1024
#: the most distinct models one batch input file may name
MAX_BATCH_MODELS = 16
#: batch output files are charged at this share of the list price (OpenAI: half)
BATCH_DISCOUNT = 0.5


class BatchResults:
    """Usage per model of a batch output file's successful results (see the module doc)."""

    def __init__(self) -> None:
        self.usage: dict[str, Usage] = {}
        self.results = 0  # lines read with a 2xx result
        self.failed = 0  # lines with an error or a non-2xx status
        self.unread = 0  # lines longer than MAX_LINE, or not JSON
        self._partial: list[bytes] = []
        self._partial_size = 0
        self._skipping = False

    def feed(self, data: bytes) -> bytes:
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                self._hold(data[start:])
                return data
            self._hold(data[start:end])
            self._line()
            start = end + 1

    def flush(self) -> bytes:
        if self._partial_size or self._skipping:
            self._line()
        return b""

    def _hold(self, piece: bytes) -> None:
        if self._skipping or not piece:
            return
        self._partial_size += len(piece)
        if self._partial_size > MAX_LINE:
            self._skipping = True
            self._partial.clear()
            return
        self._partial.append(piece)

    def _line(self) -> None:
        line = b"".join(self._partial)
        skipped = self._skipping
        self._partial.clear()
        self._partial_size = 0
        self._skipping = False
        if skipped:
            self.unread += 1
            return
        if not line.strip():
            return
        try:
            parsed: Any = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.unread += 1
            return
        response = as_dict(as_dict(parsed).get("response"))
        status = response.get("status_code")
        body = as_dict(response.get("body"))
        if not isinstance(status, int) or not 200 <= status < 300 or not body:
            self.failed += 1
            return
        self.results += 1
        usage_member = as_dict(body.get("usage"))
        if "input_tokens" in usage_member:
            usage = openai_responses.usage_from_response(body)
        else:
            usage = openai_chat.usage_from_response(body)
        model = body.get("model")
        key = model if isinstance(model, str) else ""
        total = self.usage.setdefault(key, Usage())
        for name, value in usage.as_dict().items():
            setattr(total, name, getattr(total, name) + value)


class BatchLines:
    """Sans-io reader of a batch input file (JSONL, one request per line): the models its
    request bodies name. A line longer than `MAX_LINE`, a line that is not a JSON
    object with a `body.model` string, or more than `MAX_BATCH_MODELS` models is an error,
    raised by `close`: an uploaded file is fed as it arrives, before its form says whether
    it is a batch's (its `purpose` may come after it), so `feed` only notes the first
    problem and reads nothing after it."""

    def __init__(self) -> None:
        self.models: set[str] = set()
        self.lines = 0
        self.problem: GatewayError | None = None
        self._partial = b""

    def feed(self, data: bytes) -> None:
        if self.problem is not None:
            return
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        try:
            if len(self._partial) > MAX_LINE:
                raise _bad(f"line {self.lines + 1} of the batch file is over {MAX_LINE} bytes")
            for line in lines:
                self._line(line)
        except GatewayError as exc:
            self.problem, self._partial = exc, b""

    def close(self) -> None:
        """The file has ended: GatewayError for its first problem."""
        if self.problem is None and self._partial:
            partial, self._partial = self._partial, b""
            try:
                self._line(partial)
            except GatewayError as exc:
                self.problem = exc
        if self.problem is not None:
            raise self.problem

    def _line(self, line: bytes) -> None:
        self.lines += 1
        if not line.strip():
            return
        try:
            parsed = nesting.loads(line)
        except orjson.JSONDecodeError:
            raise _bad(f"line {self.lines} of the batch file is not JSON") from None
        body = parsed.get("body") if isinstance(parsed, dict) else None
        model = body.get("model") if isinstance(body, dict) else None
        if not isinstance(model, str) or not model:
            raise _bad(f"line {self.lines} of the batch file has no body.model string")
        self.models.add(model)
        if len(self.models) > MAX_BATCH_MODELS:
            raise _bad(f"the batch file names more than {MAX_BATCH_MODELS} models")


def _bad(message: str) -> GatewayError:
    return GatewayError("invalid_request", message, param="file")
