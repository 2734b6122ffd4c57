"""Half-sent requests against one irisgate: does /healthz still answer?

    .venv/bin/python bench/halfsent.py              # 20,000 half-sent requests
    .venv/bin/python bench/halfsent.py --count 2000 --hold 5

Starts irisgate (dev identity, default limits except a long --header-timeout, so that only
the connection cap is at work), opens `--count` connections from two client processes (each
needs a file descriptor per connection), sends each the first line and one header of a POST,
then asks /healthz five times and reports its answers, the server's descriptors and memory,
and how many half-sent connections the server closed. Only 127.0.0.x is used; everything
started is stopped at the end. Not a test: it prints what it measured.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import tempfile
import time
from multiprocessing.queues import Queue
from pathlib import Path

import httpx2

from irisgate.testing.server import IrisgateServer

HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1\r\n"


def flood(port: int, count: int, source: str, hold: float, out: Queue[tuple[str, int]]) -> None:
    """Open `count` half-sent requests, hold them, then count those the server closed."""
    opened: list[socket.socket] = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind((source, 0))
        try:
            sock.connect(("127.0.0.1", port))
            sock.sendall(HEAD)
        except OSError:
            sock.close()
            continue
        opened.append(sock)
    out.put(("opened", len(opened)))
    time.sleep(hold)
    closed = 0
    for sock in opened:
        sock.setblocking(False)
        try:
            closed += sock.recv(1) == b""
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    out.put(("closed by the server", closed))


def memory_mib(pid: int) -> str:
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return f"RSS {int(fields['VmRSS'].split()[0]) // 1024} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--hold", type=float, default=20.0, help="seconds to keep them open")
    args = parser.parse_args()
    env = {"IRISGATE_HEADER_TIMEOUT": "600"}
    with IrisgateServer(None, data_dir=Path(tempfile.mkdtemp()), env=env) as gw:
        assert gw.process is not None
        pid = gw.process.pid
        print(f"irisgate started: {memory_mib(pid)}")
        results: Queue[tuple[str, int]] = multiprocessing.Queue()
        started = time.monotonic()
        share = args.count // 2
        clients = [
            multiprocessing.Process(
                target=flood, args=(gw.port, share, f"127.0.1.{i + 1}", args.hold, results)
            )
            for i in range(2)
        ]
        for client in clients:
            client.start()
        opened = sum(results.get()[1] for _ in clients)
        descriptors = len(os.listdir(f"/proc/{pid}/fd"))
        print(f"{opened} half-sent requests in {time.monotonic() - started:.1f} s;"
              f" irisgate holds {descriptors} descriptors, {memory_mib(pid)}")
        for _ in range(5):
            asked = time.monotonic()
            try:
                status = str(httpx2.get(gw.url + "/healthz", timeout=10).status_code)
            except httpx2.HTTPError as exc:
                status = f"failed ({type(exc).__name__})"
            print(f"/healthz: {status} in {(time.monotonic() - asked) * 1000:.0f} ms")
        closed = sum(results.get()[1] for _ in clients)
        print(f"{closed} of {opened} half-sent requests were closed by irisgate")
        for client in clients:
            client.join()


if __name__ == "__main__":
    main()
