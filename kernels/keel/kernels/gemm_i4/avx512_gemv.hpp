// keel/kernels/gemm_i4/avx512_gemv.hpp — AVX-512 int4 GEMV kernels (M <= 4 rows for dynamic_s8,
// one row at a time for f32): LLM decoding, where the weights stream once from memory and the
// kernel's job is to keep up with the bus. Layout p8k8 (variant.hpp), unchanged: the same packed
// weights serve these kernels, the AVX2 ones and the scalar ones. Compiled with function-level
// target attributes (AVX512F/BW/VL/VNNI); the registry runs them only where
// gemm_i8::avx512vnni::missing_feature() (CPUID and XCR0) finds nothing missing.
//
// s8 activations, technique dp4 (gemv 4x32):
//   One 64-byte load is 2 units (16 K values) of one panel's 8 columns: dword c of the low half
//   holds column c's K values k0..k0+3 (low nibbles) and k0+4..k0+7 (high nibbles), the high
//   half the same for k0+8..k0+15. `v & 0x0F` and `(v >> 4) & 0x0F` are u in 0..15 as unsigned
//   bytes; vpdpbusd multiplies them by the row's quantized values (s8, -127..127) and adds each 4
//   products to an int32 lane with no intermediate saturation (Intel SDM, VPDPBUSD), so every
//   lane is an exact int32 partial sum (|isum| <= G * 15 * 127, bounded by validate()). The row's
//   16 values are spread to match with one vpermd per operand (lanes 0-7: dword 0 or 1, lanes
//   8-15: dword 2 or 3), shared by the panels of the step. At the group's end the two halves are
//   added (column c = lane c + lane c + 8), the zero point applied once (isum - z * sum q, exact),
//   and the reference's f32 steps follow in its order, as in the AVX2 kernel: c = a_scale * s,
//   t = float(isum) * c, acc += t, each rounded (add_rounded_product: never fused). So the
//   reference's bits, for every input.
//
// f32 activations, technique ord (gemv 1x16): a table of rounded products instead of converting
//   nibbles to floats. The reference adds, per column, rounded(x[k] * float(u - z)) k by k; u - z
//   takes at most 31 values (-15..15), so for each K position the products x[k] * d are computed
//   once per row (one vmulps for 16 of them) into a table in L1, and each column's product is a
//   lookup: vpermps (16 entries, no zero points: d = u - 8) or vpermt2ps (32 entries, d = u - z,
//   index u - z + 15) indexed by the nibble itself (vpermps reads only the index's low 4 bits,
//   vpermt2ps the low 5, so a shifted dword needs no mask). The products are the reference's
//   products bit for bit (same operands, one IEEE multiplication each; NaN and infinities too), and
//   the adds are the reference's adds in its order (one output column per lane, K ascending, group
//   sums scaled and added group by group). Per K value and 16 columns (2 panels in one zmm):
//   1 shift (port 0), 1 permute (port 5), 1 add, against 5 uops per 8 columns for the AVX2
//   kernel's conversion, multiply and add. The table costs 1 vmulps per K value per row for all N.
//   K is walked in chunks (kChunkUnits units: a 16 KiB table) so that the table stays in L1; a
//   group longer than a chunk keeps its partial sums in a small buffer between chunks. Four panel
//   pairs run side by side (kF32Pairs): each column's sum is a chain of dependent adds, and one
//   pair at a time waited on their latency (f32_units has the numbers).
#pragma once

#include "keel/kernels/gemm_i4/avx2.hpp"
#include "keel/kernels/gemm_i4/packing.hpp"
#include "keel/kernels/gemm_i4/variant.hpp"
#include "keel/kernels/gemm_i8/avx512vnni.hpp"

#if defined(KEEL_GEMM_I4_HAVE_AVX2) && defined(KEEL_GEMM_I8_HAVE_AVX512VNNI)
#define KEEL_GEMM_I4_HAVE_AVX512 1

#include <immintrin.h>

#include <cstdint>
#include <cstring>

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*() (GCC bug 105593, fixed in GCC 13;
// see gemm_i8/avx512vnni.hpp): silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace keel::kernels::gemm_i4::avx512 {

// Why this machine cannot run the kernels of this file, or nullptr (the same features as the
// int8 VNNI kernels: AVX512F/BW/VL/VNNI and the OS's ZMM state).
inline const char* missing_feature() noexcept {
  return gemm_i8::avx512vnni::missing_feature();
}

namespace detail {

#define KEEL_I4_AVX512_TARGET KEEL_TARGET_AVX512VNNI
#define KEEL_I4_AVX512_INLINE inline __attribute__((always_inline))

// Software prefetch distance in the weight stream (bytes ahead of the load). Tried 1 KiB (the
// int8 VNNI gemv's distance): within the noise for the s8 kernel at M1_N4096_K4096 and K11008
// (11.0-11.5 against 11.1-11.2 GB/s per CPU-second), not kept.
inline constexpr int kPrefetchBytes = 4096;

// acc + rounded(a * b) on 16 lanes: the multiply and the add in one asm statement, so that no
// compiler fuses them (see avx2::detail::add_rounded_product).
KEEL_I4_AVX512_TARGET KEEL_I4_AVX512_INLINE __m512 add_rounded_product(__m512 sum, __m512 a,
                                                                      __m512 b) noexcept {
  __m512 product;
  asm("vmulps %[b], %[a], %[p]\n\t"
      "vaddps %[p], %[s], %[s]"
      : [s] "+v"(sum), [p] "=&v"(product)
      : [a] "v"(a), [b] "v"(b));
  return sum;
}

// ---- s8 activations (dp4) -------------------------------------------------------------------

// Rows x NP panels over all of K; `w` is the first panel's first record, the NP panels `stride`
// bytes apart (p.panel_stride: adjacent panels); out: [Rows][ld_out], panel j's 8 columns at
// j * out_step.
template <int Rows, int NP, bool ZP, int Prefetch>
KEEL_I4_AVX512_TARGET inline void s8_tile(const kernel_args& p, const std::uint8_t* w, float* out,
                                          std::int64_t stride, std::int64_t out_step) noexcept {
  const packed_geometry& geo = *p.geo;
  const auto* q = static_cast<const std::int8_t*>(p.a);
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  // Lanes 0-7 take dword 0 (K values k..k+3 of the low unit), lanes 8-15 dword 2 (k+8..k+11);
  // for the high nibbles dwords 1 and 3.
  const __m512i spread_lo = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i spread_hi = _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1);

  __m256 acc[Rows][NP];
#pragma GCC unroll 4
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 8
    for (int j = 0; j < NP; ++j) acc[r][j] = _mm256_setzero_ps();
  }

  const std::uint8_t* rec = w;  // the current record of panel 0
  std::int64_t k0 = 0;          // its first (padded) K position
  for (std::int64_t g = 0; g < geo.groups; ++g) {
    const std::int64_t units = geo.units_of(g);
    __m512i isum[Rows][NP];
#pragma GCC unroll 4
    for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 8
      for (int j = 0; j < NP; ++j) isum[r][j] = _mm512_setzero_si512();
    }

    // Main loop: 2 units of every panel per step.
    std::int64_t u = 0;
    for (; u + 2 <= units; u += 2) {
      const std::uint8_t* wu = rec + u * kUnitBytes;
      if constexpr (Prefetch > 0) {
#pragma GCC unroll 8
        for (int j = 0; j < NP; ++j) {
          _mm_prefetch(reinterpret_cast<const char*>(wu + j * stride + Prefetch), _MM_HINT_T0);
        }
      }
      __m512i qlo[Rows], qhi[Rows];
#pragma GCC unroll 4
      for (int r = 0; r < Rows; ++r) {
        const __m512i q16 = _mm512_castsi128_si512(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(q + r * p.lda + k0 + u * kUnitK)));
        qlo[r] = _mm512_permutexvar_epi32(spread_lo, q16);
        qhi[r] = _mm512_permutexvar_epi32(spread_hi, q16);
      }
#pragma GCC unroll 8
      for (int j = 0; j < NP; ++j) {
        const __m512i v = _mm512_loadu_si512(wu + j * stride);
        const __m512i lo = _mm512_and_si512(v, nibble);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi32(v, 4), nibble);
#pragma GCC unroll 4
        for (int r = 0; r < Rows; ++r) {
          isum[r][j] = _mm512_dpbusd_epi32(isum[r][j], lo, qlo[r]);
          isum[r][j] = _mm512_dpbusd_epi32(isum[r][j], hi, qhi[r]);
        }
      }
    }

    // Leftover: an odd last unit (a partial last group, or G = K), loaded into the low half with
    // the high half zero (masked: nothing read past the unit), so the high lanes add 0.
    if (u < units) {
      const std::uint8_t* wu = rec + u * kUnitBytes;
      __m512i qlo[Rows], qhi[Rows];
#pragma GCC unroll 4
      for (int r = 0; r < Rows; ++r) {
        const __m512i q8 = _mm512_castsi128_si512(
            _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + r * p.lda + k0 + u * kUnitK)));
        qlo[r] = _mm512_permutexvar_epi32(spread_lo, q8);
        qhi[r] = _mm512_permutexvar_epi32(spread_hi, q8);
      }
#pragma GCC unroll 8
      for (int j = 0; j < NP; ++j) {
        const __m512i v = _mm512_maskz_loadu_epi64(0x0F, wu + j * stride);
        const __m512i lo = _mm512_and_si512(v, nibble);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi32(v, 4), nibble);
#pragma GCC unroll 4
        for (int r = 0; r < Rows; ++r) {
          isum[r][j] = _mm512_dpbusd_epi32(isum[r][j], lo, qlo[r]);
          isum[r][j] = _mm512_dpbusd_epi32(isum[r][j], hi, qhi[r]);
        }
      }
    }

    // Group end: the two halves, the zero points, then the reference's f32 steps.
#pragma GCC unroll 8
    for (int j = 0; j < NP; ++j) {
      const std::uint8_t* rj = rec + j * stride;
      if constexpr (Prefetch > 0) {  // the record's tail (scales): the loop above skips it
        _mm_prefetch(reinterpret_cast<const char*>(rj + units * kUnitBytes + Prefetch),
                     _MM_HINT_T0);
      }
      const __m256 s = avx2::detail::load_scales(rj, units);
      [[maybe_unused]] __m256i z;
      if constexpr (ZP) z = avx2::detail::load_zero_points(rj, units);
#pragma GCC unroll 4
      for (int r = 0; r < Rows; ++r) {
        const __m256i both = _mm256_add_epi32(_mm512_castsi512_si256(isum[r][j]),
                                              _mm512_extracti64x4_epi64(isum[r][j], 1));
        const __m256i qs = _mm256_set1_epi32(p.qsum[r * p.ld_qsum + g]);
        const __m256i zq = ZP ? _mm256_mullo_epi32(z, qs) : _mm256_slli_epi32(qs, 3);
        const __m256i i = _mm256_sub_epi32(both, zq);
        const __m256 c = _mm256_mul_ps(_mm256_set1_ps(p.a_scale[r]), s);  // feeds only a product
        acc[r][j] = avx2::detail::add_rounded_product(acc[r][j], _mm256_cvtepi32_ps(i), c);
      }
    }
    k0 += units * kUnitK;
    rec += geo.record_bytes_for(units);
  }

  // Store.
#pragma GCC unroll 4
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 8
    for (int j = 0; j < NP; ++j) _mm256_storeu_ps(out + r * p.ld_out + j * out_step, acc[r][j]);
  }
}
static_assert(kDefaultZeroPoint == 8, "s8_tile multiplies by the default zero point with a shift");

// Panels in flight per row count: accumulators (Rows x NP zmm for the int32 sums, as many ymm for
// the f32 sums), the spread rows (2 x Rows) and the unpacked weights fit the 32 zmm registers.
// Tried 8 panels for 1 row: within the noise (10.9-11.2 against 10.9 GB/s per CPU-second at
// M1_N4096_K4096), not kept.
template <int Rows>
inline constexpr int kS8Panels = Rows <= 2 ? 4 : 2;

template <bool ZP, int Prefetch, int Rows = 1>
KEEL_I4_AVX512_TARGET inline void s8_rows(const kernel_args& p) noexcept {
  if constexpr (Rows <= 4) {
    if (p.rows != Rows) return s8_rows<ZP, Prefetch, Rows + 1>(p);
    constexpr int NP = kS8Panels<Rows>;
    int j = 0;
    // Without the prefetch (AMD: gemv_s8_dp4 below) the NP streams are panels 1/NP of the call
    // apart, not adjacent ones, as the int8 VNNI gemv does there (gemm_i8/avx512vnni.hpp,
    // gemv_dp4_tile, says why). Zen 4 VM, 1 thread, M1_N4096_K4096 and M1_N11008_K4096, interleaved
    // runs: docs/cpu-backend.md.
    if (Prefetch == 0 && p.panels > NP && p.panels % NP == 0) {
      const int q = p.panels / NP;
      for (; j < q; ++j) {
        s8_tile<Rows, NP, ZP, Prefetch>(p, p.w + j * p.panel_stride, p.out + j * kPanelCols,
                                        q * p.panel_stride, q * kPanelCols);
      }
      return;
    }
    for (; j + NP <= p.panels; j += NP) {
      s8_tile<Rows, NP, ZP, Prefetch>(p, p.w + j * p.panel_stride, p.out + j * kPanelCols,
                                      p.panel_stride, kPanelCols);
    }
    for (; j < p.panels; ++j) {
      s8_tile<Rows, 1, ZP, Prefetch>(p, p.w + j * p.panel_stride, p.out + j * kPanelCols,
                                     p.panel_stride, kPanelCols);
    }
  }
}

// ---- f32 activations (ord, by table) --------------------------------------------------------

// K positions per table chunk: 256 (no zero points, 64 bytes per position) or 128 (zero points,
// 128 bytes): 16 KiB of table, in L1 beside the streaming weights.
template <bool ZP>
inline constexpr int kChunkUnits = ZP ? 16 : 32;
template <bool ZP>
inline constexpr int kTableFloats = kChunkUnits<ZP> * kUnitK * (ZP ? 32 : 16);
inline constexpr int kF32BlockPanels = 32;  // panels per block (the partial-sum buffer's size)
inline constexpr int kF32Pairs = 4;         // panel pairs side by side (f32_units)

// The table of rounded products for padded K positions [k, k + n): entry e of position k is
// x[k] * float(e - 8) (no zero points, 16 entries) or x[k] * float(e - 15) (32 entries; entry 31
// unused). x is 0 past K (kernel_args), where the weights are u = z: a product of +0.
template <bool ZP>
KEEL_I4_AVX512_TARGET inline void build_table(const float* x, std::int64_t n,
                                              float* table) noexcept {
  if constexpr (ZP) {
    const __m512 d_lo = _mm512_setr_ps(-15, -14, -13, -12, -11, -10, -9, -8, -7, -6, -5, -4, -3,
                                       -2, -1, 0);
    const __m512 d_hi = _mm512_setr_ps(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
    for (std::int64_t k = 0; k < n; ++k) {
      const __m512 xb = _mm512_set1_ps(x[k]);
      _mm512_store_ps(table + k * 32, _mm512_mul_ps(xb, d_lo));
      _mm512_store_ps(table + k * 32 + 16, _mm512_mul_ps(xb, d_hi));
    }
  } else {
    const __m512 d = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    for (std::int64_t k = 0; k < n; ++k) {
      _mm512_store_ps(table + k * 16, _mm512_mul_ps(_mm512_set1_ps(x[k]), d));
    }
  }
}

// Units [u0, u1) of one group of PP panel pairs into gsum[i]: per K value ascending, gsum[i] +=
// the looked-up product. w0[i] and w1[i] are pair i's two records (w1[i] == nullptr: one panel,
// high lanes zero-loaded and never stored), pf[i] its prefetch target, `t` the table at the
// group's first K position, zoff[i] (ZP) 15 - z in every byte of each column's dword.
//
// Why several pairs: each column's sum is a chain of dependent vaddps (the reference's order), 8
// per unit, which only the next group's chain can overlap; PP pairs run PP chains side by side,
// share the table loads, and read 2 x PP weight streams at once. Measured (bench_matmul, 1
// thread, G = 32, per CPU-second; N4096_K4096 / N11008_K4096 / N4096_K11008): one pair at a
// time 10.6-10.9 / 10.6-10.7 / 11.3-11.4 GB/s, four pairs 11.2-11.5 / 11.1-11.3 / 12.4-12.5.
template <bool ZP, int Prefetch, int PP>
KEEL_I4_AVX512_TARGET KEEL_I4_AVX512_INLINE void f32_units(
    const std::uint8_t* const (&w0)[PP], const std::uint8_t* const (&w1)[PP],
    const std::uint8_t* const (&pf)[PP], std::int64_t stride, std::int64_t u0, std::int64_t u1,
    const float* t, [[maybe_unused]] const __m512i (&zoff)[PP], __m512 (&gsum)[PP]) noexcept {
  [[maybe_unused]] const __m512i nibble = _mm512_set1_epi8(0x0F);
  for (std::int64_t u = u0; u < u1; ++u) {
    __m512i lo[PP], hi[PP];
#pragma GCC unroll 4
    for (int i = 0; i < PP; ++i) {
      if constexpr (Prefetch > 0) {
        _mm_prefetch(reinterpret_cast<const char*>(pf[i] + u * kUnitBytes), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(pf[i] + stride + u * kUnitBytes), _MM_HINT_T0);
      }
      const __m256i a =
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0[i] + u * kUnitBytes));
      const __m256i b =
          w1[i] != nullptr
              ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w1[i] + u * kUnitBytes))
              : _mm256_setzero_si256();
      const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
      if constexpr (ZP) {
        lo[i] = _mm512_add_epi8(_mm512_and_si512(v, nibble), zoff[i]);
        hi[i] = _mm512_add_epi8(_mm512_and_si512(_mm512_srli_epi32(v, 4), nibble), zoff[i]);
      } else {
        lo[i] = v;  // vpermps reads bits 0-3 of each index: no mask needed
        hi[i] = _mm512_srli_epi32(v, 4);
      }
    }
    const float* tu = t + u * kUnitK * (ZP ? 32 : 16);
#pragma GCC unroll 8
    for (int k = 0; k < 8; ++k) {
      [[maybe_unused]] const __m512 e0 = _mm512_load_ps(tu + k * (ZP ? 32 : 16));
      [[maybe_unused]] const __m512 e1 = ZP ? _mm512_load_ps(tu + k * 32 + 16) : e0;
#pragma GCC unroll 4
      for (int i = 0; i < PP; ++i) {
        const __m512i half = k < 4 ? lo[i] : hi[i];
        const __m512i idx = (k & 3) == 0 ? half : _mm512_srli_epi32(half, 8 * (k & 3));
        const __m512 prod =
            ZP ? _mm512_permutex2var_ps(e0, idx, e1) : _mm512_permutexvar_ps(idx, e0);
        gsum[i] = _mm512_add_ps(gsum[i], prod);
      }
    }
  }
}

// PP panel pairs (pair jp and on) over one chunk of K, groups (g, ug) to (g1, u1): each pair's
// accumulator from `out` and back, its open group sum from `partial` and back.
template <bool ZP, int Prefetch, int PP>
KEEL_I4_AVX512_TARGET KEEL_I4_AVX512_INLINE void f32_pairs(
    const packed_geometry& geo, const std::uint8_t* w, std::int64_t stride, int panels, int jp,
    std::int64_t pf_shift, std::int64_t g, std::int64_t ug, std::int64_t rec_off, std::int64_t kg,
    std::int64_t g1, std::int64_t u1, std::int64_t kstart, const float* table, float* out,
    float* partial) noexcept {
  constexpr int kEntries = ZP ? 32 : 16;
  const std::uint8_t* w0[PP];
  const std::uint8_t* w1[PP];
  __mmask16 lanes[PP];
  __m512 acc[PP], gsum[PP];
  __m512i zoff[PP];
#pragma GCC unroll 4
  for (int i = 0; i < PP; ++i) {
    w0[i] = w + 2 * (jp + i) * stride;
    w1[i] = 2 * (jp + i) + 1 < panels ? w0[i] + stride : nullptr;
    lanes[i] = w1[i] != nullptr ? 0xFFFF : 0x00FF;
    acc[i] = _mm512_maskz_loadu_ps(lanes[i], out + 2 * (jp + i) * kPanelCols);
    zoff[i] = _mm512_setzero_si512();
  }

  // The chunk's groups: from (g, ug) to (g1, u1).
  std::int64_t gg = g, uu = ug, ro = rec_off, kk = kg;
  while (gg < g1 || (gg == g1 && uu < u1)) {
    const std::int64_t units = geo.units_of(gg);
    const std::int64_t ue = gg < g1 ? units : u1;
    const std::uint8_t* r0[PP];
    const std::uint8_t* r1[PP];
    const std::uint8_t* pf[PP];
#pragma GCC unroll 4
    for (int i = 0; i < PP; ++i) {
      r0[i] = w0[i] + ro;
      r1[i] = w1[i] != nullptr ? w1[i] + ro : nullptr;
      pf[i] = r0[i] + pf_shift;
      gsum[i] = uu == 0 ? _mm512_setzero_ps()
                        : _mm512_maskz_loadu_ps(lanes[i], partial + 2 * (jp + i) * kPanelCols);
      if constexpr (ZP) {
        const __m256i z0 = avx2::detail::load_zero_points(r0[i], units);
        const __m256i z1 = r1[i] != nullptr ? avx2::detail::load_zero_points(r1[i], units)
                                            : _mm256_set1_epi32(kDefaultZeroPoint);
        const __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(z0), z1, 1);
        zoff[i] = _mm512_mullo_epi32(_mm512_sub_epi32(_mm512_set1_epi32(15), z),
                                     _mm512_set1_epi32(0x01010101));
      }
    }
    f32_units<ZP, Prefetch, PP>(r0, r1, pf, stride, uu, ue, table + (kk - kstart) * kEntries, zoff,
                                gsum);
#pragma GCC unroll 4
    for (int i = 0; i < PP; ++i) {
      if (ue == units) {  // group end: acc += s * gsum, rounded apart
        const __m256 s0 = avx2::detail::load_scales(r0[i], units);
        const __m256 s1 =
            r1[i] != nullptr ? avx2::detail::load_scales(r1[i], units) : _mm256_setzero_ps();
        const __m512 s = _mm512_castpd_ps(_mm512_insertf64x4(
            _mm512_castpd256_pd512(_mm256_castps_pd(s0)), _mm256_castps_pd(s1), 1));
        if constexpr (Prefetch > 0) {
          _mm_prefetch(reinterpret_cast<const char*>(pf[i] + units * kUnitBytes), _MM_HINT_T0);
          _mm_prefetch(reinterpret_cast<const char*>(pf[i] + stride + units * kUnitBytes),
                       _MM_HINT_T0);
        }
        acc[i] = add_rounded_product(acc[i], s, gsum[i]);
      } else {  // the group continues in the next chunk
        _mm512_mask_storeu_ps(partial + 2 * (jp + i) * kPanelCols, lanes[i], gsum[i]);
      }
    }
    if (ue == units) {
      ro += geo.record_bytes_for(units);
      kk += units * kUnitK;
      ++gg;
      uu = 0;
    } else {
      uu = ue;
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < PP; ++i) {
    _mm512_mask_storeu_ps(out + 2 * (jp + i) * kPanelCols, lanes[i], acc[i]);
  }
}

// One row over panels [0, panels) (at most kF32BlockPanels) into out (its accumulator between
// chunks). Chunk by chunk of K: build the table, then for each panel pair, its units of the chunk
// group by group.
template <bool ZP, int Prefetch>
KEEL_I4_AVX512_TARGET inline void f32_block(const kernel_args& p, const float* x,
                                            const std::uint8_t* w, int panels,
                                            float* out) noexcept {
  const packed_geometry& geo = *p.geo;
  const std::int64_t stride = p.panel_stride;
  alignas(64) float table[kTableFloats<ZP>];
  alignas(64) float partial[kF32BlockPanels * kPanelCols];  // group sums left open by a chunk
  const int pairs = (panels + 1) / 2;
  for (int c = 0; c < panels * kPanelCols; ++c) out[c] = 0.0f;

  // The chunk's start: group g, unit ug of it, the group's record offset and K position.
  std::int64_t g = 0, ug = 0, rec_off = 0, kg = 0;
  while (g < geo.groups) {
    // The chunk's end (g1, u1): up to kChunkUnits units, crossing groups.
    std::int64_t g1 = g, u1 = ug, rec1 = rec_off, kg1 = kg, n = 0;
    while (g1 < geo.groups && n < kChunkUnits<ZP>) {
      const std::int64_t units = geo.units_of(g1);
      const std::int64_t take = std::min<std::int64_t>(kChunkUnits<ZP> - n, units - u1);
      n += take;
      u1 += take;
      if (u1 == units) {
        rec1 += geo.record_bytes_for(units);
        kg1 += units * kUnitK;
        ++g1;
        u1 = 0;
      }
    }
    const std::int64_t kstart = kg + ug * kUnitK;
    build_table<ZP>(x + kstart, n * kUnitK, table);
    // The bytes of each panel this chunk spans (for the prefetch of the next chunk).
    const std::int64_t chunk_bytes = rec1 + u1 * kUnitBytes - (rec_off + ug * kUnitBytes);

    // Prefetch: the same bytes of the pairs one step (kF32Pairs pairs) on, or, past the last
    // pair, of the first pairs' next chunk.
    const auto pf_shift = [&](int jp, int step) {
      const int tp = jp + step;
      return tp < pairs ? 2 * step * stride : (2 * (tp - pairs) - 2 * jp) * stride + chunk_bytes;
    };
    int jp = 0;
    for (; jp + kF32Pairs <= pairs; jp += kF32Pairs) {
      f32_pairs<ZP, Prefetch, kF32Pairs>(geo, w, stride, panels, jp, pf_shift(jp, kF32Pairs), g,
                                         ug, rec_off, kg, g1, u1, kstart, table, out, partial);
    }
    for (; jp < pairs; ++jp) {
      f32_pairs<ZP, Prefetch, 1>(geo, w, stride, panels, jp, pf_shift(jp, 2), g, ug, rec_off, kg,
                                 g1, u1, kstart, table, out, partial);
    }
    g = g1;
    ug = u1;
    rec_off = rec1;
    kg = kg1;
  }
}

template <bool ZP, int Prefetch>
KEEL_I4_AVX512_TARGET inline void f32_rows(const kernel_args& p) noexcept {
  const auto* a = static_cast<const float*>(p.a);
  for (int r = 0; r < p.rows; ++r) {
    for (int j = 0; j < p.panels; j += kF32BlockPanels) {
      f32_block<ZP, Prefetch>(p, a + r * p.lda, p.w + j * p.panel_stride,
                              std::min(kF32BlockPanels, p.panels - j),
                              p.out + r * p.ld_out + j * kPanelCols);
    }
  }
}

}  // namespace detail

// ---- the entry points the registry names --------------------------------------------------------

// gemv, dynamic_s8: up to 4 rows, any number of panels, streamed once.
// No software prefetch on AMD CPUs (gemm_i8::avx512vnni::detail::vendor_amd() says why).
inline void gemv_s8_dp4(const kernel_args& p) noexcept {
  if (gemm_i8::avx512vnni::detail::vendor_amd()) {
    if (p.geo->has_zero_points) return detail::s8_rows<true, 0>(p);
    return detail::s8_rows<false, 0>(p);
  }
  if (p.geo->has_zero_points) return detail::s8_rows<true, detail::kPrefetchBytes>(p);
  return detail::s8_rows<false, detail::kPrefetchBytes>(p);
}

// gemv, f32: one row at a time (rows loop), 2 panels per vector, the reference's bits.
inline void gemv_f32_ord(const kernel_args& p) noexcept {
  if (p.geo->has_zero_points) return detail::f32_rows<true, detail::kPrefetchBytes>(p);
  return detail::f32_rows<false, detail::kPrefetchBytes>(p);
}

}  // namespace keel::kernels::gemm_i4::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // KEEL_GEMM_I4_HAVE_AVX2 && KEEL_GEMM_I8_HAVE_AVX512VNNI
