"""What the benchmark reads about processes and the machine, from /proc (Linux only)."""

from __future__ import annotations

import contextlib
import os
import resource
import threading
import time
from pathlib import Path

TICK_MS = 1000 / os.sysconf("SC_CLK_TCK")


def cpu_ms(pid: int) -> float:
    """utime + stime of the whole process (all threads, live or finished) in ms."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) * TICK_MS


def switches(pid: int) -> int:
    """Context switches of the live threads of `pid` (a hop to another thread and back: 2+)."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        with contextlib.suppress(FileNotFoundError):  # a thread that just ended
            lines = status.read_text().splitlines()
            total += sum(int(line.split()[1]) for line in lines if "ctxt_switches:" in line)
    return total


def own_cpu_ms() -> float:
    """CPU of this script (with its fake LocalAPI thread) and its finished children (wrk)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime) * 1000


def machine_busy_ms() -> float:
    """Busy CPU time of the whole machine (all cores), from /proc/stat."""
    fields = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) * TICK_MS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def settle(pid: int, timeout: float = 10.0) -> None:
    """Wait until `pid` is idle (background work such as capture writes has finished)."""
    deadline, last = time.monotonic() + timeout, cpu_ms(pid)
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = cpu_ms(pid)
        if now - last <= TICK_MS:
            return
        last = now


class RssSampler:
    """Samples a process's RSS every 0.5 s in a thread; `peak` is the largest seen."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, rss_mib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, rss_mib(self.pid))

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mib(self.pid))
