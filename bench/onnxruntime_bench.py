#!/usr/bin/env python3
"""ONNX Runtime as a peer of keel's int8 and int4 matmul rows.

Builds one-node ONNX models with the `onnx` package's helper API, runs them on ONNX Runtime's CPU
execution provider and writes JSON in the shape of Google Benchmark's --benchmark_format=json
(context + benchmarks with name, real_time, cpu_time, time_unit and counters as keys), so
bench/make_table.py reads these rows like the C++ ones.

Ops and row names (see bench/peers/common.hpp for the name grammar):
  MatMulInteger   u8 A [M, K] x s8 B [K, N] -> s32              gemm|gemv_u8s8_s32/onnxruntime/...
  QLinearMatMul   u8 A x s8 B -> u8 (float requantization)      gemm|gemv_u8s8_u8/onnxruntime/...
  MatMulNBits     int4 B [N, K] in blocks of 32 with f32 scales (com.microsoft, bits=4), f32 A:
                    accuracy_level 0: f32 compute               gemm|gemv_s4f32_f32/onnxruntime/...
                    accuracy_level 4: A quantized to int8       gemm|gemv_s4s8_f32/onnxruntime/...
  (for int4 rows the weight dtype comes first, as in issue 3's example name)

Weights are initializers, so ONNX Runtime packs them once at session creation, as keel packs its
weights. GEMV rows (M = 1) rotate through enough sessions, each with its own copy of the weights,
to cover the cold pool (twice the last-level cache, or KEEL_BENCH_COLD_MIB), so every run streams
its weights from memory; GEMM rows run warm.

Timing: a row runs once to warm up, then repeatedly until --min-time seconds have passed;
real_time is the wall time per run, cpu_time the process CPU time per run (all threads), as Google
Benchmark reports with MeasureProcessCPUTime. Inputs and outputs are bound once (io_binding), so
a timed run is one call into ONNX Runtime.
"""

import argparse
import datetime
import json
import os
import platform
import re
import socket
import subprocess
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

# The shapes of bench/peers/common.hpp (M, N, K), in the same order.
SHAPES = [
    (1, 4096, 4096), (1, 11008, 4096), (1, 4096, 11008),
    (128, 4096, 4096), (128, 11008, 4096), (128, 4096, 11008),
    (512, 4096, 4096), (512, 11008, 4096), (512, 4096, 11008),
    (1024, 1024, 1024), (3136, 24, 144), (128, 1536, 384),
]
BLOCK = 32  # MatMulNBits block size along K


def llc_bytes():
    """The last-level cache size as glibc reports it (sysconf(_SC_LEVEL3_CACHE_SIZE), the number
    bench/peers/common.hpp uses). Python's os.sysconf does not know that name, so ask getconf."""
    try:
        v = int(subprocess.run(["getconf", "LEVEL3_CACHE_SIZE"], capture_output=True,
                               text=True).stdout.strip() or 0)
        if v > 0:
            return v
    except (OSError, ValueError):
        pass
    return 32 << 20


def cold_pool_bytes():
    mib = int(os.environ.get("KEEL_BENCH_COLD_MIB", "0") or 0)
    return mib << 20 if mib > 0 else 2 * llc_bytes()


def cold_copies(weight_bytes, m):
    if m != 1:
        return 1
    return max(1, min(256, -(-cold_pool_bytes() // weight_bytes)))


def row_name(dtypes, m, n, k, threads):
    op = "gemv" if m == 1 else "gemm"
    return f"{op}_{dtypes}/onnxruntime/M{m}_N{n}_K{k}_{threads}t"


# ---- models ----------------------------------------------------------------------------------
# Each builder returns (model bytes, feeds {name: array}, output name, output dtype, output shape,
# weight bytes as stored).

def opset_imports(ms=False):
    ops = [helper.make_opsetid("", 21)]
    if ms:
        ops.append(helper.make_opsetid("com.microsoft", 1))
    return ops


def finish(graph, ms=False):
    model = helper.make_model(graph, opset_imports=opset_imports(ms))
    model.ir_version = 10
    return model.SerializeToString()


def matmul_integer(m, n, k, rng):
    b = rng.integers(-128, 128, size=(k, n), dtype=np.int8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])], "matmul_integer",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [m, k])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, [m, n])],
        [onnx.numpy_helper.from_array(b, "B")])
    a = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    return finish(graph), {"A": a}, "Y", np.int32, (m, n), k * n


def qlinear_matmul(m, n, k, rng):
    b = rng.integers(-128, 128, size=(k, n), dtype=np.int8)
    inits = [
        onnx.numpy_helper.from_array(np.array(0.02, np.float32), "a_scale"),
        onnx.numpy_helper.from_array(np.array(128, np.uint8), "a_zp"),
        onnx.numpy_helper.from_array(b, "B"),
        onnx.numpy_helper.from_array(np.array(0.01, np.float32), "b_scale"),
        onnx.numpy_helper.from_array(np.array(0, np.int8), "b_zp"),
        # Requantization scale a_scale * b_scale / y_scale = 1/K keeps outputs in range.
        onnx.numpy_helper.from_array(np.array(0.02 * 0.01 * k, np.float32), "y_scale"),
        onnx.numpy_helper.from_array(np.array(128, np.uint8), "y_zp"),
    ]
    node = helper.make_node(
        "QLinearMatMul", ["A", "a_scale", "a_zp", "B", "b_scale", "b_zp", "y_scale", "y_zp"], ["Y"])
    graph = helper.make_graph(
        [node], "qlinear_matmul",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, [m, k])],
        [helper.make_tensor_value_info("Y", TensorProto.UINT8, [m, n])], inits)
    a = rng.integers(0, 256, size=(m, k), dtype=np.uint8)
    return finish(graph), {"A": a}, "Y", np.uint8, (m, n), k * n


def matmul_nbits(m, n, k, rng, accuracy_level):
    # B: [N, K/32, 16] bytes, two 4-bit values a byte, low nibble first; no zero_points input, so
    # every block's zero point is 8 (unsigned storage of the symmetric range [-8, 7]).
    blocks = -(-k // BLOCK)
    b = rng.integers(0, 256, size=(n, blocks, BLOCK // 2), dtype=np.uint8)
    scales = rng.uniform(0.001, 0.01, size=(n * blocks,)).astype(np.float32)
    node = helper.make_node(
        "MatMulNBits", ["A", "B", "scales"], ["Y"], domain="com.microsoft",
        K=k, N=n, bits=4, block_size=BLOCK, accuracy_level=accuracy_level)
    graph = helper.make_graph(
        [node], "matmul_nbits",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [m, k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [m, n])],
        [onnx.numpy_helper.from_array(b, "B"), onnx.numpy_helper.from_array(scales, "scales")])
    a = rng.standard_normal(size=(m, k)).astype(np.float32)
    return finish(graph, ms=True), {"A": a}, "Y", np.float32, (m, n), b.nbytes + scales.nbytes


KINDS = [
    # (dtypes in the row name, builder)
    ("u8s8_s32", matmul_integer),
    ("u8s8_u8", qlinear_matmul),
    ("s4f32_f32", lambda m, n, k, rng: matmul_nbits(m, n, k, rng, 0)),
    ("s4s8_f32", lambda m, n, k, rng: matmul_nbits(m, n, k, rng, 4)),
]


# ---- timing ----------------------------------------------------------------------------------

def session_options(threads):
    so = ort.SessionOptions()
    # Every session of the process shares ONNX Runtime's global thread pool (sized once, in
    # main, for this process's one thread count). With a pool per session, the GEMV rows'
    # rotation through tens of sessions left each session's idle workers spinning after its run
    # while the next session's worked: on 2 cores the 2-thread GEMV rows ran 10x slower than the
    # 1-thread ones (measured 2026-12-03: 12.6 ms against 1.15 ms for M1_N4096_K4096).
    # The pool's size is set in main (set_global_thread_pool_sizes); sessions must not set
    # intra_op_num_threads / inter_op_num_threads then (ONNX Runtime ignores them, with a
    # warning per session).
    so.use_per_session_threads = False
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ONNX Runtime's default lets idle pool threads spin, which is what its users get; on a
    # machine shared with other work KEEL_ORT_SPIN=0 makes them sleep instead.
    if os.environ.get("KEEL_ORT_SPIN", "1") == "0":
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return so


def run_row(dtypes, build, shape, threads, min_time, rng):
    m, n, k = shape
    name = row_name(dtypes, m, n, k, threads)
    model, feeds, out_name, out_dtype, out_shape, weight_bytes = build(m, n, k, rng)
    copies = cold_copies(weight_bytes, m)
    so = session_options(threads)
    bindings = []
    out = np.empty(out_shape, dtype=out_dtype)
    for i in range(copies):
        if i > 0:  # a fresh copy of the weights for each session: rebuild with new random data
            model = build(m, n, k, rng)[0]
        sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
        bind = sess.io_binding()
        for key, arr in feeds.items():
            bind.bind_cpu_input(key, arr)
        bind.bind_output(out_name, "cpu", 0, out_dtype, list(out_shape), out.ctypes.data)
        bindings.append((sess, bind))
    del model

    # Warm up every session once (first runs allocate), then time.
    for sess, bind in bindings:
        sess.run_with_iobinding(bind)
    iters = 0
    w0, c0 = time.perf_counter(), time.process_time()
    while True:
        sess, bind = bindings[iters % copies]
        sess.run_with_iobinding(bind)
        iters += 1
        elapsed = time.perf_counter() - w0
        if elapsed >= min_time and iters >= copies:
            break
    cpu = time.process_time() - c0

    act_bytes = sum(a.nbytes for a in feeds.values())
    bytes_per_iter = weight_bytes + act_bytes + out.nbytes
    ops = 2.0 * m * n * k
    return {
        "name": name + "/real_time",
        "run_name": name + "/real_time",
        "run_type": "iteration",
        "repetitions": 1,
        "repetition_index": 0,
        "threads": 1,
        "iterations": iters,
        "real_time": elapsed / iters * 1e3,
        "cpu_time": cpu / iters * 1e3,
        "time_unit": "ms",
        "ops": ops * iters / elapsed,
        "bytes": bytes_per_iter * iters / elapsed,
        "bytes_per_iter": float(bytes_per_iter),
        "nthreads": float(threads),  # "threads" is Google Benchmark's own (its timing threads)
        "cold_copies": float(copies),
    }


def run_per_thread_count(args, threads):
    """Runs this script once per thread count (each process sizes ONNX Runtime's global thread
    pool once) and merges their rows, ordered as a single process would order them."""
    merged = None
    for t in threads:
        part = f"{args.out}.{t}t.json"
        cmd = [sys.executable, os.path.abspath(__file__), "--out", part, "--threads", str(t),
               "--min-time", str(args.min_time)]
        if args.filter:
            cmd += ["--filter", args.filter]
        subprocess.run(cmd, check=True)
        with open(part) as f:
            data = json.load(f)
        os.remove(part)
        if merged is None:
            merged = data
        else:
            merged["benchmarks"] += data["benchmarks"]
    order = {row_name(d, *s, t): i for i, (s, (d, _), t) in enumerate(
        (s, kind, t) for s in SHAPES for kind in KINDS for t in threads)}
    merged["benchmarks"].sort(key=lambda r: order.get(r["name"].rsplit("/", 1)[0], 1 << 30))
    with open(args.out, "w") as f:
        json.dump(merged, f, indent=1)
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per row (default 1)")
    p.add_argument("--filter", default="", help="regex on row names (as --benchmark_filter)")
    p.add_argument("--threads", default="", help="comma-separated thread counts (default 1,all)")
    args = p.parse_args()

    ncpu = os.cpu_count() or 1
    threads = [int(t) for t in args.threads.split(",")] if args.threads else sorted({1, ncpu})
    if len(threads) > 1:
        return run_per_thread_count(args, threads)
    # The global pool's size is fixed for the process, hence one process per thread count.
    ort.capi._pybind_state.set_global_thread_pool_sizes(threads[0], 1)
    pattern = re.compile(args.filter) if args.filter else None
    rng = np.random.default_rng(20240531)

    rows = []
    for shape in SHAPES:
        for dtypes, build in KINDS:
            for t in threads:
                name = row_name(dtypes, *shape, t)
                if pattern and not pattern.search(name):
                    continue
                try:
                    row = run_row(dtypes, build, shape, t, args.min_time, rng)
                except Exception as e:  # a peer that cannot run a row: record why, go on
                    row = {"name": name + "/real_time", "run_name": name + "/real_time",
                           "run_type": "iteration", "error_occurred": True,
                           "error_message": f"{type(e).__name__}: {e}"}
                rows.append(row)
                shown = (f"{row['real_time']:.3f} ms  {row['ops'] / 1e9:.1f} GOPS  "
                         f"{row['bytes'] / 1e9:.2f} GB/s") if "real_time" in row else \
                    row["error_message"]
                print(f"{name:<60} {shown}", flush=True)

    context = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "host_name": socket.gethostname(),
        "executable": "bench/onnxruntime_bench.py",
        "num_cpus": ncpu,
        "load_avg": list(os.getloadavg()),
        "onnxruntime_version": ort.__version__,
        "onnx_version": onnx.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "cold_pool_mib": str(cold_pool_bytes() >> 20),
        "ort_intra_op_spinning": os.environ.get("KEEL_ORT_SPIN", "1"),
    }
    with open(args.out, "w") as f:
        json.dump({"context": context, "benchmarks": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
