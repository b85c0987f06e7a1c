// keel/backends/cpu.hpp — the cpu backend: SIMD microkernels (hand-tuned AVX2, portable Highway
// with dynamic dispatch, plain C++) driven over tiles by oneTBB (or serially, for a BSP built
// without TBB: Meson option threads=none). Bit-exact with the reference kernels on every integer
// output and on matmul/conv f32 outputs.
//
// What runs where:
//   matmul_i8   packed B (pack once, run many) and the kernels of keel/kernels/gemm_i8/registry.hpp
//   conv2d_i8   1x1, stride 1, unpadded, ungrouped: the matmul_i8 kernels (a GEMM over pixels);
//               the rest: the reference kernel, split over images and channel groups
//   attention   the reference kernel, split over batch x query heads
//   matmul_i4   packed int4 weights and the kernels of keel/kernels/gemm_i4/registry.hpp
// Until their fast kernels come, conv2d (other than 1x1) and attention give the router a cpu route
// with the reference's exact results and the machine's cores, not the cpu's speed. (Known
// shortcoming, by design.)
//
// Link with libhwy (the Highway dispatcher) and, for threads=tbb, with oneTBB.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <string_view>

#include "keel/backend.hpp"
#include "keel/backends/cpu/buffer.hpp"
#include "keel/backends/cpu/matmul_i8.hpp"
#include "keel/backends/cpu/threads.hpp"
#include "keel/kernels/gemm_i4/driver.hpp"
#include "keel/kernels/reference/attention.hpp"
#include "keel/kernels/reference/conv2d_i8.hpp"
#include "keel/kernels/reference/matmul_i4.hpp"

namespace keel::backends {

struct cpu_options {
  // Threads a call may use: 0 (or any value below 1) for all that oneTBB offers, 1 for serial, n
  // to cap. Without TBB every call is serial.
  int max_threads = 0;
  // Run every matmul_i8 (and 1x1 conv2d) with this kernel of gemm_i8::kRegistry, by index; -1
  // chooses per call (another negative value is refused). A forced kernel that cannot run a call
  // (missing ISA, or a ubs kernel whose range check fails) makes the call return `unsupported`:
  // for tests and benchmarks.
  int forced_kernel = -1;
};

// matmul_i4 weights, packed for the int4 kernels (keel/kernels/gemm_i4/driver.hpp).
using cpu_packed_matmul_i4 = kernels::gemm_i4::packed_weights;

// conv2d weights: packed for the GEMM kernels when the conv is a 1x1 GEMM, else the caller's views.
struct cpu_packed_conv2d {
  conv2d_desc desc{};
  bool as_gemm = false;
  cpu_packed_matmul_i8 gemm{};  // as_gemm: weights^T packed as B [C_in, C_out]
  conv2d_args weights{};        // otherwise: weights, w_scale, w_zero_point, bias views
};

namespace cpu_detail {

// A conv2d that is exactly a matmul over pixels: out[pixel, oc] = sum_ci x[pixel, ci] w[oc, ci].
inline bool conv_is_gemm(const conv2d_desc& d) {
  if (d.kernel_h != 1 || d.kernel_w != 1 || d.stride_h != 1 || d.stride_w != 1 || d.groups != 1) {
    return false;
  }
  const Result<conv2d_geometry> g = conv2d_output_geometry(d);
  return g.ok() && g->pad_top == 0 && g->pad_bottom == 0 && g->pad_left == 0 && g->pad_right == 0;
}

inline matmul_i8_desc conv_gemm_desc(const conv2d_desc& d, std::int64_t batch, std::int64_t m) {
  matmul_i8_desc md;
  md.batch = batch;
  md.m = m;
  md.n = d.out_c;
  md.k = d.in_c;
  md.a_type = d.in_type;
  md.b_type = d.w_type;
  md.a_zero_point = d.in_zero_point;
  md.a_scale = d.in_scale;
  md.out = d.out;
  return md;
}

// B [C_in, C_out] as a view of OHWI weights [C_out, 1, 1, C_in].
inline const_tensor_view conv_weights_as_b(const const_tensor_view& w) {
  const_tensor_view b = w;
  b.rank = 2;
  b.shape = {w.dim(3), w.dim(0), 0, 0};
  b.strides = {w.stride(3), w.stride(0), 0, 0};
  return b;
}

// Element view with its first dimension narrowed to [from, from + count) of dim `axis`.
template <bool M>
basic_tensor_view<M> narrow(const basic_tensor_view<M>& v, int axis, std::int64_t from,
                            std::int64_t count) {
  basic_tensor_view<M> s = v;
  const std::int64_t offset = from * v.stride(axis);  // elements (nibbles for 4-bit views)
  using byte_ptr = std::conditional_t<M, std::uint8_t*, const std::uint8_t*>;
  const std::int64_t bytes = is_4bit(v.type) ? offset / 2 : offset * (bits_of(v.type) / 8);
  if (v.data != nullptr) s.data = static_cast<byte_ptr>(v.data) + bytes;
  s.shape[static_cast<std::size_t>(axis)] = count;
  return s;
}

template <class T>
std::span<const T> narrow(std::span<const T> s, std::int64_t from, std::int64_t count) {
  if (s.size() <= 1) return s;  // absent or one value for all
  return s.subspan(static_cast<std::size_t>(from), static_cast<std::size_t>(count));
}

// Runs `count` independent reference calls in parallel and returns the first failure.
template <class Call>
Status parallel_calls(std::int64_t count, int max_threads, std::string_view op, const Call& call) {
  aligned_buffer<Status> results;
  if (!results.allocate(count)) {
    return Status::make(status_code::out_of_memory, op, "cannot allocate %lld task results",
                        static_cast<long long>(count));
  }
  parallel_for(count, max_threads, [&](std::int64_t t0, std::int64_t t1) {
    for (std::int64_t t = t0; t < t1; ++t) results[t] = call(t);
  });
  for (std::int64_t t = 0; t < count; ++t) {
    if (!results[t].ok()) return results[t];
  }
  return Status::Ok();
}

// How many pieces to cut `total` units into: about 4 per thread, none smaller than `min_piece`.
inline std::int64_t piece_count(std::int64_t total, std::int64_t min_piece, int threads) {
  const std::int64_t by_size =
      std::max<std::int64_t>(1, total / std::max<std::int64_t>(1, min_piece));
  return std::clamp<std::int64_t>(4 * threads, 1, std::min(total, by_size));
}

}  // namespace cpu_detail

class cpu_backend {
 public:
  static constexpr backend_caps caps{
      .name = "cpu",
      .kind = backend_kind::cpu,
      .bit_exact = true,
      .ops = op_bit(op_kind::matmul_i8) | op_bit(op_kind::matmul_i4) | op_bit(op_kind::conv2d_i8) |
             op_bit(op_kind::attention),
      .weight_types =
          dtype_bit(dtype::s8) | dtype_bit(dtype::u8) | dtype_bit(dtype::s4) | dtype_bit(dtype::u4),
  };

  using packed_matmul_i8 = cpu_packed_matmul_i8;
  using packed_matmul_i4 = cpu_packed_matmul_i4;
  using packed_conv2d = cpu_packed_conv2d;

  cpu_backend() = default;
  explicit cpu_backend(const cpu_options& o) : options_(o) {}
  const cpu_options& options() const noexcept { return options_; }

  Status supports(const matmul_i8_desc& d) const { return validate(d); }
  Status supports(const matmul_i4_desc& d) const { return validate(d); }
  Status supports(const conv2d_desc& d) const { return validate(d); }
  Status supports(const attention_desc& d) const { return validate(d); }

  // ---- matmul_i8 ------------------------------------------------------------------------------

  Result<packed_matmul_i8> pack(const matmul_i8_desc& d, const matmul_i8_args& a) {
    return cpu_detail::pack_matmul_i8(d, a, options_.max_threads);
  }
  Status run(const matmul_i8_desc& d, const packed_matmul_i8& p, const matmul_i8_args& a) {
    return cpu_detail::run_matmul_i8(d, p, a, matmul_options());
  }
  // Without packed weights: packs B for this call (validating everything first), then runs.
  Status run(const matmul_i8_desc& d, const matmul_i8_args& a) {
    KEEL_RETURN_IF_ERROR(validate(d, a));
    Result<packed_matmul_i8> p = pack(d, a);
    if (!p.ok()) return p.status();
    return run(d, p.value(), a);
  }

  // ---- matmul_i4: packed int4 weights and the kernels of keel/kernels/gemm_i4/ ----------------

  Result<packed_matmul_i4> pack(const matmul_i4_desc& d, const matmul_i4_args& a) {
    return kernels::gemm_i4::pack(d, a, options_.max_threads);
  }
  Status run(const matmul_i4_desc& d, const packed_matmul_i4& p, const matmul_i4_args& a) {
    return kernels::gemm_i4::run(d, p, a, {options_.max_threads, -1});
  }
  // Without packed weights: the reference's whole-call checks first (so every bad input gets its
  // exact message and nothing is written), then packs the weights for this call and runs.
  Status run(const matmul_i4_desc& d, const matmul_i4_args& a) {
    KEEL_RETURN_IF_ERROR(reference::validate_matmul_i4_call(d, a));
    Result<packed_matmul_i4> p = pack(d, a);
    if (!p.ok()) return p.status();
    return run(d, p.value(), a);
  }

  // ---- conv2d_i8
  // ----------------------------------------------------------------------------------

  Result<packed_conv2d> pack(const conv2d_desc& d, const conv2d_args& a) {
    constexpr std::string_view op = "conv2d_i8";
    KEEL_RETURN_IF_ERROR(validate(d));
    packed_conv2d p;
    p.desc = d;
    if (!cpu_detail::conv_is_gemm(d)) {
      p.weights.weights = a.weights;
      p.weights.w_scale = a.w_scale;
      p.weights.w_zero_point = a.w_zero_point;
      p.weights.bias = a.bias;
      return p;
    }
    // The weights are packed now, so they are validated now (with conv2d's names).
    KEEL_RETURN_IF_ERROR(
        detail::require_view(op, "weights", a.weights, d.w_type, {d.out_c, 1, 1, d.in_c}));
    KEEL_RETURN_IF_ERROR(detail::validate_channel_params(op, d.out_c, d.w_type, d.out, a.w_scale,
                                                         a.w_zero_point, a.bias));
    matmul_i8_args ma;
    ma.b = cpu_detail::conv_weights_as_b(a.weights);
    ma.b_scale = a.w_scale;
    ma.b_zero_point = a.w_zero_point;
    ma.bias = a.bias;
    Result<packed_matmul_i8> g = pack(cpu_detail::conv_gemm_desc(d, 1, d.in_h * d.in_w), ma);
    if (!g.ok()) return g.status();
    p.as_gemm = true;
    p.gemm = std::move(g).value();
    return p;
  }
  Status run(const conv2d_desc& d, const packed_conv2d& p, const conv2d_args& a) {
    const conv2d_desc& q = p.desc;
    if (d.out_c != q.out_c || d.in_c != q.in_c || d.kernel_h != q.kernel_h ||
        d.kernel_w != q.kernel_w || d.groups != q.groups || d.w_type != q.w_type) {
      return packed_mismatch("conv2d_i8");
    }
    if (!p.as_gemm || !cpu_detail::conv_is_gemm(d)) {
      if (p.as_gemm) {
        return Status::make(status_code::invalid_argument, "conv2d_i8",
                            "the weights were packed for a 1x1 unpadded stride-1 conv and this "
                            "desc is not one; pack them for this desc");
      }
      conv2d_args full = a;
      full.weights = p.weights.weights;
      full.w_scale = p.weights.w_scale;
      full.w_zero_point = p.weights.w_zero_point;
      full.bias = p.weights.bias;
      return run_conv_reference(d, full);
    }
    return run_conv_gemm(d, p.gemm, a);
  }
  Status run(const conv2d_desc& d, const conv2d_args& a) {
    KEEL_RETURN_IF_ERROR(validate(d, a));
    if (!cpu_detail::conv_is_gemm(d)) return run_conv_reference(d, a);
    Result<packed_conv2d> p = pack(d, a);
    if (!p.ok()) return p.status();
    return run_conv_gemm(d, p->gemm, a);
  }

  // ---- attention: the reference kernel over batch x query heads
  // -----------------------------------

  Status run(const attention_desc& d, const attention_args& a) {
    KEEL_RETURN_IF_ERROR(validate(d, a));
    const std::int64_t pieces = d.batch * d.q_heads;
    if (pieces <= 1 || cpu_detail::thread_count(options_.max_threads) <= 1) {
      return reference::attention(d, a);
    }
    const std::int64_t group = d.q_heads / d.kv_heads;
    return cpu_detail::parallel_calls(
        pieces, options_.max_threads, "attention", [&](std::int64_t t) {
          const std::int64_t b = t / d.q_heads;
          const std::int64_t h = t % d.q_heads;
          const std::int64_t hk = h / group;
          attention_desc sd = d;
          sd.batch = 1;
          sd.q_heads = 1;
          sd.kv_heads = 1;
          sd.causal_offset = d.resolved_causal_offset();  // q_len and kv_len are unchanged anyway
          attention_args sa = a;
          sa.q = cpu_detail::narrow(cpu_detail::narrow(a.q, 0, b, 1), 1, h, 1);
          sa.k = cpu_detail::narrow(cpu_detail::narrow(a.k, 0, b, 1), 1, hk, 1);
          sa.v = cpu_detail::narrow(cpu_detail::narrow(a.v, 0, b, 1), 1, hk, 1);
          sa.out = cpu_detail::narrow(cpu_detail::narrow(a.out, 0, b, 1), 1, h, 1);
          if (d.mask == mask_kind::additive) {
            const_tensor_view m = a.mask;
            if (m.dim(0) != 1) m = cpu_detail::narrow(m, 0, b, 1);
            if (m.dim(1) != 1) m = cpu_detail::narrow(m, 1, h, 1);
            sa.mask = m;
          }
          const auto scales = [&](std::span<const float> s, scale_granularity g, std::int64_t heads,
                                  std::int64_t head, std::int64_t len) {
            switch (g) {
              case scale_granularity::per_tensor: return s;
              case scale_granularity::per_head: return s.subspan(static_cast<std::size_t>(head), 1);
              case scale_granularity::per_token:
                return s.subspan(static_cast<std::size_t>((b * heads + head) * len),
                                 static_cast<std::size_t>(len));
            }
            return s;
          };
          if (d.q_type == dtype::s8)
            sa.q_scale = scales(a.q_scale, d.q_scale, d.q_heads, h, d.q_len);
          if (d.kv_type == dtype::s8) {
            sa.k_scale = scales(a.k_scale, d.kv_scale, d.kv_heads, hk, d.kv_len);
            sa.v_scale = scales(a.v_scale, d.kv_scale, d.kv_heads, hk, d.kv_len);
          }
          return reference::attention(sd, sa);
        });
  }

 private:
  cpu_detail::matmul_options matmul_options() const noexcept {
    return {options_.max_threads, options_.forced_kernel};
  }

  static Status packed_mismatch(const char* op) {
    return Status::make(status_code::shape_mismatch, op,
                        "the desc differs from the one the weights were packed for (weight "
                        "shape, dtype or grouping)");
  }

  // A 1x1 conv over NHWC pixels as matmul_i8: A = input [N, H*W, C_in] (or one matmul per image
  // row when the pixels of an image are not evenly strided), B = weights^T, out [N, H*W, C_out].
  Status run_conv_gemm(const conv2d_desc& d, const packed_matmul_i8& w, const conv2d_args& a) {
    constexpr std::string_view op = "conv2d_i8";
    KEEL_RETURN_IF_ERROR(validate(d));
    KEEL_RETURN_IF_ERROR(
        detail::require_view(op, "input", a.input, d.in_type, {d.batch, d.in_h, d.in_w, d.in_c}));
    KEEL_RETURN_IF_ERROR(
        detail::require_view(op, "out", a.out, d.out.type, {d.batch, d.in_h, d.in_w, d.out_c}));
    if (d.batch == 0) return Status::Ok();
    const matmul_i8_args ma{};
    const auto rows_view = [](const auto& v, std::int64_t n, std::int64_t h, std::int64_t rows) {
      auto r = v;
      r.rank = 2;
      using byte_ptr = std::conditional_t<std::is_same_v<decltype(r), tensor_view>, std::uint8_t*,
                                          const std::uint8_t*>;
      r.data = static_cast<byte_ptr>(v.data) +
               (n * v.stride(0) + h * v.stride(1)) * (bits_of(v.type) / 8);
      r.shape = {rows, v.dim(3), 0, 0};
      r.strides = {v.stride(2), v.stride(3), 0, 0};
      return r;
    };
    const bool flat_in = d.in_h == 1 || a.input.stride(1) == d.in_w * a.input.stride(2);
    const bool flat_out = d.in_h == 1 || a.out.stride(1) == d.in_w * a.out.stride(2);
    if (flat_in && flat_out) {
      matmul_i8_args m = ma;
      m.a = a.input;
      m.a.rank = 3;
      m.a.shape = {d.batch, d.in_h * d.in_w, d.in_c, 0};
      m.a.strides = {a.input.stride(0), a.input.stride(2), a.input.stride(3), 0};
      m.out = a.out;
      m.out.rank = 3;
      m.out.shape = {d.batch, d.in_h * d.in_w, d.out_c, 0};
      m.out.strides = {a.out.stride(0), a.out.stride(2), a.out.stride(3), 0};
      return run(cpu_detail::conv_gemm_desc(d, d.batch, d.in_h * d.in_w), w, m);
    }
    // Unevenly strided pixels: validate everything once, then one matmul per image row.
    matmul_i8_args first = ma;
    first.a = rows_view(a.input, 0, 0, d.in_w);
    first.out = rows_view(a.out, 0, 0, d.in_w);
    KEEL_RETURN_IF_ERROR(
        cpu_detail::validate_packed_run(cpu_detail::conv_gemm_desc(d, 1, d.in_w), w, first));
    for (std::int64_t n = 0; n < d.batch; ++n) {
      for (std::int64_t h = 0; h < d.in_h; ++h) {
        matmul_i8_args m = ma;
        m.a = rows_view(a.input, n, h, d.in_w);
        m.out = rows_view(a.out, n, h, d.in_w);
        KEEL_RETURN_IF_ERROR(run(cpu_detail::conv_gemm_desc(d, 1, d.in_w), w, m));
      }
    }
    return Status::Ok();
  }

  // Any other conv: the reference kernel, split over images and over groups of output channels
  // (at group boundaries, so each piece is itself a valid conv).
  Status run_conv_reference(const conv2d_desc& d, const conv2d_args& a) {
    KEEL_RETURN_IF_ERROR(validate(d, a));
    const int threads = cpu_detail::thread_count(options_.max_threads);
    if (d.batch == 0) return Status::Ok();
    if (threads <= 1) return reference::conv2d_i8(d, a);
    // Channel pieces: whole groups; with one group, chunks of output channels.
    const std::int64_t units = d.groups > 1 ? d.groups : d.out_c;
    const std::int64_t per_image = cpu_detail::piece_count(units, 1, threads);
    const std::int64_t unit_step = (units + per_image - 1) / per_image;
    const std::int64_t cin_g = d.in_c / d.groups, cout_g = d.out_c / d.groups;
    return cpu_detail::parallel_calls(
        d.batch * per_image, options_.max_threads, "conv2d_i8", [&](std::int64_t t) {
          const std::int64_t n = t / per_image;
          const std::int64_t u0 = (t % per_image) * unit_step;
          const std::int64_t uc = std::min(unit_step, units - u0);
          if (uc <= 0) return Status::Ok();
          conv2d_desc sd = d;
          sd.batch = 1;
          conv2d_args sa = a;
          sa.input = cpu_detail::narrow(a.input, 0, n, 1);
          sa.out = cpu_detail::narrow(a.out, 0, n, 1);
          const std::int64_t oc0 = d.groups > 1 ? u0 * cout_g : u0;
          const std::int64_t occ = d.groups > 1 ? uc * cout_g : uc;
          if (d.groups > 1) {
            sd.groups = uc;
            sd.in_c = uc * cin_g;
            sa.input = cpu_detail::narrow(sa.input, 3, u0 * cin_g, uc * cin_g);
          }
          sd.out_c = occ;
          sa.weights = cpu_detail::narrow(a.weights, 0, oc0, occ);
          sa.out = cpu_detail::narrow(sa.out, 3, oc0, occ);
          sa.w_scale = cpu_detail::narrow(a.w_scale, oc0, occ);
          sa.w_zero_point = cpu_detail::narrow(a.w_zero_point, oc0, occ);
          sa.bias = a.bias.empty() ? a.bias
                                   : a.bias.subspan(static_cast<std::size_t>(oc0),
                                                    static_cast<std::size_t>(occ));
          return reference::conv2d_i8(sd, sa);
        });
  }

  cpu_options options_{};
};

static_assert(backend<cpu_backend>, "the cpu backend must satisfy keel::backend");

}  // namespace keel::backends
