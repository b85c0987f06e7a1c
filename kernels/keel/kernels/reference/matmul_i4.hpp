// keel/kernels/reference/matmul_i4.hpp — the oracle for matmul_i4: f32 activations times int4
// weights with per-group scales. Every other backend reproduces these definitions: bit for bit
// on the int32 group sums of dynamic_s8, within its stated bound on the f32 outputs.
//
// The op, for out[m, n] (per batch; every batch shares W, scales, zero points and bias):
//
//   W       s4 or u4, [N, K] with K dense, two nibbles a byte, low nibble first (load_nibble).
//   groups  group g covers k in [g*G, min((g+1)*G, K)); a K that G does not divide ends in a
//           partial group. G is desc.group_size; there are ceil(K / G) groups.
//   z[n,g]  u4 with a zero-point view: its value (0..15); u4 without one: 8; s4: 0.
//   s[n,g]  the scale, f32, or f16 widened exactly with keel::f16_to_f32. Any finite value,
//           negative included (GGUF Q4_0 stores negative scales); non-finite is rejected.
//
//   activation f32:
//     out[m,n] = sum over g ascending of ( s[n,g] * (sum over k in g ascending of
//                a[m,k] * float(W[n,k] - z[n,g])) ), every operation in f32 with one rounding
//                each (no fused multiply-add), each sum starting from +0.0f; then + bias[n]
//                when a bias is given.
//
//   activation dynamic_s8 (each row of A is quantized on the fly; quantize_row_s8_symmetric):
//     amax    = max over k of |a[m,k]|
//     a_scale = amax / 127 in f32
//     q[k]    = clamp(round_half_even(a[m,k] / a_scale), -127, 127), division in f32;
//               when a_scale == 0 (amax == 0, or amax so small that amax / 127 underflows to 0)
//               every q[k] is 0 and a_scale is 0: never a NaN
//     isum_g  = the exact int32 sum over k in g of q[k] * (W[n,k] - z[n,g])
//     out[m,n] = sum over g ascending of float(isum_g) * (a_scale * s[n,g]), the product in
//                parentheses rounded to f32 first, the sum in f32 from +0.0f; then + bias[n].
//     Non-finite activations make the call return invalid_argument before anything is written.
//
// Checks, in order, before the first write: validate(desc, args) (shapes, dtypes, group size,
// and the int32 bound of the group sums), then the values: zero points in 0..15, scales finite,
// and, for dynamic_s8, activations finite. A batch of 0 writes nothing.
//
// "No fused multiply-add" holds under every compiler flag: each product that a sum consumes goes
// through keel::rounded_product (quant.hpp), which GCC and Clang cannot contract.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>

#include "keel/ops.hpp"

namespace keel::reference {

// ---- the dynamic int8 row quantizer (public: fast backends must reproduce it bit for bit) ----

// The symmetric s8 scale of a row whose largest magnitude is `amax` (finite, >= 0).
inline float symmetric_s8_scale(float amax) noexcept {
  return amax / 127.0f;
}

// One element: clamp(round_half_even(x / scale), -127, 127), or 0 when scale is 0. x finite.
inline std::int8_t quantize_s8_symmetric(float x, float scale) noexcept {
  if (scale == 0.0f) return 0;
  float r = round_half_even(x / scale);
  // |x| <= amax, so x / scale is about 127 at most; only a subnormal scale (whose own rounding
  // error is large) can push it past 127, which the clamp absorbs.
  r = r < -127.0f ? -127.0f : (r > 127.0f ? 127.0f : r);
  return static_cast<std::int8_t>(r);
}

// Quantizes the row x[0], x[stride], ..., x[(k-1)*stride] into q[0..k) and returns its scale.
// Requires every element finite (matmul_i4 checks that before it calls this); k >= 0.
inline float quantize_row_s8_symmetric(const float* x, std::int64_t stride, std::int64_t k,
                                       std::int8_t* q) noexcept {
  float amax = 0.0f;
  for (std::int64_t i = 0; i < k; ++i) {
    const float v = std::fabs(x[i * stride]);
    amax = v > amax ? v : amax;
  }
  const float scale = symmetric_s8_scale(amax);
  for (std::int64_t i = 0; i < k; ++i) q[i] = quantize_s8_symmetric(x[i * stride], scale);
  return scale;
}

// The same for a dense row.
inline float quantize_row_s8_symmetric(std::span<const float> x,
                                       std::span<std::int8_t> q) noexcept {
  KEEL_DASSERT(q.size() >= x.size(), "room for the quantized row");
  return quantize_row_s8_symmetric(x.data(), 1, static_cast<std::int64_t>(x.size()), q.data());
}

namespace detail {

inline bool has_zero_point_view(const matmul_i4_args& a) noexcept {
  return a.zero_point.data != nullptr || a.zero_point.rank != 0;
}

// z[n, g] as defined at the top of this file.
inline std::int32_t i4_zero_point(const matmul_i4_desc& d, const matmul_i4_args& a, std::int64_t n,
                                  std::int64_t g) noexcept {
  if (d.b_type == dtype::s4) return 0;
  if (!has_zero_point_view(a)) return 8;
  return *a.zero_point.at<std::uint8_t>(n * a.zero_point.stride(0) + g * a.zero_point.stride(1));
}

// s[n, g] widened to f32.
inline float i4_scale(const matmul_i4_desc& d, const matmul_i4_args& a, std::int64_t n,
                      std::int64_t g) noexcept {
  const std::int64_t off = n * a.scale.stride(0) + g * a.scale.stride(1);
  return d.scale_type == dtype::f16 ? f16_to_f32(*a.scale.at<f16>(off)) : *a.scale.at<float>(off);
}

// Offset of a[b, m, k] in elements; `batched` says whether A has the leading batch dim.
inline std::int64_t i4_a_offset(const const_tensor_view& v, bool batched, std::int64_t b,
                                std::int64_t m, std::int64_t k) noexcept {
  return batched ? b * v.stride(0) + m * v.stride(1) + k * v.stride(2)
                 : m * v.stride(0) + k * v.stride(1);
}

// The checks of values that validate(desc, args) does not read: they scan the operands once,
// before anything is written.
inline Status validate_i4_values(const matmul_i4_desc& d, const matmul_i4_args& a) {
  constexpr std::string_view op = "matmul_i4";
  const std::int64_t groups = d.groups();
  for (std::int64_t n = 0; n < d.n; ++n) {
    for (std::int64_t g = 0; g < groups; ++g) {
      const float s = i4_scale(d, a, n, g);
      if (!std::isfinite(s)) {
        return Status::make(status_code::invalid_argument, op,
                            "scale[%lld, %lld] = %g (must be finite)", static_cast<long long>(n),
                            static_cast<long long>(g), static_cast<double>(s));
      }
      if (d.b_type == dtype::u4 && has_zero_point_view(a)) {
        const std::int32_t z = i4_zero_point(d, a, n, g);
        if (z > 15) {
          return Status::make(status_code::invalid_argument, op,
                              "zero point[%lld, %lld] = %d (must be a u4 value, 0..15)",
                              static_cast<long long>(n), static_cast<long long>(g), z);
        }
      }
    }
  }
  if (d.activation == i4_activation::dynamic_s8) {
    const bool batched = a.a.rank == 3;
    for (std::int64_t b = 0; b < d.batch; ++b) {
      for (std::int64_t m = 0; m < d.m; ++m) {
        for (std::int64_t k = 0; k < d.k; ++k) {
          const float x = *a.a.at<float>(i4_a_offset(a.a, batched, b, m, k));
          if (!std::isfinite(x)) {
            return Status::make(status_code::invalid_argument, op,
                                "A[%lld, %lld, %lld] = %g (dynamic_s8 needs finite activations "
                                "to compute a row scale)",
                                static_cast<long long>(b), static_cast<long long>(m),
                                static_cast<long long>(k), static_cast<double>(x));
          }
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace detail

// Checks everything matmul_i4 checks, writes nothing. Fast backends call this too, so that every
// backend rejects the same inputs with the same message.
inline Status validate_matmul_i4_call(const matmul_i4_desc& d, const matmul_i4_args& a) {
  KEEL_RETURN_IF_ERROR(validate(d, a));
  return detail::validate_i4_values(d, a);
}

inline Status matmul_i4(const matmul_i4_desc& d, const matmul_i4_args& a) {
  KEEL_RETURN_IF_ERROR(validate_matmul_i4_call(d, a));

  // ---- setup -------------------------------------------------------------------------------
  const bool batched = a.a.rank == 3;
  const int ro = batched ? 1 : 0;  // index of the M dim in out
  const std::int64_t G = d.group_size;
  const std::int64_t groups = d.groups();
  const auto* w = static_cast<const std::uint8_t*>(a.b.data);
  const bool dynamic = d.activation == i4_activation::dynamic_s8;

  for (std::int64_t b = 0; b < d.batch; ++b) {
    for (std::int64_t m = 0; m < d.m; ++m) {
      // ---- row setup: the dynamic_s8 row scale (the quantized values are recomputed per use
      // from it, with the same function, so the reference needs no scratch buffer) ----------
      float a_scale = 0.0f;
      if (dynamic) {
        float amax = 0.0f;
        for (std::int64_t k = 0; k < d.k; ++k) {
          const float v = std::fabs(*a.a.at<float>(detail::i4_a_offset(a.a, batched, b, m, k)));
          amax = v > amax ? v : amax;
        }
        a_scale = symmetric_s8_scale(amax);
      }

      for (std::int64_t n = 0; n < d.n; ++n) {
        const std::int64_t w_row = n * a.b.stride(0);  // nibble index of W[n, 0]
        float acc = 0.0f;

        // ---- groups, ascending; the last one may be partial ----------------------------------
        for (std::int64_t g = 0; g < groups; ++g) {
          const std::int64_t k0 = g * G;
          const std::int64_t k1 = (k0 + G < d.k) ? k0 + G : d.k;
          const std::int32_t z = detail::i4_zero_point(d, a, n, g);
          const float s = detail::i4_scale(d, a, n, g);
          if (dynamic) {
            std::int32_t isum = 0;  // exact: validate() bounds G * 127 * 15 by INT32_MAX
            for (std::int64_t k = k0; k < k1; ++k) {
              const float x = *a.a.at<float>(detail::i4_a_offset(a.a, batched, b, m, k));
              const std::int32_t q = quantize_s8_symmetric(x, a_scale);
              isum += q * (load_nibble(w, w_row + k, d.b_type) - z);
            }
            const float c = a_scale * s;  // rounded before it meets the sum
            const float term = rounded_product(static_cast<float>(isum), c);
            acc += term;
          } else {
            float gsum = 0.0f;
            for (std::int64_t k = k0; k < k1; ++k) {
              const float x = *a.a.at<float>(detail::i4_a_offset(a.a, batched, b, m, k));
              const float wv = static_cast<float>(load_nibble(w, w_row + k, d.b_type) - z);
              const float p = rounded_product(x, wv);  // never fused with the sum
              gsum += p;
            }
            const float term = rounded_product(s, gsum);
            acc += term;
          }
        }

        // ---- store -----------------------------------------------------------------------------
        if (!a.bias.empty()) acc += a.bias[static_cast<std::size_t>(n)];
        const std::int64_t o =
            (batched ? b * a.out.stride(0) : 0) + m * a.out.stride(ro) + n * a.out.stride(ro + 1);
        *a.out.at<float>(o) = acc;
      }
    }
  }
  return Status::Ok();
}

}  // namespace keel::reference
