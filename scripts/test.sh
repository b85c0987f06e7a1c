#!/usr/bin/env bash
# Installs what keel needs (scripts/setup.sh), then builds and runs every test twice:
#   build/       release, as users build keel
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer, every report fatal
# Prints the counts of both runs at the end and exits non-zero if anything failed. Safe to run
# again: each build directory is reconfigured in place (or wiped if that fails).
# KEEL_JOBS=<n> overrides the parallelism (default: one job per CPU).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

bash scripts/setup.sh || { echo "test.sh: scripts/setup.sh failed"; exit 1; }

jobs=$(keel_jobs)
start=$SECONDS
summary=()
failed=0

# Sanitizer reports abort the test that triggers them, with a stack trace in its log.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:halt_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# run_build NAME DIR [MESON OPTIONS...]: configure, build, test; one summary line either way.
run_build() {
  local name=$1 dir=$2
  shift 2
  local t0=$SECONDS
  echo "==== $name: $dir ($*)"
  if ! keel_configure "$dir" "$@"; then
    summary+=("$name: configure FAILED")
    failed=1
    return
  fi
  if ! meson compile -C "$dir" -j "$jobs"; then
    summary+=("$name: build FAILED")
    failed=1
    return
  fi
  rm -f "$dir/meson-logs/testlog.json"
  local rc=0
  meson test -C "$dir" --print-errorlogs --num-processes "$jobs" || rc=$?
  local counts
  counts=$(python3 - "$dir/meson-logs/testlog.json" <<'PY'
import collections, json, sys
seen = collections.Counter()
try:
    with open(sys.argv[1]) as log:
        for line in log:
            if line.strip():
                seen[json.loads(line)["result"]] += 1
except OSError:
    print("no test log")
    sys.exit(0)
ok = seen.pop("OK", 0) + seen.pop("EXPECTEDFAIL", 0)
skipped = seen.pop("SKIP", 0)
bad = sum(seen.values())
detail = ", ".join(f"{n} {r.lower()}" for r, n in sorted(seen.items()))
print(f"{ok} passed, {bad} failed{' (' + detail + ')' if detail else ''}, {skipped} skipped")
PY
)
  summary+=("$name: $counts ($((SECONDS - t0)) s)")
  [ "$rc" -eq 0 ] || failed=1
}

run_build release build "${KEEL_RELEASE_OPTIONS[@]}"
run_build sanitizers build-asan "${KEEL_SANITIZE_OPTIONS[@]}"

# ---- the Python module (python_bindings_optional/) and its pytest suite -----------------------
# build-python/: the module alone (-Dpython=true), imported from the build tree; then the suite
# (ops against numpy oracles, error paths, the MiniLM model on keel against fp32). Any pytest
# exit code but 0 fails the run, 5 (no test collected) included. One BLAS thread: the fp32
# reference's small matmuls only lose time to thread hand-offs on a shared 2-core machine.
run_python() {
  local dir=build-python t0=$SECONDS rc=0
  echo "==== python: $dir"
  if ! keel_configure "$dir" "${KEEL_RELEASE_OPTIONS[@]}" -Dpython=true -Dtests=false \
      -Dtools=false -Dbench=false; then
    summary+=("python: configure FAILED")
    failed=1
    return
  fi
  if ! meson compile -C "$dir" -j "$jobs"; then
    summary+=("python: build FAILED")
    failed=1
    return
  fi
  rm -f "$dir/pytest.xml"
  HF_HUB_OFFLINE=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH="$PWD/$dir/python_bindings_optional" \
    python3 -m pytest -p no:cacheprovider -q python_bindings_optional/tests \
    --junitxml="$dir/pytest.xml" || rc=$?
  local counts
  counts=$(python3 - "$dir/pytest.xml" <<'PY'
import sys
import xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
except (OSError, ET.ParseError):
    print("no pytest report")
    sys.exit(0)
suite = root if root.tag == "testsuite" else root.find("testsuite")
tests, failures, errors, skipped = (int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped"))
print(f"{tests - failures - errors - skipped} passed, {failures + errors} failed, {skipped} skipped")
PY
)
  summary+=("python: $counts, pytest exit $rc ($((SECONDS - t0)) s)")
  [ "$rc" -eq 0 ] || failed=1
}
run_python
# ---- end of the Python module -----------------------------------------------------------------

# ---- the aarch64 cross build under qemu-user (scripts/test-arm.sh) ----------------------------
# build-arm/: the exactness suites cross-built for aarch64 and run under qemu-aarch64 -cpu max
# (every NEON, SDOT and I8MM kernel runs), then the kernel suite again under CPU models without
# i8mm and without dotprod, checking which kernels ran and which were skipped.
run_arm() {
  local t0=$SECONDS rc=0 result
  echo "==== arm: build-arm (scripts/test-arm.sh)"
  rm -f build-arm/meson-logs/arm-summary.txt
  KEEL_ARM_BUILD=build-arm KEEL_JOBS=$jobs bash scripts/test-arm.sh || rc=$?
  result=$(cat build-arm/meson-logs/arm-summary.txt 2>/dev/null || echo "no result")
  summary+=("arm (qemu): $result, exit $rc ($((SECONDS - t0)) s)")
  [ "$rc" -eq 0 ] || failed=1
}
run_arm
# ---- end of the aarch64 cross build -------------------------------------------------------------

echo
echo "==== keel test summary ($((SECONDS - start)) s, $jobs jobs)"
for line in "${summary[@]}"; do echo "  $line"; done
if [ "$failed" -ne 0 ]; then
  echo "FAILED"
  exit 1
fi
echo "all green"
