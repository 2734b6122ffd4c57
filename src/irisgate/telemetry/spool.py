"""The record spool: every finished request's record on local disk until the database has it.

Records are appended to files in `DATA_DIR/spool/` (one frame each, see `entries.py`) as
requests finish, before the client has the last byte of its answer; the batch writer stores
them from memory as before, and the spool only matters when something goes wrong:

- A process killed (`kill -9`, an out-of-memory kill, a crash) leaves its files behind. The
  next process to start with the same data folder (or a sibling worker, which looks every
  few seconds) adopts them and stores their records, skipping those the database already
  has (by request id), then deletes them.
- While the database is unavailable, or the writer's in-memory queue is full, records are
  not held in memory: they stay in the spool only ("spilled"), and the writer reads them back
  and stores them once the database answers again.

Files: each process writes its own files, `records-<pid>-<random>-<n>.spool`, each held with
an exclusive `flock` for as long as the process has it open. A file whose lock can be taken
belongs to nobody alive, so several processes can share one data folder and never read a
file another one is still writing. A file is a sequence of segments of the journal: the
active one is appended to; past `segment_bytes` a new one starts. A segment is deleted once
every record in it is stored; the active one is truncated instead when that happens.

What survives what (`fsync` off, the default): each record is one `write()` into the
kernel's page cache before the client's answer ends, so a killed process loses nothing; a
machine crash or power loss may lose what the kernel had not yet written back (usually up to
~30 s). With `fsync` on, each record is also flushed to the disk (`fdatasync`) before the
answer ends: then a machine crash loses nothing either, at the price of one disk flush per
request on the event loop.

Size: at most `max_bytes` on disk. When full, `full` is true (the gateway then refuses new
LLM requests with 503 rather than serve requests it cannot record) until the writer has
stored enough to make room; both changes are logged once.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from irisgate.telemetry.entries import EntryError, decode, encode, read_frames, request_id_of
from irisgate.telemetry.record import RequestRecord

_LOG = logging.getLogger(__name__)
#: a new segment starts past this size
SEGMENT_BYTES = 8 << 20
#: the active segment is truncated when every record in it is stored and it is this large
TRUNCATE_BYTES = 1 << 20
_PATTERN = "records-*.spool"


class Segment:
    """One spool file: its size, how many of its records are still held in memory (and so
    will be stored from there), and whether some of its records live only here."""

    __slots__ = (
        "_frames",
        "_last",
        "_position",
        "entries",
        "fd",
        "path",
        "pending",
        "size",
        "spilled",
    )

    def __init__(self, path: Path, fd: int, *, size: int = 0, entries: int = 0) -> None:
        self.path = path
        self.fd = fd
        self.size = size
        self.entries = entries
        self.pending = 0
        self.spilled = False
        self._frames: list[tuple[int, memoryview]] | None = None
        self._last: dict[str, int] = {}
        self._position = 0

    def load(self, log: logging.Logger) -> None:
        """Read the file for draining (blocking: call from a thread)."""
        data = _read_all(self.fd)
        frames = read_frames(data)
        if frames.end < len(data):
            log.error(
                "spool file %s: the last %d bytes are damaged (a write cut short by a crash) "
                "and were skipped",
                self.path,
                len(data) - frames.end,
            )
        self._frames = frames.items
        self._last = {request_id_of(payload): offset for offset, payload in frames.items}
        self.entries = len(self._last)

    def count(self) -> int:
        """How many distinct records the file holds (blocking: reads it)."""
        frames = read_frames(_read_all(self.fd))
        return len({request_id_of(payload) for _, payload in frames.items})

    @property
    def loaded(self) -> bool:
        return self._frames is not None

    def take(self, count: int, log: logging.Logger) -> tuple[list[RequestRecord], int]:
        """The next `count` records to store (an id's last entry only, so a record written
        again after a change counts in its final form), and the position after them; the
        caller `advance`s to it once they are stored."""
        assert self._frames is not None, "load() first"
        records: list[RequestRecord] = []
        position = self._position
        frames, last = self._frames, self._last
        while position < len(frames) and len(records) < count:
            offset, payload = frames[position]
            position += 1
            request_id = request_id_of(payload)
            if last.get(request_id) != offset:
                continue
            try:
                records.append(decode(payload))
            except EntryError as exc:
                log.error("spool file %s: entry at byte %d skipped: %s", self.path, offset, exc)
        return records, position

    def advance(self, position: int, stored: int) -> None:
        self._position = position
        self.entries = max(0, self.entries - stored)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class Spool:
    """The process's spool files (see the module doc). The request path calls `append`; the
    batch writer calls the rest."""

    def __init__(
        self,
        folder: Path,
        *,
        fsync: bool = False,
        max_bytes: int = 1 << 30,
        segment_bytes: int = SEGMENT_BYTES,
        logger: logging.Logger | None = None,
    ) -> None:
        self.folder = folder
        self._fsync = fsync
        self.max_bytes = max_bytes
        # small limits get small segments, so that stored records never fill the spool
        self._segment_bytes = min(segment_bytes, max_bytes // 4)
        self._truncate_bytes = min(TRUNCATE_BYTES, max_bytes // 8)
        self._log = logger if logger is not None else _LOG
        self._prefix = f"records-{os.getpid()}-{secrets.token_hex(4)}-"
        self._count = 0
        self._segments: list[Segment] = []  # oldest first; the last one is active
        self._held: dict[str, list[Segment]] = {}
        self._bytes = 0
        self._full = False
        self.appended_total = 0

    # -- life cycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Create the folder, adopt the files of processes no longer alive, start a segment.
        Blocking (reads adopted files): call in a thread."""
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._segments.append(self._new_segment())
        self.adopt()

    def close(self) -> int:
        """Close every file (their locks go with them); files of stored records are deleted
        first. Returns the number of records left in the spool for the next start."""
        waiting = 0
        for segment in self._segments:
            if segment.pending or segment.spilled:
                waiting += segment.entries
            else:
                _unlink(segment.path)
            segment.close()
        self._segments = []
        self._held.clear()
        return waiting

    def adopt(self) -> int:
        """Take over the spool files whose owner is gone (their lock is free): their records
        are spilled, for the writer to store. Returns how many files were adopted. Blocking:
        `orphans` in a thread, then `take` on the event loop, is the same without blocking."""
        return self.take(self.orphans())

    def orphans(self) -> list[Segment]:
        """The spool files nobody alive holds, locked and counted, oldest first (blocking:
        reads them; touches nothing of this spool's own state, so any thread may call it)."""
        found: list[Segment] = []
        for path in sorted(self.folder.glob(_PATTERN), key=_age):
            if path.name.startswith(self._prefix):
                continue
            segment = _lock_existing(path)
            if segment is not None:
                segment.entries = segment.count()
                segment.spilled = True
                found.append(segment)
        return found

    def take(self, segments: list[Segment]) -> int:
        """Make `orphans` this spool's own, before the active segment (oldest first)."""
        for segment in segments:
            self._segments.insert(len(self._segments) - 1, segment)
            self._bytes += segment.size
            self._log.warning(
                "spool file %s of a process that is gone: storing its %d records",
                segment.path,
                segment.entries,
            )
        return len(segments)

    # -- the request path ------------------------------------------------------------------

    def append(self, record: RequestRecord) -> None:
        """Write `record` to the active segment (one `write()`, and `fdatasync` with fsync
        on), held: the writer will store it from memory (`release`) or spill it (`spill`).
        Raises OSError when the file cannot be written (nothing of the record is left)."""
        frame = encode(record)
        segment = self._segments[-1]
        if segment.size >= self._segment_bytes:
            segment = self._rotate()
        try:
            _write_all(segment.fd, frame)
            if self._fsync:
                os.fdatasync(segment.fd)
        except OSError:  # e.g. the disk is full: leave no torn frame before later ones
            with contextlib.suppress(OSError):
                os.ftruncate(segment.fd, segment.size)
            raise
        segment.size += len(frame)
        segment.entries += 1
        segment.pending += 1
        held = self._held.get(record.request_id)
        if held is None:
            self._held[record.request_id] = [segment]
        else:
            held.append(segment)
        self._bytes += len(frame)
        self.appended_total += 1
        if not self._full and self._bytes >= self.max_bytes:
            self._full = True
            self._log.error(
                "the spool is full (%d bytes in %s): new requests are refused until the "
                "database has stored enough of it",
                self._bytes,
                self.folder,
            )

    @property
    def full(self) -> bool:
        """Whether the spool holds `max_bytes` or more."""
        return self._full

    # -- the writer's side -----------------------------------------------------------------

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def waiting(self) -> int:
        """Records that live only in the spool (spilled or adopted), to be stored from it."""
        return sum(s.entries for s in self._segments if s.spilled)

    def release(self, request_ids: Iterable[str]) -> None:
        """These records are stored (or refused and logged): their entries are not needed."""
        active = self._segments[-1] if self._segments else None
        for request_id in request_ids:
            for segment in self._held.pop(request_id, ()):
                segment.pending -= 1
                if segment.pending == 0 and not segment.spilled:
                    if segment is active:
                        if segment.size >= self._truncate_bytes:
                            self._truncate(segment)
                    else:
                        self._drop(segment)

    def spill(self, request_ids: Iterable[str]) -> None:
        """These held records are no longer in memory: store them from the spool."""
        for request_id in request_ids:
            for segment in self._held.pop(request_id, ()):
                segment.pending -= 1
                segment.spilled = True

    def spill_all(self, request_ids: Iterable[str]) -> None:
        """The database is unavailable: `request_ids` (the writer's memory) are dropped from
        memory, and every segment, the active one included, is read back later."""
        self.spill(request_ids)
        for segment in self._segments:
            segment.spilled = True

    def rotate_spilled(self) -> None:
        """Start a new active segment if the current one has spilled records, so that they
        can be read back (call when nothing is queued in memory)."""
        if self._segments and self._segments[-1].spilled:
            self._rotate()

    def drainable(self) -> Segment | None:
        """The oldest segment whose records must be read back from disk and that no record
        held in memory still needs, if any."""
        for segment in self._segments[:-1]:
            if segment.spilled and segment.pending == 0:
                return segment
        return None

    def finish(self, segment: Segment) -> None:
        """Every record of `segment` is stored: delete it."""
        self._drop(segment)

    # -- files -------------------------------------------------------------------------------

    def _rotate(self) -> Segment:
        segment = self._new_segment()
        self._segments.append(segment)
        old = self._segments[-2]
        if old.pending == 0 and not old.spilled:
            self._drop(old)
        return segment

    def _new_segment(self) -> Segment:
        self._count += 1
        path = self.folder / f"{self._prefix}{self._count:06d}.spool"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if self._fsync:  # the new file's name must survive a machine crash too
            _fsync_dir(self.folder)
        return Segment(path, fd)

    def _drop(self, segment: Segment) -> None:
        if segment in self._segments:
            self._segments.remove(segment)
        _unlink(segment.path)
        segment.close()
        self._shrunk(segment.size)

    def _truncate(self, segment: Segment) -> None:
        os.ftruncate(segment.fd, 0)
        size, segment.size, segment.entries = segment.size, 0, 0
        self._shrunk(size)

    def _shrunk(self, by: int) -> None:
        self._bytes -= by
        if self._full and self._bytes < self.max_bytes:
            self._full = False
            self._log.warning(
                "the spool has room again (%d bytes): requests are served", self._bytes
            )


def _lock_existing(path: Path) -> Segment | None:
    """`path` opened and locked, or None when a live process holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        # another process may have finished and deleted it between our open and our lock
        if os.fstat(fd).st_ino != os.stat(path).st_ino:
            raise FileNotFoundError(path)
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)
        return None
    return Segment(path, fd, size=os.fstat(fd).st_size)


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    parts: list[bytes] = []
    offset = 0
    while offset < size:
        part = os.pread(fd, size - offset, offset)
        if not part:
            break
        parts.append(part)
        offset += len(part)
    return b"".join(parts)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _age(path: Path) -> tuple[int, str]:
    """Oldest first: by last write, then by name (a process numbers its files in order)."""
    try:
        return path.stat().st_mtime_ns, path.name
    except FileNotFoundError:
        return 0, path.name
