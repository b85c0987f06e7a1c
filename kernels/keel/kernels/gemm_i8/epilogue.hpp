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

// Forced inline so that an ISA's wrapper (e.g. avx2::epilogue) compiles this code for its own
// target; GCC does not inline it into a target-attributed function on its own.
#if defined(__GNUC__)
#define KEEL_EPILOGUE_INLINE inline __attribute__((always_inline))
#else
#define KEEL_EPILOGUE_INLINE inline
#endif

namespace keel::kernels::gemm_i8 {

struct epilogue_params {
  output_quant out;                       // the output stage (type, mode, zero point, clamp)
  void* out_data = nullptr;               // the output tensor's data
  std::int64_t out_base = 0;              // element offset of (m = 0, n = 0) of this matrix
  std::int64_t out_stride_m = 0;          // elements
  std::int64_t out_stride_n = 0;          // elements
  const std::int32_t* zb = nullptr;       // zb'[n]
  const std::int32_t* colterm = nullptr;  // K * za' * zb'[n] - za' * colsum[n]  (mod 2^32)
  const std::int32_t* bias = nullptr;     // bias[n], or null for none
  const channel_requant* rq = nullptr;    // per column, for f32, s8 and u8 outputs
  const std::int32_t* rowsum = nullptr;   // rowsum(A')[m] of this matrix
  bool zb_zero = false;  // every zb'[n] is 0 (symmetric weights): an epilogue may skip zb' * rowsum
};

// Saturating int32 addition: the reference's add_bias (sum + bias clamped to int32).
KEEL_EPILOGUE_INLINE constexpr std::int32_t add_saturate(std::int32_t x, std::int32_t y) noexcept {
  const std::int64_t s = static_cast<std::int64_t>(x) + y;
  return s > std::numeric_limits<std::int32_t>::max()   ? std::numeric_limits<std::int32_t>::max()
         : s < std::numeric_limits<std::int32_t>::min() ? std::numeric_limits<std::int32_t>::min()
                                                        : static_cast<std::int32_t>(s);
}

// Phases 1 and 2 for `Cols` (a compile-time count, so the loops vectorize without peeling) or
// `cols` columns of one row: acc[c] for columns n0 .. n0 + cols.
template <int Cols>
KEEL_EPILOGUE_INLINE void accumulators_row(const epilogue_params& e, const std::int32_t* raw,
                                           std::int64_t m, std::int64_t n0, int cols,
                                           std::int32_t* acc) noexcept {
  const int n = Cols > 0 ? Cols : cols;
  const std::uint32_t rs = static_cast<std::uint32_t>(e.rowsum[m]);
  const std::int32_t* zb = e.zb + n0;
  const std::int32_t* ct = e.colterm + n0;
  for (int c = 0; c < n; ++c) {
    const std::uint32_t s = static_cast<std::uint32_t>(raw[c]) -
                            static_cast<std::uint32_t>(zb[c]) * rs +
                            static_cast<std::uint32_t>(ct[c]);
    acc[c] = static_cast<std::int32_t>(s);
  }
  if (e.bias != nullptr) {
    const std::int32_t* bias = e.bias + n0;
    for (int c = 0; c < n; ++c) acc[c] = add_saturate(acc[c], bias[c]);
  }
}

// Phase 3 for `Cols` (compile-time) or `cols` columns of one row starting at output (m, n0).
template <int Cols>
KEEL_EPILOGUE_INLINE void store_row(const epilogue_params& e, const std::int32_t* acc,
                                    std::int64_t m, std::int64_t n0, int cols) noexcept {
  const int n = Cols > 0 ? Cols : cols;
  const std::int64_t off = e.out_base + m * e.out_stride_m + n0 * e.out_stride_n;
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
      const channel_requant* rq = e.rq + n0;
      for (int c = 0; c < n; ++c) o[c * sn] = dequantize_acc(acc[c], rq[c]);
      break;
    }
    case dtype::s8: {
      auto* o = static_cast<std::int8_t*>(e.out_data) + off;
      const channel_requant* rq = e.rq + n0;
      for (int c = 0; c < n; ++c) {
        o[c * sn] = static_cast<std::int8_t>(requantize(acc[c], rq[c], e.out));
      }
      break;
    }
    case dtype::u8: {
      auto* o = static_cast<std::uint8_t*>(e.out_data) + off;
      const channel_requant* rq = e.rq + n0;
      for (int c = 0; c < n; ++c) {
        o[c * sn] = static_cast<std::uint8_t>(requantize(acc[c], rq[c], e.out));
      }
      break;
    }
    default: break;  // validated: s32, f32, s8 or u8
  }
}

// Applies all phases to a rows x cols tile of raw sums (row r at raw + r * ld_raw) whose first
// element is output (m0, n0): whole groups of 8 columns at a time, then the rest.
KEEL_EPILOGUE_INLINE void apply_epilogue(const epilogue_params& e, const std::int32_t* raw,
                                         std::int64_t ld_raw, std::int64_t m0, int rows,
                                         std::int64_t n0, int cols) noexcept {
  constexpr int kGroup = 8;
  alignas(32) std::int32_t acc[kGroup];
  for (int r = 0; r < rows; ++r) {
    const std::int64_t m = m0 + r;
    const std::int32_t* raw_row = raw + r * ld_raw;
    int c0 = 0;
    for (; c0 + kGroup <= cols; c0 += kGroup) {
      accumulators_row<kGroup>(e, raw_row + c0, m, n0 + c0, kGroup, acc);
      store_row<kGroup>(e, acc, m, n0 + c0, kGroup);
    }
    if (c0 < cols) {
      accumulators_row<0>(e, raw_row + c0, m, n0 + c0, cols - c0, acc);
      store_row<0>(e, acc, m, n0 + c0, cols - c0);
    }
  }
}

using epilogue_fn = void (*)(const epilogue_params&, const std::int32_t* raw, std::int64_t ld_raw,
                             std::int64_t m0, int rows, std::int64_t n0, int cols);

}  // namespace keel::kernels::gemm_i8
