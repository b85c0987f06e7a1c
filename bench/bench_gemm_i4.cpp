// bench/bench_gemm_i4.cpp — keel's int4-weight matmul rows: the cpu backend on the shapes of
// issue 3, one thread and all threads, named and counted like every other row of bench_matmul
// (bench/peers/common.hpp) and like ONNX Runtime's MatMulNBits rows (bench/onnxruntime_bench.py):
//
//   gemv_s4f32_f32/keel/M1_N4096_K4096_2t      f32 activations (the backend's choice: the kernel
//                                              that gives the reference's bits)
//   gemv_s4s8_f32/keel/M1_N4096_K4096_2t       dynamic_s8 activations (each row quantized to s8
//                                              inside the timed call)
//   gemm_s4s8_f32/keel/M512_N4096_K4096_2t     the same at M > 1 (prefill)
//   gemv_s4f32_f32/keel_fma/...                f32 activations with an fma kernel forced (within
//   gemm_s4f32_f32/keel_fma/...                the float bound, not the reference's bits)
//   <op>/keel_<kernel name>/...                with KEEL_BENCH_KERNELS=1: every registered kernel
//                                              this CPU runs, forced
//
// The data matches the MatMulNBits rows: s4 weights (ONNX Runtime stores u4 with the default zero
// point 8, the same values), groups of 32 along K, f32 scales, no bias; activations ~ N(0, 1).
//
// Setup as a user would run keel: the weights packed once per row (cpu_backend::pack) outside the
// timed loop; the timed call is cpu_backend::run on packed weights, which includes preparing (or
// quantizing) the activation rows and the output stage. GEMV rows rotate through cold copies of
// the packed weights (common.hpp); GEMM rows run warm.
//
// Counters: bytes_per_iter = the packed weights with their scales (the bytes a GEMV must stream:
// weights + scales as keel stores them) + activations + outputs, as common.hpp defines it and as
// the ONNX Runtime rows count theirs.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "keel/backends/cpu.hpp"
#include "peers/common.hpp"

namespace keel_bench {
namespace {

namespace gi = keel::kernels::gemm_i4;
using keel::backends::cpu_backend;
using keel::backends::cpu_options;

constexpr std::int64_t kGroup = 32;  // MatMulNBits' block_size in onnxruntime_bench.py

struct i4_row {
  keel::matmul_i4_desc desc;
  std::vector<float> a;
  std::vector<float> out;
  std::vector<cpu_backend::packed_matmul_i4> packed;  // one per cold copy
  cpu_backend cpu;
  std::string error;  // set when the row cannot run; the row is then skipped with this reason
};

std::unique_ptr<i4_row> make_row(const mm_shape& s, int threads, bool dynamic, int copies) {
  auto r = std::make_unique<i4_row>();
  r->cpu = cpu_backend(cpu_options{threads, -1});
  keel::matmul_i4_desc& d = r->desc;
  d.m = s.m;
  d.n = s.n;
  d.k = s.k;
  d.b_type = keel::dtype::s4;
  d.group_size = kGroup;
  d.scale_type = keel::dtype::f32;
  d.activation = dynamic ? keel::i4_activation::dynamic_s8 : keel::i4_activation::f32;

  std::mt19937 gen(12345);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> scale(0.001f, 0.01f);
  r->a.resize(static_cast<std::size_t>(s.m * s.k));
  for (float& v : r->a) v = normal(gen);
  r->out.resize(static_cast<std::size_t>(s.m * s.n));
  std::vector<std::uint8_t> w(static_cast<std::size_t>(s.n * ((s.k + 1) / 2)));
  std::vector<float> sc(static_cast<std::size_t>(s.n * d.groups()));
  for (int c = 0; c < copies; ++c) {
    for (auto& v : w) v = static_cast<std::uint8_t>(gen());
    for (float& v : sc) v = scale(gen);
    keel::matmul_i4_args args;
    args.b = keel::view_int4(w.data(), d.b_type, {s.n, s.k});
    args.scale = keel::view(static_cast<const float*>(sc.data()), {s.n, d.groups()});
    keel::Result<cpu_backend::packed_matmul_i4> p = r->cpu.pack(d, args);
    if (!p.ok()) {
      r->error = p.status().message();
      return r;
    }
    r->packed.push_back(std::move(p).value());
  }
  return r;
}

one_slot_cache<i4_row>& row_cache() {
  static one_slot_cache<i4_row> cache;
  return cache;
}

// kernel: -1 for the backend's choice, else a gemm_i4::kRegistry index forced through the
// backend's own driver (gemm_i4::run, what cpu_backend::run calls).
void bm_keel_i4(benchmark::State& state, mm_shape s, int threads, bool dynamic, int kernel,
                std::string key) {
  const std::int64_t weight_bytes = gi::make_geometry(s.n, s.k, kGroup, false).total_bytes();
  const int copies = cold_copies(weight_bytes, wants_cold(s));
  i4_row* r = row_cache().get(key, [&] { return make_row(s, threads, dynamic, copies); });
  if (!r->error.empty()) {
    state.SkipWithError(r->error.c_str());
    return;
  }
  keel::matmul_i4_args args;
  args.a = keel::view(static_cast<const float*>(r->a.data()), {s.m, s.k});
  args.out = keel::view(r->out.data(), {s.m, s.n});
  const auto call = [&](const cpu_backend::packed_matmul_i4& p) {
    return kernel < 0 ? r->cpu.run(r->desc, p, args)
                      : gi::run(r->desc, p, args, gi::run_options{threads, kernel});
  };
  // One untimed call: it proves the kernel runs on this data (or skips with the reason).
  const keel::Status first = call(r->packed[0]);
  if (!first.ok()) {
    state.SkipWithError(first.message());
    return;
  }
  std::size_t copy = 0;
  for (auto _ : state) {
    const keel::Status st = call(r->packed[copy]);
    if (!st.ok()) {
      state.SkipWithError(st.message());
      break;
    }
    benchmark::DoNotOptimize(r->out.data());
    copy = copy + 1 == r->packed.size() ? 0 : copy + 1;
  }
  const double bytes = static_cast<double>(r->packed[0].data.size()) +
                       static_cast<double>(4 * (s.m * s.k + s.m * s.n));
  set_counters(state, matmul_ops(s), bytes, threads, copies);
}

// Registers keel's int4 rows before main runs (bench_matmul's main is shared with the peers).
const bool registered = [] {
  const bool every_kernel = std::getenv("KEEL_BENCH_KERNELS") != nullptr;
  // The fma kernel the chooser would take if fma kernels came first: a gemv for M = 1.
  const auto fma_kernel = [](const mm_shape& s) {
    keel::matmul_i4_desc d;
    d.m = s.m;
    for (const gi::kernel_op op : {gi::kernel_op::gemv, gi::kernel_op::gemm}) {
      for (int i = 0; i < gi::kRegistrySize; ++i) {
        const gi::kernel& k = gi::kRegistry[i];
        if (k.v.op == op && k.v.tech == gi::technique::fma && !gi::kernel_unfit(k, d)) return i;
      }
    }
    return -1;
  };
  for (const mm_shape& s : kShapes) {
    for (int t : thread_counts()) {
      for (const bool dynamic : {false, true}) {
        const std::string dtypes = dynamic ? "s4s8_f32" : "s4f32_f32";
        const auto add = [&](const std::string& impl, int kernel) {
          const std::string name = row_name(dtypes, impl, s, t);
          timing(
              benchmark::RegisterBenchmark(name.c_str(), bm_keel_i4, s, t, dynamic, kernel, name));
        };
        add("keel", -1);
        if (!dynamic && fma_kernel(s) >= 0) add("keel_fma", fma_kernel(s));
        if (!every_kernel) continue;
        keel::matmul_i4_desc d;
        d.m = s.m;
        d.activation = dynamic ? keel::i4_activation::dynamic_s8 : keel::i4_activation::f32;
        for (int i = 0; i < gi::kRegistrySize; ++i) {
          if (gi::kernel_unfit(gi::kRegistry[i], d) != nullptr) continue;
          add("keel_" + std::string(gi::kRegistry[i].name.view()), i);
        }
      }
    }
  }
  return true;
}();

}  // namespace
}  // namespace keel_bench
