#!/usr/bin/env bash
# The Video API's call set-up time: INSERT INTO conference -> onCallStart in headless Chromium,
# p50/p95 over CALLS calls (default 12, plus one warm-up) for rooms of SIZES members (default
# 2,4), on loopback in a lo-only network namespace, release builds of ccomet and ccomet-media.
# A benchmark, not a test: it prints figures and asserts nothing (target: < 1.5 s).
#
#   bench/video_call.sh            CALLS=20 SIZES=2,3,4 bench/video_call.sh
set -euo pipefail
cd "$(dirname "$0")/.."
make --no-print-directory deps build/ccomet build/ccomet-media web/lib/jssip.js >/dev/null
export CCOMET_BIN=${CCOMET_BIN:-build/ccomet} CCOMET_MEDIA_BIN=${CCOMET_MEDIA_BIN:-build/ccomet-media}
echo "# $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
exec node bench/video_call.mjs
