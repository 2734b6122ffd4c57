"""The benchmark's upstream: `irisgate.testing.fake_llm` keeping no log of what it did.

    python bench/upstream.py --port N

FakeLLM keeps every request it receives, and every answer it sends, for test assertions.
Over a benchmark's 100,000+ requests those lists make the garbage collector walk an ever
larger heap, which shows up as 10-150 ms p99 stalls of the upstream itself, and the answers
alone grew the upstream to gigabytes; with `record` off it keeps neither. Everything else
(wire format, 20 content events per stream) is the fake's own.
"""

from __future__ import annotations

import argparse
import asyncio

from irisgate.testing.fake_llm import FakeLLM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-chunks", type=int, default=20, help="content deltas per stream")
    args = parser.parse_args()
    fake = FakeLLM()
    fake.n_chunks = args.n_chunks
    fake.record = False  # no request or answer log: nothing reads it here
    import uvloop  # irisgate depends on it: the upstream runs on the same loop as the gateway

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(fake.serve("127.0.0.1", args.port))


if __name__ == "__main__":
    main()
