#!/usr/bin/env bash
# Runs every matmul benchmark of issue 3 in one go and writes the table of docs/performance.md:
#
#   1. builds bench_matmul in release (keel's rows, oneDNN, XNNPACK, the ceilings: one binary);
#   2. runs it once (oneDNN at its native ISA), then its oneDNN rows again with oneDNN capped to
#      AVX2 (DNNL_MAX_CPU_ISA=AVX2, rows named onednn_avx2), then the oneDNN exactness check;
#   3. runs bench/onnxruntime_bench.py in a virtual environment with bench/requirements.txt;
#   4. merges the JSON and calls bench/make_table.py.
#
# Usage: bench/run_all.sh [--quick] [--out DIR] [--update-docs] [--no-build]
#   --quick        smoke test: two shapes, short runs, one repetition, small cold pool (minutes)
#   --out DIR      results directory (default: build-bench-release/results/<date>-<time>)
#   --update-docs  write the tables into docs/performance.md (between its results markers)
#   --no-build     use the binary already built
# Environment: KEEL_BENCH_BUILD (build directory, default build-bench-release), KEEL_BENCH_REPS
# (repetitions of each row, default 3), KEEL_BENCH_MIN_TIME (seconds per repetition, default 0.5),
# KEEL_BENCH_FILTER (regex on row names, as --benchmark_filter), KEEL_BENCH_COLD_MIB and
# KEEL_BENCH_STREAM_MIB (see bench/peers/common.hpp and bench/bench_ceiling.cpp), KEEL_BENCH_NOTE
# (a line for the table's header, e.g. "preliminary: machine shared, load 10").
#
# The full run takes a long while (every row: ~25 shapes x impls x 2 thread counts x reps, and
# tens of packed copies of the weights for each cold GEMV row). Run it on a quiet machine: the
# table records the load average before and after, and flags rows that got less than 80% of
# their cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command_line="bench/run_all.sh${*:+ $*}"
quick=0
update_docs=0
build=1
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --update-docs) update_docs=1 ;;
    --no-build) build=0 ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
    *) echo "run_all.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

builddir=${KEEL_BENCH_BUILD:-build-bench-release}
stamp=$(date +%Y%m%d-%H%M%S)
out=${out:-$builddir/results/$stamp}
mkdir -p "$out"

# ---- settings ----------------------------------------------------------------------------------
if [ $quick -eq 1 ]; then
  filter=${KEEL_BENCH_FILTER:-'ceiling|M1_N4096_K4096|M128_N1536_K384'}
  reps=${KEEL_BENCH_REPS:-1}
  min_time=${KEEL_BENCH_MIN_TIME:-0.02}
  export KEEL_BENCH_COLD_MIB=${KEEL_BENCH_COLD_MIB:-64}
  export KEEL_BENCH_STREAM_MIB=${KEEL_BENCH_STREAM_MIB:-256}
else
  filter=${KEEL_BENCH_FILTER:-'.'}
  reps=${KEEL_BENCH_REPS:-3}
  min_time=${KEEL_BENCH_MIN_TIME:-0.5}
fi
gb_args=(--benchmark_filter="$filter" --benchmark_min_time="$min_time"
         --benchmark_format=json)
if [ "$reps" -gt 1 ]; then
  # Repetitions run in random order across rows, so a slow spell of the machine spreads over
  # every impl instead of landing on one; the table takes each row's median.
  gb_args+=(--benchmark_repetitions="$reps" --benchmark_enable_random_interleaving=true
            --benchmark_report_aggregates_only=true)
fi

# ---- build -------------------------------------------------------------------------------------
if [ $build -eq 1 ]; then
  bash scripts/setup.sh
  opts=(--buildtype=release -Dtests=false -Dtools=false -Dbench=true -Dthreads=tbb)
  if [ -f "$builddir/meson-private/coredata.dat" ]; then
    meson setup --reconfigure "$builddir" "${opts[@]}" >/dev/null
  else
    meson setup "$builddir" "${opts[@]}" >/dev/null
  fi
  ninja -C "$builddir" -j "${KEEL_JOBS:-2}" bench/bench_matmul bench/bench_onednn_exactness
fi
bin=$builddir/bench/bench_matmul

# ---- machine -----------------------------------------------------------------------------------
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "not installed"; }
KEEL_CMD=$command_line KEEL_QUICK=$quick \
KEEL_PKGS="libdnnl-dev=$(pkg_version libdnnl-dev);libxnnpack-dev=$(pkg_version libxnnpack-dev);\
libpthreadpool-dev=$(pkg_version libpthreadpool-dev);libbenchmark-dev=$(pkg_version libbenchmark-dev);\
libtbb-dev=$(pkg_version libtbb-dev)" \
python3 - "$out/machine.json" <<'PY'
import json, os, subprocess, sys

def sh(*args):
    return subprocess.run(args, capture_output=True, text=True).stdout.strip()

lscpu = dict(line.split(":", 1) for line in sh("lscpu").splitlines() if ":" in line)
flags = set(lscpu.get("Flags", "").split())
isa = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
mem_kib = next(int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal"))
dirty = sh("git", "status", "--porcelain", "--untracked-files=no")
info = {
    "date": sh("date", "-Iseconds"),
    "command": os.environ["KEEL_CMD"],
    "git": sh("git", "rev-parse", "--short", "HEAD") + (" + uncommitted changes" if dirty else ""),
    "cpu": lscpu.get("Model name", "?").strip(),
    "cores": f"{os.cpu_count()} ({' '.join(isa)}; L3 {lscpu.get('L3 cache', '?').strip()})",
    "memory": f"{mem_kib / 1048576:.1f} GiB",
    "load_before": " ".join(open("/proc/loadavg").read().split()[:3]),
    "packages": dict(kv.split("=", 1) for kv in os.environ["KEEL_PKGS"].split(";")),
    "note": "; ".join(n for n in (
        os.environ.get("KEEL_BENCH_NOTE", ""),
        "quick smoke run (two shapes, one short repetition, small cold pool): not a result"
        if os.environ["KEEL_QUICK"] == "1" else "") if n),
}
json.dump(info, open(sys.argv[1], "w"), indent=1)
PY

# ---- run ---------------------------------------------------------------------------------------
echo "run_all: results in $out"
echo "run_all: bench_matmul (keel, oneDNN native ISA, XNNPACK, ceilings)"
"$bin" "${gb_args[@]}" --benchmark_out="$out/matmul.json" --benchmark_out_format=json \
  >"$out/matmul.log" 2>&1 || { tail -20 "$out/matmul.log"; exit 1; }

# oneDNN capped to keel's ISA. Its rows only: the filter keeps the user's and adds /onednn_avx2/.
echo "run_all: bench_matmul, oneDNN capped to AVX2"
DNNL_MAX_CPU_ISA=AVX2 "$bin" "${gb_args[@]/--benchmark_filter=*/--benchmark_filter=/onednn_avx2/}" \
  --benchmark_out="$out/onednn_avx2.json" --benchmark_out_format=json \
  >"$out/onednn_avx2.log" 2>&1 || { tail -20 "$out/onednn_avx2.log"; exit 1; }
if [ "$filter" != "." ]; then
  # Keep only the capped rows the user's filter selects (the binary's filter took all of them).
  python3 - "$out/onednn_avx2.json" "$filter" <<'PY'
import json, re, sys
doc = json.load(open(sys.argv[1]))
doc["benchmarks"] = [b for b in doc["benchmarks"] if re.search(sys.argv[2], b["name"])]
json.dump(doc, open(sys.argv[1], "w"), indent=1)
PY
fi

echo "run_all: oneDNN exactness check (AVX2 cap, then native)"
{ "$builddir/bench/bench_onednn_exactness"; echo; "$builddir/bench/bench_onednn_exactness" --native; } \
  >"$out/onednn_exactness.txt" 2>&1 || true

echo "run_all: ONNX Runtime"
venv=$builddir/venv-ort
if [ ! -x "$venv/bin/python" ]; then python3 -m venv "$venv"; fi
"$venv/bin/pip" install -q -r bench/requirements.txt
ort_time=$(python3 -c "print(max(float('$min_time') * $reps, 0.02))")
"$venv/bin/python" bench/onnxruntime_bench.py --out "$out/onnxruntime.json" \
  --min-time "$ort_time" --filter "$([ "$filter" = "." ] && echo "" || echo "$filter")" \
  >"$out/onnxruntime.log" 2>&1 || { tail -20 "$out/onnxruntime.log"; exit 1; }

# ---- table -------------------------------------------------------------------------------------
python3 - "$out/machine.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["load_after"] = " ".join(open("/proc/loadavg").read().split()[:3])
json.dump(m, open(sys.argv[1], "w"), indent=1)
PY
table_args=(--machine "$out/machine.json" --out-md "$out/table.md" --out-json "$out/merged.json")
if [ $update_docs -eq 1 ]; then table_args+=(--update-doc docs/performance.md); fi
python3 bench/make_table.py "${table_args[@]}" "$out/matmul.json" "$out/onednn_avx2.json" \
  "$out/onnxruntime.json"
echo "run_all: table in $out/table.md$([ $update_docs -eq 1 ] && echo ' and docs/performance.md')"
echo "run_all: oneDNN exactness:"
sed 's/^/  /' "$out/onednn_exactness.txt"
