"""Shutdown of the gateway: the requests in flight, the grace they get, the cut that ends them.

On SIGTERM the process starts *draining* (`begin`): `/readyz` answers 503 so load balancers
stop sending, and every new request is refused with 503 in its caller's API format. The
requests already in flight get the shutdown grace (`--shutdown-grace`) to finish; those
still running at its end are `cut`: marked cancelled with the cause `SHUTDOWN` in the
record's error, their task cancelled exactly as a client disconnect cancels it. The usual
path then records them: usage the upstream reported so far counts, the rest of a stream is
estimated, priced and charged to quotas, and the records are written before the process
exits (the runtime's stop drains them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import structlog

from irisgate.telemetry.record import RequestRecord

log = structlog.get_logger("irisgate.shutdown")

#: the cause a cut request's record names in `error` (with `cancelled` true)
SHUTDOWN = "shutdown"
#: what a request arriving while the process drains is told (503)
REFUSAL = "irisgate is shutting down: retry the request (another instance will serve it)"
#: how often the drain checks whether the requests in flight are done
_POLL_S = 0.05
#: how long cut requests get to unwind (they need no I/O: it is a safety bound)
_UNWIND_S = 5.0


class Drain:
    """The gateway requests in flight in this process, and whether it is shutting down."""

    def __init__(self) -> None:
        self.draining = False
        self._inflight: dict[asyncio.Task[object], RequestRecord] = {}
        self._cut: set[str] = set()  # request ids
        self._idle = asyncio.Event()  # set while nothing is in flight
        self._idle.set()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    @contextmanager
    def track(self, record: RequestRecord) -> Iterator[None]:
        """Count the current task as a request in flight while the block runs."""
        task = asyncio.current_task()
        assert task is not None
        self._inflight[task] = record
        self._idle.clear()
        try:
            yield
        finally:
            self._inflight.pop(task, None)
            if not self._inflight:
                self._idle.set()

    def was_cut(self, record: RequestRecord) -> bool:
        return record.request_id in self._cut

    def begin(self) -> None:
        """Refuse new requests from now on (and report not ready)."""
        if not self.draining:
            log.info("shutting down: new requests refused", in_flight=self.inflight)
        self.draining = True

    async def settle(self, grace: float, interrupted: Callable[[], bool]) -> int:
        """Wait up to `grace` seconds for the requests in flight, then cut the rest; returns
        how many were cut. `interrupted` (polled) ends the grace early (a second signal)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        # polled: `interrupted` is set by a signal handler, which may not touch an Event
        while self._inflight and loop.time() < deadline and not interrupted():  # noqa: ASYNC110
            await asyncio.sleep(_POLL_S)
        if interrupted():
            cut = self.cut(f"{SHUTDOWN}: cut by a second stop signal during the grace")
        else:
            cut = self.cut(f"{SHUTDOWN}: cut after the {grace:g} s shutdown grace")
        # a cut request finishes at once (its upstream closed, its bookkeeping deferred)
        try:
            await asyncio.wait_for(self._idle.wait(), _UNWIND_S)
        except TimeoutError:
            log.error("cut requests did not finish", in_flight=self.inflight)
        return cut

    def cut(self, reason: str) -> int:
        """Cancel every request in flight, recorded as cancelled with `reason` (which starts
        with `SHUTDOWN`) as the error."""
        for task, record in list(self._inflight.items()):
            record.cancelled = True
            record.error = reason
            self._cut.add(record.request_id)
            task.cancel()
            log.warning("request cut by shutdown", request_id=record.request_id)
        return len(self._inflight)
