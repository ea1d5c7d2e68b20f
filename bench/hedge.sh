#!/usr/bin/env bash
# Hedged reads (ClientOptions::hedge, issue 26) against dynalite behind the fault proxy in its
# heavy-tail mode: 2% of answers held 10-20x the median latency. One event-loop thread with
# C gets in flight, without and with `bench --hedge`: ops/s, p50, p99, and the second copies
# sent as a share of the gets.
#
#   scripts/with-dynalite scripts/with-faults --profile none -- bench/hedge.sh CLI SECONDS OUT.jsonl [C] [FLOOR_MS]
#
# The median is measured first with the tail off, so the tail is 10-20x this machine's median.
# FLOOR_MS is HedgeOptions::floor (default 5, the library's): on loopback, where the median is
# well under 1 ms, a 5 ms floor is most of a 10-20x tail, so bench/run also runs a 1 ms floor.
set -euo pipefail
cli="$1" secs="$2" out="$3" c="${4:-8}" floor="${5:-5}"
[ -n "${FAULT_PROXY_URL:-}" ] || { echo "bench/hedge.sh: run under scripts/with-faults" >&2; exit 2; }
field() { /usr/bin/python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(d$2)" "$1"; }
calc() { awk "BEGIN { print $1 }"; }
proxy_config() {
  /usr/bin/python3 -c 'import sys, urllib.request
r = urllib.request.Request(sys.argv[1] + "/__faults/config", data=sys.argv[2].encode(), method="POST")
urllib.request.urlopen(r, timeout=5).read()' "$FAULT_PROXY_URL" "$1"
}
run() { "$cli" --table hedge-bench bench --op get --duration "$secs" --concurrency "$c" --threads 1 --keys 1000 \
  --warmup 500 --json "$@"; }
"$cli" --table hedge-bench create-table >/dev/null 2>&1 || true
proxy_config '{"profile":"none"}'
base="$(run)"
echo "$base" >>"$out"
p50_ms="$(calc "$(field "$base" '["p50_us"]')/1000")"
tail_ms="$(calc "int(10*$p50_ms + 0.999)")"
proxy_config "{\"profile\":\"none\",\"tail_rate\":0.02,\"tail_ms\":$tail_ms}"
echo "median without the tail ${p50_ms} ms; tail: 2% of answers held ${tail_ms}-$((2 * tail_ms)) ms; c=$c, one loop thread; hedge floor ${floor} ms"
printf '%-6s %4s %10s %9s %9s %11s %11s\n' hedge c ops_s p50_ms p99_ms extra_req hedge_wins
off="$(run)"
on="$(run --hedge --hedge-floor "$floor")"
echo "$off" >>"$out"
echo "$on" >>"$out"
for r in off on; do
  j="$([ "$r" = off ] && echo "$off" || echo "$on")"
  printf '%-6s %4s %10.0f %9.2f %9.2f %10.2f%% %11s\n' "$r" "$c" "$(field "$j" '["ops_per_sec"]')" \
    "$(calc "$(field "$j" '["p50_us"]')/1000")" "$(calc "$(field "$j" '["p99_us"]')/1000")" \
    "$(calc "100*$(field "$j" '["hedged"]')/$(field "$j" '["ops"]')")" "$(field "$j" '["hedge_wins"]')"
done
echo "p99 with hedging: $(calc "100*$(field "$on" '["p99_us"]')/$(field "$off" '["p99_us"]')")% of without"
