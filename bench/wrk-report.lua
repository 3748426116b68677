-- Loaded by bench/chain.sh into every wrk run: optional POST body, and one machine-readable line.
local body_file = os.getenv("BENCH_POST_BODY")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.method = "POST"
  wrk.body = f:read("*a")
  f:close()
  wrk.headers["Content-Type"] = "application/json"
end
local origin = os.getenv("BENCH_ORIGIN")
if origin and origin ~= "" then
  wrk.headers["Origin"] = origin
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d seconds=%.3f p50_us=%d p99_us=%d errors=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
