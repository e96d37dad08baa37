#!/usr/bin/env bash
# The test runner `make test` calls after building (asan, release, fuzz targets):
#   unit         build/asan/unit-tests
#   fuzz replay  every fuzz/<name>/corpus through build/fuzz/<name>
#   fuzz-short   scripts/fuzz.sh -c -s 1: each target fuzzed for the count in fuzz/<name>/ci-runs
#                (~20 s) with a fixed seed from the committed corpus only, two at a time: the
#                same inputs every run, so it can fail only on a change (random exploration is
#                make fuzz-short / fuzz-long, inputs in var/fuzz/); reports in var/fuzz-ci/
#   integration  node --test on tests/js/*.test.mjs (the JS client, in-process) and
#                tests/integration/*.test.mjs (the real build/asan/ccomet and real
#                MySQL clients; build/asan/ccomet-media, build/media-harness and JsSIP in
#                headless Chromium)
#   integration-deferred  the WebSocket files again on a state backend that answers later
# Each tier's output is printed; the last line is the sum over tiers, exactly "N passed, N failed".
# A tier that cannot run counts as 1 failed. Exit status is non-zero when anything failed.
#
#   tests/run.sh [unit|fuzz|fuzz-short|integration|integration-deferred ...]   (default: all)
#   TEST_FILES="tests/integration/crash.test.mjs" tests/run.sh integration
set -uo pipefail

cd "$(dirname "$0")/.."

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

PASSED=0
FAILED=0
SUMMARY=()

tier_result() { # name passed failed [note]
    PASSED=$((PASSED + $2))
    FAILED=$((FAILED + $3))
    SUMMARY+=("$(printf '%-12s %4d passed, %4d failed%s' "$1" "$2" "$3" "${4:+  ($4)}")")
}

# ---- unit ---------------------------------------------------------------------------------------
tier_unit() {
    echo "== unit: build/asan/unit-tests"
    local bin=build/asan/unit-tests out rc line p f
    if [[ ! -x $bin ]]; then
        echo "not ok - $bin is missing (make asan)"
        tier_result unit 0 1 "binary missing"
        return
    fi
    out=$(mktemp)
    "$bin" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    line=$(grep -E '^unit: [0-9]+ passed, [0-9]+ failed' "$out" | tail -n 1)
    rm -f "$out"
    if [[ -z $line ]]; then
        echo "not ok - unit-tests printed no summary line (exit $rc)"
        tier_result unit 0 1 "no summary, exit $rc"
        return
    fi
    p=$(sed -E 's/^unit: ([0-9]+) passed, ([0-9]+) failed.*/\1/' <<<"$line")
    f=$(sed -E 's/^unit: ([0-9]+) passed, ([0-9]+) failed.*/\2/' <<<"$line")
    if [[ $rc -ne 0 && $f -eq 0 ]]; then
        echo "not ok - unit-tests exited $rc after reporting no failure (sanitizer report at exit?)"
        f=1
    fi
    tier_result unit "$p" "$f"
}

# ---- fuzz replay ----------------------------------------------------------------------------------
# Small corpora (< 200 files) are replayed one file per run so that the counts are exact; larger
# ones in one run (pass = every file passed, failure = every file counted as failed).
FUZZ_SMALL=200
FUZZ_TIMEOUT=120

tier_fuzz() {
    echo "== fuzz replay: build/fuzz/<name> on fuzz/<name>/corpus"
    local p=0 f=0 n_targets=0 dir name bin files n out rc file
    shopt -s nullglob
    for dir in fuzz/*/corpus; do
        [[ -d $dir ]] || continue
        name=$(basename "$(dirname "$dir")")
        bin=build/fuzz/$name
        n_targets=$((n_targets + 1))
        if [[ ! -x $bin ]]; then
            echo "not ok - fuzz $name: $bin is missing (make fuzz)"
            f=$((f + 1))
            continue
        fi
        files=()
        while IFS= read -r -d '' file; do files+=("$file"); done < <(find "$dir" -type f -print0 | sort -z)
        n=${#files[@]}
        if ((n == 0)); then
            echo "# fuzz $name: empty corpus"
            continue
        fi
        out=$(mktemp)
        if ((n < FUZZ_SMALL)); then
            local tp=0 tf=0
            for file in "${files[@]}"; do
                if timeout "$FUZZ_TIMEOUT" "$bin" -runs=0 "$file" >"$out" 2>&1; then
                    tp=$((tp + 1))
                else
                    rc=$?
                    tf=$((tf + 1))
                    echo "not ok - fuzz $name ${file#"$dir"/} (exit $rc)"
                    tail -n 60 "$out" | sed 's/^/    /'
                fi
            done
            echo "# fuzz $name: $tp of $n corpus files replayed cleanly"
            p=$((p + tp))
            f=$((f + tf))
        else
            if timeout "$FUZZ_TIMEOUT" "$bin" -runs=0 "$dir" >"$out" 2>&1; then
                echo "ok - fuzz $name: $n corpus files replayed"
                p=$((p + n))
            else
                rc=$?
                echo "not ok - fuzz $name: replay of $n files failed (exit $rc)"
                tail -n 60 "$out" | sed 's/^/    /'
                f=$((f + n))
            fi
        fi
        rm -f "$out"
    done
    shopt -u nullglob
    ((n_targets == 0)) && echo "# no fuzz/<name>/corpus directories"
    tier_result fuzz "$p" "$f"
}

# ---- fuzz-short ---------------------------------------------------------------------------------
tier_fuzz_short() {
    local out rc line p f
    out=$(mktemp)
    rm -rf var/fuzz-ci
    FUZZ_OUT=var/fuzz-ci scripts/fuzz.sh -c -s 1 -t 300 | tee "$out"
    rc=${PIPESTATUS[0]}
    line=$(tail -1 "$out")
    rm -f "$out"
    if [[ $line =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        p=${BASH_REMATCH[1]}
        f=${BASH_REMATCH[2]}
        ((rc != 0 && f == 0)) && f=1
        tier_result fuzz-short "$p" "$f"
    else
        tier_result fuzz-short 0 1 "no summary, exit $rc"
    fi
}

# ---- integration ----------------------------------------------------------------------------------
INTEGRATION_TIMEOUT=900

tier_integration() { # [tier name, default integration]
    local tier=${1:-integration}
    echo "== $tier: node --test tests/integration/"
    local node_major files out rc p f c args=()
    if ! command -v node >/dev/null 2>&1; then
        echo "not ok - node is not installed (scripts/deps.sh)"
        tier_result "$tier" 0 1 "no node"
        return
    fi
    node_major=$(node -p 'process.versions.node.split(".")[0]')
    if ((node_major < 18)); then
        echo "not ok - node $(node --version) is too old (need >= 18)"
        tier_result "$tier" 0 1 "node too old"
        return
    fi
    if [[ $tier == integration-deferred ]]; then
        files=("${DEFERRED_FILES[@]}")
    elif [[ -n ${TEST_FILES:-} ]]; then
        read -r -a files <<<"$TEST_FILES"
    else
        shopt -s nullglob
        files=(tests/js/*.test.mjs tests/integration/*.test.mjs)
        shopt -u nullglob
    fi
    if ((${#files[@]} == 0)); then
        echo "not ok - no tests/integration/*.test.mjs"
        tier_result "$tier" 0 1 "no test files"
        return
    fi
    # node 18 prints TAP by default; the flag exists from 18.15 on, so pass it when known.
    if node --help 2>/dev/null | grep -q -- '--test-reporter'; then args+=(--test-reporter=tap); fi
    if node --help 2>/dev/null | grep -q -- '--test-timeout'; then args+=(--test-timeout=240000); fi
    out=$(mktemp)
    timeout "$INTEGRATION_TIMEOUT" node --test "${args[@]}" "${files[@]}" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    p=$(grep -E '^# pass [0-9]+$' "$out" | tail -n 1 | awk '{print $3}')
    f=$(grep -E '^# fail [0-9]+$' "$out" | tail -n 1 | awk '{print $3}')
    c=$(grep -E '^# cancelled [0-9]+$' "$out" | tail -n 1 | awk '{print $3}')
    slowest_tests "$out"
    rm -f "$out"
    if [[ -z $p || -z $f ]]; then
        echo "not ok - node --test printed no '# pass'/'# fail' summary (exit $rc)"
        tier_result "$tier" "${p:-0}" $(( ${f:-0} + 1 )) "no summary, exit $rc"
        return
    fi
    f=$((f + ${c:-0}))
    if [[ $rc -ne 0 && $f -eq 0 ]]; then
        echo "not ok - node --test exited $rc after reporting no failure"
        f=1
    fi
    tier_result "$tier" "$p" "$f"
}

# The same browser-side files again with the state backend answering every read and write on a
# later loop turn (src/state/deferred.c), the way a cluster backend does: a caller that assumes
# an answer comes back before the call returns fails here, not first in cluster mode.
DEFERRED_FILES=(tests/integration/ws_protocol.test.mjs tests/integration/ws_features.test.mjs
    tests/integration/browser_client.test.mjs tests/integration/tenant_credentials.test.mjs
    tests/integration/jwt_policy.test.mjs tests/integration/ws_fanout.test.mjs
    tests/integration/video_node.test.mjs tests/integration/video_freeswitch.test.mjs
    tests/integration/tenant_matrix.test.mjs)

tier_integration_deferred() {
    CCOMET_TEST_DEFERRED_STATE=1 tier_integration integration-deferred
}

# The time budget of one test is node's --test-timeout above (240 s: past it the test fails).
# The ten slowest tests are printed after every run, and those past SLOW_TEST_S (default 60 s)
# are marked, so a test drifting towards the budget is seen long before it fails CI.
slowest_tests() {
    local limit=${SLOW_TEST_S:-60}
    echo "# slowest tests (seconds; '!' past ${limit} s, the budget is 240 s):"
    awk '
        /^[ ]*(not )?ok [0-9]+ - / { name = $0; sub(/^[ ]*(not )?ok [0-9]+ - /, "", name); next }
        /^[ ]*duration_ms: [0-9.]+/ && name != "" { printf "%.1f\t%s\n", $2 / 1000, name; name = "" }
    ' "$1" | sort -rn -k1,1 | head -n 10 | awk -F'\t' -v lim="$limit" '{ printf "#   %7.1f %s %s\n", $1, ($1 > lim ? "!" : " "), $2 }'
}

tiers=("$@")
((${#tiers[@]})) || tiers=(unit fuzz fuzz-short integration integration-deferred)
for t in "${tiers[@]}"; do
    case $t in
        unit) tier_unit ;;
        fuzz) tier_fuzz ;;
        fuzz-short) tier_fuzz_short ;;
        integration) tier_integration ;;
        integration-deferred) tier_integration_deferred ;;
        *) echo "unknown tier $t (unit|fuzz|fuzz-short|integration|integration-deferred)" >&2; exit 2 ;;
    esac
    echo
done

echo "== summary"
printf '%s\n' "${SUMMARY[@]}"
echo "$PASSED passed, $FAILED failed"
((FAILED == 0))
