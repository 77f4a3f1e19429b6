#!/usr/bin/env bash
# The benchmark suite, run by hand on a quiet machine:
#   bench/suite.sh [--seconds S] [--out DIR] [--only NAME[,NAME...]]
# Builds a Release binary, then for each scenario starts Tracehouse pinned to core 1 and
# th_loadgen pinned to core 0, and records spans/s accepted, Tracehouse's CPU seconds per
# million spans (and its inverse, spans per CPU-second, the figure to compare), peak RSS
# and, for the store, bytes on disk per span. Writes DIR/report.md and DIR/report.json
# (default bench/results/): a table of the scenarios with their ratios to the nop pipeline
# and to nginx from the same run, the queries, the soak, and each performance goal of
# ARCHITECTURE.md section 4 beside the figure measured. The nginx ceiling needs nginx-light
# (scripts/install-deps.sh --bench installs it); the default-config scenario needs the
# default ports (4317, 4318, 16686, 8888, 13133) free.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
SECS=20
OUT=$root/bench/results
ONLY=""
while (($#)); do
  case $1 in
    --seconds) SECS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "usage: bench/suite.sh [--seconds S] [--out DIR] [--only NAME,...]" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT"
work=$(mktemp -d /tmp/th-suite-XXXXXX)
pidfile=$work/pid
cleanup() {
  if [[ -f $pidfile ]]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  # whatever this run started in the background (sink instance, load generator, nginx)
  local j
  for j in $(jobs -p); do kill "$j" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DTH_TESTS=OFF >/dev/null
cmake --build build-rel -j"$(nproc)" --target tracehouse th_loadgen th_tail_sampling_bench >/dev/null
TH=$root/build-rel/tracehouse
LG=$root/build-rel/bench/th_loadgen
TICK=$(getconf CLK_TCK)

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# A process and its children (nginx's master and workers).
cpu_tree_ticks() {
  local t=0 p
  for p in "$1" $(pgrep -P "$1"); do t=$((t + $(cpu_ticks "$p"))); done
  echo "$t"
}
rss_tree_kib() {
  local t=0 p
  for p in "$1" $(pgrep -P "$1"); do t=$((t + $(peak_rss_kib "$p"))); done
  echo "$t"
}
peak_rss_kib() { awk '/VmHWM/ { print $2 }' "/proc/$1/status"; }
wanted() { [[ -z $ONLY ]] || [[ ",$ONLY," == *",$1,"* ]]; }

# A config with the receiver on the bench ports, and $1 as the rest of it.
config() {
  cat <<EOF
receivers:
  otlp:
    protocols:
      http: {endpoint: 127.0.0.1:24318}
      grpc: {endpoint: 127.0.0.1:24317}
$1
EOF
}

store_ext() {
  cat <<EOF
extensions:
  jaeger_storage:
    backends:
      main:
        lmdb: {path: $work/data, ttl: {spans: 100000h}}
EOF
}

rows=()
json_rows=()
# Figures the goals table reads, by scenario name.
declare -A PER_CPU=() RSS_MIB=() DISK_BPS=() BODY_BPS=() QP99=()

port_open() { (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
# $1 / $2 as a ratio with two decimals, or "-".
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a + 0 > 0 && b + 0 > 0) printf "%.2f", a / b; else printf "-" }'; }
# "met" or "not met" for a comparison, "-" without a figure: met VALUE OP TARGET
met() { awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "" || v == "-") { print "-"; exit }
  ok = (op == ">=") ? v + 0 >= t + 0 : v + 0 <= t + 0; print ok ? "met" : "**not met**" }'; }

# Each goal of ARCHITECTURE.md section 4 beside the figure this run measured.
goals_table() {
  local st=${PER_CPU[store-http]:-} ts=${PER_CPU[tail-sampling]:-} nop=${PER_CPU[nop]:-}
  local share; share=$(awk -v a="$st" -v b="$nop" 'BEGIN { if (a > 0 && b > 0) printf "%.0f", 100 * a / b; else printf "-" }')
  local search=""; local k
  for k in service op attr; do
    if [[ -n ${QP99[$k]:-} ]]; then search=$(awk -v a="$search" -v b="${QP99[$k]}" 'BEGIN { print (a == "" || b + 0 > a + 0) ? b : a }'); fi
  done
  local disk=${DISK_BPS[store-http]:-} body=${BODY_BPS[store-http]:-}
  local dratio; dratio=$(ratio "$disk" "$body")
  echo
  echo "Goals (ARCHITECTURE.md section 4) beside this run's figures:"
  echo
  echo "| goal | target | measured here | |"
  echo "|---|---|---|---|"
  echo "| OTLP/HTTP protobuf into the store, indexes, unique trace ids (16 connections; 64) | >= 300k spans per CPU-s | ${st:--}; ${PER_CPU[store-http-64]:--} | $(met "$st" ">=" 300000); $(met "${PER_CPU[store-http-64]:-}" ">=" 300000) |"
  echo "| the same with tail sampling (~50k traces in flight) | >= 200k spans per CPU-s | ${ts:--} | $(met "$ts" ">=" 200000) |"
  echo "| store pipeline vs receive + decode + nop, same run | >= 50% | ${share}% (nginx: $(ratio "$st" "${PER_CPU[nginx]:-}")×) | $(met "$share" ">=" 50) |"
  echo "| RSS at full load, default config | <= 256 MiB and flat | ${DEFAULT_RSS:--} MiB, ${DEFAULT_FLAT:--} | $(met "${DEFAULT_RSS:-}" "<=" 256) |"
  echo "| trace by ID, ${QSPANS:-?} spans stored | p99 <= 2 ms | ${QP99[id]:--} ms | $(met "${QP99[id]:-}" "<=" 2) |"
  echo "| search by service, operation, attribute | p99 <= 20 ms | ${search:--} ms (slowest of the three) | $(met "$search" "<=" 20) |"
  echo "| disk per span, indexes included | <= the OTLP protobuf size (${body:--} B) | ${disk:--} B (${dratio}×) | $(met "$dratio" "<=" 1) |"
  echo "| tail-sampling memory per buffered trace | <= 2 KB | ${TS_BYTES:--} B by RSS, ${TS_ACCOUNTED:--} B accounted | $(met "${TS_BYTES:-}" "<=" 2048) |"
  if [[ -n ${DEFAULT_SAMPLES:-} ]]; then
    echo
    echo "Default config at full load, $DEFAULT_SAMPLES."
  fi
}


# Start Tracehouse pinned to core 1 with config $1, log $2; sets $pid. Fails loudly when the
# bench ports are taken (a leftover server would be measured instead) or it does not start.
start_th() {
  local p
  for p in 24318 24317 26686; do
    if port_open "$p"; then
      echo "bench/suite.sh: port $p is already in use; stop whatever listens there" >&2
      exit 1
    fi
  done
  taskset -c 1 "$TH" --config "$1" >"$2" 2>&1 &
  pid=$!
  echo "$pid" >"$pidfile"
  for _ in $(seq 100); do
    if port_open 24318; then return 0; fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "bench/suite.sh: tracehouse did not start with $1:" >&2
  tail -5 "$2" >&2
  exit 1
}

# run NAME DESCRIPTION CONFIG_FILE LOADGEN_ARGS... : one scenario.
run() {
  local name=$1 desc=$2 cfg=$3
  shift 3
  rm -rf "$work/data"
  start_th "$cfg" "$work/$name.log"
  local c0 t0 c1 t1
  c0=$(cpu_ticks "$pid")
  t0=$(date +%s.%N)
  taskset -c 0 "$LG" -q -d "$SECS" -e 127.0.0.1:24318 -c 16 --json "$work/$name.json" "$@" >"$work/$name.lg" || true
  # Let the server finish what it accepted (store commits) before reading its CPU time.
  sleep 1
  c1=$(cpu_ticks "$pid")
  t1=$(date +%s.%N)
  local rss
  rss=$(peak_rss_kib "$pid")
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$pidfile"
  local accepted disk_bytes=0
  accepted=$(sed -n 's/.*"accepted_spans":\([0-9]*\).*/\1/p' "$work/$name.json")
  if [[ -d $work/data ]]; then disk_bytes=$(du -sb "$work/data" | cut -f1); fi
  local line
  line=$(awk -v n="$name" -v d="$desc" -v acc="$accepted" -v secs="$SECS" -v c0="$c0" -v c1="$c1" \
    -v tick="$TICK" -v rss="$rss" -v disk="$disk_bytes" -v p99="$(sed -n 's/.*"p99":\([0-9.]*\).*/\1/p' "$work/$name.json")" '
    BEGIN {
      cpu = (c1 - c0) / tick; sps = acc / secs; per_cpu = cpu > 0 ? acc / cpu : 0;
      cpu_per_m = acc > 0 ? cpu / (acc / 1e6) : 0; bps = (disk > 0 && acc > 0) ? disk / acc : 0;
      disk_txt = bps > 0 ? sprintf("%.0f", bps) : "-";
      printf "%s|%s|%.0f|%.0f|%.2f|%.1f|%s|%.2f\n", n, d, sps, per_cpu, cpu_per_m, rss / 1024,
        disk_txt, p99 }')
  echo "$line"
  rows+=("$line")
  IFS='|' read -r n d sps per_cpu cpu_m rss_mib bps p99 <<<"$line"
  PER_CPU[$n]=$per_cpu
  RSS_MIB[$n]=$rss_mib
  DISK_BPS[$n]=$bps
  BODY_BPS[$n]=$(sed -n 's/.*"body_bytes_per_span":\([0-9.]*\).*/\1/p' "$work/$name.json")
  json_rows+=("{\"scenario\":\"$n\",\"description\":\"$d\",\"spans_per_s\":$sps,\"spans_per_cpu_s\":$per_cpu,\"cpu_s_per_million_spans\":$cpu_m,\"peak_rss_mib\":$rss_mib,\"disk_bytes_per_span\":$([[ $bps == - ]] && echo null || echo "$bps"),\"p99_ms\":$p99,\"otlp_pb_bytes_per_span\":${BODY_BPS[$n]:-null}}")
}

echo "scenario|description|spans/s|spans per CPU-s|CPU-s per M spans|peak RSS MiB|disk B/span|p99 ms"

if wanted nginx; then
  if command -v nginx >/dev/null; then
    cat >"$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  client_max_body_size 16m;
  client_body_buffer_size 1m;
  server {
    listen 127.0.0.1:24318;
    location / { return 200; }
  }
}
EOF
    # nginx runs as the scenario's "server"; it reads and discards each body.
    taskset -c 1 nginx -c "$work/nginx.conf" >/dev/null 2>&1 &
    ngpid=$!
    sleep 0.5
    c0=$(cpu_tree_ticks "$ngpid")
    taskset -c 0 "$LG" -q -d "$SECS" -e 127.0.0.1:24318 -c 16 --json "$work/nginx.json" >/dev/null || true
    c1=$(cpu_tree_ticks "$ngpid")
    rss=$(rss_tree_kib "$ngpid")
    kill "$ngpid"; wait "$ngpid" 2>/dev/null || true
    acc=$(sed -n 's/.*"accepted_spans":\([0-9]*\).*/\1/p' "$work/nginx.json")
    line=$(awk -v acc="$acc" -v secs="$SECS" -v c0="$c0" -v c1="$c1" -v tick="$TICK" -v rss="$rss" \
      'BEGIN { cpu = (c1 - c0) / tick; per = cpu > 0 ? acc / cpu : 0; m = acc > 0 ? cpu / (acc / 1e6) : 0;
        printf "nginx|nginx-light reading and discarding bodies (transport ceiling)|%.0f|%.0f|%.2f|%.1f|-|-\n", acc / secs, per, m, rss / 1024 }')
    echo "$line"
    rows+=("$line")
    PER_CPU[nginx]=$(cut -d'|' -f4 <<<"$line")
  else
    echo "nginx|not installed (scripts/install-deps.sh --bench)|-|-|-|-|-|-"
  fi
fi

if wanted nop; then
  config "exporters: {nop: {}}
service:
  telemetry: {logs: {level: warn}}
  pipelines: {traces: {receivers: [otlp], exporters: [nop]}}" >"$work/nop.yaml"
  run nop "OTLP/HTTP protobuf -> nop (receive + decode + discard)" "$work/nop.yaml"
fi

store_cfg() { # $1 processors list
  config "$(store_ext)
processors:
  memory_limiter: {check_interval: 1s, limit_mib: 1024}
  tail_sampling:
    decision_wait: 3s
    num_traces: 100000
    policies:
      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: slow, type: latency, latency: {threshold_ms: 1000}}
      - {name: baseline, type: probabilistic, probabilistic: {sampling_percentage: 10}}
  redaction:
    allow_all_keys: true
    blocked_values:
      - '4[0-9]{12}(?:[0-9]{3})?'
      - '(5[1-5][0-9]{14})'
      - '[0-9]{3}-[0-9]{2}-[0-9]{4}'
      - '[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\\.[a-zA-Z]{2,}'
      - 'AKIA[0-9A-Z]{16}'
      - '(?i)bearer [a-z0-9._-]+'
      - '\\b(?:[0-9]{1,3}\\.){3}[0-9]{1,3}\\b'
      - 'xox[baprs]-[0-9a-zA-Z-]+'
      - 'ghp_[0-9a-zA-Z]{36}'
      - '-----BEGIN [A-Z ]+-----'
exporters:
  jaeger_storage_exporter: {trace_storage: main}
service:
  extensions: [jaeger_storage]
  telemetry: {logs: {level: warn}}
  pipelines: {traces: {receivers: [otlp], processors: [$1], exporters: [jaeger_storage_exporter]}}"
}

if wanted store-http; then
  store_cfg memory_limiter >"$work/store.yaml"
  run store-http "OTLP/HTTP protobuf -> memory_limiter -> LMDB store" "$work/store.yaml"
fi
if wanted store-http-64; then
  # More senders, larger commit groups: what a busy store sees.
  store_cfg memory_limiter >"$work/store.yaml"
  run store-http-64 "the same with 64 connections" "$work/store.yaml" -c 64
fi
if wanted store-json; then
  store_cfg memory_limiter >"$work/store.yaml"
  run store-json "OTLP/HTTP JSON -> memory_limiter -> LMDB store" "$work/store.yaml" -p http/json
fi
if wanted store-grpc; then
  store_cfg memory_limiter >"$work/store.yaml"
  run store-grpc "OTLP/gRPC -> memory_limiter -> LMDB store" "$work/store.yaml" -p grpc \
    -e 127.0.0.1:24317 -c 2 --streams 8
fi
if wanted tail-sampling; then
  # ~17k traces/s for 3 s of decision_wait: ~50k traces in flight.
  store_cfg "memory_limiter, tail_sampling" >"$work/ts.yaml"
  run tail-sampling "OTLP/HTTP -> memory_limiter -> tail_sampling (status_code, latency, 10% probabilistic; ~50k traces in flight) -> store" \
    "$work/ts.yaml" -r 170000 --errors 0.05 --slow 0.05
fi
if wanted redaction; then
  store_cfg "memory_limiter, redaction" >"$work/red.yaml"
  run redaction "OTLP/HTTP -> memory_limiter -> redaction (10 patterns, 20 attributes per span) -> store" \
    "$work/red.yaml" --attrs 20
fi

# ---- Exporting to a second instance ------------------------------------------------------
# Tracehouse B (otlp -> nop) shares core 0 with the load generator; A, measured, forwards.
export_scenario() { # $1 name, $2 description, $3 exporter block, $4 exporter id
  cat >"$work/sink.yaml" <<EOF
receivers:
  otlp:
    protocols:
      http: {endpoint: 127.0.0.1:25318}
      grpc: {endpoint: 127.0.0.1:25317}
exporters: {nop: {}}
service:
  telemetry: {logs: {level: warn}}
  pipelines: {traces: {receivers: [otlp], exporters: [nop]}}
EOF
  taskset -c 0 "$TH" --config "$work/sink.yaml" >"$work/sink.log" 2>&1 &
  local sink=$!
  # memory_limiter in front, as the Collector recommends: the sink is slower than the
  # receiver, and without it the sending queue (1000 batches) holds gigabytes.
  config "processors:
  memory_limiter: {check_interval: 1s, limit_mib: 512, spike_limit_mib: 128}
  batch: {}
exporters:
$3
service:
  telemetry: {logs: {level: warn}}
  pipelines: {traces: {receivers: [otlp], processors: [memory_limiter, batch], exporters: [$4]}}" >"$work/$1.yaml"
  sleep 0.5
  # Open loop below what the sink (sharing core 0 with the load generator) absorbs: the
  # figure is the cost of forwarding, not of refusing what a slower backend cannot take.
  run "$1" "$2" "$work/$1.yaml" -r 150000
  kill -TERM "$sink"
  wait "$sink" 2>/dev/null || true
}
if wanted export-http; then
  export_scenario export-http "OTLP/HTTP -> memory_limiter -> batch -> otlp_http (proto, gzip) -> second instance, open loop at 150k spans/s" \
    "  otlp_http: {endpoint: http://127.0.0.1:25318}" otlp_http
fi
if wanted export-grpc; then
  export_scenario export-grpc "OTLP/HTTP -> memory_limiter -> batch -> otlp_grpc (gzip) -> second instance, open loop at 150k spans/s" \
    "  otlp_grpc: {endpoint: 127.0.0.1:25317, tls: {insecure: true}}" otlp_grpc
fi

# ---- Queries over a filled store ------------------------------------------------------------
qrows=()
if wanted queries; then
  QSPANS=${QSPANS:-10000000}
  QSECS=${QSECS:-10}
  config "$(store_ext)
  jaeger_query:
    storage: {traces: main}
    http: {endpoint: 127.0.0.1:26686}
exporters:
  jaeger_storage_exporter: {trace_storage: main}
service:
  extensions: [jaeger_storage, jaeger_query]
  telemetry: {logs: {level: warn}}
  pipelines: {traces: {receivers: [otlp], exporters: [jaeger_storage_exporter]}}" >"$work/q.yaml"
  rm -rf "$work/data"
  start_th "$work/q.yaml" "$work/q.log"
  qpid=$pid
  echo "queries: filling the store with $QSPANS spans"
  t0=$(date +%s)
  taskset -c 0 "$LG" -q -d 3600 -e 127.0.0.1:24318 -c 16 --total-spans "$QSPANS" >"$work/fill.txt" || true
  sleep 2
  fill_s=$(($(date +%s) - t0))
  disk=$(du -sb "$work/data" | cut -f1)
  echo "queries: filled in ${fill_s}s, $disk bytes on disk ($(awk -v d="$disk" -v n="$QSPANS" 'BEGIN { printf "%.0f", d / n }') B/span)"
  api=/api
  now_us=$(($(date +%s) * 1000000))
  range="start=$((now_us - 7200 * 1000000))&end=$((now_us + 3600 * 1000000))"
  ids=$(curl -s "http://127.0.0.1:26686$api/traces?service=service-00&limit=500&$range" \
    | grep -o '"traceID":"[0-9a-f]*"' | cut -d'"' -f4 | sort -u | head -500)
  printf '%s\n' $ids | sed "s|^|$api/traces/|" >"$work/q-id.txt"
  : >"$work/q-service.txt"; : >"$work/q-op.txt"; : >"$work/q-attr.txt"; : >"$work/q-dur.txt"
  for n in 00 01 02 03 04 05 06 07 08 09; do
    echo "$api/traces?service=service-$n&limit=20&$range" >>"$work/q-service.txt"
    echo "$api/traces?service=service-$n&operation=GET%20%2Fapi%2Forders&limit=20&$range" >>"$work/q-op.txt"
    echo "$api/traces?service=service-$n&tags=%7B%22http.response.status_code%22%3A%22500%22%7D&limit=20&$range" >>"$work/q-attr.txt"
    echo "$api/traces?service=service-$n&minDuration=150ms&limit=20&$range" >>"$work/q-dur.txt"
  done
  echo "$api/services" >"$work/q-services.txt"
  for n in 00 01 02 03 04 05 06 07 08 09; do echo "$api/services/service-$n/operations"; done >"$work/q-ops.txt"
  for q in id:"trace by ID" service:"search by service" op:"search by operation" attr:"search by attribute" \
           dur:"search by min duration" services:"services list" ops:"operations list"; do
    key=${q%%:*}
    desc=${q#*:}
    if [[ ! -s $work/q-$key.txt ]]; then continue; fi
    res=$(URLS="$work/q-$key.txt" taskset -c 0 wrk -t1 -c4 -d"${QSECS}s" -s "$root/bench/query.lua" \
      http://127.0.0.1:26686 | grep RESULT || true)
    qps=$(sed -n 's/.*qps=\([0-9.]*\).*/\1/p' <<<"$res")
    p50=$(sed -n 's/.*p50_ms=\([0-9.]*\).*/\1/p' <<<"$res")
    p99=$(sed -n 's/.*p99_ms=\([0-9.]*\).*/\1/p' <<<"$res")
    err=$(sed -n 's/.*errors=\([0-9]*\).*/\1/p' <<<"$res")
    line="$desc|$qps|$p50|$p99|$err"
    echo "queries: $line"
    qrows+=("$line")
    QP99[$key]=${p99:-0}
    json_rows+=("{\"scenario\":\"query-$key\",\"description\":\"$desc, $QSPANS spans stored, 4 clients\",\"queries_per_s\":${qps:-0},\"p50_ms\":${p50:-0},\"p99_ms\":${p99:-0},\"errors\":${err:-0}}")
  done
  kill -TERM "$qpid"
  while kill -0 "$qpid" 2>/dev/null; do sleep 0.1; done
  rm -f "$pidfile"
fi

# ---- The embedded default config under full load: RSS must stay under 256 MiB and flat ------
rss_samples=()
anon_samples=()
if wanted default-config; then
  for p in 4318 4317 16686 8888 13133; do
    if port_open "$p"; then
      echo "bench/suite.sh: port $p is in use; the default-config scenario needs the default ports" >&2
      exit 1
    fi
  done
  rm -rf "$work/data"
  (cd "$work" && TRACEHOUSE_DATA=$work/data exec taskset -c 1 "$TH" >"$work/default.log" 2>&1) &
  pid=$!
  echo "$pid" >"$pidfile"
  for _ in $(seq 100); do port_open 4318 && break; sleep 0.1; done
  c0=$(cpu_ticks "$pid")
  # 64 connections: more than the store takes, so the memory limiter is what holds RSS.
  taskset -c 0 "$LG" -q -d "$SECS" -e 127.0.0.1:4318 -c 64 --json "$work/default.json" >/dev/null &
  lgpid=$!
  for ((t = 1; t <= SECS; t++)); do
    sleep 1
    rss_samples+=("$(awk '/VmRSS/ { print int($2 / 1024) }' "/proc/$pid/status")")
    # anonymous memory (heap, buffers) apart from the store's mapped file pages
    anon_samples+=("$(awk '/RssAnon/ { print int($2 / 1024) }' "/proc/$pid/status")")
  done
  wait "$lgpid" || true
  c1=$(cpu_ticks "$pid")
  drss=$(($(peak_rss_kib "$pid") / 1024))
  kill -TERM "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  rm -f "$pidfile"
  dacc=$(sed -n 's/.*"accepted_spans":\([0-9]*\).*/\1/p' "$work/default.json")
  half=$((${#anon_samples[@]} / 2))
  first=0; second=0
  for ((i = 0; i < ${#anon_samples[@]}; i++)); do
    v=${anon_samples[$i]}
    if ((i < half)); then ((v > first)) && first=$v; else ((v > second)) && second=$v; fi
  done
  # Flat: the process's own memory (RssAnon) peaks in the second half of the run within 10%
  # (or 8 MiB) of the first half. The store's mapped file pages also count in RSS; they
  # grow with the data file and the kernel reclaims them, so they are reported, not judged.
  DEFAULT_FLAT=$(awk -v a="$first" -v b="$second" 'BEGIN { print (b <= a * 1.10 || b - a <= 8) ? "flat" : "growing" }')
  DEFAULT_RSS=$drss
  line=$(awk -v acc="$dacc" -v secs="$SECS" -v c0="$c0" -v c1="$c1" -v tick="$TICK" -v rss="$drss" \
    'BEGIN { cpu = (c1 - c0) / tick; per = cpu > 0 ? acc / cpu : 0; m = acc > 0 ? cpu / (acc / 1e6) : 0;
      printf "default-config|no --config: the embedded default (memory_limiter 256 MiB -> store), 64 connections|%.0f|%.0f|%.2f|%.1f|-|-\n", acc / secs, per, m, rss }')
  echo "$line"
  rows+=("$line")
  echo "default-config: RSS MiB each second: ${rss_samples[*]}; of it anonymous: ${anon_samples[*]} ($DEFAULT_FLAT)"
  DEFAULT_SAMPLES="RSS MiB each second: ${rss_samples[*]}; anonymous: ${anon_samples[*]}"
  json_rows+=("{\"scenario\":\"default-config\",\"peak_rss_mib\":$drss,\"rss_mib_each_second\":[$(IFS=,; echo "${rss_samples[*]}")],\"rss_anon_mib_each_second\":[$(IFS=,; echo "${anon_samples[*]}")],\"rss\":\"$DEFAULT_FLAT\"}")
fi

# ---- Tail-sampling memory per buffered trace (the processor alone, 50k traces) ------------
if wanted ts-memory; then
  "$root/build-rel/bench/th_tail_sampling_bench" -n 2000 >"$work/tsmem.txt" 2>&1 || true
  TS_BYTES=$(sed -n 's/.*RSS beyond the span data: \([0-9]*\) B per trace.*/\1/p' "$work/tsmem.txt")
  TS_ACCOUNTED=$(sed -n 's/.*accounted: \([0-9]*\) B per trace.*/\1/p' "$work/tsmem.txt")
  echo "ts-memory: ${TS_ACCOUNTED:-?} B accounted, ${TS_BYTES:-?} B by RSS per buffered trace"
  json_rows+=("{\"scenario\":\"ts-memory\",\"accounted_bytes_per_trace\":${TS_ACCOUNTED:-null},\"rss_bytes_per_trace\":${TS_BYTES:-null}}")
fi

# ---- Soak: ingest for several retention windows; the data file must stop growing ------------
soak_lines=()
if wanted soak; then
  SOAK_TTL=${SOAK_TTL:-60}
  SOAK_SECS=${SOAK_SECS:-$((SOAK_TTL * 5))}
  SOAK_RATE=${SOAK_RATE:-50000}
  config "extensions:
  jaeger_storage:
    backends:
      main:
        lmdb: {path: $work/data, ttl: {spans: ${SOAK_TTL}s}, retention_interval: 5s}
exporters:
  jaeger_storage_exporter: {trace_storage: main}
service:
  extensions: [jaeger_storage]
  telemetry: {logs: {level: warn}}
  pipelines: {traces: {receivers: [otlp], exporters: [jaeger_storage_exporter]}}" >"$work/soak.yaml"
  rm -rf "$work/data"
  start_th "$work/soak.yaml" "$work/soak.log"
  spid=$pid
  taskset -c 0 "$LG" -q -d "$SOAK_SECS" -e 127.0.0.1:24318 -c 16 -r "$SOAK_RATE" --json "$work/soak.json" >/dev/null &
  lgpid=$!
  for ((t = 10; t <= SOAK_SECS; t += 10)); do
    sleep 10
    sz=$(stat -c %s "$work/data/data.mdb" 2>/dev/null || echo 0)
    soak_lines+=("$t|$sz")
    echo "soak: ${t}s data.mdb $sz bytes"
  done
  wait "$lgpid" || true
  srss=$(peak_rss_kib "$spid")
  kill -TERM "$spid"
  while kill -0 "$spid" 2>/dev/null; do sleep 0.1; done
  rm -f "$pidfile"
  json_rows+=("{\"scenario\":\"soak\",\"description\":\"${SOAK_SECS}s at ${SOAK_RATE} spans/s with a ${SOAK_TTL}s TTL\",\"peak_rss_mib\":$((srss / 1024)),\"data_file_bytes\":[$(printf '%s\n' "${soak_lines[@]}" | cut -d'|' -f2 | paste -sd,)]}")
fi

{
  echo "# Tracehouse benchmark suite"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), ${SECS}s per scenario; Tracehouse on core 1, th_loadgen on core 0 (closed loop, 4 connections, 100 spans per request unless noted)."
  echo
  echo "| scenario | what | spans/s | spans per CPU-s | × nop | × nginx | CPU-s per M spans | peak RSS MiB | disk B/span | p99 ms |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for r in "${rows[@]}"; do
    IFS='|' read -r n d sps per_cpu cpu_m rss_mib bps p99 <<<"$r"
    echo "| $n | $d | $sps | $per_cpu | $(ratio "$per_cpu" "${PER_CPU[nop]:-}") | $(ratio "$per_cpu" "${PER_CPU[nginx]:-}") | $cpu_m | $rss_mib | $bps | $p99 |"
  done
  goals_table
  if ((${#qrows[@]})); then
    echo
    echo "Queries through the Jaeger HTTP API with ${QSPANS:-} spans stored, 4 concurrent clients (wrk, ${QSECS:-}s each):"
    echo
    echo "| query | queries/s | p50 ms | p99 ms | errors |"
    echo "|---|---:|---:|---:|---:|"
    for r in "${qrows[@]}"; do echo "| ${r//|/ | } |"; done
  fi
  if ((${#soak_lines[@]})); then
    echo
    echo "Soak: ${SOAK_SECS}s of ingest at ${SOAK_RATE} spans/s with a ${SOAK_TTL}s TTL; data.mdb size over time:"
    echo
    echo "| seconds | data.mdb bytes |"
    echo "|---:|---:|"
    for r in "${soak_lines[@]}"; do echo "| ${r//|/ | } |"; done
  fi
} >"$OUT/report.md"
{
  echo "["
  for i in "${!json_rows[@]}"; do
    sep=","; [[ $i -eq $((${#json_rows[@]} - 1)) ]] && sep=""
    echo "  ${json_rows[$i]}$sep"
  done
  echo "]"
} >"$OUT/report.json"
echo "wrote $OUT/report.md and $OUT/report.json"
