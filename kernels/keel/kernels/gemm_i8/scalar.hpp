// keel/kernels/gemm_i8/scalar.hpp — the portable microkernel: plain C++ on the p8k4 layout.
//
// Runs on any CPU (the `_scalar` fallback of the registry, and the Arm build's until its NEON
// kernels come); exact by construction: each product is formed in int32 and summed modulo 2^32
// (unsigned arithmetic, so the wrap the epilogue relies on is defined behaviour).
#pragma once

#include <cstdint>

#include "keel/kernels/gemm_i8/variant.hpp"

namespace keel::kernels::gemm_i8::scalar {

inline constexpr packing kPacking{8, 4};

// A panel: int16 [kq][MR][4]; B panels: s8 [kq][8][4]; raw: [rows][ld_raw].
template <int MR>
void gemm_i32(const ukernel_args& p) noexcept {
  constexpr int kPc = kPacking.panel_cols;
  constexpr int kKg = kPacking.k_group;
  const auto* a = static_cast<const std::int16_t*>(p.a);
  for (int j = 0; j < p.panels; ++j) {
    const std::int8_t* b = p.b + j * p.b_panel_stride;
    for (int r = 0; r < p.rows; ++r) {
      std::uint32_t acc[kPc] = {};
      // Main loop: one K group (4 values) of row r against the 8 columns of the panel.
      for (std::int64_t g = 0; g < p.kq; ++g) {
        const std::int16_t* ag = a + (g * MR + r) * kKg;
        const std::int8_t* bg = b + g * kPacking.group_bytes();
        for (int c = 0; c < kPc; ++c) {
          for (int kk = 0; kk < kKg; ++kk) {
            acc[c] += static_cast<std::uint32_t>(std::int32_t{ag[kk]} * bg[c * kKg + kk]);
          }
        }
      }
      // Store.
      for (int c = 0; c < kPc; ++c) {
        p.raw[r * p.ld_raw + j * kPc + c] = static_cast<std::int32_t>(acc[c]);
      }
    }
  }
}

}  // namespace keel::kernels::gemm_i8::scalar
