// keel/kernels/gemm_i8/neon.hpp — Arm (aarch64) int8 GEMM and GEMV microkernels on the NEON
// (ASIMD) baseline every aarch64 CPU has, the CPU feature test of the Arm variants, and the
// helpers neon_sdot.hpp and neon_i8mm.hpp share.
//
// Three Arm instruction sets, one binary: this file's kernels need only the baseline; the SDOT
// kernels (neon_sdot.hpp) and the I8MM kernels (neon_i8mm.hpp) are compiled with function-level
// target attributes, so a translation unit built for plain armv8-a contains them all, and the
// registry runs each only where `features()` (getauxval's AT_HWCAP / AT_HWCAP2) reports it.
//
// Technique w16 (exact for every input): B' (s8) is widened to int16 in registers (sxtl) and A'
// (u8, 0..255) is stored as int16 by the A packer; smlal multiplies int16 by int16 into int32 and
// adds. A product is at most 255 * 128 = 32640 in magnitude and each one is added to an int32
// lane on its own: nothing narrower than int32 holds a sum, and the int32 sums wrap only modulo
// 2^32, which the epilogue's corrections undo exactly (variant.hpp).
//
// gemm 8x8 — smlal by element: the A panel is stored K-major (for each K value, the 8 rows side
//   by side: one q register), and each B value (one column at one K) is the indexed scalar. So
//   one smlal/smlal2 adds one K step of 4 rows of one column, and an accumulator holds 4 rows
//   of one column: 8 columns x 2 row halves = 16 accumulators. Per K group (4 K values): 2 B
//   loads, 4 sxtl, 4 A loads, 64 smlal (256 multiply-adds). The tile is transposed to rows once,
//   at the end.
// gemv 2x128 — for M <= 2 rows the A scalars would waste most of each smlal, so the roles swap:
//   a widened B vector holds 2 columns x 4 K values, the row's 4 A values are repeated to match
//   ([a0 a1 a2 a3 a0 a1 a2 a3]), and smlal/smlal2 add 4 products of one column into one
//   accumulator: 8 per row. The 4 partial sums of a column are added at the end (addp).
//
// Both read the shared p8k4 B layout (packing.hpp: a panel group is 8 columns x 4 K values, 32
// bytes), so the weights pack() wrote serve every registered kernel.
#pragma once

#if defined(__aarch64__)
#define KEEL_GEMM_I8_HAVE_NEON 1

#include <arm_neon.h>
#if defined(__linux__)
#include <sys/auxv.h>
#endif

#include <cstdint>
#include <cstring>

#include "keel/check.hpp"
#include "keel/kernels/gemm_i8/packing.hpp"
#include "keel/kernels/gemm_i8/variant.hpp"

// Forced inline, for helpers compiled into their callers under the callers' target attribute.
#define KEEL_NEON_INLINE inline __attribute__((always_inline))
// The same for the helpers every Arm kernel shares, which also carry the smallest target (the
// one arm_neon.h gives its baseline intrinsics): GCC inlines a function only into callers whose
// target includes the callee's, and the SDOT/I8MM kernels' "arch=armv8.2-a+..." does not include
// the build's own baseline extensions (cross/aarch64-linux-gnu.ini's +crypto, for one).
// (Clang builds every Arm kernel at the translation unit's baseline: see neon_sdot.hpp.)
#if defined(__clang__)
#define KEEL_NEON_SHARED_INLINE inline __attribute__((always_inline))
#else
#define KEEL_NEON_SHARED_INLINE inline __attribute__((always_inline, target("+nothing+simd")))
#endif

namespace keel::kernels::gemm_i8::neon {

inline constexpr packing kPacking{8, 4};
inline constexpr int kGemmRows = 8;  // the 8x8 gemm tiles of every Arm ISA
inline constexpr int kGemvRows = 2;  // this file's gemv (M <= 2)

// ---- CPU features ----------------------------------------------------------------------------

// Linux reports the optional instruction sets of an aarch64 CPU in the auxiliary vector
// (Documentation/arch/arm64/elf_hwcaps.rst): AT_HWCAP bit 20 is HWCAP_ASIMDDP (SDOT/UDOT, FEAT_
// DotProd), AT_HWCAP2 bit 13 is HWCAP2_I8MM (SMMLA/UMMLA/USMMLA and USDOT/SUDOT, FEAT_I8MM). The
// values are the kernel's ABI (arch/arm64/include/uapi/asm/hwcap.h); the checks below keep them
// equal to the C library's names where those exist.
inline constexpr unsigned long kHwcapAsimdDp = 1UL << 20;
inline constexpr unsigned long kHwcap2I8mm = 1UL << 13;
#if defined(HWCAP_ASIMDDP)
static_assert(kHwcapAsimdDp == HWCAP_ASIMDDP, "HWCAP_ASIMDDP is AT_HWCAP bit 20");
#endif
#if defined(HWCAP2_I8MM)
static_assert(kHwcap2I8mm == HWCAP2_I8MM, "HWCAP2_I8MM is AT_HWCAP2 bit 13");
#endif

struct arm_features {
  bool dotprod = false;  // SDOT/UDOT (by element too)
  bool i8mm = false;     // USMMLA, USDOT/SUDOT
};

// What this CPU offers, read once. Off Linux (no getauxval) only the baseline is reported: the
// SDOT and I8MM kernels then never run, and the NEON ones do.
inline arm_features probe_features() noexcept {
  arm_features f;
#if defined(__linux__)
  const unsigned long hw = getauxval(AT_HWCAP);
  const unsigned long hw2 = getauxval(AT_HWCAP2);
  f.dotprod = (hw & kHwcapAsimdDp) != 0;
  f.i8mm = (hw2 & kHwcap2I8mm) != 0;
#endif
  return f;
}
inline const arm_features& features() noexcept {
  static const arm_features f = probe_features();
  return f;
}

// ---- helpers shared by the Arm kernels -------------------------------------------------------

namespace detail {

// 4x4 transpose of int32 lanes: in, c[i] holds element (0..3, i) of a block (say rows 0-3 of
// column i); out, c[r] holds (r, 0..3).
//   trn1/trn2 on 32 bits pair up neighbours: t0 = [c0r0 c1r0 c0r2 c1r2], t1 = [c0r1 c1r1 c0r3
//   c1r3], t2/t3 likewise for c2, c3; trn1/trn2 on 64 bits then join the halves: row 0 = [c0r0
//   c1r0 c2r0 c3r0] = low(t0):low(t2), row 2 = high(t0):high(t2), rows 1 and 3 from t1, t3.
KEEL_NEON_SHARED_INLINE void transpose4x4(int32x4_t& c0, int32x4_t& c1, int32x4_t& c2,
                                          int32x4_t& c3) noexcept {
  const int32x4_t t0 = vtrn1q_s32(c0, c1), t1 = vtrn2q_s32(c0, c1);
  const int32x4_t t2 = vtrn1q_s32(c2, c3), t3 = vtrn2q_s32(c2, c3);
  c0 = vreinterpretq_s32_s64(vtrn1q_s64(vreinterpretq_s64_s32(t0), vreinterpretq_s64_s32(t2)));
  c1 = vreinterpretq_s32_s64(vtrn1q_s64(vreinterpretq_s64_s32(t1), vreinterpretq_s64_s32(t3)));
  c2 = vreinterpretq_s32_s64(vtrn2q_s64(vreinterpretq_s64_s32(t0), vreinterpretq_s64_s32(t2)));
  c3 = vreinterpretq_s32_s64(vtrn2q_s64(vreinterpretq_s64_s32(t1), vreinterpretq_s64_s32(t3)));
}

// Stores columns 0..7 of row r (two vectors) when r < rows; rows past `rows` are A padding.
KEEL_NEON_SHARED_INLINE void store_row8(std::int32_t* raw, std::int64_t ld_raw, int r, int rows,
                                        int32x4_t c0_3, int32x4_t c4_7) noexcept {
  if (r < rows) {
    vst1q_s32(raw + r * ld_raw, c0_3);
    vst1q_s32(raw + r * ld_raw + 4, c4_7);
  }
}

// Sums of column-major accumulators: acc[c] holds 4 partial sums of column c; returns the four
// totals of columns 0..3 in one vector (two rounds of pairwise adds).
KEEL_NEON_SHARED_INLINE int32x4_t column_totals(int32x4_t c0, int32x4_t c1, int32x4_t c2,
                                                int32x4_t c3) noexcept {
  return vpaddq_s32(vpaddq_s32(c0, c1), vpaddq_s32(c2, c3));
}

}  // namespace detail

// ---- A packer of the w16 gemm: K-major int16 ---------------------------------------------------

// Packs `rows` (<= mr) rows of A' starting at m0 into one A panel of the size the driver sizes
// for an int16 panel (kq * 4 * mr elements), K-major:
//   dst[(g * 4 + kk) * mr + r] = A'[m0 + r][4g + kk]       (zero past K and for rows >= rows)
// so the mr rows of one K value are one vector. rowsum[r] = sum_k A'[m0 + r][k].
inline void pack_a_kmajor_s16(const a_source& a, std::int64_t m0, int rows, std::int64_t k, int mr,
                              const packing& p, void* dst, std::int32_t* rowsum) noexcept {
  KEEL_DASSERT(p.k_group == 4 && mr == kGemmRows, "the w16 gemm reads 8-row p8k4 panels");
  auto* out = static_cast<std::int16_t*>(dst);
  const std::int64_t k_padded = k_groups(k, p) * p.k_group;
  std::memset(static_cast<void*>(out), 0, static_cast<std::size_t>(k_padded * mr) * 2);
  const std::uint8_t flip = a.type == dtype::s8 ? 0x80 : 0x00;
  for (int r = 0; r < rows; ++r) {
    const auto* src = static_cast<const std::uint8_t*>(a.data) + a.base + (m0 + r) * a.stride_m;
    std::uint32_t sum = 0;  // <= 255 * K: fits for every K validation accepts
    for (std::int64_t kk = 0; kk < k; ++kk) {
      const std::uint8_t v = static_cast<std::uint8_t>(src[kk * a.stride_k] ^ flip);
      out[kk * mr + r] = static_cast<std::int16_t>(v);
      sum += v;
    }
    rowsum[r] = static_cast<std::int32_t>(sum);
  }
}

// ---- w16 gemm 8x8 ----------------------------------------------------------------------------

namespace detail {

// One K step (KK = 0..3 within the group) of the 8x8 w16 tile: the 8 rows of A' at that K
// against the 8 columns' B' at that K (lane KK of a column's 4 values; columns 2i and 2i+1 are
// lanes 0-3 and 4-7 of w[i]). lo[c] holds rows 0-3 of column c, hi[c] rows 4-7.
template <int KK>
KEEL_NEON_INLINE void w16_gemm_step(const std::int16_t* a_k, int16x8_t w0, int16x8_t w1,
                                    int16x8_t w2, int16x8_t w3, int32x4_t* lo,
                                    int32x4_t* hi) noexcept {
  const int16x8_t av = vld1q_s16(a_k);
  const int16x4_t al = vget_low_s16(av);
  lo[0] = vmlal_laneq_s16(lo[0], al, w0, KK);
  hi[0] = vmlal_high_laneq_s16(hi[0], av, w0, KK);
  lo[1] = vmlal_laneq_s16(lo[1], al, w0, 4 + KK);
  hi[1] = vmlal_high_laneq_s16(hi[1], av, w0, 4 + KK);
  lo[2] = vmlal_laneq_s16(lo[2], al, w1, KK);
  hi[2] = vmlal_high_laneq_s16(hi[2], av, w1, KK);
  lo[3] = vmlal_laneq_s16(lo[3], al, w1, 4 + KK);
  hi[3] = vmlal_high_laneq_s16(hi[3], av, w1, 4 + KK);
  lo[4] = vmlal_laneq_s16(lo[4], al, w2, KK);
  hi[4] = vmlal_high_laneq_s16(hi[4], av, w2, KK);
  lo[5] = vmlal_laneq_s16(lo[5], al, w2, 4 + KK);
  hi[5] = vmlal_high_laneq_s16(hi[5], av, w2, 4 + KK);
  lo[6] = vmlal_laneq_s16(lo[6], al, w3, KK);
  hi[6] = vmlal_high_laneq_s16(hi[6], av, w3, KK);
  lo[7] = vmlal_laneq_s16(lo[7], al, w3, 4 + KK);
  hi[7] = vmlal_high_laneq_s16(hi[7], av, w3, 4 + KK);
}

}  // namespace detail

// A panel: int16 K-major [kq][4][8] (pack_a_kmajor_s16); B panels: s8 [kq][8][4].
inline void gemm_w16(const ukernel_args& p) noexcept {
  constexpr int MR = kGemmRows;
  const auto* a = static_cast<const std::int16_t*>(p.a);
  for (int j = 0; j < p.panels; ++j) {
    const std::int8_t* b = p.b + j * p.b_panel_stride;

    // Setup: 16 accumulators, column-major (lo[c]: rows 0-3 of column c, hi[c]: rows 4-7).
    int32x4_t lo[8], hi[8];
    for (int c = 0; c < 8; ++c) lo[c] = hi[c] = vdupq_n_s32(0);

    // Main loop: per K group, widen the 32 B bytes to 4 x 8 int16, then 4 K steps of 16
    // smlal each.
    for (std::int64_t g = 0; g < p.kq; ++g) {
      const int8x16_t b0 = vld1q_s8(b + g * 32);       // columns 0-3 x K 0-3
      const int8x16_t b1 = vld1q_s8(b + g * 32 + 16);  // columns 4-7
      const int16x8_t w0 = vmovl_s8(vget_low_s8(b0)), w1 = vmovl_high_s8(b0);
      const int16x8_t w2 = vmovl_s8(vget_low_s8(b1)), w3 = vmovl_high_s8(b1);
      const std::int16_t* ag = a + g * 4 * MR;
      detail::w16_gemm_step<0>(ag, w0, w1, w2, w3, lo, hi);
      detail::w16_gemm_step<1>(ag + MR, w0, w1, w2, w3, lo, hi);
      detail::w16_gemm_step<2>(ag + 2 * MR, w0, w1, w2, w3, lo, hi);
      detail::w16_gemm_step<3>(ag + 3 * MR, w0, w1, w2, w3, lo, hi);
    }

    // Store: transpose each 4x4 block from columns to rows, then the valid rows.
    detail::transpose4x4(lo[0], lo[1], lo[2], lo[3]);
    detail::transpose4x4(lo[4], lo[5], lo[6], lo[7]);
    detail::transpose4x4(hi[0], hi[1], hi[2], hi[3]);
    detail::transpose4x4(hi[4], hi[5], hi[6], hi[7]);
    std::int32_t* raw = p.raw + j * 8;
    for (int r = 0; r < 4; ++r) {
      detail::store_row8(raw, p.ld_raw, r, p.rows, lo[r], lo[4 + r]);
      detail::store_row8(raw, p.ld_raw, 4 + r, p.rows, hi[r], hi[4 + r]);
    }
  }
}

// ---- w16 gemv 2x128 --------------------------------------------------------------------------

namespace detail {

// Rows (1..2) rows of a standard int16 A panel ([kq][MR][4], packing.hpp) against one B panel.
template <int MR, int Rows>
KEEL_NEON_INLINE void gemv_w16_panel(const std::int16_t* a, const std::int8_t* b, std::int64_t kq,
                                     std::int32_t* raw, std::int64_t ld_raw) noexcept {
  static_assert(Rows >= 1 && Rows <= 2 && Rows <= MR, "gemv_w16_panel handles 1..2 rows");
  // Setup: acc[r][c] holds row r's 4 partial sums (one per K position mod 4) of column c.
  int32x4_t acc[Rows][8];
  for (int r = 0; r < Rows; ++r) {
    for (int c = 0; c < 8; ++c) acc[r][c] = vdupq_n_s32(0);
  }

  // Main loop: B streams once; per K group 2 loads, 4 sxtl, and per row 8 smlal/smlal2.
  for (std::int64_t g = 0; g < kq; ++g) {
    const int8x16_t b0 = vld1q_s8(b + g * 32);
    const int8x16_t b1 = vld1q_s8(b + g * 32 + 16);
    const int16x8_t w[4] = {vmovl_s8(vget_low_s8(b0)), vmovl_high_s8(b0), vmovl_s8(vget_low_s8(b1)),
                            vmovl_high_s8(b1)};
    for (int r = 0; r < Rows; ++r) {
      const int16x4_t a4 = vld1_s16(a + (g * MR + r) * 4);  // row r's 4 A' values
      const int16x8_t a8 = vcombine_s16(a4, a4);
      for (int i = 0; i < 4; ++i) {
        acc[r][2 * i] = vmlal_s16(acc[r][2 * i], vget_low_s16(w[i]), a4);
        acc[r][2 * i + 1] = vmlal_high_s16(acc[r][2 * i + 1], w[i], a8);
      }
    }
  }

  // Reduction and store: the 4 partial sums of each column.
  for (int r = 0; r < Rows; ++r) {
    vst1q_s32(raw + r * ld_raw, column_totals(acc[r][0], acc[r][1], acc[r][2], acc[r][3]));
    vst1q_s32(raw + r * ld_raw + 4, column_totals(acc[r][4], acc[r][5], acc[r][6], acc[r][7]));
  }
}

}  // namespace detail

// A panel: int16 [kq][2][4] (the portable pack_a<int16_t>); up to kGemvPanels B panels.
inline void gemv_w16(const ukernel_args& p) noexcept {
  const auto* a = static_cast<const std::int16_t*>(p.a);
  for (int j = 0; j < p.panels; ++j) {
    const std::int8_t* b = p.b + j * p.b_panel_stride;
    if (p.rows == 1) {
      detail::gemv_w16_panel<kGemvRows, 1>(a, b, p.kq, p.raw + j * 8, p.ld_raw);
    } else {
      detail::gemv_w16_panel<kGemvRows, 2>(a, b, p.kq, p.raw + j * 8, p.ld_raw);
    }
  }
}

}  // namespace keel::kernels::gemm_i8::neon

#endif  // __aarch64__
