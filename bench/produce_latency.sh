#!/usr/bin/env bash
# Event-to-verdict latency of a fresh worker under `sentinel produce --rate 2000`, read from the
# worker's own histogram over the second of two 20,000-transaction streams (the first builds
# card state). Run after the load-test setup of docs/benchmarks.md ("Load tests": its broker,
# data dir and two trained models); each run gets its own topics and consumer group.
#   bench/produce_latency.sh BATCH_SIZE BATCH_WINDOW_S TAG     e.g. 1000 0.005 new1
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 BATCH_SIZE BATCH_WINDOW_S TAG" >&2; exit 2; }
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
export SENTINEL_DATA_DIR=/tmp/sbench/data SENTINEL_TOPICS__PREFIX="ab$3." \
    SENTINEL_BROKER__PORT=39192 SENTINEL_BROKER__CONTROLLER_PORT=39193 \
    SENTINEL_WORKER__WEB_PORT=39066 SENTINEL_WORKER__APP_ID="sentinel-ab$3" \
    SENTINEL_LOG_LEVEL=WARNING SENTINEL_SCORING__BATCH_SIZE="$1" SENTINEL_SCORING__BATCH_WINDOW_S="$2"
sentinel worker > "/tmp/produce-latency-$3.log" 2>&1 &
worker=$!
trap 'kill $worker 2>/dev/null || true' EXIT
for _ in $(seq 1 90); do curl -sf http://127.0.0.1:39066/ready > /dev/null && break; sleep 1; done
snapshot() {
    curl -s http://127.0.0.1:39066/metrics \
        | grep '^sentinel_event_to_verdict_latency_seconds_bucket' | awk '{print $2}' | tr '\n' ' '
}
sentinel produce --rate 2000 --count 20000 --seed 3 > /dev/null; sleep 4
before=$(snapshot)
sentinel produce --rate 2000 --count 20000 --seed 4 > /dev/null; sleep 4
after=$(snapshot)
python3 - "$before" "$after" "$3" <<'PY'
import sys
before, after = ([float(x) for x in arg.split()] for arg in sys.argv[1:3])
bounds = ["1ms", "2.5ms", "5ms", "10ms", "25ms", "50ms", "100ms", "250ms", "500ms", "1s", "2.5s",
          "5s", "10s", "inf"]
counts = [b - a for a, b in zip(before, after)]
n = counts[-1]
print(sys.argv[3], f"n={n:.0f}", " ".join(f"<={b}:{c / n:.3f}" for b, c in zip(bounds, counts)
                                      if 0 < c < n or b == "50ms"))
PY
