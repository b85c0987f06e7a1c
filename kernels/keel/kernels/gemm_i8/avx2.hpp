// keel/kernels/gemm_i8/avx2.hpp — hand-tuned AVX2 microkernels for int8 GEMM and GEMV.
//
// Compiled with a function-level target attribute, so a translation unit built for baseline
// x86-64 still contains them; the registry runs them only where the CPU reports AVX2.
//
// Two techniques (docs/cpu-backend.md derives both and measures them):
//
// w16 — exact for every input. B' (s8) is widened to int16 in registers (vpmovsxbw), A' (u8,
//   0..255) is stored widened to int16 by the A packer, and vpmaddwd forms a0*b0 + a1*b1 in
//   int32. Each product is at most 255 * 128 = 32640 in magnitude, a pair at most 65280: no
//   int16 saturation anywhere, and the int32 sums wrap only modulo 2^32, which the epilogue's
//   corrections undo exactly (variant.hpp). Cost per 16 MACs: one vpmaddwd and one vpaddd.
//
// ubs — vpmaddubsw (u8 x s8, adjacent pairs summed into *saturating* int16), then vpmaddwd
//   against ones into int32. Cost per 32 MACs: vpmaddubsw + vpmaddwd + vpaddd, a third fewer
//   vector uops than w16 for the same work, but vpmaddubsw saturates when
//   |a0*b0 + a1*b1| > 32767 (e.g. 255*127*2 = 64770). The driver runs it only when
//   pair_range::ubs_exact(max A') holds for the packed B (packing.hpp), which bounds every
//   pair sum inside int16: then no saturation happens and the result is exact.
//
// Both read the p8k4 layout: a B panel group is 32 bytes, columns c0..c7 with 4 K values each.
#pragma once

#if defined(__x86_64__) || defined(_M_X64)
#define KEEL_GEMM_I8_HAVE_AVX2 1

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "keel/kernels/gemm_i8/variant.hpp"

#define KEEL_TARGET_AVX2 __attribute__((target("avx2")))

namespace keel::kernels::gemm_i8::avx2 {

inline constexpr packing kPacking{8, 4};

namespace detail {

KEEL_TARGET_AVX2 inline __m256i broadcast_8_bytes(const void* p) noexcept {
  std::int64_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm256_set1_epi64x(v);
}
KEEL_TARGET_AVX2 inline __m256i broadcast_4_bytes(const void* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm256_set1_epi32(v);
}

// ---- w16 ----------------------------------------------------------------------------------

// One B panel (8 columns) against Rows rows of an MR-row int16 A panel, all of K.
template <int MR, int Rows>
KEEL_TARGET_AVX2 inline void w16_panel(const std::int16_t* a, const std::int8_t* b,
                                       std::int64_t kq, std::int32_t* raw,
                                       std::int64_t ld_raw) noexcept {
  // Setup: per row, columns 0-3 and 4-7 each as 4 columns x 2 partial sums (int32 lanes
  // [c0 k01, c0 k23, c1 k01, c1 k23 | c2.., c3..]).
  __m256i lo[Rows], hi[Rows];
  for (int r = 0; r < Rows; ++r) lo[r] = hi[r] = _mm256_setzero_si256();

  // Main loop: one K group (4 values) per step: 2 widening loads (port 5), then per row one
  // 8-byte broadcast (a load, no ALU uop) and 2 x (vpmaddwd + vpaddd).
  for (std::int64_t g = 0; g < kq; ++g) {
    const std::int8_t* bg = b + g * 32;
    const __m256i b_lo = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bg)));
    const __m256i b_hi =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bg + 16)));
    const std::int16_t* ag = a + g * MR * 4;
    for (int r = 0; r < Rows; ++r) {
      const __m256i av = broadcast_8_bytes(ag + r * 4);
      lo[r] = _mm256_add_epi32(lo[r], _mm256_madd_epi16(b_lo, av));
      hi[r] = _mm256_add_epi32(hi[r], _mm256_madd_epi16(b_hi, av));
    }
  }

  // Reduction: hadd gives [c0 c1 c4 c5 | c2 c3 c6 c7]; vpermq (0,2,1,3) restores c0..c7.
  for (int r = 0; r < Rows; ++r) {
    const __m256i sums = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[r], hi[r]), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(raw + r * ld_raw), sums);
  }
}

template <int MR, int Rows>
KEEL_TARGET_AVX2 void w16_tile(const ukernel_args& p) noexcept {
  const auto* a = static_cast<const std::int16_t*>(p.a);
  for (int j = 0; j < p.panels; ++j) {
    w16_panel<MR, Rows>(a, p.b + j * p.b_panel_stride, p.kq, p.raw + j * 8, p.ld_raw);
  }
}

// ---- ubs ----------------------------------------------------------------------------------

template <int MR, int Rows, int Panels>
KEEL_TARGET_AVX2 inline void ubs_tile_fixed(const ukernel_args& p) noexcept {
  const auto* a = static_cast<const std::uint8_t*>(p.a);
  const std::int8_t* b = p.b;
  const std::int64_t ps = p.b_panel_stride;
  const __m256i ones = _mm256_set1_epi16(1);

  // Setup: one int32 accumulator per row and panel, lanes = columns c0..c7 in order.
  __m256i acc[Rows][Panels];
  for (int r = 0; r < Rows; ++r) {
    for (int j = 0; j < Panels; ++j) acc[r][j] = _mm256_setzero_si256();
  }

  // Main loop: per K group, per row one 4-byte broadcast of A', per panel vpmaddubsw (pairs
  // into int16, exact under the range check) then vpmaddwd with ones (pairs into int32).
  for (std::int64_t g = 0; g < p.kq; ++g) {
    __m256i bv[Panels];
    for (int j = 0; j < Panels; ++j) {
      bv[j] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + j * ps + g * 32));
    }
    const std::uint8_t* ag = a + g * MR * 4;
    for (int r = 0; r < Rows; ++r) {
      const __m256i av = broadcast_4_bytes(ag + r * 4);
      for (int j = 0; j < Panels; ++j) {
        const __m256i pairs = _mm256_maddubs_epi16(av, bv[j]);
        acc[r][j] = _mm256_add_epi32(acc[r][j], _mm256_madd_epi16(pairs, ones));
      }
    }
  }

  // Store.
  for (int r = 0; r < Rows; ++r) {
    for (int j = 0; j < Panels; ++j) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(p.raw + r * p.ld_raw + j * 8), acc[r][j]);
    }
  }
}

template <int MR, int NP, int Rows, int Panels = 1>
void ubs_dispatch_panels(const ukernel_args& p) noexcept {
  if constexpr (Panels <= NP) {
    if (p.panels == Panels) return ubs_tile_fixed<MR, Rows, Panels>(p);
    return ubs_dispatch_panels<MR, NP, Rows, Panels + 1>(p);
  }
}

}  // namespace detail

// Calls Fn<MR, Rows> for the runtime row count (1..MR), so each partial tile gets its own
// fully unrolled instantiation.
template <int MR, int Rows = 1>
void w16_dispatch(const ukernel_args& p) noexcept {
  if constexpr (Rows <= MR) {
    if (p.rows == Rows) return detail::w16_tile<MR, Rows>(p);
    return w16_dispatch<MR, Rows + 1>(p);
  }
}

template <int MR, int NP, int Rows = 1>
void ubs_dispatch(const ukernel_args& p) noexcept {
  if constexpr (Rows <= MR) {
    if (p.rows == Rows) return detail::ubs_dispatch_panels<MR, NP, Rows>(p);
    return ubs_dispatch<MR, NP, Rows + 1>(p);
  }
}

// The entry points the registry names.
template <int MR>
void gemm_w16(const ukernel_args& p) noexcept {
  w16_dispatch<MR>(p);
}
template <int MR, int NP>
void gemm_ubs(const ukernel_args& p) noexcept {
  ubs_dispatch<MR, NP>(p);
}

}  // namespace keel::kernels::gemm_i8::avx2

#endif  // x86-64
