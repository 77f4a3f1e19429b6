#!/usr/bin/env bash
# A fuzzing campaign: each target (all of tests/fuzz/ by default, or those named) runs in
# CHUNK-second chunks, ASan + UBSan on, from a copy of its corpus, until its coverage is flat
# for three chunks (at most MAX_CHUNKS). Then the corpus is minimized into the repo's
# (-merge=1, keeping the files already there) and the coverage per chunk is written to
# build-fuzz/campaign/<target>/progress.tsv (chunk, cov, ft, runs, exit code, corpus files).
# A crash stops that target with its input in build-fuzz/campaign/<target>/crashes/: add it
# to the corpus as a regression input once fixed.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
CHUNK=${CHUNK:-90}
MAX_CHUNKS=${MAX_CHUNKS:-10}
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DTH_FUZZ=ON -DTH_TESTS=OFF \
  -DCMAKE_C_COMPILER=clang >/dev/null
cmake --build build-fuzz -j"$(nproc)" >/dev/null || exit 1
targets=("$@")
if ((${#targets[@]} == 0)); then
  for d in tests/fuzz/*/; do targets+=("$(basename "$d")"); done
fi
failed=0
for t in "${targets[@]}"; do
  bin=$root/build-fuzz/tests/fuzz_$t
  out=$root/build-fuzz/campaign/$t
  rm -rf "$out" && mkdir -p "$out/corpus" "$out/crashes" "$out/min"
  cp tests/fuzz/"$t"/corpus/* "$out/corpus/" 2>/dev/null
  dict=()
  [[ -f tests/fuzz/$t/$t.dict ]] && dict=(-dict="tests/fuzz/$t/$t.dict")
  flat=0 last="" rc=0
  for chunk in $(seq 1 "$MAX_CHUNKS"); do
    "$bin" "$out/corpus" "${dict[@]}" -max_total_time="$CHUNK" -rss_limit_mb=2048 \
      -artifact_prefix="$out/crashes/" -print_final_stats=1 >"$out/chunk$chunk.log" 2>&1
    rc=$?
    cov=$(grep -o 'cov: [0-9]*' "$out/chunk$chunk.log" | tail -1 | awk '{print $2}')
    ft=$(grep -o 'ft: [0-9]*' "$out/chunk$chunk.log" | tail -1 | awk '{print $2}')
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$out/chunk$chunk.log" | awk '{print $2}')
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$chunk" "$cov" "$ft" "$runs" "$rc" \
      "$(ls "$out/corpus" | wc -l)" >>"$out/progress.tsv"
    ((rc != 0)) && break
    if [[ $cov == "$last" ]]; then flat=$((flat + 1)); else flat=0; fi
    last=$cov
    ((chunk >= 4 && flat >= 3)) && break
  done
  if ((rc != 0)); then
    echo "$t: CRASH, input in $out/crashes/"; failed=$((failed + 1)); continue
  fi
  "$bin" -merge=1 "$out/min" tests/fuzz/"$t"/corpus "$out/corpus" >"$out/merge.log" 2>&1
  cp -n "$out/min"/* tests/fuzz/"$t"/corpus/ 2>/dev/null
  echo "$t: $chunk chunks of ${CHUNK}s, cov $(cut -f2 "$out/progress.tsv" | head -1) -> $cov," \
    "$(awk '{s += $4} END {print s}' "$out/progress.tsv") runs, corpus $(ls tests/fuzz/"$t"/corpus | wc -l) files"
done
((failed == 0))
