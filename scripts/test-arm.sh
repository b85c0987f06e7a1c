#!/usr/bin/env bash
# Cross-builds keel for 64-bit Arm with Debian's cross compiler and runs the exactness suites under
# qemu-user, so that the NEON, SDOT and I8MM kernels are tested on this x86 machine:
#
#   1. build-arm/: meson setup with cross/aarch64-linux-gnu.ini (static programs, header-only
#      Highway with static dispatch, serial threads: there is no arm64 oneTBB here), tools, benches
#      and Python off; builds the suites below.
#   2. meson test: each suite under `qemu-aarch64 -cpu max` (the cross file's exe_wrapper), a CPU
#      with NEON, dotprod and i8mm, so every Arm kernel of the registry runs.
#   3. cpu_matmul_i8 again under older CPU models, with the kernels the registry must run and
#      skip checked from the suite's own report:
#        neoverse-n1   dotprod, no i8mm      the I8MM kernels are skipped, the rest run
#        cortex-a72    neither               only the NEON (and portable) kernels run
#      A kernel run on a CPU that lacks its instructions would die of SIGILL; a wrong skip list
#      fails here.
#
# Exits non-zero if anything fails, and leaves a one-line result in
# build-arm/meson-logs/arm-summary.txt (scripts/test.sh prints it). Safe to run again (build-arm/
# is reconfigured in place). KEEL_JOBS=<n> sets the parallelism (default: one per CPU);
# KEEL_ARM_BUILD=<dir> the build directory.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

dir=${KEEL_ARM_BUILD:-build-arm}
jobs=$(keel_jobs)
start=$SECONDS
# The suites that run on Arm: the reference kernels' and the cpu backend's. Suites of the build
# machine's own libraries (onnx_conformance), of tools and of compile checks stay on x86.
suites=(core matmul_i8 quantize matmul_i4 conv2d attention cpu_matmul_i8 cpu_matmul_i4)

summary_file="$dir/meson-logs/arm-summary.txt"
fail() {
  echo "test-arm.sh: $*"
  echo "FAILED ($((SECONDS - start)) s)"
  mkdir -p "$(dirname "$summary_file")" && echo "FAILED: $*" >"$summary_file"
  exit 1
}

for tool in aarch64-linux-gnu-g++ qemu-aarch64; do
  command -v "$tool" >/dev/null || fail "$tool is missing (scripts/setup.sh installs it)"
done

# ---- 1. configure and build ------------------------------------------------------------------
echo "==== arm: configure $dir"
keel_configure "$dir" --cross-file cross/aarch64-linux-gnu.ini \
  -Dpkg_config_path="$PWD/cross/pkgconfig" --buildtype=release -Dthreads=none \
  -Dtools=false -Dbench=false -Dpython=false || fail "configure failed"

# Only the suites registered in this tree (a suite still being written is reported, not built).
registered=$(meson introspect --tests "$dir" |
  python3 -c 'import json, sys; print(" ".join(t["name"] for t in json.load(sys.stdin)))') ||
  fail "meson introspect failed"
run=()
for s in "${suites[@]}"; do
  if [[ " $registered " == *" $s "* ]]; then run+=("$s"); else echo "arm: no suite '$s' yet"; fi
done
targets=()
for s in "${run[@]}"; do targets+=("tests/test_$s"); done
echo "==== arm: build ${run[*]}"
ninja -C "$dir" -j "$jobs" "${targets[@]}" || fail "build failed"

# ---- 2. every suite under qemu -cpu max --------------------------------------------------------
echo "==== arm: meson test under qemu-aarch64 -cpu max"
rm -f "$dir/meson-logs/testlog.json"
# qemu translates every instruction: allow three times the suites' native timeouts.
meson test -C "$dir" --no-rebuild --print-errorlogs --num-processes "$jobs" \
  --timeout-multiplier 3 "${run[@]}" || fail "a suite failed under -cpu max"
max_log="$dir/meson-logs/arm-cpu-max.txt"
python3 - "$dir/meson-logs/testlog.json" >"$max_log" <<'PY' || fail "no cpu_matmul_i8 output"
import json, sys
for line in open(sys.argv[1]):
    if line.strip():
        t = json.loads(line)
        if t["name"].split(" / ")[-1] == "cpu_matmul_i8":  # "keel / cpu_matmul_i8"
            print(t.get("stdout", ""))
            sys.exit(0)
sys.exit(1)
PY

# ---- 3. dispatch on CPUs without dotprod / i8mm ----------------------------------------------
# The Arm kernels of the registry, by ISA, as the suite printed them under -cpu max (it prints
# "running NAME" or "skipping NAME: ..." for every registered kernel).
arm_kernels() { grep -o "MESSAGE: running [a-z0-9_]*_$1_[a-z0-9]*" "$max_log" | awk '{print $3}'; }
neon=$(arm_kernels neon)
sdot=$(arm_kernels sdot)
i8mm=$(arm_kernels i8mm)
if [ -z "$neon" ] || [ -z "$sdot" ] || [ -z "$i8mm" ]; then
  fail "under -cpu max, not every Arm ISA had a kernel that ran (neon: $neon; sdot: $sdot; i8mm: $i8mm)"
fi
# shellcheck disable=SC2086  # split on purpose: one kernel name per word
echo "arm: under -cpu max ran" $neon $sdot $i8mm

# check_cpu MODEL "KERNELS THAT MUST RUN" "KERNELS THAT MUST BE SKIPPED"
check_cpu() {
  local model=$1 want_run=$2 want_skip=$3 log="$dir/meson-logs/arm-cpu-$1.txt" k
  echo "==== arm: cpu_matmul_i8 under qemu-aarch64 -cpu $model"
  if ! qemu-aarch64 -cpu "$model" "$dir/tests/test_cpu_matmul_i8" >"$log" 2>&1; then
    tail -n 40 "$log"
    fail "cpu_matmul_i8 failed under -cpu $model (log: $log)"
  fi
  for k in $want_run; do
    grep -q "MESSAGE: running $k\$" "$log" || fail "-cpu $model: $k did not run (log: $log)"
  done
  for k in $want_skip; do
    grep -q "MESSAGE: skipping $k: this CPU lacks" "$log" ||
      fail "-cpu $model: $k was not skipped (log: $log)"
  done
  local ran skipped
  ran=$(grep -c 'MESSAGE: running' "$log")
  skipped=$(grep -c 'MESSAGE: skipping [a-z0-9_]*: this CPU lacks' "$log")
  echo "arm: -cpu $model: $ran kernels ran, $skipped skipped; $(grep 'test cases:' "$log")"
  cpu_results+=("$model $ran ran/$skipped skipped")
}
cpu_results=()
check_cpu neoverse-n1 "$neon $sdot" "$i8mm"
check_cpu cortex-a72 "$neon" "$sdot $i8mm"

line="${#run[@]} suites passed under -cpu max (every Arm kernel ran); cpu_matmul_i8 passed under"
line+=" ${cpu_results[0]}, ${cpu_results[1]} ($((SECONDS - start)) s)"
echo "$line" >"$summary_file"
echo "==== arm: all green: $line"
