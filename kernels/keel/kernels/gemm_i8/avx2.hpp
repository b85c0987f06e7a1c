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

#include "keel/kernels/gemm_i8/epilogue.hpp"
#include "keel/kernels/gemm_i8/packing.hpp"
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

// Accumulators are named variables, not arrays: GCC 12 keeps an array of __m256i in memory, and
// a store/reload on the loop-carried vpaddd chain cost about half of the w16 kernel's throughput
// (measured: 31 -> see docs/cpu-backend.md). Rows past `Rows` are never touched (if constexpr).
#define KEEL_AVX2_FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)

// ---- w16 ----------------------------------------------------------------------------------

// One B panel (8 columns) against Rows rows of an MR-row int16 A panel, all of K.
template <int MR, int Rows>
KEEL_TARGET_AVX2 inline void w16_panel(const std::int16_t* a, const std::int8_t* b, std::int64_t kq,
                                       std::int32_t* raw, std::int64_t ld_raw) noexcept {
  static_assert(Rows >= 1 && Rows <= 6 && Rows <= MR, "w16_panel handles 1..6 rows");
  // Setup: per row, columns 0-3 and 4-7 each as 4 columns x 2 partial sums (int32 lanes
  // [c0 k01, c0 k23, c1 k01, c1 k23 | c2.., c3..]).
#define KEEL_W16_DECLARE(r) __m256i lo##r = _mm256_setzero_si256(), hi##r = lo##r;
  KEEL_AVX2_FOR_ROWS(KEEL_W16_DECLARE)
#undef KEEL_W16_DECLARE

  // Main loop: one K group (4 values) per step: 2 widening loads (port 5), then per row one
  // 8-byte broadcast (a load, no ALU uop) and 2 x (vpmaddwd + vpaddd).
  for (std::int64_t g = 0; g < kq; ++g) {
    const std::int8_t* bg = b + g * 32;
    const __m256i b_lo =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bg)));
    const __m256i b_hi =
        _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bg + 16)));
    const std::int16_t* ag = a + g * MR * 4;
#define KEEL_W16_ROW(r)                                           \
  if constexpr (Rows > r) {                                       \
    const __m256i av = broadcast_8_bytes(ag + r * 4);             \
    lo##r = _mm256_add_epi32(lo##r, _mm256_madd_epi16(b_lo, av)); \
    hi##r = _mm256_add_epi32(hi##r, _mm256_madd_epi16(b_hi, av)); \
  }
    KEEL_AVX2_FOR_ROWS(KEEL_W16_ROW)
#undef KEEL_W16_ROW
  }

  // Reduction: hadd gives [c0 c1 c4 c5 | c2 c3 c6 c7]; vpermq (0,2,1,3) restores c0..c7.
#define KEEL_W16_STORE(r)                                                                 \
  if constexpr (Rows > r) {                                                               \
    const __m256i sums = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo##r, hi##r), 0xD8); \
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(raw + r * ld_raw), sums);              \
  }
  KEEL_AVX2_FOR_ROWS(KEEL_W16_STORE)
#undef KEEL_W16_STORE
}

// The full 6-row tile's main loop in asm. With intrinsics GCC 12 kept one accumulator in
// memory and added eight register moves per K group (37 instructions for 26 uops of work), so the
// loop was bound by the front end rather than by the vector ports. Here: ymm0-5 and ymm6-11 hold
// the lo and hi accumulators of rows 0-5, ymm12/13 the widened B halves, ymm14 the broadcast A
// values, ymm15 a product. Per K group: 2 vpmovsxbw, 6 vpbroadcastq (loads), 12 vpmaddwd, 12
// vpaddd. Requires kq >= 1. The accumulators are read from and written back to lo/hi.
KEEL_TARGET_AVX2 inline void w16_loop_6rows(const std::int16_t* a, const std::int8_t* b,
                                            std::int64_t kq, __m256i* lo, __m256i* hi) noexcept {
// clang-format off
#define KEEL_W16_ASM_ROW(off, lo, hi)        \
  "vpbroadcastq " off "(%[a]), %%ymm14\n\t"  \
  "vpmaddwd %%ymm14, %%ymm12, %%ymm15\n\t"   \
  "vpaddd %%ymm15, " lo ", " lo "\n\t"       \
  "vpmaddwd %%ymm14, %%ymm13, %%ymm15\n\t"   \
  "vpaddd %%ymm15, " hi ", " hi "\n\t"
  asm volatile(
      "vmovdqu 0(%[lo]), %%ymm0\n\t"
      "vmovdqu 32(%[lo]), %%ymm1\n\t"
      "vmovdqu 64(%[lo]), %%ymm2\n\t"
      "vmovdqu 96(%[lo]), %%ymm3\n\t"
      "vmovdqu 128(%[lo]), %%ymm4\n\t"
      "vmovdqu 160(%[lo]), %%ymm5\n\t"
      "vmovdqu 0(%[hi]), %%ymm6\n\t"
      "vmovdqu 32(%[hi]), %%ymm7\n\t"
      "vmovdqu 64(%[hi]), %%ymm8\n\t"
      "vmovdqu 96(%[hi]), %%ymm9\n\t"
      "vmovdqu 128(%[hi]), %%ymm10\n\t"
      "vmovdqu 160(%[hi]), %%ymm11\n\t"
      "1:\n\t"
      "vpmovsxbw (%[b]), %%ymm12\n\t"
      "vpmovsxbw 16(%[b]), %%ymm13\n\t"
      KEEL_W16_ASM_ROW("0", "%%ymm0", "%%ymm6")
      KEEL_W16_ASM_ROW("8", "%%ymm1", "%%ymm7")
      KEEL_W16_ASM_ROW("16", "%%ymm2", "%%ymm8")
      KEEL_W16_ASM_ROW("24", "%%ymm3", "%%ymm9")
      KEEL_W16_ASM_ROW("32", "%%ymm4", "%%ymm10")
      KEEL_W16_ASM_ROW("40", "%%ymm5", "%%ymm11")
      "add $32, %[b]\n\t"
      "add $48, %[a]\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vmovdqu %%ymm0, 0(%[lo])\n\t"
      "vmovdqu %%ymm1, 32(%[lo])\n\t"
      "vmovdqu %%ymm2, 64(%[lo])\n\t"
      "vmovdqu %%ymm3, 96(%[lo])\n\t"
      "vmovdqu %%ymm4, 128(%[lo])\n\t"
      "vmovdqu %%ymm5, 160(%[lo])\n\t"
      "vmovdqu %%ymm6, 0(%[hi])\n\t"
      "vmovdqu %%ymm7, 32(%[hi])\n\t"
      "vmovdqu %%ymm8, 64(%[hi])\n\t"
      "vmovdqu %%ymm9, 96(%[hi])\n\t"
      "vmovdqu %%ymm10, 128(%[hi])\n\t"
      "vmovdqu %%ymm11, 160(%[hi])\n\t"
      : [a] "+r"(a), [b] "+r"(b), [n] "+r"(kq)
      : [lo] "r"(lo), [hi] "r"(hi)
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory");
#undef KEEL_W16_ASM_ROW
  // clang-format on
}

// A full 6-row tile (the common case): the asm loop, then the same reduction as w16_panel.
KEEL_TARGET_AVX2 inline void w16_panel_6rows(const std::int16_t* a, const std::int8_t* b,
                                             std::int64_t kq, std::int32_t* raw,
                                             std::int64_t ld_raw) noexcept {
  __m256i lo[6], hi[6];
  for (int r = 0; r < 6; ++r) lo[r] = hi[r] = _mm256_setzero_si256();
  if (kq > 0) w16_loop_6rows(a, b, kq, lo, hi);
  for (int r = 0; r < 6; ++r) {
    const __m256i sums = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo[r], hi[r]), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(raw + r * ld_raw), sums);
  }
}

template <int MR, int Rows>
KEEL_TARGET_AVX2 void w16_tile(const ukernel_args& p) noexcept {
  const auto* a = static_cast<const std::int16_t*>(p.a);
  for (int j = 0; j < p.panels; ++j) {
    if constexpr (MR == 6 && Rows == 6) {
      w16_panel_6rows(a, p.b + j * p.b_panel_stride, p.kq, p.raw + j * 8, p.ld_raw);
    } else {
      w16_panel<MR, Rows>(a, p.b + j * p.b_panel_stride, p.kq, p.raw + j * 8, p.ld_raw);
    }
  }
}

// ---- w16 GEMV ------------------------------------------------------------------------------

// The GEMV body: Rows (1..4) rows against `panels` consecutive B panels, streaming B once.
// Same arithmetic as w16_panel; what differs is the memory side: a software prefetch
// kPrefetchBytes ahead of the load stream (the panels are contiguous, so "ahead" is simply
// further along the same buffer).
template <int MR, int Rows, int kPrefetchBytes>
KEEL_TARGET_AVX2 void gemv_w16_tile(const ukernel_args& p) noexcept {
  static_assert(Rows >= 1 && Rows <= 4 && Rows <= MR, "gemv_w16_tile handles 1..4 rows");
  const auto* a = static_cast<const std::int16_t*>(p.a);
  for (int j = 0; j < p.panels; ++j) {
    const std::int8_t* b = p.b + j * p.b_panel_stride;
#define KEEL_GEMV_FOR_ROWS(X) X(0) X(1) X(2) X(3)
#define KEEL_GEMV_DECLARE(r) __m256i lo##r = _mm256_setzero_si256(), hi##r = lo##r;
    KEEL_GEMV_FOR_ROWS(KEEL_GEMV_DECLARE)
#undef KEEL_GEMV_DECLARE
    for (std::int64_t g = 0; g < p.kq; ++g) {
      const std::int8_t* bg = b + g * 32;
      if constexpr (kPrefetchBytes > 0) {
        if ((g & 1) == 0)
          _mm_prefetch(reinterpret_cast<const char*>(bg + kPrefetchBytes), _MM_HINT_T0);
      }
      const __m256i b_lo =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bg)));
      const __m256i b_hi =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bg + 16)));
      const std::int16_t* ag = a + g * MR * 4;
#define KEEL_GEMV_ROW(r)                                          \
  if constexpr (Rows > r) {                                       \
    const __m256i av = broadcast_8_bytes(ag + r * 4);             \
    lo##r = _mm256_add_epi32(lo##r, _mm256_madd_epi16(b_lo, av)); \
    hi##r = _mm256_add_epi32(hi##r, _mm256_madd_epi16(b_hi, av)); \
  }
      KEEL_GEMV_FOR_ROWS(KEEL_GEMV_ROW)
#undef KEEL_GEMV_ROW
    }
#define KEEL_GEMV_STORE(r)                                                                \
  if constexpr (Rows > r) {                                                               \
    const __m256i sums = _mm256_permute4x64_epi64(_mm256_hadd_epi32(lo##r, hi##r), 0xD8); \
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p.raw + r * p.ld_raw + j * 8), sums);  \
  }
    KEEL_GEMV_FOR_ROWS(KEEL_GEMV_STORE)
#undef KEEL_GEMV_STORE
#undef KEEL_GEMV_FOR_ROWS
  }
}

// ---- ubs ----------------------------------------------------------------------------------

template <int MR, int Rows, int Panels>
KEEL_TARGET_AVX2 inline void ubs_tile_fixed(const ukernel_args& p) noexcept {
  static_assert(Rows >= 1 && Rows <= 6 && Rows <= MR && Panels >= 1 && Panels <= 3,
                "ubs_tile_fixed handles 1..6 rows and 1..3 panels");
  const auto* a = static_cast<const std::uint8_t*>(p.a);
  const std::int8_t* b = p.b;
  const std::int64_t ps = p.b_panel_stride;
  const __m256i ones = _mm256_set1_epi16(1);

  // Setup: one int32 accumulator per row and panel, lanes = columns c0..c7 in order.
#define KEEL_UBS_DECLARE(r) \
  __m256i acc##r##_0 = _mm256_setzero_si256(), acc##r##_1 = acc##r##_0, acc##r##_2 = acc##r##_0;
  KEEL_AVX2_FOR_ROWS(KEEL_UBS_DECLARE)
#undef KEEL_UBS_DECLARE

  // Main loop: per K group, per row one 4-byte broadcast of A', per panel vpmaddubsw (pairs
  // into int16, exact under the range check) then vpmaddwd with ones (pairs into int32).
  for (std::int64_t g = 0; g < p.kq; ++g) {
    const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + g * 32));
    const __m256i b1 =
        Panels > 1 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + ps + g * 32)) : b0;
    const __m256i b2 =
        Panels > 2 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 2 * ps + g * 32)) : b0;
    const std::uint8_t* ag = a + g * MR * 4;
#define KEEL_UBS_STEP(r, j)                                                        \
  if constexpr (Panels > j) {                                                      \
    const __m256i pairs = _mm256_maddubs_epi16(av, b##j);                          \
    acc##r##_##j = _mm256_add_epi32(acc##r##_##j, _mm256_madd_epi16(pairs, ones)); \
  }
#define KEEL_UBS_ROW(r)                                         \
  if constexpr (Rows > r) {                                     \
    const __m256i av = broadcast_4_bytes(ag + r * 4);           \
    KEEL_UBS_STEP(r, 0) KEEL_UBS_STEP(r, 1) KEEL_UBS_STEP(r, 2) \
  }
    KEEL_AVX2_FOR_ROWS(KEEL_UBS_ROW)
#undef KEEL_UBS_ROW
#undef KEEL_UBS_STEP
  }

  // Store.
#define KEEL_UBS_STORE_ONE(r, j)                                                                 \
  if constexpr (Panels > j) {                                                                    \
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p.raw + r * p.ld_raw + j * 8), acc##r##_##j); \
  }
#define KEEL_UBS_STORE(r)                                                      \
  if constexpr (Rows > r) {                                                    \
    KEEL_UBS_STORE_ONE(r, 0) KEEL_UBS_STORE_ONE(r, 1) KEEL_UBS_STORE_ONE(r, 2) \
  }
  KEEL_AVX2_FOR_ROWS(KEEL_UBS_STORE)
#undef KEEL_UBS_STORE
#undef KEEL_UBS_STORE_ONE
}

#undef KEEL_AVX2_FOR_ROWS

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

template <int MR, int kPrefetchBytes, int Rows = 1>
void gemv_w16_dispatch(const ukernel_args& p) noexcept {
  if constexpr (Rows <= MR) {
    if (p.rows == Rows) return detail::gemv_w16_tile<MR, Rows, kPrefetchBytes>(p);
    return gemv_w16_dispatch<MR, kPrefetchBytes, Rows + 1>(p);
  }
}

template <int MR, int NP, int Rows = 1>
void ubs_dispatch(const ukernel_args& p) noexcept {
  if constexpr (Rows <= MR) {
    if (p.rows == Rows) return detail::ubs_dispatch_panels<MR, NP, Rows>(p);
    return ubs_dispatch<MR, NP, Rows + 1>(p);
  }
}

// The shared epilogue compiled for AVX2: the same source as every other ISA's (epilogue.hpp, so
// the same bits), vectorized with 256-bit integer ops instead of baseline SSE2's (whose 32-bit
// multiply alone takes a pmuludq/pshufd sequence).
KEEL_TARGET_AVX2 inline void epilogue(const epilogue_params& e, const std::int32_t* raw,
                                      std::int64_t ld_raw, std::int64_t m0, int rows,
                                      std::int64_t n0, int cols) noexcept {
  apply_epilogue(e, raw, ld_raw, m0, rows, n0, cols);
}

// The A packer (packing.hpp) compiled for AVX2, for the same reason.
template <class T>
KEEL_TARGET_AVX2 void pack_a(const a_source& a, std::int64_t m0, int rows, std::int64_t k, int mr,
                             const packing& p, void* dst, std::int32_t* rowsum) noexcept {
  pack_a_panel(a, m0, rows, k, mr, p, static_cast<T*>(dst), rowsum);
}

// The entry points the registry names.
template <int MR>
void gemm_w16(const ukernel_args& p) noexcept {
  w16_dispatch<MR>(p);
}
// The prefetch distance, measured on a 16 MiB stream (docs/cpu-backend.md): 0 B: 70% of a plain
// read loop's bandwidth; 512 B: 80%; 1 KiB: 82-84%; 2 KiB: 88-91%; 4 KiB: 90-93%; 8 KiB: 86-91%;
// 16 KiB: 83%.
template <int MR, int kPrefetchBytes = 4096>
void gemv_w16(const ukernel_args& p) noexcept {
  gemv_w16_dispatch<MR, kPrefetchBytes>(p);
}
template <int MR, int NP>
void gemm_ubs(const ukernel_args& p) noexcept {
  ubs_dispatch<MR, NP>(p);
}

}  // namespace keel::kernels::gemm_i8::avx2

#endif  // x86-64
