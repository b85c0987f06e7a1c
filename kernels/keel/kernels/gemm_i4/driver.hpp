// keel/kernels/gemm_i4/driver.hpp — the cpu backend's matmul_i4: packing the weights once, and
// per call preparing the activation rows, choosing a kernel from registry.hpp and driving it over
// tiles and threads (oneTBB, or serially: keel/backends/cpu/threads.hpp). The cpu backend
// (keel/backends/cpu.hpp) forwards its matmul_i4 pack() and run() here.
//
// Per call, in phases:
//   1. validate the desc and the A/out views against the packed weights (the weights' values
//      were checked by pack); nothing is written on failure;
//   2. prepare every activation row: dynamic_s8 rows quantized exactly as the reference does
//      (and checked finite: a non-finite value fails the call here, before any output is
//      written, with the reference's message); f32 rows used in place when they are dense,
//      otherwise copied and zero-padded to whole units;
//   3. one parallel loop over tiles (a block of rows by a block of panels): kernel -> f32 tile
//      -> + bias -> out.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "keel/backends/cpu/buffer.hpp"
#include "keel/backends/cpu/threads.hpp"
#include "keel/kernels/gemm_i4/packing.hpp"
#include "keel/kernels/gemm_i4/registry.hpp"
#include "keel/kernels/gemm_i4/variant.hpp"
#include "keel/kernels/reference/matmul_i4.hpp"
#include "keel/ops.hpp"

namespace keel::kernels::gemm_i4 {

template <class T>
using buffer = keel::backends::cpu_detail::aligned_buffer<T>;

// The weights of one matmul_i4, packed by pack(). The caller keeps it and passes it to run();
// it is immutable after packing, so several threads may run with it at once. One packed form
// serves both activation kinds (f32 and dynamic_s8).
struct packed_weights {
  matmul_i4_desc desc{};  // the desc it was packed for
  packed_geometry geo{};
  buffer<std::uint8_t> data;  // geo.total_bytes(): the records of every panel
  buffer<float> bias;         // [N], or empty

  // Bytes of memory it holds.
  std::int64_t bytes() const noexcept { return data.size() + 4 * bias.size(); }
};

struct run_options {
  int max_threads = 0;     // 0: all the runtime offers; 1: serial
  int forced_kernel = -1;  // index into kRegistry, or -1 to choose
};

namespace driver_detail {

constexpr std::string_view kOp = "matmul_i4";

inline Status out_of_memory(const char* what, std::int64_t bytes) {
  return Status::make(status_code::out_of_memory, kOp, "cannot allocate %lld bytes for %s",
                      static_cast<long long>(bytes), what);
}

inline bool has_zero_point_view(const matmul_i4_args& a) noexcept {
  return a.zero_point.data != nullptr || a.zero_point.rank != 0;
}

}  // namespace driver_detail

// ---- pack ---------------------------------------------------------------------------------

// Validates the weights (views, then values: every scale finite, every zero point 0..15, with the
// reference's messages) and packs them. A and out of `a` are not read.
inline Result<packed_weights> pack(const matmul_i4_desc& d, const matmul_i4_args& a,
                                   int max_threads) {
  using namespace driver_detail;
  namespace kd = keel::detail;
  if (Status s = validate(d); !s.ok()) return s;
  if (Status s = kd::require_view(kOp, "B", a.b, d.b_type, {d.n, d.k}); !s.ok()) return s;
  if (Status s = kd::require_view(kOp, "scale", a.scale, d.scale_type, {d.n, d.groups()});
      !s.ok()) {
    return s;
  }
  const bool zp = has_zero_point_view(a);
  if (zp) {
    if (d.b_type != dtype::u4) {
      return Status::make(status_code::invalid_argument, kOp,
                          "zero points given for s4 weights (s4 is symmetric; use u4)");
    }
    if (Status s = kd::require_view(kOp, "zero point", a.zero_point, dtype::u8, {d.n, d.groups()});
        !s.ok()) {
      return s;
    }
  }
  if (Status s = kd::require_count(kOp, "bias", a.bias, {0, d.n}); !s.ok()) return s;
  // The values (scales, zero points) as the reference checks them; its activation check is
  // run()'s business, so it is asked with f32 activations here.
  matmul_i4_desc weights_only = d;
  weights_only.activation = i4_activation::f32;
  if (Status s = reference::detail::validate_i4_values(weights_only, a); !s.ok()) return s;

  packed_weights p;
  p.desc = d;
  p.geo = make_geometry(d.n, d.k, d.group_size, zp);
  if (!p.data.allocate(p.geo.total_bytes()))
    return out_of_memory("packed weights", p.geo.total_bytes());
  if (!p.bias.allocate(static_cast<std::int64_t>(a.bias.size()))) {
    return out_of_memory("bias", 4 * d.n);
  }
  for (std::int64_t n = 0; n < p.bias.size(); ++n) p.bias[n] = a.bias[static_cast<std::size_t>(n)];

  constexpr std::int64_t kPanelsPerTask = 16;
  const std::int64_t tasks = (p.geo.panels + kPanelsPerTask - 1) / kPanelsPerTask;
  keel::backends::cpu_detail::parallel_for(
      tasks, max_threads, [&](std::int64_t t0, std::int64_t t1) {
        for (std::int64_t t = t0; t < t1; ++t) {
          const std::int64_t first = t * kPanelsPerTask;
          pack_panels(d, a, p.geo, first, std::min(kPanelsPerTask, p.geo.panels - first),
                      p.data.data());
        }
      });
  return p;
}

// ---- run ----------------------------------------------------------------------------------

// Validates a run with packed weights: the desc (which must match the packed one, except for the
// activation kind, which the packed form does not depend on) and the A and out views.
// Shortcoming: a.b, a.scale, a.zero_point and a.bias are not read (the packed ones serve), and
// unlike matmul_i8's packed run they are not compared with the packed ones either, so other
// values passed here are ignored without a word (docs/cpu-backend.md, int4 matmul).
inline Status validate_packed_run(const matmul_i4_desc& d, const packed_weights& p,
                                  const matmul_i4_args& a) {
  using namespace driver_detail;
  const matmul_i4_desc& q = p.desc;
  if (d.n != q.n || d.k != q.k || d.b_type != q.b_type || d.group_size != q.group_size ||
      d.scale_type != q.scale_type) {
    return Status::make(status_code::shape_mismatch, kOp,
                        "the desc (N=%lld K=%lld %s G=%lld scales %s) differs from the one the "
                        "weights were packed for (N=%lld K=%lld %s G=%lld scales %s)",
                        static_cast<long long>(d.n), static_cast<long long>(d.k),
                        to_string(d.b_type).data(), static_cast<long long>(d.group_size),
                        to_string(d.scale_type).data(), static_cast<long long>(q.n),
                        static_cast<long long>(q.k), to_string(q.b_type).data(),
                        static_cast<long long>(q.group_size), to_string(q.scale_type).data());
  }
  if (p.data.data() == nullptr) {
    return Status::make(status_code::invalid_argument, kOp,
                        "the packed weights are empty (moved from, or never packed)");
  }
  KEEL_RETURN_IF_ERROR(validate(d));
  const bool batched = a.a.rank == 3;
  if (!batched && d.batch != 1) {
    return Status::make(status_code::shape_mismatch, kOp,
                        "A has rank %d with batch = %lld (a batch other than 1 needs rank-3 A "
                        "and out)",
                        a.a.rank, static_cast<long long>(d.batch));
  }
  namespace kd = keel::detail;
  if (batched) {
    KEEL_RETURN_IF_ERROR(kd::require_view(kOp, "A", a.a, dtype::f32, {d.batch, d.m, d.k}));
    KEEL_RETURN_IF_ERROR(kd::require_view(kOp, "out", a.out, dtype::f32, {d.batch, d.m, d.n}));
  } else {
    KEEL_RETURN_IF_ERROR(kd::require_view(kOp, "A", a.a, dtype::f32, {d.m, d.k}));
    KEEL_RETURN_IF_ERROR(kd::require_view(kOp, "out", a.out, dtype::f32, {d.m, d.n}));
  }
  return kd::require_output(kOp, a.out, {{"A", a.a}});
}

// Why kernel `k` cannot run this call, or nullptr when it can.
inline const char* kernel_unfit(const kernel& k, const matmul_i4_desc& d) noexcept {
  if (!available(k.v)) return "this CPU lacks its instruction set";
  const activation want =
      d.activation == i4_activation::dynamic_s8 ? activation::s8 : activation::f32;
  if (k.v.act != want) return "it takes the other activation kind";
  if (k.v.op == kernel_op::gemv && d.batch * d.m > k.v.mr) return "M exceeds its rows (a gemv)";
  return nullptr;
}

// The kernel for this call: the forced one if it fits, else the first fitting gemv, else the
// first fitting gemm, in registry order.
inline Result<int> choose_kernel(const matmul_i4_desc& d, int forced) {
  using namespace driver_detail;
  if (forced != -1) {  // -1 chooses; any other value must name a kernel
    if (forced < 0 || forced >= kRegistrySize) {
      return Status::make(status_code::invalid_argument, kOp,
                          "kernel index %d (the registry has %d)", forced, kRegistrySize);
    }
    if (const char* why = kernel_unfit(kRegistry[forced], d)) {
      const variant_name& name = kRegistry[forced].name;
      return Status::make(status_code::unsupported, kOp, "kernel %.*s cannot run: %s", name.size,
                          name.text, why);
    }
    return forced;
  }
  for (const kernel_op op : {kernel_op::gemv, kernel_op::gemm}) {
    for (int i = 0; i < kRegistrySize; ++i) {
      if (kRegistry[i].v.op == op && kernel_unfit(kRegistry[i], d) == nullptr) return i;
    }
  }
  return Status::make(status_code::internal, kOp, "no registered kernel fits");
}

namespace driver_detail {

// The first non-finite activation in (batch, row, k) order, reported as the reference does.
inline Status non_finite_activation(const matmul_i4_desc& d, const matmul_i4_args& a) {
  for (std::int64_t b = 0; b < d.batch; ++b) {
    for (std::int64_t m = 0; m < d.m; ++m) {
      const row_source src = a_row(a, b, m);
      for (std::int64_t k = 0; k < d.k; ++k) {
        const float x = src.base[src.offset + k * src.stride];
        if (!std::isfinite(x)) {
          return Status::make(status_code::invalid_argument, kOp,
                              "A[%lld, %lld, %lld] = %g (dynamic_s8 needs finite activations "
                              "to compute a row scale)",
                              static_cast<long long>(b), static_cast<long long>(m),
                              static_cast<long long>(k), static_cast<double>(x));
        }
      }
    }
  }
  return Status::Ok();
}

// The prepared activation rows of a call: R = batch * M rows, row i = (i / M, i % M).
struct prepared_rows {
  const void* a = nullptr;  // row 0
  std::int64_t lda = 0;     // elements between rows
  buffer<std::int8_t> q;
  buffer<float> x;
  buffer<std::int32_t> qsum;       // [R][groups]
  buffer<float> a_scale;           // [R]
  buffer<std::uint8_t> scaled_ok;  // f32: [R] f32_scaled_conversion_ok per row
};

inline Status prepare_rows(const matmul_i4_desc& d, const packed_geometry& geo,
                           const matmul_i4_args& a, bool dynamic, bool use_avx2, int max_threads,
                           prepared_rows& out) {
  const std::int64_t rows = d.batch * d.m;
  const std::int64_t kp = geo.k_padded;
  if (!dynamic) {
    if (!out.scaled_ok.allocate(rows)) return out_of_memory("row flags", rows);
    keel::backends::cpu_detail::parallel_for(
        rows, max_threads, [&](std::int64_t r0, std::int64_t r1) {
          for (std::int64_t r = r0; r < r1; ++r) {
            out.scaled_ok[r] = f32_scaled_conversion_ok(a_row(a, r / d.m, r % d.m), d.k, kp);
          }
        });
    // In place when the rows are dense, whole units long, and evenly spaced across batches.
    const bool batched = a.a.rank == 3;
    const int rm = batched ? 1 : 0;
    const bool dense = a.a.stride(rm + 1) == 1 && d.k == kp &&
                       (!batched || d.batch == 1 || a.a.stride(0) == d.m * a.a.stride(rm));
    if (dense) {
      out.a = a.a.data;
      out.lda = a.a.stride(rm);
      return Status::Ok();
    }
    if (!out.x.allocate(rows * kp)) return out_of_memory("activation rows", rows * kp * 4);
    keel::backends::cpu_detail::parallel_for(
        rows, max_threads, [&](std::int64_t r0, std::int64_t r1) {
          for (std::int64_t r = r0; r < r1; ++r) {
            copy_row_f32(a_row(a, r / d.m, r % d.m), d.k, kp, out.x.data() + r * kp);
          }
        });
    out.a = out.x.data();
    out.lda = kp;
    return Status::Ok();
  }

  // dynamic_s8: quantize every row (each checked finite first). Rows start on a cache line, and
  // rows a multiple of 512 bytes long get one line more: else the rows that a gemm tile reads
  // side by side (K = 4096: 4096 bytes apart) fall in one L1 set and evict each other.
  const std::int64_t lda = (kp + 63) / 64 * 64 + (kp % 512 == 0 ? 64 : 0);
  const bool strided = a.a.stride(a.a.rank - 1) != 1;
  buffer<float> scratch;     // dense copies of strided rows for the vector quantizer
  buffer<std::uint8_t> bad;  // [R] 1 where a row holds a non-finite value
  if (!out.q.allocate(rows * lda) || !out.qsum.allocate(rows * geo.groups) ||
      !out.a_scale.allocate(rows) || !bad.allocate(rows) ||
      !scratch.allocate(strided && use_avx2 ? rows * d.k : 0)) {
    return out_of_memory("quantized activation rows", rows * (lda + 4 * geo.groups + 5));
  }
  keel::backends::cpu_detail::parallel_for(
      rows, max_threads, [&](std::int64_t r0, std::int64_t r1) {
        for (std::int64_t r = r0; r < r1; ++r) {
          const row_source src = a_row(a, r / d.m, r % d.m);
          bad[r] = row_is_finite(src, d.k) ? 0 : 1;
          if (bad[r]) continue;
          out.a_scale[r] = quantize_row(src, d.k, kp, d.group_size, geo.groups, use_avx2,
                                        scratch.empty() ? nullptr : scratch.data() + r * d.k,
                                        out.q.data() + r * lda, out.qsum.data() + r * geo.groups);
        }
      });
  for (std::int64_t r = 0; r < rows; ++r) {
    if (bad[r]) return non_finite_activation(d, a);
  }
  out.a = out.q.data();
  out.lda = lda;
  return Status::Ok();
}

// Tile blocking: a task is (a block of rows, a block of panels). Inside it, each group of np
// panels (in L1/L2) is swept over every mr-row step of the block, whose prepared rows (mc rows of
// k_padded bytes or floats) stay in about half of a 2 MiB L2. Then panel blocks split the work
// into about 8 tasks per thread, so that stealing evens out a noisy machine.
struct plan {
  std::int64_t row_block = 0, row_blocks = 0;
  std::int64_t panel_block = 0, panel_blocks = 0;
};

inline plan make_plan(const variant& v, std::int64_t rows, std::int64_t k_padded, bool dynamic,
                      std::int64_t panels, int threads) {
  constexpr std::int64_t kL2Budget = 1 << 20;
  plan pl;
  const std::int64_t row_bytes = k_padded * (dynamic ? 1 : 4);
  const std::int64_t steps = (rows + v.mr - 1) / v.mr;
  const std::int64_t steps_per_block =
      std::clamp<std::int64_t>(kL2Budget / std::max<std::int64_t>(row_bytes * v.mr, 1), 1, steps);
  pl.row_block = steps_per_block * v.mr;
  pl.row_blocks = (rows + pl.row_block - 1) / pl.row_block;
  const std::int64_t groups = (panels + v.np - 1) / v.np;
  const std::int64_t want = threads > 1 ? 8 * threads : 1;
  const std::int64_t blocks =
      std::clamp<std::int64_t>((want + pl.row_blocks - 1) / pl.row_blocks, 1, groups);
  pl.panel_block = ((groups + blocks - 1) / blocks) * v.np;
  pl.panel_blocks = (panels + pl.panel_block - 1) / pl.panel_block;
  return pl;
}

}  // namespace driver_detail

inline Status run(const matmul_i4_desc& d, const packed_weights& p, const matmul_i4_args& a,
                  const run_options& o) {
  using namespace driver_detail;
  // Phase 1: validation.
  KEEL_RETURN_IF_ERROR(validate_packed_run(d, p, a));
  if (d.batch == 0) return Status::Ok();
  Result<int> chosen = choose_kernel(d, o.forced_kernel);
  if (!chosen.ok()) return chosen.status();
  const kernel& kern = kRegistry[chosen.value()];
  const variant& v = kern.v;
  const packed_geometry& geo = p.geo;
  const bool dynamic = d.activation == i4_activation::dynamic_s8;

  // Phase 2: the activation rows (the only failure after this point is none: see phase 3).
  prepared_rows pr;
  // Every non-scalar kernel's CPU has AVX2 (the AVX-512 kernels require it too).
  KEEL_RETURN_IF_ERROR(
      prepare_rows(d, geo, a, dynamic, v.target != isa::scalar, o.max_threads, pr));

  // Phase 3: tiles. Each kernel call covers up to kChunkPanels panels (a gemv) or np panels (a
  // gemm) of up to mr rows into a stack tile of kTileFloats.
  constexpr int kChunkPanels = 32;
  constexpr int kTileFloats = [] {
    int most = 0;
    for (const kernel& k : kRegistry) {
      most = std::max(most, k.v.mr * (k.v.op == kernel_op::gemv ? kChunkPanels : k.v.np));
    }
    return most * kPanelCols;
  }();
  static_assert(kTileFloats <= 4096, "the driver's tile buffer stays at most 16 KiB of stack");
  const std::int64_t rows = d.batch * d.m;
  const int threads = keel::backends::cpu_detail::thread_count(o.max_threads);
  const plan pl = make_plan(v, rows, geo.k_padded, dynamic, geo.panels, threads);
  const bool batched = a.a.rank == 3;
  const int ro = batched ? 1 : 0;
  auto* out_base = static_cast<float*>(a.out.data);
  const float* bias = p.bias.empty() ? nullptr : p.bias.data();
  // gemv kernels stream any number of panels per call; gemm kernels take up to np.
  const int call_panels = v.op == kernel_op::gemv ? kChunkPanels : v.np;

  keel::backends::cpu_detail::parallel_for(
      pl.row_blocks * pl.panel_blocks, o.max_threads, [&](std::int64_t t0, std::int64_t t1) {
        alignas(64) float tile[kTileFloats];
        for (std::int64_t t = t0; t < t1; ++t) {
          const std::int64_t rb = t / pl.panel_blocks;
          const std::int64_t pb = t % pl.panel_blocks;
          const std::int64_t r_end = std::min(rows, (rb + 1) * pl.row_block);
          const std::int64_t p_end = std::min(geo.panels, (pb + 1) * pl.panel_block);
          for (std::int64_t p0 = pb * pl.panel_block; p0 < p_end; p0 += call_panels) {
            kernel_args ka;
            ka.geo = &geo;
            ka.panel_stride = geo.panel_bytes;
            ka.w = p.data.data() + p0 * geo.panel_bytes;
            ka.panels = static_cast<int>(std::min<std::int64_t>(call_panels, p_end - p0));
            ka.out = tile;
            ka.ld_out = ka.panels * kPanelCols;
            ka.ld_qsum = geo.groups;
            ka.lda = pr.lda;
            const std::int64_t n0 = p0 * kPanelCols;
            const std::int64_t cols = std::min<std::int64_t>(ka.panels * kPanelCols, d.n - n0);
            for (std::int64_t r0 = rb * pl.row_block; r0 < r_end; r0 += v.mr) {
              ka.rows = static_cast<int>(std::min<std::int64_t>(v.mr, r_end - r0));
              if (dynamic) {
                ka.a = pr.q.data() + r0 * pr.lda;
                ka.qsum = pr.qsum.data() + r0 * geo.groups;
                ka.a_scale = pr.a_scale.data() + r0;
              } else {
                ka.a = static_cast<const float*>(pr.a) + r0 * pr.lda;
                ka.f32_scaled_ok = pr.scaled_ok.data() + r0;
              }
              kern.fn(ka);
              // Store: + bias (one rounding, as the reference), then out at its strides.
              for (int r = 0; r < ka.rows; ++r) {
                const std::int64_t row = r0 + r;
                const std::int64_t bi = row / d.m, m = row % d.m;
                float* o_row =
                    out_base + (batched ? bi * a.out.stride(0) : 0) + m * a.out.stride(ro);
                const std::int64_t sn = a.out.stride(ro + 1);
                const float* src = tile + r * ka.ld_out;
                if (sn == 1 && bias == nullptr) {  // dense rows: loops the compiler vectorizes
                  std::memcpy(o_row + n0, src, static_cast<std::size_t>(cols) * sizeof(float));
                } else if (sn == 1) {
                  for (std::int64_t c = 0; c < cols; ++c) o_row[n0 + c] = src[c] + bias[n0 + c];
                } else {
                  for (std::int64_t c = 0; c < cols; ++c) {
                    o_row[(n0 + c) * sn] = bias ? src[c] + bias[n0 + c] : src[c];
                  }
                }
              }
            }
          }
        }
      });
  return Status::Ok();
}

}  // namespace keel::kernels::gemm_i4
