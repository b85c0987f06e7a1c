// keel/kernels/gemm_i4/scalar.hpp — the portable kernels: plain C++ on the packed layout, for any
// CPU (the registry's fallback on ISAs without a hand-tuned kernel). Both follow the reference's
// order operation by operation, so both give the reference's bits:
//
//   f32 (ord)  per column: gsum += rounded(x * (u - z)) k-ascending, acc += rounded(s * gsum)
//   s8  (i32)  per column: isum exact in int32, acc += rounded(float(isum) * rounded(a_scale * s))
//
// keel::rounded_product keeps every product its own rounding under any -ffp-contract.
#pragma once

#include <cstdint>
#include <cstring>

#include "keel/kernels/gemm_i4/variant.hpp"
#include "keel/quant.hpp"

namespace keel::kernels::gemm_i4::scalar {

namespace detail {

// The weight u of column c at K position kk (0..units*8) of a record.
inline std::int32_t unit_value(const std::uint8_t* rec, int c, std::int64_t kk) noexcept {
  const std::uint8_t byte = rec[(kk / kUnitK) * kUnitBytes + c * 4 + (kk % kUnitK & 3)];
  return (kk % kUnitK) < 4 ? (byte & 0x0F) : (byte >> 4);
}

inline float record_scale(const std::uint8_t* rec, std::int64_t units, int c) noexcept {
  float s;
  std::memcpy(&s, rec + units * kUnitBytes + c * 4, sizeof(s));
  return s;
}

inline std::int32_t record_zero_point(const packed_geometry& geo, const std::uint8_t* rec,
                                      std::int64_t units, int c) noexcept {
  return geo.has_zero_points ? rec[units * kUnitBytes + kScaleBytes + c] : kDefaultZeroPoint;
}

}  // namespace detail

// f32 activations, reference order. Padding K values add 0 * 0 = +0, which changes no sum (a
// sum that starts at +0 never becomes -0), so they need no special case.
inline void gemm_f32_ord(const kernel_args& p) noexcept {
  const packed_geometry& geo = *p.geo;
  const auto* a = static_cast<const float*>(p.a);
  for (int j = 0; j < p.panels; ++j) {
    for (int r = 0; r < p.rows; ++r) {
      const float* x = a + r * p.lda;
      for (int c = 0; c < kPanelCols; ++c) {
        const std::uint8_t* rec = p.w + j * p.panel_stride;
        float acc = 0.0f;
        std::int64_t k0 = 0;  // padded K of the record's first value
        for (std::int64_t g = 0; g < geo.groups; ++g) {
          const std::int64_t units = geo.units_of(g);
          const std::int32_t z = detail::record_zero_point(geo, rec, units, c);
          float gsum = 0.0f;
          for (std::int64_t kk = 0; kk < units * kUnitK; ++kk) {
            const float wv = static_cast<float>(detail::unit_value(rec, c, kk) - z);
            gsum += rounded_product(x[k0 + kk], wv);
          }
          acc += rounded_product(detail::record_scale(rec, units, c), gsum);
          k0 += units * kUnitK;
          rec += geo.record_bytes_for(units);
        }
        p.out[r * p.ld_out + j * kPanelCols + c] = acc;
      }
    }
  }
}

// dynamic_s8 activations: exact int32 group sums, the f32 sum in the reference's order.
inline void gemm_s8_i32(const kernel_args& p) noexcept {
  const packed_geometry& geo = *p.geo;
  const auto* a = static_cast<const std::int8_t*>(p.a);
  for (int j = 0; j < p.panels; ++j) {
    for (int r = 0; r < p.rows; ++r) {
      const std::int8_t* q = a + r * p.lda;
      for (int c = 0; c < kPanelCols; ++c) {
        const std::uint8_t* rec = p.w + j * p.panel_stride;
        float acc = 0.0f;
        std::int64_t k0 = 0;
        for (std::int64_t g = 0; g < geo.groups; ++g) {
          const std::int64_t units = geo.units_of(g);
          const std::int32_t z = detail::record_zero_point(geo, rec, units, c);
          std::int32_t isum = 0;  // exact: validate() bounds G * 127 * 15 by INT32_MAX
          for (std::int64_t kk = 0; kk < units * kUnitK; ++kk) {
            isum += std::int32_t{q[k0 + kk]} * (detail::unit_value(rec, c, kk) - z);
          }
          const float cs = p.a_scale[r] * detail::record_scale(rec, units, c);
          acc += rounded_product(static_cast<float>(isum), cs);
          k0 += units * kUnitK;
          rec += geo.record_bytes_for(units);
        }
        p.out[r * p.ld_out + j * kPanelCols + c] = acc;
      }
    }
  }
}

}  // namespace keel::kernels::gemm_i4::scalar
