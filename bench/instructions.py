"""Instructions per request of irisgate under callgrind: a CPU figure machine noise cannot move.

    .venv/bin/python bench/instructions.py [--requests 150] [--mode MODE] [SCENARIO ...]

Scenarios: plain, stream, gemini, bedrock (run.py's), and translated, translated-stream: the
same Chat Completions request for a model an Anthropic Messages provider serves through
translation (compare with plain and stream for the CPU translation adds); responses-stream: a
streamed Responses request for that model (what Codex on Claude costs).

Starts the same upstream, fake tailscaled and config as `run.py`, but irisgate under
`valgrind --tool=callgrind` with instrumentation off; for each scenario (default: stream,
gemini, bedrock) it sends 30 warm-up requests one after another, switches instrumentation on,
sends `--requests` more, waits for their capture batch, switches it off and prints the
instructions of the whole irisgate process (every thread) divided by the requests.

Under valgrind irisgate is ~50x slower, so a stream's events all wait for it in one read:
the figure is the gateway's work per answer, not the cost of the upstream's pacing (`run.py`
measures that). `--mode` is run.py's (`quota`, `ratelimit`, ...): compare it with `core`, the
default. Needs valgrind (Debian: `apt-get install -y valgrind`). Takes about a minute.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from irisgate.testing.fake_localapi import FakeLocalAPI
from irisgate.testing.server import IrisgateServer, free_port
from run import (
    LOGIN,
    MODES,
    Scenario,
    make_config,
    start_upstream,
)

WARM_UP = 30


def control(*args: str) -> None:
    """Send a command and wait until callgrind has taken it (`-s` waits for an answer)."""
    subprocess.run(["callgrind_control", *args], capture_output=True, check=True)
    subprocess.run(["callgrind_control", "-s", args[-1]], capture_output=True, check=True)


def instructions(dump: Path) -> int:
    """The dump's instruction count: its last `totals:` (or `summary:`) line."""
    found = [
        int(line.split()[1])
        for line in dump.read_text(errors="replace").splitlines()
        if line.startswith(("summary:", "totals:"))
    ]
    if not found:
        sys.exit(f"no instruction total in {dump}")
    return found[-1]


def measure(gateway: IrisgateServer, out: Path, name: str, requests: int) -> float:
    """Instructions per request of one scenario (sequential requests on one connection)."""
    assert gateway.process is not None
    pid = str(gateway.process.pid)
    scenario = Scenario(name, 1)
    host, port = gateway.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    body, path = scenario.body.encode(), scenario.path(gateway=True)

    def send(n: int) -> None:
        for _ in range(n):
            conn.request("POST", path, body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                sys.exit(f"{name}: irisgate answered {response.status}")

    send(WARM_UP)
    time.sleep(1)  # the warm-up's capture batch
    control("-z", pid)
    control("-i", "on", pid)
    send(requests)
    time.sleep(1)  # the measured requests' capture batch (the writer lingers 50 ms)
    control("-i", "off", pid)
    before = set(out.parent.glob(out.name + "*"))
    control("-d", name, pid)
    conn.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # callgrind writes the dump at its next check
        new = set(out.parent.glob(out.name + "*")) - before
        if new:
            time.sleep(0.5)  # let it finish writing
            return instructions(new.pop()) / requests
        time.sleep(0.1)
    sys.exit(f"callgrind wrote no dump for {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenarios", nargs="*", default=["stream", "gemini", "bedrock"])
    parser.add_argument("--requests", type=int, default=150)
    parser.add_argument("--mode", choices=[m for m in MODES if m != "hook"], default="core")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        sys.exit("bench/instructions.py needs valgrind: `sudo apt-get install -y valgrind`")
    with tempfile.TemporaryDirectory(prefix="irisgate-callgrind-") as temp:
        tmp = Path(temp)
        up_port = free_port()
        upstream = start_upstream(up_port, tmp / "upstream.log")
        localapi = FakeLocalAPI(tmp / "tailscaled.sock")
        localapi.add_user("127.0.0.1", LOGIN, "Bench User")
        gateway = IrisgateServer(
            make_config(args.mode, f"http://127.0.0.1:{up_port}", ""),
            data_dir=tmp / "data",
            identity="tailscale",
            tailscaled_socket=str(tmp / "tailscaled.sock"),
        )
        out = tmp / "callgrind.out"
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        gateway.args = [*valgrind, f"--callgrind-out-file={out}.%p", *gateway.args]
        try:
            localapi.start()
            gateway.start(timeout=300)
            for name in args.scenarios:
                per_request = measure(gateway, out, name, args.requests)
                print(f"{name}: {per_request / 1e6:.2f} M instructions per request", flush=True)
        finally:
            gateway.stop()
            localapi.stop()
            upstream.terminate()
            upstream.wait()


if __name__ == "__main__":
    main()
