// keel/kernels/gemm_i4/avx2.hpp — hand-tuned AVX2 kernels for int4 weights (layout p8k8, see
// variant.hpp). Compiled with function-level target attributes, so a baseline x86-64 translation
// unit still contains them; the registry runs them only where the CPU reports the features.
//
// s8 activations, technique ubs (gemv 4x8 and gemm 4x16):
//   One 32-byte load is a unit (8 columns x 8 K values). `v & 0x0F` is the p8k4 block of K
//   values k0..k0+3 and `(v >> 4) & 0x0F` that of k0+4..k0+7, as u8 in 0..15; vpmaddubsw against
//   the row's 4 quantized values (s8, broadcast to every dword) gives int16 lanes
//   u0*q0 + u1*q1, at most 2 * 15 * 127 = 3810 in magnitude: no saturation. Two such per unit,
//   summed into an int16 accumulator for up to 4 units (8 pairs: at most 30480 < 32767), are
//   then widened by vpmaddwd against ones into int32 lanes, one per column, in column order.
//   The zero point is applied once per group: isum = sum q*u - z * sum q (exact int32), with
//   sum q per group prepared with the row. Then, per group, the reference's f32 steps in the
//   reference's order: c = a_scale * s (rounded), t = float(isum) * c (rounded), acc += t.
//   Per unit and panel: 1 load, 3 ALU uops to split nibbles; per row 2 broadcasts (loads), 2
//   vpmaddubsw, 2 vpaddw: about 7 uops per 64 MACs for one row, far under what memory feeds.
//
// f32 activations, techniques ord (the reference's bits) and fma (within the bound), 1x32:
//   One output column per lane, so each lane runs the reference's sequence for its column. Per
//   K value, vpshufb moves byte 4c + i of each 128-bit half into dword c, and the nibble becomes
//   the float u - z exactly, in one of two ways (see f32_row): the magic number 2^23 (any row), or
//   (u - z) * 2^24 through vcvtdq2ps (rows inside a range guard; one uop fewer). Then ord
//   multiplies by the broadcast activation and adds (two roundings, as the reference); fma fuses
//   the two. Each of the 4 panels is an independent chain. These kernels are bound by vector ALU
//   uops (about 3.7 per 8 MACs for fma, 4.7 for ord, with 3 vector ports), not by memory: the
//   conversion of every nibble to a float cannot be shared when M = 1.
//
// No contraction: `ord` and the f32 steps of `ubs` must round every product on its own, under
// any -ffp-contract and -march. Each such product and the add that consumes it are one asm
// statement (add_rounded_product), which no compiler can fuse.
#pragma once

#include "keel/kernels/gemm_i4/packing.hpp"
#include "keel/kernels/gemm_i4/variant.hpp"

#if defined(KEEL_GEMM_I4_HAVE_AVX2)

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#define KEEL_GEMM_I4_TARGET_AVX2_FMA __attribute__((target("avx2,fma")))

namespace keel::kernels::gemm_i4::avx2 {

namespace detail {

// GEMV rows read the weights once, from memory: prefetch this far ahead in the stream (the
// panels are contiguous, so ahead is simply further along the buffer). The int8 GEMV measured
// 4 KiB as best on this machine (gemm_i8/avx2.hpp); the same distance is used here.
inline constexpr int kPrefetchBytes = 4096;

KEEL_GEMM_I4_TARGET_AVX2 inline __m256i broadcast_4_bytes(const void* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm256_set1_epi32(v);
}

// sum + rounded(a * b): a multiply and an add in one asm statement, so that no compiler can
// fuse them (whatever -ffp-contract or -march says) and the product keeps its own rounding. (An
// empty asm on the product alone did the same, but GCC 12 then computed the 32 products of a unit
// before the adds, spilling them to the stack: 30% slower.)
KEEL_GEMM_I4_TARGET_AVX2 inline __m256 add_rounded_product(__m256 sum, __m256 a,
                                                           __m256 b) noexcept {
  __m256 product;
  asm("vmulps %[b], %[a], %[p]\n\t"
      "vaddps %[p], %[s], %[s]"
      : [s] "+x"(sum), [p] "=&x"(product)
      : [a] "x"(a), [b] "x"(b));
  return sum;
}

KEEL_GEMM_I4_TARGET_AVX2 inline __m256 load_scales(const std::uint8_t* rec,
                                                   std::int64_t units) noexcept {
  return _mm256_loadu_ps(reinterpret_cast<const float*>(rec + units * kUnitBytes));
}

// The 8 zero points of a record as int32 lanes.
KEEL_GEMM_I4_TARGET_AVX2 inline __m256i load_zero_points(const std::uint8_t* rec,
                                                         std::int64_t units) noexcept {
  return _mm256_cvtepu8_epi32(
      _mm_loadl_epi64(reinterpret_cast<const __m128i*>(rec + units * kUnitBytes + kScaleBytes)));
}

// ---- s8 activations (ubs) -----------------------------------------------------------------
//
// Register plan of the 4x16 tile: 8 int16 accumulators, 4 unpacked weight vectors, 2 broadcasts
// and the nibble mask: 15 of 16. Everything that lives longer than a block of 4 units (the int32
// group sums of long groups, the f32 sums) is kept in L1 on purpose: when GCC 12 held them in
// registers it spilled the int16 accumulators instead, inside the hot loop.

#define KEEL_I4_ALWAYS_INLINE inline __attribute__((always_inline))

// Units [u0, u1) (at most 4) of Rows rows by NP panels into int16 sums. `rec` is panel 0's
// record, `q` row 0's quantized values at the record's first K position.
template <int Rows, int NP, bool Prefetch>
KEEL_GEMM_I4_TARGET_AVX2 KEEL_I4_ALWAYS_INLINE void s8_block(const kernel_args& p,
                                                             const std::uint8_t* rec,
                                                             const std::int8_t* q, std::int64_t u0,
                                                             std::int64_t u1,
                                                             __m256i (&acc16)[Rows][NP]) noexcept {
  const __m256i nibble = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) acc16[r][j] = _mm256_setzero_si256();
  }
  for (std::int64_t u = u0; u < u1; ++u) {
    const std::uint8_t* wu = rec + u * kUnitBytes;
    if constexpr (Prefetch) {
      if ((u & 1) == 0) {  // one prefetch per 64-byte line of each panel's stream
#pragma GCC unroll 4
        for (int j = 0; j < NP; ++j) {
          _mm_prefetch(reinterpret_cast<const char*>(wu + j * p.panel_stride + kPrefetchBytes),
                       _MM_HINT_T0);
        }
      }
    }
    __m256i lo[NP], hi[NP];
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) {
      const __m256i v =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wu + j * p.panel_stride));
      lo[j] = _mm256_and_si256(v, nibble);
      hi[j] = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
    }
    const std::int8_t* qu = q + u * kUnitK;
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
      const __m256i qa = broadcast_4_bytes(qu + r * p.lda);
      const __m256i qb = broadcast_4_bytes(qu + r * p.lda + 4);
#pragma GCC unroll 4
      for (int j = 0; j < NP; ++j) {
        acc16[r][j] = _mm256_add_epi16(acc16[r][j], _mm256_maddubs_epi16(lo[j], qa));
        acc16[r][j] = _mm256_add_epi16(acc16[r][j], _mm256_maddubs_epi16(hi[j], qb));
      }
    }
  }
}

// Rows x NP panels over all of K. `w` is the first panel's first record; panels are
// panel_stride apart. out: [Rows][ld_out], NP * 8 columns; it also holds the f32 sums.
template <int Rows, int NP, bool ZP, bool Prefetch>
KEEL_GEMM_I4_TARGET_AVX2 inline void s8_tile(const kernel_args& p, const std::uint8_t* w,
                                             float* out) noexcept {
  const packed_geometry& geo = *p.geo;
  const auto* q = static_cast<const std::int8_t*>(p.a);
  const __m256i ones = _mm256_set1_epi16(1);

  // Setup: the f32 sums start at +0, as the reference's.
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j)
      _mm256_storeu_ps(out + r * p.ld_out + j * kPanelCols, _mm256_setzero_ps());
  }

  const std::uint8_t* rec = w;  // the current record of panel 0
  std::int64_t k0 = 0;          // its first (padded) K position
  for (std::int64_t g = 0; g < geo.groups; ++g) {
    const std::int64_t units = geo.units_of(g);
    __m256i acc16[Rows][NP];
    __m256i isum[Rows][NP];

    // Main loop: a group of up to 4 units (G <= 32) in one int16 block; a longer group in blocks
    // whose int32 sums gather in L1.
    if (units <= 4) {
      s8_block<Rows, NP, Prefetch>(p, rec, q + k0, 0, units, acc16);
#pragma GCC unroll 8
      for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
        for (int j = 0; j < NP; ++j) isum[r][j] = _mm256_madd_epi16(acc16[r][j], ones);
      }
    } else {
      alignas(32) std::int32_t sums[Rows][NP][8];
      s8_block<Rows, NP, Prefetch>(p, rec, q + k0, 0, 4, acc16);
#pragma GCC unroll 8
      for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
        for (int j = 0; j < NP; ++j) {
          _mm256_store_si256(reinterpret_cast<__m256i*>(sums[r][j]),
                             _mm256_madd_epi16(acc16[r][j], ones));
        }
      }
      for (std::int64_t u0 = 4; u0 < units; u0 += 4) {
        s8_block<Rows, NP, Prefetch>(p, rec, q + k0, u0, u0 + 4 < units ? u0 + 4 : units, acc16);
#pragma GCC unroll 8
        for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
          for (int j = 0; j < NP; ++j) {
            auto* sp = reinterpret_cast<__m256i*>(sums[r][j]);
            _mm256_store_si256(
                sp, _mm256_add_epi32(_mm256_load_si256(sp), _mm256_madd_epi16(acc16[r][j], ones)));
          }
        }
      }
#pragma GCC unroll 8
      for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
        for (int j = 0; j < NP; ++j) {
          isum[r][j] = _mm256_load_si256(reinterpret_cast<const __m256i*>(sums[r][j]));
        }
      }
    }

    // Group end: zero points, then the reference's f32 steps.
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) {
      const std::uint8_t* rj = rec + j * p.panel_stride;
      const __m256 s = load_scales(rj, units);
      [[maybe_unused]] __m256i z;
      if constexpr (ZP) z = load_zero_points(rj, units);
#pragma GCC unroll 8
      for (int r = 0; r < Rows; ++r) {
        const __m256i qs = _mm256_set1_epi32(p.qsum[r * p.ld_qsum + g]);
        const __m256i zq = ZP ? _mm256_mullo_epi32(z, qs) : _mm256_slli_epi32(qs, 3);
        const __m256i i = _mm256_sub_epi32(isum[r][j], zq);
        const __m256 c = _mm256_mul_ps(_mm256_set1_ps(p.a_scale[r]), s);  // feeds only a product
        float* o = out + r * p.ld_out + j * kPanelCols;
        _mm256_storeu_ps(o, add_rounded_product(_mm256_loadu_ps(o), _mm256_cvtepi32_ps(i), c));
      }
    }
    k0 += units * kUnitK;
    rec += geo.record_bytes_for(units);
  }
}
static_assert(kDefaultZeroPoint == 8, "s8_tile multiplies by the default zero point with a shift");

// ---- f32 activations (ord, fma) -------------------------------------------------------------

// vpshufb masks: mask i moves byte 4c + i of each 128-bit half (the K value k0 + i of column c,
// or of column c + 4 in the upper half) into dword c, at byte `at` (0 or 3), and zeroes the
// other 3 bytes. `zmask` spreads 8 zero-point bytes (in bytes 0..7 of both halves) so that byte
// 4c + i of each half holds column c's (c + 4's in the upper half).
struct byte_masks {
  alignas(32) std::uint8_t low[4][32] = {};   // the byte lands in bits 0-7
  alignas(32) std::uint8_t high[4][32] = {};  // the byte lands in bits 24-31
  alignas(32) std::uint8_t zmask[32] = {};
};
constexpr byte_masks make_byte_masks() noexcept {
  byte_masks m;
  for (int b = 0; b < 32; ++b) {
    const int in_half = b % 16;
    const int dword_start = in_half - in_half % 4;
    for (int i = 0; i < 4; ++i) {
      m.low[i][b] = in_half % 4 == 0 ? static_cast<std::uint8_t>(in_half + i) : 0x80;
      m.high[i][b] = in_half % 4 == 3 ? static_cast<std::uint8_t>(dword_start + i) : 0x80;
    }
    m.zmask[b] = static_cast<std::uint8_t>(in_half / 4 + (b < 16 ? 0 : 4));
  }
  return m;
}
inline constexpr byte_masks kByteMasks = make_byte_masks();

// One row x NP panels over all of K, one chain per panel: fused multiply-adds (fma), or the
// reference's order and roundings (ord). Two ways to turn a nibble into its float:
//
//   !Scaled  (any row)  pick u into a dword's low byte, OR 0x4B000000 -> the float 2^23 + u,
//                       subtract 2^23 + z -> float(u - z) exactly. 4 ALU uops per 8 MACs with
//                       fma, 5 with ord.
//   Scaled   (rows that pass the range guard, see f32_row_scales)  subtract z from the unpacked
//                       bytes once per 4 K values (vpsubb: u - z as s8), pick the byte into a
//                       dword's top byte -> the int32 (u - z) * 2^24, vcvtdq2ps -> exact. Every
//                       product and partial sum is then the reference's times 2^24 exactly (a
//                       power of two, and the guard keeps them normal and finite), so scaling the
//                       group sum by 2^-24 gives back the reference's group sum bit for bit. 3 ALU
//                       uops per 8 MACs with fma, 4 with ord.
template <int NP, bool ZP, bool Fused, bool Prefetch, bool Scaled>
KEEL_GEMM_I4_TARGET_AVX2_FMA inline void f32_row(const kernel_args& p, const std::uint8_t* w,
                                                 const float* x, float* out) noexcept {
  const packed_geometry& geo = *p.geo;
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  const __m256i magic = _mm256_set1_epi32(0x4B000000);  // the float 2^23
  const __m256 default_offset = _mm256_set1_ps(8388608.0f + kDefaultZeroPoint);
  const __m256 unscale = _mm256_set1_ps(0x1p-24f);
  __m256i pick[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    pick[i] = _mm256_load_si256(
        reinterpret_cast<const __m256i*>(Scaled ? kByteMasks.high[i] : kByteMasks.low[i]));
  }

  __m256 acc[NP];
#pragma GCC unroll 4
  for (int j = 0; j < NP; ++j) acc[j] = _mm256_setzero_ps();

  const std::uint8_t* rec = w;
  std::int64_t k0 = 0;
  for (std::int64_t g = 0; g < geo.groups; ++g) {
    const std::int64_t units = geo.units_of(g);
    // Setup: per panel, 2^23 + z as floats (!Scaled), or z in every byte of its column (Scaled).
    [[maybe_unused]] __m256 offset[NP];
    [[maybe_unused]] __m256i zbytes[NP];
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) {
      const std::uint8_t* rj = rec + j * p.panel_stride;
      if constexpr (Scaled) {
        if constexpr (ZP) {
          std::int64_t z8;
          std::memcpy(&z8, rj + units * kUnitBytes + kScaleBytes, sizeof(z8));
          zbytes[j] = _mm256_shuffle_epi8(
              _mm256_set1_epi64x(z8),
              _mm256_load_si256(reinterpret_cast<const __m256i*>(kByteMasks.zmask)));
        } else {
          zbytes[j] = _mm256_set1_epi8(kDefaultZeroPoint);
        }
      } else if constexpr (ZP) {
        offset[j] = _mm256_castsi256_ps(_mm256_add_epi32(load_zero_points(rj, units), magic));
      } else {
        offset[j] = default_offset;
      }
    }
    __m256 gsum[NP];
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) gsum[j] = _mm256_setzero_ps();

    // Main loop: one unit (8 K values) of every panel per step.
    for (std::int64_t u = 0; u < units; ++u) {
      const std::uint8_t* wu = rec + u * kUnitBytes;
      if constexpr (Prefetch) {
        if ((u & 1) == 0) {  // one prefetch per 64-byte line of each panel's stream
#pragma GCC unroll 4
          for (int j = 0; j < NP; ++j) {
            _mm_prefetch(reinterpret_cast<const char*>(wu + j * p.panel_stride + kPrefetchBytes),
                         _MM_HINT_T0);
          }
        }
      }
      const float* xu = x + k0 + u * kUnitK;
      __m256i half[NP][2];
#pragma GCC unroll 4
      for (int j = 0; j < NP; ++j) {
        const __m256i v =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wu + j * p.panel_stride));
        half[j][0] = _mm256_and_si256(v, nibble);
        half[j][1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
        if constexpr (Scaled) {
          half[j][0] = _mm256_sub_epi8(half[j][0], zbytes[j]);
          half[j][1] = _mm256_sub_epi8(half[j][1], zbytes[j]);
        }
      }
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        const __m256 xb = _mm256_broadcast_ss(xu + i);
#pragma GCC unroll 4
        for (int j = 0; j < NP; ++j) {
          const __m256i picked = _mm256_shuffle_epi8(half[j][i / 4], pick[i % 4]);
          __m256 wv;  // float(u - z), times 2^24 when Scaled; exact either way
          if constexpr (Scaled) {
            wv = _mm256_cvtepi32_ps(picked);
          } else {
            wv = _mm256_sub_ps(_mm256_castsi256_ps(_mm256_or_si256(picked, magic)), offset[j]);
          }
          if constexpr (Fused) {
            gsum[j] = _mm256_fmadd_ps(xb, wv, gsum[j]);
          } else {
            gsum[j] = add_rounded_product(gsum[j], xb, wv);
          }
        }
      }
    }

    // Group end: scale and add.
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) {
      const __m256 s = load_scales(rec + j * p.panel_stride, units);
      if constexpr (Scaled) gsum[j] = _mm256_mul_ps(gsum[j], unscale);  // exact: a power of two
      if constexpr (Fused) {
        acc[j] = _mm256_fmadd_ps(s, gsum[j], acc[j]);
      } else {
        acc[j] = add_rounded_product(acc[j], s, gsum[j]);
      }
    }
    k0 += units * kUnitK;
    rec += geo.record_bytes_for(units);
  }

  // Store.
#pragma GCC unroll 4
  for (int j = 0; j < NP; ++j) _mm256_storeu_ps(out + j * kPanelCols, acc[j]);
}

// Rows (1..8) x NP panels over all of K, for M > 1: the conversion of each weight to a float
// (2 or 3 ALU uops per 8 weights) is shared by the rows of the tile, instead of being redone per
// row as in f32_row. Per K value and panel: the conversion, then per row a broadcast (a load) and
// the multiply-add(s) into that row's chain (8 independent chains); out holds the f32 sums. Scaled
// only when every row of the tile passes the guard. Registers (8 x 8): 8 group sums, 2 unpacked
// halves, the weight and the broadcast. Measured per core against 4 rows x 2 panels: 8 rows share
// each conversion twice as widely (ord 2.3 instead of 2.6 ALU uops per 8 MACs, fma 1.3 for 1.6).
inline constexpr int kF32TileRows = 8;
template <int Rows, int NP, bool ZP, bool Fused, bool Scaled>
KEEL_GEMM_I4_TARGET_AVX2_FMA inline void f32_tile(const kernel_args& p, const std::uint8_t* w,
                                                  float* out) noexcept {
  const packed_geometry& geo = *p.geo;
  const auto* a = static_cast<const float*>(p.a);
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  const __m256i magic = _mm256_set1_epi32(0x4B000000);  // the float 2^23
  const __m256 unscale = _mm256_set1_ps(0x1p-24f);

  // Setup: the f32 sums start at +0, as the reference's.
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) {
      _mm256_storeu_ps(out + r * p.ld_out + j * kPanelCols, _mm256_setzero_ps());
    }
  }

  const std::uint8_t* rec = w;
  std::int64_t k0 = 0;
  for (std::int64_t g = 0; g < geo.groups; ++g) {
    const std::int64_t units = geo.units_of(g);
    [[maybe_unused]] __m256 offset[NP];
    [[maybe_unused]] __m256i zbytes[NP];
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) {
      const std::uint8_t* rj = rec + j * p.panel_stride;
      if constexpr (Scaled) {
        if constexpr (ZP) {
          std::int64_t z8;
          std::memcpy(&z8, rj + units * kUnitBytes + kScaleBytes, sizeof(z8));
          zbytes[j] = _mm256_shuffle_epi8(
              _mm256_set1_epi64x(z8),
              _mm256_load_si256(reinterpret_cast<const __m256i*>(kByteMasks.zmask)));
        } else {
          zbytes[j] = _mm256_set1_epi8(kDefaultZeroPoint);
        }
      } else if constexpr (ZP) {
        offset[j] = _mm256_castsi256_ps(_mm256_add_epi32(load_zero_points(rj, units), magic));
      } else {
        offset[j] = _mm256_set1_ps(8388608.0f + kDefaultZeroPoint);
      }
    }
    __m256 gsum[Rows][NP];
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
      for (int j = 0; j < NP; ++j) gsum[r][j] = _mm256_setzero_ps();
    }

    // Main loop: one unit of every panel per step; per K value, convert once, use Rows times.
    for (std::int64_t u = 0; u < units; ++u) {
      const std::uint8_t* wu = rec + u * kUnitBytes;
      const std::int64_t ku = k0 + u * kUnitK;
      __m256i half[NP][2];
#pragma GCC unroll 4
      for (int j = 0; j < NP; ++j) {
        const __m256i v =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wu + j * p.panel_stride));
        half[j][0] = _mm256_and_si256(v, nibble);
        half[j][1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), nibble);
        if constexpr (Scaled) {
          half[j][0] = _mm256_sub_epi8(half[j][0], zbytes[j]);
          half[j][1] = _mm256_sub_epi8(half[j][1], zbytes[j]);
        }
      }
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
#pragma GCC unroll 4
        for (int j = 0; j < NP; ++j) {
          const __m256i pick = _mm256_load_si256(reinterpret_cast<const __m256i*>(
              Scaled ? kByteMasks.high[i % 4] : kByteMasks.low[i % 4]));
          const __m256i picked = _mm256_shuffle_epi8(half[j][i / 4], pick);
          __m256 wv;  // float(u - z), times 2^24 when Scaled; exact either way
          if constexpr (Scaled) {
            wv = _mm256_cvtepi32_ps(picked);
          } else {
            wv = _mm256_sub_ps(_mm256_castsi256_ps(_mm256_or_si256(picked, magic)), offset[j]);
          }
#pragma GCC unroll 8
          for (int r = 0; r < Rows; ++r) {
            const __m256 xb = _mm256_broadcast_ss(a + r * p.lda + ku + i);
            if constexpr (Fused) {
              gsum[r][j] = _mm256_fmadd_ps(xb, wv, gsum[r][j]);
            } else {
              gsum[r][j] = add_rounded_product(gsum[r][j], xb, wv);
            }
          }
        }
      }
    }

    // Group end: scale and add.
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) {
      const __m256 s = load_scales(rec + j * p.panel_stride, units);
#pragma GCC unroll 8
      for (int r = 0; r < Rows; ++r) {
        __m256 gs = gsum[r][j];
        if constexpr (Scaled) gs = _mm256_mul_ps(gs, unscale);  // exact: a power of two
        float* o = out + r * p.ld_out + j * kPanelCols;
        if constexpr (Fused) {
          _mm256_storeu_ps(o, _mm256_fmadd_ps(s, gs, _mm256_loadu_ps(o)));
        } else {
          _mm256_storeu_ps(o, add_rounded_product(_mm256_loadu_ps(o), s, gs));
        }
      }
    }
    k0 += units * kUnitK;
    rec += geo.record_bytes_for(units);
  }
}

// ---- dispatch over runtime row and panel counts -----------------------------------------------

template <int NP, bool ZP, bool Prefetch, int Rows = 1>
KEEL_GEMM_I4_TARGET_AVX2 inline void s8_rows(const kernel_args& p, const std::uint8_t* w,
                                             float* out) noexcept {
  if constexpr (Rows <= 4) {
    if (p.rows == Rows) return s8_tile<Rows, NP, ZP, Prefetch>(p, w, out);
    return s8_rows<NP, ZP, Prefetch, Rows + 1>(p, w, out);
  }
}

// Every panel of the call in steps of NP, then the remaining ones one at a time.
template <int NP, bool ZP, bool Prefetch>
KEEL_GEMM_I4_TARGET_AVX2 inline void s8_panels(const kernel_args& p) noexcept {
  int j = 0;
  for (; j + NP <= p.panels; j += NP) {
    s8_rows<NP, ZP, Prefetch>(p, p.w + j * p.panel_stride, p.out + j * kPanelCols);
  }
  for (; j < p.panels; ++j) {
    s8_rows<1, ZP, Prefetch>(p, p.w + j * p.panel_stride, p.out + j * kPanelCols);
  }
}

template <int NP, bool ZP, bool Fused, bool Prefetch, bool Scaled>
KEEL_GEMM_I4_TARGET_AVX2_FMA inline void f32_row_panels(const kernel_args& p, const float* x,
                                                        float* out) noexcept {
  int j = 0;
  for (; j + NP <= p.panels; j += NP) {
    f32_row<NP, ZP, Fused, Prefetch, Scaled>(p, p.w + j * p.panel_stride, x, out + j * kPanelCols);
  }
  for (; j < p.panels; ++j) {
    f32_row<1, ZP, Fused, Prefetch, Scaled>(p, p.w + j * p.panel_stride, x, out + j * kPanelCols);
  }
}

template <int NP, bool ZP, bool Fused, bool Prefetch>
KEEL_GEMM_I4_TARGET_AVX2_FMA inline void f32_panels(const kernel_args& p) noexcept {
  const auto* a = static_cast<const float*>(p.a);
  for (int r = 0; r < p.rows; ++r) {
    const float* x = a + r * p.lda;
    float* out = p.out + r * p.ld_out;
    if (p.f32_scaled_ok != nullptr && p.f32_scaled_ok[r]) {
      f32_row_panels<NP, ZP, Fused, Prefetch, true>(p, x, out);
    } else {
      f32_row_panels<NP, ZP, Fused, Prefetch, false>(p, x, out);
    }
  }
}

template <int NP, bool ZP, bool Fused, bool Scaled, int Rows = 1>
KEEL_GEMM_I4_TARGET_AVX2_FMA inline void f32_tile_rows(const kernel_args& p, const std::uint8_t* w,
                                                       float* out) noexcept {
  if constexpr (Rows <= kF32TileRows) {
    if (p.rows == Rows) return f32_tile<Rows, NP, ZP, Fused, Scaled>(p, w, out);
    return f32_tile_rows<NP, ZP, Fused, Scaled, Rows + 1>(p, w, out);
  }
}

// Every panel of the call in steps of NP, then the remaining ones one at a time.
template <int NP, bool ZP, bool Fused>
KEEL_GEMM_I4_TARGET_AVX2_FMA inline void f32_tiles(const kernel_args& p) noexcept {
  bool scaled = p.f32_scaled_ok != nullptr;
  for (int r = 0; scaled && r < p.rows; ++r) scaled = p.f32_scaled_ok[r] != 0;
  int j = 0;
  for (; j + NP <= p.panels; j += NP) {
    if (scaled) {
      f32_tile_rows<NP, ZP, Fused, true>(p, p.w + j * p.panel_stride, p.out + j * kPanelCols);
    } else {
      f32_tile_rows<NP, ZP, Fused, false>(p, p.w + j * p.panel_stride, p.out + j * kPanelCols);
    }
  }
  for (; j < p.panels; ++j) {
    if (scaled) {
      f32_tile_rows<1, ZP, Fused, true>(p, p.w + j * p.panel_stride, p.out + j * kPanelCols);
    } else {
      f32_tile_rows<1, ZP, Fused, false>(p, p.w + j * p.panel_stride, p.out + j * kPanelCols);
    }
  }
}

}  // namespace detail

// ---- the entry points the registry names --------------------------------------------------------

// gemv: up to 4 rows, any number of panels, streamed once with prefetch.
inline void gemv_s8_ubs(const kernel_args& p) noexcept {
  if (p.geo->has_zero_points) return detail::s8_panels<1, true, true>(p);
  return detail::s8_panels<1, false, true>(p);
}
// gemm: up to 4 rows by up to 2 panels (16 columns), weights from cache.
inline void gemm_s8_ubs(const kernel_args& p) noexcept {
  if (p.geo->has_zero_points) return detail::s8_panels<2, true, false>(p);
  return detail::s8_panels<2, false, false>(p);
}
// f32 gemm: up to 8 rows by 1 panel, each weight converted once per tile.
template <bool Fused>
void gemm_f32(const kernel_args& p) noexcept {
  if (p.geo->has_zero_points) return detail::f32_tiles<1, true, Fused>(p);
  return detail::f32_tiles<1, false, Fused>(p);
}
// f32 gemv: one row at a time, 4 panels side by side, streamed with prefetch.
template <bool Fused>
void gemv_f32(const kernel_args& p) noexcept {
  if (p.geo->has_zero_points) return detail::f32_panels<4, true, Fused, true>(p);
  return detail::f32_panels<4, false, Fused, true>(p);
}

}  // namespace keel::kernels::gemm_i4::avx2

#endif  // KEEL_GEMM_I4_HAVE_AVX2
