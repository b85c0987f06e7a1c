// bench/peers/xnnpack.cpp — XNNPACK's int8 fully-connected operator as a peer.
//
// The Debian package (git snapshot of 2022-02-16) has two int8 fully-connected operators: qs8
// (s8 activations, s8 weights, s8 output) and qu8 (all u8, weight zero point). Neither returns the
// raw int32 sums: both requantize to 8 bits, so the rows are named `*_s8s8_s8` and do a little
// more work per output than keel's s32 rows (N or M*N multiplies, negligible beside K of them).
// qs8 is the operator XNNPACK's TFLite delegate uses for int8 models, so it is the one measured.
//
// Setup as a fair user would write it: the operator is created once per row, which packs the
// weights ([N, K], XNNPACK's order) into its own layout. Cold rows create one operator per cold
// copy, each with its own packed weights. Threads: a pthreadpool of `threads` workers (none for one
// thread: XNNPACK then runs on the caller).
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <pthreadpool.h>
#include <xnnpack.h>

#include "peers/common.hpp"

namespace keel_bench {
namespace {

struct xnnpack_row {
  pthreadpool_t pool = nullptr;
  std::vector<xnn_operator_t> ops;  // one per cold copy
  std::vector<std::int8_t> a, c;
  xnn_status failed = xnn_status_success;

  ~xnnpack_row() {
    for (xnn_operator_t op : ops) xnn_delete_operator(op);
    if (pool != nullptr) pthreadpool_destroy(pool);
  }
};

std::unique_ptr<xnnpack_row> make_row(const mm_shape& s, int threads, int copies) {
  auto r = std::make_unique<xnnpack_row>();
  if (threads > 1) r->pool = pthreadpool_create(static_cast<std::size_t>(threads));

  // Phase: data. Weights [N, K] s8 over the full range; activations s8.
  std::vector<std::int8_t> w(static_cast<std::size_t>(s.n * s.k));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<std::int8_t>(i * 13 + 5);
  r->a.resize(static_cast<std::size_t>(s.m * s.k));
  for (std::size_t i = 0; i < r->a.size(); ++i) r->a[i] = static_cast<std::int8_t>(i * 7 + 3);
  r->c.resize(static_cast<std::size_t>(s.m * s.n));

  // Phase: operators. The requantization scale a_scale * w_scale / out_scale = 1/K keeps it in
  // the range XNNPACK accepts (below 1) for every K; scales do not change the work done.
  const float a_scale = 0.02f, w_scale = 0.01f;
  const float out_scale = a_scale * w_scale * static_cast<float>(s.k);
  for (int i = 0; i < copies; ++i) {
    xnn_operator_t op = nullptr;
    xnn_status st = xnn_create_fully_connected_nc_qs8(
        static_cast<std::size_t>(s.k), static_cast<std::size_t>(s.n), static_cast<std::size_t>(s.k),
        static_cast<std::size_t>(s.n), /*input_zero_point=*/1, a_scale, w_scale, w.data(),
        /*bias=*/nullptr, /*output_zero_point=*/0, out_scale, -128, 127, /*flags=*/0, &op);
    if (st == xnn_status_success) {
      r->ops.push_back(op);
      st = xnn_setup_fully_connected_nc_qs8(op, static_cast<std::size_t>(s.m), r->a.data(),
                                            r->c.data(), r->pool);
    }
    if (st != xnn_status_success) {
      r->failed = st;
      break;
    }
  }
  return r;
}

one_slot_cache<xnnpack_row> g_cache;

void run_row(benchmark::State& state, const std::string& name, mm_shape s, int threads) {
  if (xnn_initialize(nullptr) != xnn_status_success) {
    state.SkipWithError("xnn_initialize failed (unsupported CPU?)");
    return;
  }
  const int copies = cold_copies(s.k * s.n, wants_cold(s));
  xnnpack_row* r = g_cache.get(name, [&] { return make_row(s, threads, copies); });
  if (r->failed != xnn_status_success) {
    const std::string msg = "XNNPACK fully_connected_nc_qs8 setup failed, status " +
                            std::to_string(static_cast<int>(r->failed));
    g_cache.clear();
    state.SkipWithError(msg.c_str());
    return;
  }

  std::size_t next = 0;
  for (auto _ : state) {
    xnn_run_operator(r->ops[next], r->pool);
    next = next + 1 == r->ops.size() ? 0 : next + 1;
  }
  // Packed weights: K*N s8 plus one int32 bias per column.
  const double bytes = static_cast<double>(s.k * s.n) + 4.0 * static_cast<double>(s.n) +
                       static_cast<double>(s.m * s.k) + static_cast<double>(s.m * s.n);
  set_counters(state, matmul_ops(s), bytes, threads, copies);
}

const bool g_registered = [] {
  for (const mm_shape& s : kShapes) {
    for (int t : thread_counts()) {
      const std::string name = row_name("s8s8_s8", "xnnpack", s, t);
      timing(benchmark::RegisterBenchmark(
          name.c_str(), [name, s, t](benchmark::State& st) { run_row(st, name, s, t); }));
    }
  }
  return true;
}();

}  // namespace
}  // namespace keel_bench
