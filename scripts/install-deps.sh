#!/usr/bin/env bash
# Install what Tracehouse needs on Debian 12: build tools and libraries, and with --test the
# test tools too (cmocka, clang with libFuzzer, Node.js for the SDK tests, Prometheus and
# promtool, Chromium). Uses sudo when not root. Skips apt entirely when everything is already installed.
set -euo pipefail

pkgs=(build-essential cmake pkg-config protobuf-c-compiler libprotobuf-c-dev libh2o-dev
      libuv1-dev liblmdb-dev libmsgpack-dev libyaml-dev zlib1g-dev libzstd-dev libssl-dev
      libnghttp2-dev libpcre2-dev libcurl4-openssl-dev)
if [[ "${1:-}" == "--test" ]]; then
  # prometheus: promtool for the deploy/prometheus rule tests, the server for the e2e test.
  # chromium: the headless browser the web UI tests drive through playwright-core.
  # openssl and apache2-utils: test certificates and htpasswd files for the TLS and auth tests.
  pkgs+=(libcmocka-dev clang libclang-rt-14-dev clang-format prometheus chromium fonts-dejavu-core
         openssl apache2-utils)
fi
# --bench: what bench/suite.sh compares against and drives with.
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(nginx-light wrk util-linux)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js runs the OpenTelemetry JS SDK tests; any install of node >= 18 with npm will do.
if [[ "${1:-}" == "--test" ]] && ! { command -v node >/dev/null && command -v npm >/dev/null; }; then
  missing+=(nodejs npm)
fi

if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
