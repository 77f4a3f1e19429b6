#!/usr/bin/env bash
# End-to-end store benchmark over HTTP, run by hand:
#   bench/store-http.sh [SECONDS]
# 1. builds a Release binary (build-rel/),
# 2. the ceiling: OTLP/HTTP protobuf → nop exporter,
# 3. OTLP/HTTP protobuf → jaeger_storage_exporter → LMDB, with fresh trace ids per request,
# 4. bytes on disk per span, then query latencies through the Jaeger API (trace by id,
#    search by service, by operation, by attribute; p50/p99 over QUERIES requests each).
# Tracehouse is pinned to core 1 and wrk to core 0; figures are spans per server CPU-second,
# which stay comparable when the load generator is the limit. The wrk driver and payloads
# are the shared ones in ../shared/bench (OTLP_UNIQUE=1 rewrites trace ids per request).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
DUR=${1:-20}
QUERIES=${QUERIES:-200}
SHARED=${SHARED:-$root/../shared/bench}
work=$(mktemp -d /tmp/th-bench-XXXXXX)
# The servers start inside command substitutions, so they are not jobs of this shell: stop
# them by the pid each run records.
trap '[ -f "$work/pid" ] && kill "$(cat "$work/pid")" 2>/dev/null; rm -rf "$work"' EXIT

cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DTH_TESTS=OFF >/dev/null
cmake --build build-rel -j"$(nproc)" --target tracehouse >/dev/null

config() { # $1 exporter block, $2 extensions block, $3 service extensions, $4 exporter id
  cat <<EOF
$2
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:24318
exporters:
$1
service:
  extensions: [$3]
  telemetry: {logs: {level: warn}, metrics: {level: none}}
  pipelines:
    traces: {receivers: [otlp], exporters: [$4]}
EOF
}

run() { # $1 config file → prints the driver's RESULT line
  taskset -c 1 build-rel/tracehouse --config "$1" >/dev/null 2>>"$root/build-rel/bench-server.log" &
  local pid=$!
  sleep 1
  OTLP_UNIQUE=1 WRK_CPU=0 SERVER_PIDS=$pid DRAIN=1 bash "$SHARED/otlp-wrk.sh" 24318 "$DUR" \
    | tee "$work/wrk.txt" | grep RESULT
  echo "$pid" >"$work/pid"
}

echo "== ceiling: OTLP/HTTP protobuf -> nop"
config "  nop:" "" "" nop >"$work/nop.yaml"
run "$work/nop.yaml"
kill -TERM "$(cat "$work/pid")"; while kill -0 "$(cat "$work/pid")" 2>/dev/null; do sleep 0.1; done

echo "== OTLP/HTTP protobuf -> jaeger_storage_exporter -> LMDB"
config "  jaeger_storage_exporter: {trace_storage: main}" "extensions:
  jaeger_storage:
    backends:
      main:
        lmdb: {path: $work/data, ttl: {spans: 100000h}}
  jaeger_query:
    storage: {traces: main}
    http: {endpoint: 127.0.0.1:26686}" "jaeger_storage, jaeger_query" jaeger_storage_exporter \
  >"$work/store.yaml"
result=$(run "$work/store.yaml")
echo "$result"
pid=$(cat "$work/pid")
ok_rps=$(sed -n 's/.*ok_rps=\([0-9.]*\).*/\1/p' <<<"$result")
spans=$(awk -v r="$ok_rps" -v d="$DUR" 'BEGIN { printf "%d", r * 100 * d }')
bytes=$(stat -c %s "$work/data/data.mdb")
echo "stored ~$spans spans in $bytes bytes: $(awk -v b="$bytes" -v s="$spans" 'BEGIN { printf "%.0f", b / s }') bytes/span on disk (file size; OTLP protobuf of the bench payloads is ~360 bytes/span)"

echo "== queries through the Jaeger API, $QUERIES each"
api=http://127.0.0.1:26686/api
start=$(( ($(date +%s) - 86400 * 800) * 1000000 ))
ids=$(curl -s "$api/traces?service=cart&limit=200&start=$start" | grep -o '"traceID":"[0-9a-f]*"' | cut -d'"' -f4 | sort -u | head -200)
lat() { # $1 label, then URLs on stdin
  local n=0
  local f="$work/lat-$1"
  : >"$f"
  while read -r url; do
    curl -s -o /dev/null -w '%{time_total}\n' "$url" >>"$f"
    n=$((n + 1))
  done
  sort -n "$f" | awk -v label="$1" '{ v[NR] = $1 } END {
    p50 = int(NR * 0.5) + 1; p99 = int(NR * 0.99); if (p99 < 1) p99 = 1
    printf "%-22s n=%d p50=%.2f ms p99=%.2f ms\n", label, NR, v[p50] * 1000, v[p99] * 1000 }'
}
for id in $ids; do echo "$api/traces/$id"; done | head -n "$QUERIES" | lat "trace by id"
for i in $(seq "$QUERIES"); do echo "$api/traces?service=cart&limit=20&start=$start"; done | lat "search by service"
for i in $(seq "$QUERIES"); do echo "$api/traces?service=cart&operation=GET%20/products&limit=20&start=$start"; done | lat "search by operation"
for i in $(seq "$QUERIES"); do echo "$api/traces?service=cart&tag=http.response.status_code:200&limit=20&start=$start"; done | lat "search by attribute"
kill -TERM "$pid"; while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
