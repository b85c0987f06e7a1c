// bench/peers/onednn.cpp — oneDNN's int8 matmul as a peer: u8 A [M, K] x s8 B [K, N] -> s32
// [M, N], the same op and output as keel's gemm_u8s8_s32 rows.
//
// Setup as a fair user would write it: B's memory format is left to oneDNN (format_tag::any) and
// reordered once into the layout its kernel wants, like keel's packed weights; the primitive is
// created once per row. Threads: Debian builds oneDNN 2.6 on OpenMP, so a row sets
// omp_set_num_threads before creating and running its primitive.
//
// ISA: oneDNN picks the best instructions of the CPU (on this machine's Xeon, AVX-512 VNNI). When
// DNNL_MAX_CPU_ISA is set in the environment, oneDNN stays within that ISA and the rows are named
// `onednn_<isa>` (run_all.sh runs the binary a second time with DNNL_MAX_CPU_ISA=AVX2, the ISA of
// keel's kernels).
#include <omp.h>

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "peers/common.hpp"

namespace keel_bench {
namespace {

std::string onednn_impl_name() {
  const char* cap = std::getenv("DNNL_MAX_CPU_ISA");
  if (cap == nullptr || *cap == '\0') return "onednn";
  std::string name = "onednn_";
  for (const char* c = cap; *c; ++c) {
    name += static_cast<char>(std::tolower(static_cast<unsigned char>(*c)));
  }
  return name;
}

const char* isa_name(dnnl::cpu_isa isa) {
  switch (isa) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

// Everything one row needs, built once (see one_slot_cache).
struct onednn_row {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream strm{eng};
  dnnl::matmul prim;
  dnnl::memory a, c;
  std::vector<dnnl::memory> b;  // packed weights, one per cold copy
  std::string impl_info;        // oneDNN's own description of the kernel it chose
  double weight_bytes = 0;
};

std::unique_ptr<onednn_row> make_row(const mm_shape& s, int copies) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  auto r = std::make_unique<onednn_row>();

  // Phase: descriptors. A and C plain row-major; B's layout is oneDNN's choice.
  const dnnl::memory::desc a_md({s.m, s.k}, dt::u8, tag::ab);
  const dnnl::memory::desc b_any({s.k, s.n}, dt::s8, tag::any);
  const dnnl::memory::desc b_plain({s.k, s.n}, dt::s8, tag::ab);
  const dnnl::memory::desc c_md({s.m, s.n}, dt::s32, tag::ab);
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_any, c_md), r->eng);
  r->prim = dnnl::matmul(pd);
  r->impl_info = pd.impl_info_str();

  // Phase: data. Values spread over the full u8/s8 ranges; the timing does not depend on them.
  r->a = dnnl::memory(a_md, r->eng);
  r->c = dnnl::memory(c_md, r->eng);
  auto* a = static_cast<std::uint8_t*>(r->a.get_data_handle());
  for (std::int64_t i = 0; i < s.m * s.k; ++i) a[i] = static_cast<std::uint8_t>(i * 7 + 3);
  dnnl::memory plain(b_plain, r->eng);
  auto* b = static_cast<std::int8_t*>(plain.get_data_handle());
  for (std::int64_t i = 0; i < s.k * s.n; ++i) b[i] = static_cast<std::int8_t>(i * 13 + 5);

  // Phase: pack B once per copy (each copy a separate allocation, so the rotation is real).
  for (int i = 0; i < copies; ++i) {
    dnnl::memory packed(pd.weights_desc(), r->eng);
    dnnl::reorder(plain, packed).execute(r->strm, plain, packed);
    r->b.push_back(packed);
  }
  r->strm.wait();
  r->weight_bytes = static_cast<double>(pd.weights_desc().get_size());
  return r;
}

one_slot_cache<onednn_row> g_cache;

void run_row(benchmark::State& state, const std::string& name, mm_shape s, int threads) {
  omp_set_num_threads(threads);
  const int copies = cold_copies(s.k * s.n, wants_cold(s));
  onednn_row* r = nullptr;
  try {
    r = g_cache.get(name, [&] { return make_row(s, copies); });
  } catch (const dnnl::error& e) {
    g_cache.clear();
    state.SkipWithError((std::string("oneDNN setup failed: ") + e.what()).c_str());
    return;
  }

  std::size_t next = 0;
  for (auto _ : state) {
    r->prim.execute(r->strm,
                    {{DNNL_ARG_SRC, r->a}, {DNNL_ARG_WEIGHTS, r->b[next]}, {DNNL_ARG_DST, r->c}});
    r->strm.wait();
    next = next + 1 == r->b.size() ? 0 : next + 1;
  }
  const double bytes =
      r->weight_bytes + static_cast<double>(s.m * s.k) + 4.0 * static_cast<double>(s.m * s.n);
  set_counters(state, matmul_ops(s), bytes, threads, copies);
  state.SetLabel(r->impl_info);
}

const bool g_registered = [] {
  const std::string impl = onednn_impl_name();
  for (const mm_shape& s : kShapes) {
    for (int t : thread_counts()) {
      const std::string name = row_name("u8s8_s32", impl, s, t);
      timing(benchmark::RegisterBenchmark(
          name.c_str(), [name, s, t](benchmark::State& st) { run_row(st, name, s, t); }));
    }
  }
  const dnnl::version_t* v = dnnl::version();
  benchmark::AddCustomContext(
      "onednn_version",
      std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch));
  benchmark::AddCustomContext(impl + "_isa", isa_name(dnnl::get_effective_cpu_isa()));
  return true;
}();

}  // namespace
}  // namespace keel_bench
