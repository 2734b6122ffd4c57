-- wrk script for bench/run.py: POST the JSON body given in BENCH_BODY, then print exact
-- latency percentiles (wrk records latency in microseconds) on lines run.py parses.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY")
wrk.headers["Content-Type"] = "application/json"
-- BENCH_AUTH: an irisgate API key (`--mode key`); otherwise a placeholder irisgate ignores
wrk.headers["Authorization"] = os.getenv("BENCH_AUTH") or "Bearer sk-bench-client"

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout))
  io.write(string.format("BENCH p50_us=%d p90_us=%d p99_us=%d max_us=%d\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
