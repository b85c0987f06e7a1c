// keel/kernels/gemm_i8/hwy-inl.hpp — the portable Highway microkernel, compiled once per target
// by hwy/foreach_target.h (included from keel/kernels/gemm_i8/hwy.hpp; do not include directly).
//
// Technique w16 (exact for every input): B' bytes are promoted to int16 and multiplied by A'
// (stored as int16 by the A packer) with ReorderWidenMulAccumulate, Highway 1.0.3's int16 ->
// int32 pairwise multiply-add (vpmaddwd on x86, vmlal on NEON). Products are at most
// 255 * 128 = 32640 in magnitude and pairs at most 65280: nothing saturates.
//
// Shape: vectors of up to 32 int16 lanes (CappedTag), so one vector covers lanes/4 columns of a
// 32-byte p8k4 panel group, and a panel group takes 32 / lanes blocks (4 on 128-bit targets, 2 on
// AVX2, 1 on AVX-512). Each (row, block) is one pass over K with one accumulator pair: Highway's
// vector types may be sizeless (SVE), so they cannot live in arrays indexed by row. The passes
// re-read the panel from L1; this is the fallback, the hand-tuned kernels are the fast path.

// Per-target include guard, the Highway way: toggled by foreach_target.h for each target.
#if defined(KEEL_KERNELS_GEMM_I8_HWY_INL_) == defined(HWY_TARGET_TOGGLE)
#ifdef KEEL_KERNELS_GEMM_I8_HWY_INL_
#undef KEEL_KERNELS_GEMM_I8_HWY_INL_
#else
#define KEEL_KERNELS_GEMM_I8_HWY_INL_
#endif

#include <hwy/highway.h>

#include <cstdint>
#include <cstring>

#include "keel/kernels/gemm_i8/variant.hpp"

HWY_BEFORE_NAMESPACE();
namespace keel::kernels::gemm_i8::HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// One p8k4 B panel against `rows` rows of an MR-row int16 A panel.
template <int MR>
inline void HwyW16Panel(const std::int16_t* a, const std::int8_t* b, std::int64_t kq, int rows,
                        std::int32_t* raw, std::int64_t ld_raw) {
  constexpr int kGroupBytes = 32;  // 8 columns x 4 K values
#if HWY_TARGET != HWY_SCALAR
  const hn::CappedTag<std::int16_t, kGroupBytes> d16;
  const hn::Rebind<std::int8_t, decltype(d16)> d8;
  const hn::Repartition<std::int32_t, decltype(d16)> d32;
  const hn::Repartition<std::int64_t, decltype(d16)> d64;
  const int lanes = static_cast<int>(hn::Lanes(d16));
  if (lanes >= 4 && kGroupBytes % lanes == 0) {
    const int blocks = kGroupBytes / lanes;  // vectors per panel group
    const int cols_per_block = lanes / 4;
    HWY_ALIGN std::int32_t pairs[kGroupBytes / 2];
    for (int r = 0; r < rows; ++r) {
      for (int blk = 0; blk < blocks; ++blk) {
        // Main loop: lanes/4 columns x 4 K values of B' against row r's 4 A' values, repeated.
        auto sum0 = hn::Zero(d32);
        auto sum1 = hn::Zero(d32);
        for (std::int64_t g = 0; g < kq; ++g) {
          const auto bv = hn::PromoteTo(d16, hn::LoadU(d8, b + g * kGroupBytes + blk * lanes));
          std::int64_t a4;
          std::memcpy(&a4, a + (g * MR + r) * 4, sizeof(a4));
          const auto av = hn::BitCast(d16, hn::Set(d64, a4));
          sum0 = hn::ReorderWidenMulAccumulate(d32, bv, av, sum0, sum1);
        }
        // Reduction: lane i of the rearranged sum is column i/2, partial sum i%2.
        hn::Store(hn::RearrangeToOddPlusEven(sum0, sum1), d32, pairs);
        for (int c = 0; c < cols_per_block; ++c) {
          const std::uint32_t s = static_cast<std::uint32_t>(pairs[2 * c]) +
                                  static_cast<std::uint32_t>(pairs[2 * c + 1]);
          raw[r * ld_raw + blk * cols_per_block + c] = static_cast<std::int32_t>(s);
        }
      }
    }
    return;
  }
#endif
  // Targets without a usable vector shape (HWY_SCALAR; an SVE length that does not divide a
  // panel group): plain C++, exact (unsigned sums wrap modulo 2^32 as the epilogue expects).
  for (int r = 0; r < rows; ++r) {
    std::uint32_t acc[8] = {};
    for (std::int64_t g = 0; g < kq; ++g) {
      for (int c = 0; c < 8; ++c) {
        for (int kk = 0; kk < 4; ++kk) {
          acc[c] += static_cast<std::uint32_t>(std::int32_t{a[(g * MR + r) * 4 + kk]} *
                                               b[g * kGroupBytes + c * 4 + kk]);
        }
      }
    }
    for (int c = 0; c < 8; ++c) raw[r * ld_raw + c] = static_cast<std::int32_t>(acc[c]);
  }
}

// The exported entry: every panel of the call, MR = 4.
inline void HwyGemmW16Mr4(const ukernel_args& p) {
  const auto* a = static_cast<const std::int16_t*>(p.a);
  for (int j = 0; j < p.panels; ++j) {
    HwyW16Panel<4>(a, p.b + j * p.b_panel_stride, p.kq, p.rows, p.raw + j * 8, p.ld_raw);
  }
}

}  // namespace keel::kernels::gemm_i8::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // per-target include guard
