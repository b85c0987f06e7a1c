// keel/kernels/gemm_i8/neon_sdot.hpp — Arm int8 GEMM and GEMV microkernels on SDOT (FEAT_DotProd,
// Armv8.2-A optional, Armv8.4-A mandatory; e.g. Cortex-A55/A76, Neoverse N1).
//
// Compiled with a function-level target attribute (arch=armv8.2-a+dotprod), so a binary built
// for plain armv8-a carries them; the registry runs them only where neon::features().dotprod
// (HWCAP_ASIMDDP) holds.
//
// The instruction: SDOT (by element), `sdot vd.4s, vn.16b, vm.4b[i]`, adds to each 32-bit lane
// j of vd the four products of signed bytes vn[4j..4j+3] and vm[4i..4i+3], with no narrower
// intermediate and no saturation (Arm A64 ISA, "SDOT (by element)"): acc + b0*a0 + ... + b3*a3
// modulo 2^32. On the p8k4 layout a 16-byte B load is 4 columns x 4 K values, exactly the
// instruction's vn, and a 16-byte A load of a u8 A panel is 4 rows x 4 K values, its vm with
// the row as the index.
//
// Technique dp4 with an exact correction. SDOT multiplies signed by signed; the microkernel
// contract multiplies A' in [0, 255] (u8) by B' in [-128, 127] (s8), and 255 is no int8. So the
// A packer stores A'' = A' xor 0x80, which read as s8 is A' - 128 (in [-128, 127]), and
//
//   sum_k A'B' = sum_k (A' - 128) B' + 128 * sum_k B' = sum_k A''B' + 128 * colsum_k(B')
//
// The kernel forms colsum_k(B') alongside, with one extra SDOT per B vector against a vector of
// ones (exact: 4 s8 values per lane, int32 sums), and adds it shifted left by 7 at the end; all
// of it modulo 2^32, which is the contract (variant.hpp). Past K, B' is zero (the packer's
// padding), so A'' there (the flipped zero padding, -128) contributes nothing to either sum.
// The row sums the epilogue needs are of A', not A'': the packer computes them before the flip.
// Cost: 2 extra SDOT per K group of a tile, 1/8 of the gemm's 16 (and half of a 1-row gemv's,
// which is bound by memory; the I8MM kernels of neon_i8mm.hpp multiply u8 by s8 directly and
// need no correction).
//
// gemm 8x8 — per K group: 2 B loads (columns 0-3, 4-7), 2 A loads (rows 0-3, 4-7), 16 SDOT into
//   16 accumulators (row r, column half h), 2 correction SDOT.
// gemv 4x128 — per K group: the same B loads, 1 A load, 2 SDOT per row (1..4) and 2 corrections.
#pragma once

#include "keel/kernels/gemm_i8/neon.hpp"

// GCC's arm_neon.h defines the SDOT intrinsics for every translation unit, under a target pragma,
// so a function-level target reaches them. Clang 14's defines them only when the translation
// unit's own baseline has the feature (__ARM_FEATURE_DOTPROD); there the kernels are built at
// that baseline, and without it they are left out (the registry then has no sdot variants).
#if defined(KEEL_GEMM_I8_HAVE_NEON) && (!defined(__clang__) || defined(__ARM_FEATURE_DOTPROD))
#define KEEL_GEMM_I8_HAVE_SDOT 1

#include <arm_neon.h>

#include <cstdint>

#include "keel/check.hpp"
#include "keel/kernels/gemm_i8/packing.hpp"
#include "keel/kernels/gemm_i8/variant.hpp"

#if defined(__clang__)
#define KEEL_TARGET_DOTPROD
#else
#define KEEL_TARGET_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif

namespace keel::kernels::gemm_i8::sdot {

inline constexpr packing kPacking{8, 4};
inline constexpr int kGemmRows = neon::kGemmRows;  // 8
inline constexpr int kGemvRows = 4;

// ---- A packer: u8 panel, flipped --------------------------------------------------------------

// The portable u8 A packer (packing.hpp: dst[(g * mr + r) * 4 + kk] = A'[m0 + r][4g + kk], row
// sums of A'), then every byte of the panel flipped: A'' = A' ^ 0x80 = A' - 128 as s8.
inline void pack_a_flipped(const a_source& a, std::int64_t m0, int rows, std::int64_t k, int mr,
                           const packing& p, void* dst, std::int32_t* rowsum) noexcept {
  KEEL_DASSERT(p.k_group == 4, "the SDOT kernels read p8k4 panels");
  auto* out = static_cast<std::uint8_t*>(dst);
  pack_a_panel(a, m0, rows, k, mr, p, out, rowsum);
  const std::int64_t n = k_groups(k, p) * p.k_group * mr;
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) vst1q_u8(out + i, veorq_u8(vld1q_u8(out + i), vdupq_n_u8(0x80)));
  for (; i < n; ++i) out[i] = static_cast<std::uint8_t>(out[i] ^ 0x80);
}

// ---- gemm 8x8 ----------------------------------------------------------------------------------

namespace detail {

// Row R of the tile: lane R % 4 of the A vector of rows 0-3 or 4-7, against both column halves.
template <int R>
KEEL_TARGET_DOTPROD KEEL_NEON_INLINE void dot_row(int8x16_t a, int8x16_t b0, int8x16_t b1,
                                                  int32x4_t& c0_3, int32x4_t& c4_7) noexcept {
  c0_3 = vdotq_laneq_s32(c0_3, b0, a, R % 4);
  c4_7 = vdotq_laneq_s32(c4_7, b1, a, R % 4);
}

// The correction: acc + 128 * colsum, modulo 2^32.
KEEL_TARGET_DOTPROD KEEL_NEON_INLINE int32x4_t add_offset(int32x4_t acc,
                                                          int32x4_t colsum) noexcept {
  return vaddq_s32(acc, vshlq_n_s32(colsum, 7));
}

}  // namespace detail

// A panel: s8 [kq][8][4] (pack_a_flipped); B panels: s8 [kq][8][4].
KEEL_TARGET_DOTPROD inline void gemm_dp4(const ukernel_args& p) noexcept {
  constexpr int MR = kGemmRows;
  const auto* a = static_cast<const std::int8_t*>(p.a);
  const int8x16_t ones = vdupq_n_s8(1);
  for (int j = 0; j < p.panels; ++j) {
    const std::int8_t* b = p.b + j * p.b_panel_stride;

    // Setup: lo[r] = row r, columns 0-3; hi[r] = row r, columns 4-7; colsum of both halves.
    int32x4_t lo[8], hi[8];
    for (int r = 0; r < 8; ++r) lo[r] = hi[r] = vdupq_n_s32(0);
    int32x4_t sum_lo = vdupq_n_s32(0), sum_hi = vdupq_n_s32(0);

    // Main loop: one K group per step.
    for (std::int64_t g = 0; g < p.kq; ++g) {
      const int8x16_t b0 = vld1q_s8(b + g * 32);
      const int8x16_t b1 = vld1q_s8(b + g * 32 + 16);
      const int8x16_t a0 = vld1q_s8(a + g * MR * 4);       // rows 0-3
      const int8x16_t a1 = vld1q_s8(a + g * MR * 4 + 16);  // rows 4-7
      detail::dot_row<0>(a0, b0, b1, lo[0], hi[0]);
      detail::dot_row<1>(a0, b0, b1, lo[1], hi[1]);
      detail::dot_row<2>(a0, b0, b1, lo[2], hi[2]);
      detail::dot_row<3>(a0, b0, b1, lo[3], hi[3]);
      detail::dot_row<4>(a1, b0, b1, lo[4], hi[4]);
      detail::dot_row<5>(a1, b0, b1, lo[5], hi[5]);
      detail::dot_row<6>(a1, b0, b1, lo[6], hi[6]);
      detail::dot_row<7>(a1, b0, b1, lo[7], hi[7]);
      sum_lo = vdotq_s32(sum_lo, b0, ones);
      sum_hi = vdotq_s32(sum_hi, b1, ones);
    }

    // Correction and store: the valid rows.
    std::int32_t* raw = p.raw + j * 8;
    for (int r = 0; r < 8; ++r) {
      neon::detail::store_row8(raw, p.ld_raw, r, p.rows, detail::add_offset(lo[r], sum_lo),
                               detail::add_offset(hi[r], sum_hi));
    }
  }
}

// ---- gemv 4x128 ------------------------------------------------------------------------------

namespace detail {

// Rows (1..4) rows of a flipped u8 A panel ([kq][4][4]) against one B panel.
template <int Rows>
KEEL_TARGET_DOTPROD KEEL_NEON_INLINE void gemv_panel(const std::int8_t* a, const std::int8_t* b,
                                                     std::int64_t kq, std::int32_t* raw,
                                                     std::int64_t ld_raw) noexcept {
  static_assert(Rows >= 1 && Rows <= kGemvRows, "gemv_panel handles 1..4 rows");
  const int8x16_t ones = vdupq_n_s8(1);
  int32x4_t lo[Rows], hi[Rows];
  for (int r = 0; r < Rows; ++r) lo[r] = hi[r] = vdupq_n_s32(0);
  int32x4_t sum_lo = vdupq_n_s32(0), sum_hi = vdupq_n_s32(0);

  // Main loop: B streams once.
  for (std::int64_t g = 0; g < kq; ++g) {
    const int8x16_t b0 = vld1q_s8(b + g * 32);
    const int8x16_t b1 = vld1q_s8(b + g * 32 + 16);
    const int8x16_t av = vld1q_s8(a + g * kGemvRows * 4);
    dot_row<0>(av, b0, b1, lo[0], hi[0]);
    if constexpr (Rows > 1) dot_row<1>(av, b0, b1, lo[1], hi[1]);
    if constexpr (Rows > 2) dot_row<2>(av, b0, b1, lo[2], hi[2]);
    if constexpr (Rows > 3) dot_row<3>(av, b0, b1, lo[3], hi[3]);
    sum_lo = vdotq_s32(sum_lo, b0, ones);
    sum_hi = vdotq_s32(sum_hi, b1, ones);
  }

  // Correction and store.
  for (int r = 0; r < Rows; ++r) {
    vst1q_s32(raw + r * ld_raw, add_offset(lo[r], sum_lo));
    vst1q_s32(raw + r * ld_raw + 4, add_offset(hi[r], sum_hi));
  }
}

}  // namespace detail

// A panel: s8 [kq][4][4] (pack_a_flipped); up to kGemvPanels B panels.
KEEL_TARGET_DOTPROD inline void gemv_dp4(const ukernel_args& p) noexcept {
  const auto* a = static_cast<const std::int8_t*>(p.a);
  for (int j = 0; j < p.panels; ++j) {
    const std::int8_t* b = p.b + j * p.b_panel_stride;
    std::int32_t* raw = p.raw + j * 8;
    switch (p.rows) {
      case 1: detail::gemv_panel<1>(a, b, p.kq, raw, p.ld_raw); break;
      case 2: detail::gemv_panel<2>(a, b, p.kq, raw, p.ld_raw); break;
      case 3: detail::gemv_panel<3>(a, b, p.kq, raw, p.ld_raw); break;
      default: detail::gemv_panel<4>(a, b, p.kq, raw, p.ld_raw); break;
    }
  }
}

}  // namespace keel::kernels::gemm_i8::sdot

#endif  // KEEL_GEMM_I8_HAVE_SDOT
