// keel/kernels/gemm_i8/neon_i8mm.hpp — Arm int8 GEMM and GEMV microkernels on I8MM (FEAT_I8MM,
// Armv8.2-A optional, Armv8.6-A mandatory; e.g. Cortex-A510/A710/X2, Neoverse V1/N2).
//
// Compiled with a function-level target attribute (arch=armv8.2-a+i8mm), so a binary built for
// plain armv8-a carries them; the registry runs them only where neon::features().i8mm
// (HWCAP2_I8MM) holds.
//
// I8MM multiplies unsigned by signed bytes directly, which is the microkernel contract (A' in
// [0, 255], B' in [-128, 127]; variant.hpp): no offset, no correction. Each product is exact in
// 16 bits and the sums go straight to 32-bit lanes, which wrap modulo 2^32 and never saturate
// (Arm A64 ISA, "USMMLA (vector)" and "SUDOT (by element)"): exact for every input, any K.
//
// gemm 8x8, technique mmla — USMMLA, `usmmla vd.4s, vn.16b, vm.16b`, reads vn as a 2x8 matrix
//   of u8 (bytes 0-7 row 0, 8-15 row 1), vm as the transpose of an 8x2 matrix of s8 (bytes 0-7
//   column 0, 8-15 column 1), and adds the 2x2 int32 product to vd = [r0c0, r0c1, r1c0, r1c1]:
//   32 multiply-adds per instruction, twice SDOT's 16. A tile of 8 rows x 8 columns is 4 x 4
//   such 2x2 blocks: 16 accumulators. Per pair of K groups (8 K values):
//   - A: 4 loads; the A packer stores each pair of rows with 8 K values per row side by side
//     (pack_a_row_pairs below), so one 16-byte load is one vn.
//   - B: the shared p8k4 layout gives a column 4 K values per group, not 8, so vm is built: zip1
//     and zip2 on 32-bit lanes of group g (columns 0-3) and group g + 1 (columns 0-3) give
//     [c0 g, c0 g+1, c1 g, c1 g+1] and [c2 .., c3 ..]: columns (0, 1) and (2, 3) with 8 K
//     values each. 4 loads and 4 zips give the 4 column pairs.
//   - 16 USMMLA (512 multiply-adds).
//   An odd last K group is zipped with zeros (and its A rows are stored with 4 K values; the
//   kernel zips those with zeros as well).
// gemv 4x128, technique dp4 — SUDOT (by element), `sudot vd.4s, vn.16b, vm.4b[i]`: signed bytes
//   of vn (a 16-byte B load: 4 columns x 4 K) times the unsigned bytes of element i of vm (a u8
//   A panel load: 4 rows x 4 K, row i), four products per 32-bit lane. The SDOT gemv's loop
//   without the offset and its correction.
#pragma once

#include "keel/kernels/gemm_i8/neon.hpp"

// As for SDOT (neon_sdot.hpp): GCC reaches the I8MM intrinsics from a function-level target;
// Clang 14 only from a baseline that has the feature (__ARM_FEATURE_MATMUL_INT8).
#if defined(KEEL_GEMM_I8_HAVE_NEON) && (!defined(__clang__) || defined(__ARM_FEATURE_MATMUL_INT8))
#define KEEL_GEMM_I8_HAVE_I8MM 1

#include <arm_neon.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "keel/check.hpp"
#include "keel/kernels/gemm_i8/packing.hpp"
#include "keel/kernels/gemm_i8/variant.hpp"

#if defined(__clang__)
#define KEEL_TARGET_I8MM
#else
#define KEEL_TARGET_I8MM __attribute__((target("arch=armv8.2-a+i8mm")))
#endif

namespace keel::kernels::gemm_i8::i8mm {

inline constexpr packing kPacking{8, 4};
inline constexpr int kGemmRows = neon::kGemmRows;  // 8
inline constexpr int kGemvRows = 4;

// ---- A packer of the mmla gemm: row pairs, 8 K values per row -------------------------------

// Packs `rows` (<= mr) rows of A' from row m0 into the u8 panel the driver sizes for p8k4
// (kq * 4 * mr bytes). With P = kq / 2 whole pairs of K groups:
//   pair q < P:     dst[q * 8 * mr + r * 8 + kk]     = A'[m0 + r][8q + kk]      kk < 8
//   odd last group: dst[P * 8 * mr + r * 4 + kk]     = A'[m0 + r][8P + kk]      kk < 4
// so bytes 16i .. 16i + 15 of a pair are rows 2i and 2i + 1 with 8 K values each (one USMMLA
// vn), and the odd group is rows x 4 K values as in the portable layout. Zero past K and for rows
// >= `rows`; rowsum[r] = sum_k A'[m0 + r][k].
inline void pack_a_row_pairs(const a_source& a, std::int64_t m0, int rows, std::int64_t k, int mr,
                             const packing& p, void* dst, std::int32_t* rowsum) noexcept {
  KEEL_DASSERT(p.k_group == 4 && mr % 2 == 0, "the mmla gemm reads p8k4 panels of row pairs");
  constexpr int kChunk = 256;  // K values per pass: a multiple of 8
  auto* out = static_cast<std::uint8_t*>(dst);
  const std::int64_t kq = k_groups(k, p);
  const std::int64_t k_pairs = kq / 2 * 8;  // K values stored 8 per row
  std::memset(out, 0, static_cast<std::size_t>(kq * 4 * mr));
  const std::uint8_t flip = a.type == dtype::s8 ? 0x80 : 0x00;
  alignas(16) std::uint8_t mapped[kChunk];
  for (int r = 0; r < rows; ++r) {
    const auto* src = static_cast<const std::uint8_t*>(a.data) + a.base + (m0 + r) * a.stride_m;
    std::uint32_t sum = 0;  // <= 255 * K: fits for every K validation accepts
    for (std::int64_t k0 = 0; k0 < k; k0 += kChunk) {
      const int n = static_cast<int>(std::min<std::int64_t>(kChunk, k - k0));
      // Phase 1: map and sum.
      for (int i = 0; i < n; ++i) {
        const std::uint8_t v = static_cast<std::uint8_t>(src[(k0 + i) * a.stride_k] ^ flip);
        mapped[i] = v;
        sum += v;
      }
      // Phase 2: runs of 8 into the pairs, the rest (at most 4 values) into the odd group.
      int i = 0;
      for (; i < n && k0 + i < k_pairs; i += 8) {
        std::memcpy(out + (k0 + i) / 8 * 8 * mr + r * 8, mapped + i,
                    static_cast<std::size_t>(std::min(8, n - i)));
      }
      if (i < n) {
        std::memcpy(out + k_pairs * mr + r * 4, mapped + i, static_cast<std::size_t>(n - i));
      }
    }
    rowsum[r] = static_cast<std::int32_t>(sum);
  }
}

// ---- gemm 8x8 (USMMLA) -------------------------------------------------------------------------

namespace detail {

// The 2x2 blocks of one K step: 4 row pairs (a[i]) x 4 column pairs (m[j]).
KEEL_TARGET_I8MM KEEL_NEON_INLINE void mmla_step(const uint8x16_t (&a)[4], const int8x16_t (&m)[4],
                                                 int32x4_t (&acc)[4][4]) noexcept {
  for (int i = 0; i < 4; ++i) {
    for (int j = 0; j < 4; ++j) acc[i][j] = vusmmlaq_s32(acc[i][j], a[i], m[j]);
  }
}

// Column pairs of two K groups of B (x: group g, y: group g + 1, or zeros), 8 K values each:
// zip on 32-bit lanes interleaves the columns' 4-byte runs.
KEEL_TARGET_I8MM KEEL_NEON_INLINE void column_pairs(int8x16_t x0, int8x16_t x1, int8x16_t y0,
                                                    int8x16_t y1, int8x16_t (&m)[4]) noexcept {
  const int32x4_t x0w = vreinterpretq_s32_s8(x0), x1w = vreinterpretq_s32_s8(x1);
  const int32x4_t y0w = vreinterpretq_s32_s8(y0), y1w = vreinterpretq_s32_s8(y1);
  m[0] = vreinterpretq_s8_s32(vzip1q_s32(x0w, y0w));  // columns 0, 1
  m[1] = vreinterpretq_s8_s32(vzip2q_s32(x0w, y0w));  // columns 2, 3
  m[2] = vreinterpretq_s8_s32(vzip1q_s32(x1w, y1w));  // columns 4, 5
  m[3] = vreinterpretq_s8_s32(vzip2q_s32(x1w, y1w));  // columns 6, 7
}

// [low 64 bits of x, low 64 bits of y] and the same of the high halves: from two 2x2 blocks
// (lanes [r0c0 r0c1 r1c0 r1c1]) side by side, row 0's four columns and row 1's.
KEEL_NEON_SHARED_INLINE int32x4_t low_halves(int32x4_t x, int32x4_t y) noexcept {
  return vreinterpretq_s32_s64(vzip1q_s64(vreinterpretq_s64_s32(x), vreinterpretq_s64_s32(y)));
}
KEEL_NEON_SHARED_INLINE int32x4_t high_halves(int32x4_t x, int32x4_t y) noexcept {
  return vreinterpretq_s32_s64(vzip2q_s64(vreinterpretq_s64_s32(x), vreinterpretq_s64_s32(y)));
}

}  // namespace detail

// A panel: u8 row pairs (pack_a_row_pairs, mr = 8); B panels: s8 [kq][8][4].
KEEL_TARGET_I8MM inline void gemm_mmla(const ukernel_args& p) noexcept {
  constexpr int MR = kGemmRows;
  const auto* a = static_cast<const std::uint8_t*>(p.a);
  const std::int64_t pairs = p.kq / 2;
  for (int j = 0; j < p.panels; ++j) {
    const std::int8_t* b = p.b + j * p.b_panel_stride;

    // Setup: acc[i][j] = rows (2i, 2i+1) x columns (2j, 2j+1), lanes [r0c0 r0c1 r1c0 r1c1].
    int32x4_t acc[4][4];
    for (auto& row : acc) {
      for (auto& v : row) v = vdupq_n_s32(0);
    }

    // Main loop: two K groups (8 K values) per step.
    for (std::int64_t q = 0; q < pairs; ++q) {
      const std::int8_t* bq = b + q * 64;
      int8x16_t m[4];
      detail::column_pairs(vld1q_s8(bq), vld1q_s8(bq + 16), vld1q_s8(bq + 32), vld1q_s8(bq + 48),
                           m);
      const std::uint8_t* aq = a + q * 8 * MR;
      const uint8x16_t av[4] = {vld1q_u8(aq), vld1q_u8(aq + 16), vld1q_u8(aq + 32),
                                vld1q_u8(aq + 48)};
      detail::mmla_step(av, m, acc);
    }

    // Leftover: an odd last K group, its missing half zero in both operands.
    if (p.kq % 2 != 0) {
      const std::int8_t* bq = b + pairs * 64;
      const int8x16_t zero = vdupq_n_s8(0);
      int8x16_t m[4];
      detail::column_pairs(vld1q_s8(bq), vld1q_s8(bq + 16), zero, zero, m);
      const std::uint8_t* at = a + pairs * 8 * MR;                    // [8 rows][4 K]
      const uint32x4_t t0 = vreinterpretq_u32_u8(vld1q_u8(at));       // rows 0-3
      const uint32x4_t t1 = vreinterpretq_u32_u8(vld1q_u8(at + 16));  // rows 4-7
      const uint32x4_t z = vdupq_n_u32(0);
      const uint8x16_t av[4] = {
          vreinterpretq_u8_u32(vzip1q_u32(t0, z)), vreinterpretq_u8_u32(vzip2q_u32(t0, z)),
          vreinterpretq_u8_u32(vzip1q_u32(t1, z)), vreinterpretq_u8_u32(vzip2q_u32(t1, z))};
      detail::mmla_step(av, m, acc);
    }

    // Store: row 2i is the low halves of acc[i][0..3], row 2i + 1 the high halves.
    std::int32_t* raw = p.raw + j * 8;
    for (int i = 0; i < 4; ++i) {
      neon::detail::store_row8(raw, p.ld_raw, 2 * i, p.rows,
                               detail::low_halves(acc[i][0], acc[i][1]),
                               detail::low_halves(acc[i][2], acc[i][3]));
      neon::detail::store_row8(raw, p.ld_raw, 2 * i + 1, p.rows,
                               detail::high_halves(acc[i][0], acc[i][1]),
                               detail::high_halves(acc[i][2], acc[i][3]));
    }
  }
}

// ---- gemv 4x128 (SUDOT) ------------------------------------------------------------------------

namespace detail {

template <int R>
KEEL_TARGET_I8MM KEEL_NEON_INLINE void sudot_row(uint8x16_t a, int8x16_t b0, int8x16_t b1,
                                                 int32x4_t& c0_3, int32x4_t& c4_7) noexcept {
  c0_3 = vsudotq_laneq_s32(c0_3, b0, a, R);
  c4_7 = vsudotq_laneq_s32(c4_7, b1, a, R);
}

// Rows (1..4) rows of a u8 A panel ([kq][4][4], packing.hpp) against one B panel.
template <int Rows>
KEEL_TARGET_I8MM KEEL_NEON_INLINE void gemv_panel(const std::uint8_t* a, const std::int8_t* b,
                                                  std::int64_t kq, std::int32_t* raw,
                                                  std::int64_t ld_raw) noexcept {
  static_assert(Rows >= 1 && Rows <= kGemvRows, "gemv_panel handles 1..4 rows");
  int32x4_t lo[Rows], hi[Rows];
  for (int r = 0; r < Rows; ++r) lo[r] = hi[r] = vdupq_n_s32(0);

  // Main loop: B streams once.
  for (std::int64_t g = 0; g < kq; ++g) {
    const int8x16_t b0 = vld1q_s8(b + g * 32);
    const int8x16_t b1 = vld1q_s8(b + g * 32 + 16);
    const uint8x16_t av = vld1q_u8(a + g * kGemvRows * 4);
    sudot_row<0>(av, b0, b1, lo[0], hi[0]);
    if constexpr (Rows > 1) sudot_row<1>(av, b0, b1, lo[1], hi[1]);
    if constexpr (Rows > 2) sudot_row<2>(av, b0, b1, lo[2], hi[2]);
    if constexpr (Rows > 3) sudot_row<3>(av, b0, b1, lo[3], hi[3]);
  }

  // Store.
  for (int r = 0; r < Rows; ++r) {
    vst1q_s32(raw + r * ld_raw, lo[r]);
    vst1q_s32(raw + r * ld_raw + 4, hi[r]);
  }
}

}  // namespace detail

// A panel: u8 [kq][4][4] (the portable pack_a<std::uint8_t>); up to kGemvPanels B panels.
KEEL_TARGET_I8MM inline void gemv_dp4(const ukernel_args& p) noexcept {
  const auto* a = static_cast<const std::uint8_t*>(p.a);
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

}  // namespace keel::kernels::gemm_i8::i8mm

#endif  // KEEL_GEMM_I8_HAVE_I8MM
