// bench/bench_gemm_i8.cpp — keel's int8 matmul rows: the cpu backend on the shapes of issue 3,
// one thread and all threads, named and counted like every other row of bench_matmul
// (bench/peers/common.hpp):
//
//   gemm_u8s8_s32/keel/M128_N4096_K4096_2t     the backend's own choice of kernel on full-range
//                                              u8 A and s8 B: the exact w16 kernels (the ubs
//                                              range check refuses such data), the gemv kernel
//                                              for M = 1
//   gemm_u8s8_s32/keel_ubs/...                 B restricted to [-64, 64], where the range check
//                                              admits the faster ubs kernel: what weights inside
//                                              that range gain (GEMM shapes only)
//   gemm_u8s8_s32/keel_<kernel name>/...       with KEEL_BENCH_KERNELS=1: every registered kernel
//                                              this CPU runs, forced, on data it is exact for
//
// Setup as a user would run keel: B packed once per row (cpu_backend::pack) outside the timed
// loop; the timed call is cpu_backend::run on packed weights, which includes packing A, the
// zero-point corrections and the output stage. GEMV rows rotate through cold copies of the packed
// weights (common.hpp); GEMM rows run warm.
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

namespace gk = keel::kernels::gemm_i8;
using keel::backends::cpu_backend;
using keel::backends::cpu_options;

// What one row needs, built once (one_slot_cache).
struct keel_row {
  keel::matmul_i8_desc desc;
  std::vector<std::uint8_t> a;
  std::vector<std::int32_t> out;
  std::vector<cpu_backend::packed_matmul_i8> packed;  // one per cold copy
  cpu_backend cpu;
  std::string error;  // set when the row cannot run; the row is then skipped with this reason
};

enum class b_range { full, ubs };

std::unique_ptr<keel_row> make_row(const mm_shape& s, int threads, int kernel, b_range range,
                                   int copies) {
  auto r = std::make_unique<keel_row>();
  r->cpu = cpu_backend(cpu_options{threads, kernel});
  keel::matmul_i8_desc& d = r->desc;
  d.m = s.m;
  d.n = s.n;
  d.k = s.k;
  d.a_type = keel::dtype::u8;
  d.b_type = keel::dtype::s8;
  d.out.type = keel::dtype::s32;

  // Data: uniform over the full u8 range for A; for B the full s8 range, or [-64, 64].
  std::mt19937 gen(12345);
  r->a.resize(static_cast<std::size_t>(s.m * s.k));
  for (auto& v : r->a) v = static_cast<std::uint8_t>(gen());
  std::vector<std::int8_t> b(static_cast<std::size_t>(s.k * s.n));
  std::uniform_int_distribution<int> full(-128, 127), narrow(-64, 64);
  for (auto& v : b) v = static_cast<std::int8_t>(range == b_range::full ? full(gen) : narrow(gen));
  r->out.resize(static_cast<std::size_t>(s.m * s.n));

  keel::matmul_i8_args args;
  args.b = keel::view(b.data(), {s.k, s.n});
  for (int c = 0; c < copies; ++c) {
    keel::Result<cpu_backend::packed_matmul_i8> p = r->cpu.pack(d, args);
    if (!p.ok()) {
      r->error = p.status().message();
      return r;
    }
    r->packed.push_back(std::move(p).value());
  }
  return r;
}

one_slot_cache<keel_row>& row_cache() {
  static one_slot_cache<keel_row> cache;
  return cache;
}

void bm_keel(benchmark::State& state, mm_shape s, int threads, int kernel, b_range range,
             std::string key) {
  const int copies = cold_copies(s.k * s.n, wants_cold(s));
  keel_row* r = row_cache().get(key, [&] { return make_row(s, threads, kernel, range, copies); });
  if (!r->error.empty()) {
    state.SkipWithError(r->error.c_str());
    return;
  }
  keel::matmul_i8_args args;
  args.a = keel::view(r->a.data(), {s.m, s.k});
  args.out = keel::view(r->out.data(), {s.m, s.n});
  // One untimed call: it proves the kernel runs on this data (or skips with the reason).
  const keel::Status first = r->cpu.run(r->desc, r->packed[0], args);
  if (!first.ok()) {
    state.SkipWithError(first.message());
    return;
  }
  std::size_t copy = 0;
  for (auto _ : state) {
    const keel::Status st = r->cpu.run(r->desc, r->packed[copy], args);
    if (!st.ok()) {
      state.SkipWithError(st.message());
      break;
    }
    benchmark::DoNotOptimize(r->out.data());
    copy = copy + 1 == r->packed.size() ? 0 : copy + 1;
  }
  const double weight_bytes = static_cast<double>(r->packed[0].b.size());
  const double bytes = weight_bytes + static_cast<double>(s.m * s.k + 4 * s.m * s.n);
  set_counters(state, matmul_ops(s), bytes, threads, copies);
}

// Registers keel's rows before main runs (bench_matmul's main is shared with the peers).
const bool registered = [] {
  const bool every_kernel = std::getenv("KEEL_BENCH_KERNELS") != nullptr;
  for (const mm_shape& s : kShapes) {
    for (int t : thread_counts()) {
      const auto add = [&](const std::string& impl, int kernel, b_range range) {
        const std::string name = row_name("u8s8_s32", impl, s, t);
        timing(benchmark::RegisterBenchmark(name.c_str(), bm_keel, s, t, kernel, range, name));
      };
      add("keel", -1, b_range::full);
      if (s.m > 1) add("keel_ubs", -1, b_range::ubs);
      if (!every_kernel) continue;
      for (int i = 0; i < gk::kRegistrySize; ++i) {
        const gk::kernel& k = gk::kRegistry[i];
        if (!gk::available(k.v) || (k.v.op == gk::kernel_op::gemv && s.m > k.v.mr)) continue;
        add("keel_" + std::string(k.name.view()), i,
            k.v.exact_for_all_inputs() ? b_range::full : b_range::ubs);
      }
    }
  }
  return true;
}();

}  // namespace
}  // namespace keel_bench
