// keel/backends/cpu/matmul_i8.hpp — the cpu backend's int8 matmul: packing B once, choosing a
// microkernel from keel/kernels/gemm_i8/registry.hpp, and driving it over tiles and threads.
//
// Per call, in phases:
//   1. validate the desc and the A/out views against the packed weights (nothing written on
//      failure);
//   2. choose a kernel: a gemv variant when M <= its row count, else a gemm variant; a `ubs`
//      variant only when the range check proves it exact for this B and this A;
//   3. pack A (every batch) into the kernel's A panels with row sums, in parallel;
//   4. one parallel loop over tiles of all batches: microkernel -> raw int32 tile -> epilogue.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>

#if __has_include(<unistd.h>)
#include <unistd.h>  // sysconf: the L2 size (a_block_budget)
#endif

#include "keel/backends/cpu/buffer.hpp"
#include "keel/backends/cpu/threads.hpp"
#include "keel/kernels/gemm_i8/epilogue.hpp"
#include "keel/kernels/gemm_i8/packing.hpp"
#include "keel/kernels/gemm_i8/registry.hpp"
#include "keel/kernels/reference/matmul_i8.hpp"
#include "keel/ops.hpp"

namespace keel::backends {

// The weights of one matmul_i8, packed by cpu_backend::pack(). The caller keeps it (it owns its
// memory) and passes it to run(); it is immutable after packing, so several threads may run
// with the same packed weights at once.
struct cpu_packed_matmul_i8 {
  matmul_i8_desc desc{};                      // the desc it was packed for
  kernels::gemm_i8::packing layout{};         // the B layout (every registered kernel reads p8k4)
  std::int64_t kq = 0;                        // K groups per panel
  std::int64_t panels = 0;                    // B panels per matrix
  std::int64_t matrices = 0;                  // desc.batch if desc.b_batched, else 1
  cpu_detail::aligned_buffer<std::int8_t> b;  // [matrices][panels][kq][group_bytes]
  cpu_detail::aligned_buffer<std::int32_t> colsum;       // [matrices][panels * panel_cols]
  cpu_detail::aligned_buffer<std::int32_t> zb;           // zb'[panels * panel_cols] (mapped)
  cpu_detail::aligned_buffer<std::int32_t> bias;         // [panels * panel_cols], empty if none
  cpu_detail::aligned_buffer<float> scale;               // [N] weight scales, empty if none
  cpu_detail::aligned_buffer<channel_requant> requant;   // [N] for desc's scales; empty for s32
  cpu_detail::aligned_buffer<std::int32_t> zero_points;  // as given (0, 1 or N): for validation
  kernels::gemm_i8::pair_range range{};                  // of all of B' (the ubs range check)

  std::int64_t padded_n() const noexcept { return panels * layout.panel_cols; }
  // Bytes of memory it holds.
  std::int64_t bytes() const noexcept {
    return b.size() +
           4 * (colsum.size() + zb.size() + bias.size() + scale.size() + zero_points.size()) +
           static_cast<std::int64_t>(sizeof(channel_requant)) * requant.size();
  }
};

namespace cpu_detail {

namespace gk = keel::kernels::gemm_i8;

struct matmul_options {
  int max_threads = 0;     // 0: all the runtime offers; 1: serial
  int forced_kernel = -1;  // index into gk::kRegistry, or -1 to choose
};

// The most rows and columns any registered kernel computes per call: the raw tile's size.
inline constexpr int kMaxTileRows = 32;  // the amx and avx512vnni gemms' 32 rows
inline constexpr int kMaxTileCols = 128;
constexpr bool registry_fits_tile() {
  for (const gk::kernel& k : gk::kRegistry) {
    if (k.v.mr > kMaxTileRows || k.v.nr() > kMaxTileCols || k.v.pack.k_group != 4) return false;
  }
  return true;
}
static_assert(registry_fits_tile(), "a registered kernel's tile exceeds the driver's raw buffer");

inline Status out_of_memory(std::string_view op, const char* what, std::int64_t bytes) {
  return Status::make(status_code::out_of_memory, op, "cannot allocate %lld bytes for %s",
                      static_cast<long long>(bytes), what);
}

// ---- pack ---------------------------------------------------------------------------------

inline Result<cpu_packed_matmul_i8> pack_matmul_i8(const matmul_i8_desc& d, const matmul_i8_args& a,
                                                   int max_threads) {
  constexpr std::string_view op = "matmul_i8";
  // Validation: the desc, B and the per-column arrays (A and out are run()'s business).
  if (Status s = validate(d); !s.ok()) return s;
  if (d.b_batched) {
    if (Status s = detail::require_view(op, "B", a.b, d.b_type, {d.batch, d.k, d.n}); !s.ok()) {
      return s;
    }
  } else if (Status s = detail::require_view(op, "B", a.b, d.b_type, {d.k, d.n}); !s.ok()) {
    return s;
  }
  if (Status s = detail::validate_channel_params(op, d.n, d.b_type, d.out, a.b_scale,
                                                 a.b_zero_point, a.bias);
      !s.ok()) {
    return s;
  }
  if (!a.b_scale.empty()) {  // given for s32 output too: keep them valid for a later f32 run
    if (Status s = detail::require_count(op, "weight scale", a.b_scale, {1, d.n}); !s.ok()) {
      return s;
    }
    for (float sc : a.b_scale) {
      if (Status s = detail::require_scale(op, "weight scale", sc, false); !s.ok()) return s;
    }
  }

  // Allocation: every buffer or out_of_memory.
  cpu_packed_matmul_i8 p;
  p.desc = d;
  p.layout = gk::preferred_packing();
  p.kq = gk::k_groups(d.k, p.layout);
  p.panels = gk::panel_count(d.n, p.layout);
  p.matrices = d.b_batched ? d.batch : 1;
  const std::int64_t pn = p.padded_n();
  std::int64_t b_bytes = 0;
  if (!checked_mul(p.matrices, gk::packed_b_bytes(d.k, d.n, p.layout), &b_bytes) ||
      !p.b.allocate(b_bytes)) {
    return out_of_memory(op, "packed B", b_bytes);
  }
  if (!p.colsum.allocate(p.matrices * pn) || !p.zb.allocate(pn) ||
      !p.bias.allocate(a.bias.empty() ? 0 : pn) ||
      !p.scale.allocate(static_cast<std::int64_t>(a.b_scale.empty() ? 0 : d.n)) ||
      !p.requant.allocate(d.out.type == dtype::s32 ? 0 : d.n) ||
      !p.zero_points.allocate(static_cast<std::int64_t>(a.b_zero_point.size()))) {
    return out_of_memory(op, "per-column constants", 4 * (p.matrices + 4) * pn);
  }

  // Per-column constants, exactly as the reference derives them.
  for (std::int64_t n = 0; n < pn; ++n) {
    const std::int32_t zb = n < d.n ? reference::detail::pick(a.b_zero_point, n, 0) : 0;
    p.zb[n] = n < d.n ? zb + gk::b_offset(d.b_type) : 0;
    if (!p.bias.empty()) p.bias[n] = n < d.n ? a.bias[static_cast<std::size_t>(n)] : 0;
  }
  for (std::int64_t n = 0; n < p.scale.size(); ++n) {
    p.scale[n] = reference::detail::pick(a.b_scale, n, 0.0f);
  }
  for (std::int64_t n = 0; n < p.requant.size(); ++n) {
    p.requant[n] = make_channel_requant(d.a_scale, p.scale[n], d.out.scale);
  }
  for (std::size_t i = 0; i < a.b_zero_point.size(); ++i) {
    p.zero_points[static_cast<std::int64_t>(i)] = a.b_zero_point[i];
  }

  // B: panels in parallel chunks; each chunk's pair range merged afterwards.
  const int rb = d.b_batched ? 1 : 0;
  constexpr std::int64_t kPanelsPerTask = 16;
  const std::int64_t chunks = (p.panels + kPanelsPerTask - 1) / kPanelsPerTask;
  aligned_buffer<gk::pair_range> ranges;
  if (!ranges.allocate(p.matrices * chunks)) return out_of_memory(op, "pack scratch", chunks * 8);
  const std::int64_t matrix_bytes = gk::packed_b_bytes(d.k, d.n, p.layout);
  parallel_for(p.matrices * chunks, max_threads, [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int64_t mi = t / chunks;
      const std::int64_t first = (t % chunks) * kPanelsPerTask;
      const std::int64_t count = std::min(kPanelsPerTask, p.panels - first);
      ranges[t] = gk::pack_b(a.b.data, d.b_type, d.b_batched ? mi * a.b.stride(0) : 0, d.k, d.n,
                             a.b.stride(rb), a.b.stride(rb + 1), p.layout, first, count,
                             p.b.data() + mi * matrix_bytes, p.colsum.data() + mi * pn);
    }
  });
  for (std::int64_t t = 0; t < ranges.size(); ++t) p.range.merge(ranges[t]);
  return p;
}

// ---- run ----------------------------------------------------------------------------------

// Validates a run with packed weights: everything validate(desc, args) checks except B and the
// per-column arrays, which pack() checked; plus that the desc matches the packed one.
inline Status validate_packed_run(const matmul_i8_desc& d, const cpu_packed_matmul_i8& p,
                                  const matmul_i8_args& a) {
  constexpr std::string_view op = "matmul_i8";
  const matmul_i8_desc& q = p.desc;
  if (d.n != q.n || d.k != q.k || d.b_type != q.b_type || d.b_batched != q.b_batched ||
      (d.b_batched && d.batch != q.batch)) {
    return Status::make(status_code::shape_mismatch, op,
                        "the desc (N=%lld K=%lld B=%s%s) differs from the one the weights were "
                        "packed for (N=%lld K=%lld B=%s%s)",
                        static_cast<long long>(d.n), static_cast<long long>(d.k),
                        to_string(d.b_type).data(), d.b_batched ? " batched" : "",
                        static_cast<long long>(q.n), static_cast<long long>(q.k),
                        to_string(q.b_type).data(), q.b_batched ? " batched" : "");
  }
  if (p.b.data() == nullptr && d.batch > 0 && p.matrices > 0) {
    return Status::make(status_code::invalid_argument, op,
                        "the packed weights are empty (moved from, or never packed)");
  }
  KEEL_RETURN_IF_ERROR(validate(d));
  const bool batched = a.a.rank == 3;
  if (!batched && d.batch != 1) {
    return Status::make(status_code::shape_mismatch, op,
                        "A has rank %d with batch = %lld (a batch other than 1 needs rank-3 A "
                        "and out)",
                        a.a.rank, static_cast<long long>(d.batch));
  }
  if (batched) {
    KEEL_RETURN_IF_ERROR(detail::require_view(op, "A", a.a, d.a_type, {d.batch, d.m, d.k}));
    KEEL_RETURN_IF_ERROR(detail::require_view(op, "out", a.out, d.out.type, {d.batch, d.m, d.n}));
  } else {
    KEEL_RETURN_IF_ERROR(detail::require_view(op, "A", a.a, d.a_type, {d.m, d.k}));
    KEEL_RETURN_IF_ERROR(detail::require_view(op, "out", a.out, d.out.type, {d.m, d.n}));
  }
  // B is not read (the packed copy is), so only A may not overlap the output.
  KEEL_RETURN_IF_ERROR(detail::require_output(op, a.out, {{"A", a.a}}));
  if (d.out.type != dtype::s32 && p.scale.empty()) {
    return Status::make(status_code::invalid_argument, op,
                        "output dtype %s needs weight scales, and the weights were packed "
                        "without them",
                        to_string(d.out.type).data());
  }
  // The per-column arrays were packed with the weights: run() takes them empty or as packed, and
  // says so rather than use the packed ones in silence when they differ.
  const auto differs = [&](const char* what) {
    return Status::make(status_code::invalid_argument, op,
                        "%s differs from the one the weights were packed with (pack again with "
                        "it, or pass none to run)",
                        what);
  };
  const std::span<const std::int32_t> zps(p.zero_points.data(),
                                          static_cast<std::size_t>(p.zero_points.size()));
  if (!a.b_zero_point.empty() && !std::equal(a.b_zero_point.begin(), a.b_zero_point.end(),
                                             zps.begin(), zps.end())) {
    return differs("the weight zero point");
  }
  if (!a.bias.empty() &&
      (p.bias.empty() || static_cast<std::int64_t>(a.bias.size()) != d.n ||
       !std::equal(a.bias.begin(), a.bias.end(), p.bias.data()))) {
    return differs("the bias");
  }
  if (!a.b_scale.empty()) {
    bool same = p.scale.size() == d.n && (a.b_scale.size() == 1 ||
                                          static_cast<std::int64_t>(a.b_scale.size()) == d.n);
    for (std::int64_t n = 0; same && n < d.n; ++n) {
      const float given = reference::detail::pick(a.b_scale, n, 0.0f);
      same = std::memcmp(&given, &p.scale[n], sizeof(float)) == 0;  // bits: NaN included
    }
    if (!same) return differs("the weight scale");
  }
  return detail::validate_accumulator(op, d.k, d.a_type, d.a_zero_point, d.b_type, zps);
}

// Where matrix `bi` of A lives.
inline gk::a_source a_matrix(const matmul_i8_desc& d, const matmul_i8_args& a, std::int64_t bi) {
  const bool batched = a.a.rank == 3;
  const int ra = batched ? 1 : 0;
  return gk::a_source{a.a.data, d.a_type, batched ? bi * a.a.stride(0) : 0, a.a.stride(ra),
                      a.a.stride(ra + 1)};
}

// Why kernel `v` cannot run this call, or nullptr when it can. `a_max` is computed on demand.
template <class AMax>
const char* kernel_unfit(const gk::kernel& k, const matmul_i8_desc& d,
                         const cpu_packed_matmul_i8& p, AMax&& a_max) {
  if (!gk::available(k.v)) return "this CPU lacks its instruction set";
  if (!(k.v.pack == p.layout)) return "the weights are packed in another layout";
  if (k.v.op == gk::kernel_op::gemv && d.m > k.v.mr) return "M exceeds its rows (a gemv)";
  if (!k.v.exact_for_all_inputs() && !p.range.ubs_exact(a_max())) {
    return "it is not exact for these inputs (the ubs range check fails)";
  }
  return nullptr;
}

// The kernel for this call: the forced one if it fits, else the first fitting gemv (M <= its
// rows), else the first fitting gemm, in registry order.
inline Result<int> choose_kernel(const matmul_i8_desc& d, const cpu_packed_matmul_i8& p,
                                 const matmul_i8_args& a, int forced) {
  std::int32_t a_max_value = -1;
  const auto a_max = [&]() {
    if (a_max_value < 0) {
      a_max_value = 0;
      for (std::int64_t bi = 0; bi < d.batch && a_max_value < 255; ++bi) {
        a_max_value = std::max(a_max_value, gk::max_a_mapped(a_matrix(d, a, bi), d.m, d.k));
      }
    }
    return a_max_value;
  };
  if (forced != -1) {  // -1 chooses; any other value must name a kernel
    if (forced < 0 || forced >= gk::kRegistrySize) {
      return Status::make(status_code::invalid_argument, "matmul_i8",
                          "kernel index %d (the registry has %d)", forced, gk::kRegistrySize);
    }
    const gk::kernel& k = gk::kRegistry[forced];
    if (const char* why = kernel_unfit(k, d, p, a_max)) {
      return Status::make(status_code::unsupported, "matmul_i8", "kernel %s cannot run: %s",
                          k.name.c_str(), why);
    }
    return forced;
  }
  for (const gk::kernel_op op : {gk::kernel_op::gemv, gk::kernel_op::gemm}) {
    for (int i = 0; i < gk::kRegistrySize; ++i) {
      const gk::kernel& k = gk::kRegistry[i];
      if (k.v.op == op && kernel_unfit(k, d, p, a_max) == nullptr) return i;
    }
  }
  return Status::make(status_code::internal, "matmul_i8", "no registered kernel fits");
}

// Tile blocking of one call.
struct gemm_plan {
  std::int64_t m_panels = 0;   // A panels per matrix
  std::int64_t mc_panels = 0;  // A panels per m-block
  std::int64_t nc_panels = 0;  // B panels per n-block (a multiple of call_panels)
  std::int64_t m_blocks = 0, n_blocks = 0;
  std::int64_t call_panels = 0;  // B panels per kernel call: np, or fewer for a gemm at large K
};

// The bytes of packed A an m-block may hold: half of this CPU's per-core L2 as the C library
// reports it (sysconf), or 1 MiB where it reports none. Half, because the sweep's B panels and
// output rows share the L2 with it: on the Zen 4 VM (1 MiB L2; 2026-12-04, 1 thread, interleaved
// runs, GOPS) 512 KiB against 1 MiB gave 1024^3 385-411 against 364-390, M3136_N24_K144 282-286
// against 265-275, M512_N4096_K4096 and M128_N1536_K384 within the noise; the Intel VMs (2 MiB
// L2) were tuned with 1 MiB, which this keeps.
inline std::int64_t a_block_budget() noexcept {
  static const std::int64_t budget = [] {
    std::int64_t l2 = 0;
#if defined(_SC_LEVEL2_CACHE_SIZE)
    l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#endif
    return l2 >= (128 << 10) ? std::min<std::int64_t>(l2 / 2, 4 << 20) : std::int64_t{1} << 20;
  }();
  return budget;
}

// Blocking: an m-block's packed A (mc rows x K) is sized to stay in about half of the L2
// (a_block_budget) while the task sweeps it once per group of call_panels B panels, which stays in
// L2 for the sweep; n-blocks then split the work into about 8 tasks per thread so that stealing
// can even out a noisy machine. A gemv call is one m-block and only splits N.
inline gemm_plan plan_gemm(const gk::variant& v, std::int64_t m, std::int64_t kq,
                           std::int64_t panels, int threads) {
  gemm_plan pl;
  pl.m_panels = (m + v.mr - 1) / v.mr;
  const std::int64_t elem = v.a_layout() == gk::a_format::s16 ? 2 : 1;
  const std::int64_t a_panel_bytes = gk::a_panel_groups(v, kq) * v.pack.k_group * v.mr * elem;
  pl.mc_panels = std::clamp<std::int64_t>(
      a_block_budget() / std::max<std::int64_t>(a_panel_bytes, 1), 1, pl.m_panels);
  pl.m_blocks = (pl.m_panels + pl.mc_panels - 1) / pl.mc_panels;
  // A gemm call's B panels (and the AMX kernel's prepared copy of them) within kCallBBudget, so
  // that they stay in L2 beside the m-block: at K = 11008 the AMX kernel's 16 panels were 1.4
  // MiB, and its rate half that at K = 4096. Whole pairs (the AMX kernel's tiles join two).
  constexpr std::int64_t kCallBBudget = 512 << 10;
  pl.call_panels = v.np;
  if (v.op == gk::kernel_op::gemm && v.np > 1) {
    const std::int64_t fit =
        kCallBBudget / std::max<std::int64_t>(gk::a_panel_groups(v, kq) * v.pack.group_bytes(), 1);
    pl.call_panels = fit >= v.np ? v.np : std::max<std::int64_t>(fit & ~std::int64_t{1}, 1);
  }
  const std::int64_t n_groups = (panels + pl.call_panels - 1) / pl.call_panels;
  const std::int64_t want_tasks = threads > 1 ? 8 * threads : 1;
  const std::int64_t n_blocks =
      std::clamp<std::int64_t>((want_tasks + pl.m_blocks - 1) / pl.m_blocks, 1, n_groups);
  pl.nc_panels = ((n_groups + n_blocks - 1) / n_blocks) * pl.call_panels;
  pl.n_blocks = (panels + pl.nc_panels - 1) / pl.nc_panels;
  return pl;
}

inline Status run_matmul_i8(const matmul_i8_desc& d, const cpu_packed_matmul_i8& p,
                            const matmul_i8_args& a, const matmul_options& o) {
  constexpr std::string_view op = "matmul_i8";
  // Phase 1: validation.
  KEEL_RETURN_IF_ERROR(validate_packed_run(d, p, a));
  if (d.batch == 0) return Status::Ok();

  // Phase 2: the kernel.
  Result<int> chosen = choose_kernel(d, p, a, o.forced_kernel);
  if (!chosen.ok()) return chosen.status();
  const gk::kernel& kern = gk::kRegistry[chosen.value()];
  const gk::variant& v = kern.v;
  const int threads = thread_count(o.max_threads);
  const gemm_plan pl = plan_gemm(v, d.m, p.kq, p.panels, threads);
  const std::int64_t pn = p.padded_n();

  // Per-call constants: requantization for the scales of this desc (the packed ones when they
  // match), and colterm[n] = K*za'*zb'[n] - za'*colsum[n] (mod 2^32) per B matrix.
  aligned_buffer<channel_requant> requant_here;
  const channel_requant* rq = p.requant.data();
  if (d.out.type != dtype::s32 &&
      (p.requant.empty() || d.a_scale != p.desc.a_scale || d.out.scale != p.desc.out.scale)) {
    if (!requant_here.allocate(d.n)) return out_of_memory(op, "requantization constants", d.n * 12);
    for (std::int64_t n = 0; n < d.n; ++n) {
      requant_here[n] = make_channel_requant(d.a_scale, p.scale[n], d.out.scale);
    }
    rq = requant_here.data();
  }
  aligned_buffer<std::int32_t> colterm;
  if (!colterm.allocate(p.matrices * pn)) {
    return out_of_memory(op, "column terms", p.matrices * pn * 4);
  }
  const std::uint32_t za = static_cast<std::uint32_t>(d.a_zero_point + gk::a_offset(d.a_type));
  const std::uint32_t kza = static_cast<std::uint32_t>(d.k) * za;
  for (std::int64_t i = 0; i < p.matrices * pn; ++i) {
    const std::uint32_t zb = static_cast<std::uint32_t>(p.zb[i % pn]);
    colterm[i] = static_cast<std::int32_t>(kza * zb - za * static_cast<std::uint32_t>(p.colsum[i]));
  }

  // Phase 3: A panels and row sums for every batch.
  const std::int64_t elem = v.a_layout() == gk::a_format::s16 ? 2 : 1;
  const std::int64_t panel_bytes = gk::a_panel_groups(v, p.kq) * v.pack.k_group * v.mr * elem;
  const std::int64_t a_panels = d.batch * pl.m_panels;
  aligned_buffer<std::uint8_t> a_packed;
  aligned_buffer<std::int32_t> rowsum;
  std::int64_t a_bytes = 0;
  if (!checked_mul(a_panels, panel_bytes, &a_bytes) || !a_packed.allocate(a_bytes)) {
    return out_of_memory(op, "packed A", a_bytes);
  }
  if (!rowsum.allocate(a_panels * v.mr)) return out_of_memory(op, "row sums", a_panels * v.mr * 4);
  parallel_for(a_panels, o.max_threads, [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int64_t bi = t / pl.m_panels;
      const std::int64_t m0 = (t % pl.m_panels) * v.mr;
      const int rows = static_cast<int>(std::min<std::int64_t>(v.mr, d.m - m0));
      kern.pack_a(a_matrix(d, a, bi), m0, rows, d.k, v.mr, v.pack,
                  a_packed.data() + t * panel_bytes, rowsum.data() + t * v.mr);
    }
  });

  // Phase 4: tiles. Task t covers (batch, m-block, n-block); inside it, each group of np B
  // panels is swept against every A panel of the m-block while it is hot in cache.
  const bool batched = a.a.rank == 3;
  const int ro = batched ? 1 : 0;
  const std::int64_t matrix_bytes = p.panels * p.kq * v.pack.group_bytes();
  const std::int64_t tiles_per_batch = pl.m_blocks * pl.n_blocks;
  const bool zb_zero =
      std::all_of(p.zb.data(), p.zb.data() + pn, [](std::int32_t z) { return z == 0; });
  // B in the kernel's own layout, where it has one: one scratch per thread, sized here so that
  // running out of memory is reported before anything is written.
  const std::int64_t b_scratch_bytes =
      kern.prepare_b != nullptr ? v.np * gk::a_panel_groups(v, p.kq) * v.pack.group_bytes() : 0;
  const int slots = worker_slots();
  aligned_buffer<std::int8_t> b_scratch;
  if (!b_scratch.allocate(slots * b_scratch_bytes)) {
    return out_of_memory(op, "prepared B", slots * b_scratch_bytes);
  }
  parallel_for(d.batch * tiles_per_batch, o.max_threads, [&](std::int64_t t0, std::int64_t t1) {
    alignas(64) std::int32_t raw[kMaxTileRows * kMaxTileCols];
    std::int8_t* const b_prepared = b_scratch.data() + worker_slot() * b_scratch_bytes;
    for (std::int64_t t = t0; t < t1; ++t) {
      const std::int64_t bi = t / tiles_per_batch;
      const std::int64_t mb = (t % tiles_per_batch) / pl.n_blocks;
      const std::int64_t nb = t % pl.n_blocks;
      const std::int64_t mi = d.b_batched ? bi : 0;
      gk::epilogue_params e;
      e.out = d.out;
      e.out_data = a.out.data;
      e.out_base = batched ? bi * a.out.stride(0) : 0;
      e.out_stride_m = a.out.stride(ro);
      e.out_stride_n = a.out.stride(ro + 1);
      e.zb = p.zb.data();
      e.zb_zero = zb_zero;
      e.colterm = colterm.data() + mi * pn;
      e.bias = p.bias.empty() ? nullptr : p.bias.data();
      e.rq = rq;
      e.rowsum = rowsum.data() + bi * pl.m_panels * v.mr;  // indexed by row within the matrix
      const std::int64_t mp0 = mb * pl.mc_panels;
      const std::int64_t mp1 = std::min(pl.m_panels, mp0 + pl.mc_panels);
      const std::int64_t p0 = nb * pl.nc_panels;
      const std::int64_t p1 = std::min(p.panels, p0 + pl.nc_panels);
      for (std::int64_t pg = p0; pg < p1; pg += pl.call_panels) {
        gk::ukernel_args ka;
        ka.b = p.b.data() + mi * matrix_bytes + pg * p.kq * v.pack.group_bytes();
        ka.b_panel_stride = p.kq * v.pack.group_bytes();
        ka.kq = p.kq;
        ka.panels = static_cast<int>(std::min<std::int64_t>(pl.call_panels, p1 - pg));
        ka.raw = raw;
        ka.ld_raw = v.nr();
        const std::int64_t n0 = pg * v.pack.panel_cols;
        const int cols =
            static_cast<int>(std::min<std::int64_t>(ka.panels * v.pack.panel_cols, d.n - n0));
        if (kern.prepare_b != nullptr) {
          kern.prepare_b(ka, b_prepared);
          ka.b = b_prepared;
        }
        for (std::int64_t mp = mp0; mp < mp1; ++mp) {
          const std::int64_t ap = bi * pl.m_panels + mp;
          ka.a = a_packed.data() + ap * panel_bytes;
          ka.rows = static_cast<int>(std::min<std::int64_t>(v.mr, d.m - mp * v.mr));
          ka.epilogue_params = kern.epilogue_in_kernel ? &e : nullptr;
          ka.out_m0 = mp * v.mr;
          ka.out_n0 = n0;
          ka.out_cols = cols;
          kern.fn(ka);
          if (!kern.epilogue_in_kernel)
            kern.epilogue(e, raw, ka.ld_raw, ka.out_m0, ka.rows, n0, cols);
        }
      }
    }
  });
  return Status::Ok();
}

}  // namespace cpu_detail
}  // namespace keel::backends
