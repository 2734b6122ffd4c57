"""Running hooks: the pre-request chain, and the outbox of post-response events.

Pre-request (reference §9.3): hooks run one after another in chain order. `allow` passes to
the next; `block` stops the request with the hook's `status_code` (default 403) and message in
the caller's error format; `modify` replaces the request body for the next hook and for the
upstream. A hook that cannot be used (unreachable, timeout, non-2xx, an answer that is not a
valid GuardrailResponse, one longer than
`--max-hook-answer`) is skipped under `fail_open` and answers 503 under `fail_closed`.

Post-response events go to a bounded queue drained by a few worker tasks, so they never delay
a client. Their failures are logged (they always fail open); an event that finds the queue
full is dropped and logged with its hook and request id; events still queued at shutdown get
`DRAIN_SECONDS` to go out, and whatever is left is logged by count.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from irisgate.hooks import client, payload
from irisgate.hooks.client import HookFailed
from irisgate.hooks.plan import (
    ENTIRE_REQUEST,
    TOOL_CALL_ENTIRE_REQUEST,
    HookCall,
    HookPlan,
    Wired,
    plan_for,
)
from irisgate.snapshot import Snapshot
from irisgate.telemetry.metrics import Metrics
from irisgate.wire.errors import GatewayError
from irisgate.wire.http1 import Http1Client

log = structlog.get_logger("irisgate.hooks")

QUEUE_SIZE = 10_000
WORKERS = 4
DRAIN_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class _Event:
    wired: Wired
    call: HookCall
    raw_body: bytes
    stream: bool


#: told each hook call's outcome: (hook, event, why it failed or None when it answered)
HookObserver = Callable[[str, str, str | None], None]


class HookRunner:
    def __init__(
        self,
        http: Http1Client,
        max_answer: int,
        metrics: Metrics | None = None,
        observe: HookObserver | None = None,
    ) -> None:
        """`observe`: told every call's outcome (hook alerts); it must not block."""
        self._observe = observe
        self._http = http
        self._max_answer = max_answer  # bytes of one hook answer (--max-hook-answer)
        self._queue: asyncio.Queue[_Event] = asyncio.Queue(QUEUE_SIZE)
        self._workers: list[asyncio.Task[None]] = []
        self.dropped = 0
        self.metrics = metrics

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._workers = [loop.create_task(self._work()) for _ in range(WORKERS)]

    async def stop(self) -> None:
        """Give queued events `DRAIN_SECONDS` to go out, then stop; log what was left."""
        if self._workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), DRAIN_SECONDS)
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        if not self._queue.empty():
            log.error("hook events not delivered at shutdown", count=self._queue.qsize())

    def plan(self, snapshot: Snapshot, access: Any, fqn: str) -> HookPlan | None:
        if not snapshot.config.hooks:
            return None
        return plan_for(snapshot.config, access, fqn)

    async def before(
        self, plan: HookPlan, call: HookCall, body: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Run the pre-request chain; (the body to forward, whether a hook modified it)."""
        modified = False
        for wired in plan.pre:
            hook = wired.hook
            data = orjson.dumps(payload.pre_request(call, wired.send, body))
            try:
                self._count(hook.name, "pre_request")
                answered = await client.call(self._http, hook, data, self._max_answer)
                answer = _guardrail(hook.name, answered)
                self._answered(hook.name, "pre_request")
            except HookFailed as exc:
                self._count_failure(hook.name, "pre_request", exc)
                if hook.fail_policy == "fail_closed":
                    log.warning("guardrail failed closed", hook=hook.name, reason=str(exc))
                    raise GatewayError(
                        "unavailable", f"guardrail {hook.name} is unavailable: {exc}"
                    ) from None
                log.warning("guardrail failed open: skipped", hook=hook.name, reason=str(exc))
                continue
            action = answer["action"]
            if action == "block":
                message = answer.get("message")
                raise GatewayError(
                    "blocked",
                    message
                    if isinstance(message, str) and message
                    else f"request blocked by guardrail {hook.name}",
                    status=_block_status(answer.get("status_code")),
                )
            if action == "modify":
                body, modified = answer["request_body"], True
        return body, modified

    def after(self, plan: HookPlan, call: HookCall, status: int, raw: bytes) -> None:
        """Queue the post-response events of a request that reached the upstream: `status`
        is the upstream's (0: it never answered, nothing is queued), `raw` a streamed
        answer's bytes as captured (b"" for an answer that was not streamed)."""
        if status == 0:
            return
        for wired in plan.post:
            fire = ENTIRE_REQUEST in wired.events or (
                TOOL_CALL_ENTIRE_REQUEST in wired.events and call.record.tool_calls > 0
            )
            if not fire:
                continue
            try:
                self._queue.put_nowait(_Event(wired, call, raw, call.record.stream))
            except asyncio.QueueFull:
                self.dropped += 1
                log.warning(
                    "hook event dropped: outbox full",
                    hook=wired.hook.name,
                    request_id=call.record.request_id,
                    dropped_total=self.dropped,
                )

    def _count(self, hook: str, event: str) -> None:
        if self.metrics is not None:
            self.metrics.hook_called(hook, event)

    def _count_failure(self, hook: str, event: str, exc: HookFailed) -> None:
        if self.metrics is not None:
            self.metrics.hook_failed(hook, event, exc.reason)
        if self._observe is not None:
            self._observe(hook, event, str(exc))

    def _answered(self, hook: str, event: str) -> None:
        if self._observe is not None:
            self._observe(hook, event, None)

    async def _work(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                await self._deliver(event)
            finally:
                self._queue.task_done()

    async def _deliver(self, event: _Event) -> None:
        hook = event.wired.hook
        try:
            data = payload.post_response(event.call, event.wired.send, event.raw_body, event.stream)
            self._count(hook.name, "post_response")
            await client.call(self._http, hook, orjson.dumps(data), self._max_answer)
            self._answered(hook.name, "post_response")
        except HookFailed as exc:
            self._count_failure(hook.name, "post_response", exc)
            log.warning(
                "hook event not delivered",
                hook=hook.name,
                request_id=event.call.record.request_id,
                reason=str(exc),
            )
        except Exception:  # one bad event must not stop the worker
            log.exception(
                "hook event failed", hook=hook.name, request_id=event.call.record.request_id
            )


def _guardrail(name: str, answer: Any) -> dict[str, Any]:
    """A valid GuardrailResponse, or HookFailed saying what is wrong with it."""
    if not isinstance(answer, dict):
        raise HookFailed(f"hook {name} answered something other than a JSON object")
    action = answer.get("action")
    if action not in ("allow", "block", "modify"):
        raise HookFailed(f"hook {name} answered unknown action {action!r}")
    if action == "modify" and not isinstance(answer.get("request_body"), dict):
        raise HookFailed(f"hook {name} answered modify without a request_body object")
    return answer


def _block_status(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
        return value
    return 403
