#!/usr/bin/env bash
# Runs the libFuzzer targets (build/fuzz/<name>, ASan + UBSan) for a while each and prints one
# table row per target: executions, coverage (libFuzzer's cov and ft), corpus growth, crashes.
#
#   scripts/fuzz.sh [-t SECONDS] [-r RUNS] [-s SEED] [-c] [-j JOBS] [target ...]
#                          (default: every target, 30 s, a random seed, 2 at a time)
#   -c                     each target runs the count in fuzz/<name>/ci-runs (default 100000)
#   make test's fuzz-short = scripts/fuzz.sh -c -s 1 -t 300: the same inputs on every clean
#                            clone (a fixed seed and count from the committed corpus), so CI
#                            never fails at random; new ground is the campaign's (fuzz-long)
#   make fuzz-short        = scripts/fuzz.sh -t 30
#   make fuzz-long         = scripts/fuzz.sh -t 1800 -r 10000000 -j 1   (the campaign)
#
# New inputs go to var/fuzz/<name>/ (the committed fuzz/<name>/corpus is read, never written), so
# a run leaves the tree clean; copy a crash's regression input into fuzz/<name>/corpus once fixed.
# A crash, leak or sanitizer report leaves its input in var/fuzz/artifacts/ and its log in
# var/fuzz/<name>.log, and makes the exit status non-zero. The last line is "N passed, N failed"
# (one per target), like every tier of tests/run.sh. FUZZ_OUT moves var/fuzz (a campaign running
# beside make test), FUZZ_MAX_LEN sets -max_len (16384).
set -uo pipefail
cd "$(dirname "$0")/.."

SECS=30
RUNS=0
SEED=0
CI_RUNS=0
JOBS=2
while getopts "t:r:s:cj:" o; do
    case $o in
    t) SECS=$OPTARG ;;
    r) RUNS=$OPTARG ;;
    s) SEED=$OPTARG ;;
    c) CI_RUNS=1 ;;
    j) JOBS=$OPTARG ;;
    *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
TARGETS=("$@")
if ((${#TARGETS[@]} == 0)); then
    for d in fuzz/*/driver.c; do TARGETS+=("$(basename "$(dirname "$d")")"); done
fi

OUT=${FUZZ_OUT:-var/fuzz}
mkdir -p "$OUT/artifacts"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

run_one() { # name
    local t=$1 bin=build/fuzz/$1 log=$OUT/$1.log dict=() args=()
    if [[ ! -x $bin ]]; then
        echo "$t missing" >"$OUT/$t.row"
        return
    fi
    mkdir -p "$OUT/$t"
    for d in fuzz/"$t"/*.dict; do [[ -f $d ]] && dict=("-dict=$d"); done
    args=(-max_total_time="$SECS" -print_final_stats=1 -artifact_prefix="$OUT/artifacts/$t-"
          -timeout=10 -rss_limit_mb=2048 -max_len="${FUZZ_MAX_LEN:-16384}")
    local runs=$RUNS
    if ((CI_RUNS)); then
        runs=100000
        [[ -f fuzz/$t/ci-runs ]] && runs=$(<"fuzz/$t/ci-runs")
    fi
    ((runs > 0)) && args+=(-runs="$runs")
    ((SEED > 0)) && args+=(-seed="$SEED")
    local before after
    before=$(find "$OUT/$t" fuzz/"$t"/corpus -type f | wc -l)
    "$bin" "${args[@]}" "${dict[@]}" "$OUT/$t" fuzz/"$t"/corpus >"$log" 2>&1
    local rc=$?
    after=$(find "$OUT/$t" fuzz/"$t"/corpus -type f | wc -l)
    local execs cov ft
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    local state=ok
    ((rc != 0)) && state="CRASH (rc $rc, see $log)"
    printf '%s %s %s %s %s %s %s\n' "$t" "${execs:-0}" "${cov:-?}" "${ft:-?}" "$before" "$after" \
        "$state" >"$OUT/$t.row"
}

limit=""
((RUNS > 0)) && limit=" (at most $RUNS runs)"
((CI_RUNS)) && limit=" (at most fuzz/<name>/ci-runs runs)"
((SEED > 0)) && limit="$limit, seed $SEED"
echo "== fuzz: ${#TARGETS[@]} targets, ${SECS} s each$limit, $JOBS at a time"
running=0
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if ((running >= JOBS)); then
        wait -n
        running=$((running - 1))
    fi
done
wait

passed=0
failed=0
printf '%-14s %12s %7s %8s %15s  %s\n' target executions cov ft corpus state
for t in "${TARGETS[@]}"; do
    read -r name execs cov ft before after state <"$OUT/$t.row"
    if [[ $execs == missing ]]; then
        echo "not ok - $t: build/fuzz/$t is missing (make fuzz)"
        failed=$((failed + 1))
        continue
    fi
    printf '%-14s %12s %7s %8s %7s -> %5s  %s\n' "$name" "$execs" "$cov" "$ft" "$before" "$after" \
        "$state"
    if [[ $state == ok ]]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        # the report itself, so a CI log that keeps only the output still says what failed
        echo "# $t: the end of $OUT/$t.log"
        grep -v -E '^#[0-9]+\s' "$OUT/$t.log" | tail -n 60 | sed 's/^/#   /'
        for a in "$OUT"/artifacts/"$t"-*; do
            [[ -f $a ]] && echo "#   artifact $a: $(head -c 512 "$a" | od -An -c | tr -s ' ' | head -c 600)"
        done
    fi
done
echo "$passed passed, $failed failed"
((failed == 0))
