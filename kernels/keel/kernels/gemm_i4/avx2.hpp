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
//   One output column per lane. Per K value, vpshufb moves byte 4c + i of each 128-bit half
//   into dword c, where OR with 0x4B000000 makes the float 2^23 + u exactly; subtracting
//   2^23 + z gives float(u - z) exactly (all are integers below 2^24). Then ord multiplies by
//   the broadcast activation and adds (two roundings, as the reference), fma fuses the two.
//   Each of the 4 panels is an independent chain, which hides the add latency.
//
// No contraction: `ord` and the f32 steps of `ubs` must round every product on its own. Their
// functions are compiled without FMA, and in case a build enables FMA for the whole file
// (-march=native), each product passes through an empty asm that the compiler cannot look into
// (keep_rounded), so no multiply-add can be formed across it.
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

// The value is rounded and stays rounded: an empty asm that claims to modify it, so that no
// later add can be fused with the operation that produced it.
KEEL_GEMM_I4_TARGET_AVX2 inline __m256 keep_rounded(__m256 v) noexcept {
  asm("" : "+x"(v));
  return v;
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
        const __m256 c = keep_rounded(_mm256_mul_ps(_mm256_set1_ps(p.a_scale[r]), s));
        const __m256 t = keep_rounded(_mm256_mul_ps(_mm256_cvtepi32_ps(i), c));
        float* o = out + r * p.ld_out + j * kPanelCols;
        _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), t));
      }
    }
    k0 += units * kUnitK;
    rec += geo.record_bytes_for(units);
  }
}
static_assert(kDefaultZeroPoint == 8, "s8_tile multiplies by the default zero point with a shift");

// ---- f32 activations (ord, fma) -------------------------------------------------------------

// vpshufb masks: mask i makes dword c of each 128-bit half take byte 4c + i of that half (the K
// value k0 + i of column c, or of column c + 4 in the upper half) and zeroes the other 3 bytes.
struct pick_masks {
  alignas(32) std::uint8_t bytes[4][32] = {};
};
constexpr pick_masks make_pick_masks() noexcept {
  pick_masks m;
  for (int i = 0; i < 4; ++i) {
    for (int b = 0; b < 32; ++b) {
      const int in_half = b % 16;
      m.bytes[i][b] = in_half % 4 == 0 ? static_cast<std::uint8_t>(in_half + i) : 0x80;
    }
  }
  return m;
}
inline constexpr pick_masks kPickMasks = make_pick_masks();

// One row x NP panels over all of K, one chain per panel: fused multiply-adds (fma), or the
// reference's order and roundings (ord).
template <int NP, bool ZP, bool Fused, bool Prefetch>
KEEL_GEMM_I4_TARGET_AVX2_FMA inline void f32_row(const kernel_args& p, const std::uint8_t* w,
                                                 const float* x, float* out) noexcept {
  const packed_geometry& geo = *p.geo;
  const __m256i nibble = _mm256_set1_epi8(0x0F);
  const __m256i magic = _mm256_set1_epi32(0x4B000000);  // the float 2^23
  const __m256 default_offset = _mm256_set1_ps(8388608.0f + kDefaultZeroPoint);
  __m256i pick[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i)
    pick[i] = _mm256_load_si256(reinterpret_cast<const __m256i*>(kPickMasks.bytes[i]));

  __m256 acc[NP];
#pragma GCC unroll 4
  for (int j = 0; j < NP; ++j) acc[j] = _mm256_setzero_ps();

  const std::uint8_t* rec = w;
  std::int64_t k0 = 0;
  for (std::int64_t g = 0; g < geo.groups; ++g) {
    const std::int64_t units = geo.units_of(g);
    // Setup: 2^23 + z per panel, as floats (z from the record, or the default 8).
    __m256 offset[NP];
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) {
      if constexpr (ZP) {
        offset[j] = _mm256_castsi256_ps(
            _mm256_add_epi32(load_zero_points(rec + j * p.panel_stride, units), magic));
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
      }
#pragma GCC unroll 8
      for (int i = 0; i < 8; ++i) {
        const __m256 xb = _mm256_broadcast_ss(xu + i);
#pragma GCC unroll 4
        for (int j = 0; j < NP; ++j) {
          const __m256i bits =
              _mm256_or_si256(_mm256_shuffle_epi8(half[j][i / 4], pick[i % 4]), magic);
          const __m256 wv = _mm256_sub_ps(_mm256_castsi256_ps(bits), offset[j]);  // exact
          if constexpr (Fused) {
            gsum[j] = _mm256_fmadd_ps(xb, wv, gsum[j]);
          } else {
            gsum[j] = _mm256_add_ps(gsum[j], keep_rounded(_mm256_mul_ps(xb, wv)));
          }
        }
      }
    }

    // Group end: scale and add.
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) {
      const __m256 s = load_scales(rec + j * p.panel_stride, units);
      if constexpr (Fused) {
        acc[j] = _mm256_fmadd_ps(s, gsum[j], acc[j]);
      } else {
        acc[j] = _mm256_add_ps(acc[j], keep_rounded(_mm256_mul_ps(s, gsum[j])));
      }
    }
    k0 += units * kUnitK;
    rec += geo.record_bytes_for(units);
  }

  // Store.
#pragma GCC unroll 4
  for (int j = 0; j < NP; ++j) _mm256_storeu_ps(out + j * kPanelCols, acc[j]);
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

template <int NP, bool ZP, bool Fused, bool Prefetch>
KEEL_GEMM_I4_TARGET_AVX2_FMA inline void f32_panels(const kernel_args& p) noexcept {
  const auto* a = static_cast<const float*>(p.a);
  for (int r = 0; r < p.rows; ++r) {
    int j = 0;
    for (; j + NP <= p.panels; j += NP) {
      f32_row<NP, ZP, Fused, Prefetch>(p, p.w + j * p.panel_stride, a + r * p.lda,
                                       p.out + r * p.ld_out + j * kPanelCols);
    }
    for (; j < p.panels; ++j) {
      f32_row<1, ZP, Fused, Prefetch>(p, p.w + j * p.panel_stride, a + r * p.lda,
                                      p.out + r * p.ld_out + j * kPanelCols);
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
// f32: one row at a time (the driver keeps the panels hot across the rows of a call), 4 panels.
template <bool Fused>
void gemm_f32(const kernel_args& p) noexcept {
  if (p.geo->has_zero_points) return detail::f32_panels<4, true, Fused, true>(p);
  return detail::f32_panels<4, false, Fused, true>(p);
}

}  // namespace keel::kernels::gemm_i4::avx2

#endif  // KEEL_GEMM_I4_HAVE_AVX2
