// keel/kernels/gemm_i8/epilogue.hpp — from a microkernel's raw int32 tile to the output, in
// every output mode, bit for bit as keel::reference::matmul_i8 computes it.
//
// Phases, per element (m, n):
//   1. zero points:  S = raw - zb'[n] * rowsum[m] + colterm[n]   (mod 2^32; packing.hpp), where
//                    colterm[n] = K * za' * zb'[n] - za' * colsum[n] (mod 2^32), precomputed per
//                    call. Validation guarantees the true S fits int32, so S is exact.
//   2. bias:         acc = saturate_int32(S + bias[n])            (the reference's add_bias)
//   3. output stage: s32 as is; f32 = float(acc) * dequant[n]; s8/u8 = keel::requantize, the
//                    same function the reference calls, with the same per-column constants.
#pragma once

#include <cstdint>
#include <limits>

#include "keel/quant.hpp"

namespace keel::kernels::gemm_i8 {

struct epilogue_params {
  output_quant out;                     // the output stage (type, mode, zero point, clamp)
  void* out_data = nullptr;             // the output tensor's data
  std::int64_t out_base = 0;            // element offset of (m = 0, n = 0) of this matrix
  std::int64_t out_stride_m = 0;        // elements
  std::int64_t out_stride_n = 0;        // elements
  const std::int32_t* zb = nullptr;       // zb'[n]
  const std::int32_t* colterm = nullptr;  // K * za' * zb'[n] - za' * colsum[n]  (mod 2^32)
  const std::int32_t* bias = nullptr;     // bias[n], or null for none
  const channel_requant* rq = nullptr;    // per column, for f32, s8 and u8 outputs
  const std::int32_t* rowsum = nullptr;   // rowsum(A')[m] of this matrix
};

// Saturating int32 addition: the reference's add_bias (sum + bias clamped to int32).
constexpr std::int32_t add_saturate(std::int32_t x, std::int32_t y) noexcept {
  const std::int64_t s = static_cast<std::int64_t>(x) + y;
  return s > std::numeric_limits<std::int32_t>::max()   ? std::numeric_limits<std::int32_t>::max()
         : s < std::numeric_limits<std::int32_t>::min() ? std::numeric_limits<std::int32_t>::min()
                                                        : static_cast<std::int32_t>(s);
}

// Phases 1 and 2 for one row of a tile: acc[c] for columns n0 .. n0 + cols.
inline void accumulators_row(const epilogue_params& e, const std::int32_t* raw, std::int64_t m,
                             std::int64_t n0, int cols, std::int32_t* acc) noexcept {
  const std::uint32_t rs = static_cast<std::uint32_t>(e.rowsum[m]);
  const std::int32_t* zb = e.zb + n0;
  const std::int32_t* ct = e.colterm + n0;
  for (int c = 0; c < cols; ++c) {
    const std::uint32_t s = static_cast<std::uint32_t>(raw[c]) -
                            static_cast<std::uint32_t>(zb[c]) * rs +
                            static_cast<std::uint32_t>(ct[c]);
    acc[c] = static_cast<std::int32_t>(s);
  }
  if (e.bias != nullptr) {
    const std::int32_t* bias = e.bias + n0;
    for (int c = 0; c < cols; ++c) acc[c] = add_saturate(acc[c], bias[c]);
  }
}

// Applies all phases to a rows x cols tile of raw sums (row r at raw + r * ld_raw) whose first
// element is output (m0, n0).
inline void apply_epilogue(const epilogue_params& e, const std::int32_t* raw, std::int64_t ld_raw,
                           std::int64_t m0, int rows, std::int64_t n0, int cols) noexcept {
  constexpr int kChunk = 64;
  std::int32_t acc[kChunk];
  for (int r = 0; r < rows; ++r) {
    const std::int64_t m = m0 + r;
    const std::int64_t row_off = e.out_base + m * e.out_stride_m;
    for (int c0 = 0; c0 < cols; c0 += kChunk) {
      const int n = cols - c0 < kChunk ? cols - c0 : kChunk;
      const std::int64_t nb = n0 + c0;
      accumulators_row(e, raw + r * ld_raw + c0, m, nb, n, acc);
      const std::int64_t off = row_off + nb * e.out_stride_n;
      const std::int64_t sn = e.out_stride_n;
      switch (e.out.type) {
        case dtype::s32: {
          auto* o = static_cast<std::int32_t*>(e.out_data) + off;
          if (sn == 1) {
            for (int c = 0; c < n; ++c) o[c] = acc[c];
          } else {
            for (int c = 0; c < n; ++c) o[c * sn] = acc[c];
          }
          break;
        }
        case dtype::f32: {
          auto* o = static_cast<float*>(e.out_data) + off;
          const channel_requant* rq = e.rq + nb;
          for (int c = 0; c < n; ++c) o[c * sn] = dequantize_acc(acc[c], rq[c]);
          break;
        }
        case dtype::s8: {
          auto* o = static_cast<std::int8_t*>(e.out_data) + off;
          const channel_requant* rq = e.rq + nb;
          for (int c = 0; c < n; ++c) {
            o[c * sn] = static_cast<std::int8_t>(requantize(acc[c], rq[c], e.out));
          }
          break;
        }
        case dtype::u8: {
          auto* o = static_cast<std::uint8_t*>(e.out_data) + off;
          const channel_requant* rq = e.rq + nb;
          for (int c = 0; c < n; ++c) {
            o[c * sn] = static_cast<std::uint8_t>(requantize(acc[c], rq[c], e.out));
          }
          break;
        }
        default: break;  // validated: s32, f32, s8 or u8
      }
    }
  }
}

}  // namespace keel::kernels::gemm_i8
