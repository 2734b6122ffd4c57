"""The quota journal: spending written down locally before the database hears of it.

Settled spending stays in memory until the ledger's upkeep reports it (a fraction of a
second while the database answers, much longer while it does not). So that neither
`kill -9` nor a SIGTERM during a database outage forgives it, every settlement is appended
to this process's journal file first: one JSON line per bucket charged, numbered with a
sequence the process increases by one per entry.

    <data dir>/quota-journal/<instance>.jsonl

Each report to the database stores, in the same transaction, the sequence number of the last
entry it covers (table `quota_journal`, per journal and bucket); replaying a journal debits
only the entries above it, so a replay is idempotent and can be interrupted at any point.

One file per process, locked with `flock` while the process lives (several processes may
share a data folder). At start, and again each upkeep round until it succeeds, a process
replays every journal file whose lock it can take, then deletes it. A journal whose
spending has all been reported is emptied (the sequence keeps growing), so it stays small.

Writes are plain `write(2)` calls without `fsync`: the entry survives the process being
killed (it is in the kernel's page cache), not the machine losing power.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import structlog

from irisgate.quotas.bucketrows import BucketSpec

log = structlog.get_logger("irisgate.quotas")

FOLDER = "quota-journal"
SUFFIX = ".jsonl"
#: a journal line longer than this is not one irisgate wrote (a bucket name is a login)
MAX_LINE = 64 * 1024


@dataclass(slots=True)
class Entry:
    seq: int
    spec: BucketSpec
    spent: int


class Journal:
    """This process's journal file, created and locked on open."""

    def __init__(self, folder: Path, name: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{name}{SUFFIX}"
        self.name = name
        self.seq = 0
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._dirty = False

    def append(self, charges: list[tuple[BucketSpec, int]]) -> list[int]:
        """Write one entry per (bucket, amount); their sequence numbers, in order."""
        lines, seqs = [], []
        for spec, spent in charges:
            self.seq += 1
            seqs.append(self.seq)
            lines.append(orjson.dumps(_line(self.seq, spec, spent)) + b"\n")
        data = b"".join(lines)
        while data:  # a short write to a regular file only happens when the disk is full
            written = os.write(self._fd, data)
            data = data[written:]
        self._dirty = True
        return seqs

    def clear(self) -> None:
        """Everything written so far was reported: empty the file (numbers keep growing)."""
        if self._dirty:
            os.ftruncate(self._fd, 0)
            self._dirty = False

    def close(self, *, reported: bool) -> None:
        """Release the file; delete it when everything in it was reported."""
        if reported:
            self.path.unlink(missing_ok=True)
        os.close(self._fd)


class Orphan:
    """The journal of a process that is gone (its lock was free), held locked to replay."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self.name = path.name.removesuffix(SUFFIX)
        self._fd = fd

    def entries(self) -> Iterator[Entry]:
        """The journal's entries; a line cut by the crash, or not irisgate's, is skipped."""
        with open(self.path, "rb") as file:
            for number, line in enumerate(file, 1):
                entry = _entry(line)
                if entry is None:
                    log.warning("quota journal line skipped", path=str(self.path), line=number)
                else:
                    yield entry

    def done(self) -> None:
        self.path.unlink(missing_ok=True)
        os.close(self._fd)

    def release(self) -> None:
        os.close(self._fd)


def orphans(folder: Path, own: str) -> list[Orphan]:
    """Every journal in `folder` whose process is gone, locked by this process now."""
    found: list[Orphan] = []
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        if path.name == f"{own}{SUFFIX}":
            continue
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # replayed by another process just now
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # its process (or another replaying it) is alive
            os.close(fd)
            continue
        if not path.exists():  # replayed and deleted between our open and our lock
            os.close(fd)
            continue
        found.append(Orphan(path, fd))
    return found


def _line(seq: int, spec: BucketSpec, spent: int) -> dict[str, object]:
    return {
        "seq": seq,
        "bucket": spec.name,
        "template": spec.template,
        "capacity": spec.capacity,
        "rate": spec.rate,
        "period_s": spec.period_s,
        "spent": spent,
    }


def _entry(line: bytes) -> Entry | None:
    if len(line) > MAX_LINE or not line.endswith(b"\n"):
        return None
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    numbers = [data.get(key) for key in ("seq", "capacity", "rate", "period_s", "spent")]
    bucket, template = data.get("bucket"), data.get("template")
    ints = [n for n in numbers if type(n) is int and n >= 0]
    if len(ints) != len(numbers) or not (isinstance(bucket, str) and isinstance(template, str)):
        return None
    seq, capacity, rate, period_s, spent = ints
    if period_s <= 0:
        return None
    return Entry(seq, BucketSpec(bucket, template, capacity, rate, period_s), spent)
