// keel/kernels/gemm_i8/avx512vnni.hpp — AVX-512 VNNI microkernels for int8 GEMM and GEMV.
//
// Compiled with a function-level target attribute, so a translation unit built for baseline
// x86-64 still contains them and the binary runs on CPUs without AVX-512; the registry runs them
// only where `missing_feature()` (below: CPUID and XGETBV) finds nothing missing.
//
// The instruction: vpdpbusd (AVX512_VNNI) multiplies 4 unsigned bytes of its first source by the
// 4 corresponding signed bytes of its second, and adds the four products to a 32-bit lane. Each
// product is formed as a signed 16-bit word (u8 x s8 lies in [-32640, 32385], so the word is
// exact), and the words are added to the dword with no saturation (the saturating form is the
// separate vpdpbusds); Intel SDM, "VPDPBUSD — Multiply and Add Unsigned and Signed Bytes"
// (transcribed at https://www.felixcloutier.com/x86/vpdpbusd). So each lane computes
// acc + a0*b0 + a1*b1 + a2*b2 + a3*b3 modulo 2^32: no int16 intermediate sum to saturate (the
// trap of vpmaddubsw), for every A' in [0, 255] and B' in [-128, 127], any K. That is the
// microkernel contract of variant.hpp exactly: technique `dp4`, exact for all inputs.
//
// Both kernels read the shared p8k4 B layout (a panel group: 8 columns x 4 K values, 32 bytes)
// and the u8 A panels of packing.hpp, so the weights that pack() wrote serve every registered
// kernel. How they use it (docs/cpu-backend.md, "AVX-512 VNNI kernels"):
//
// gemm 32x8 — the tile is transposed: a zmm of A holds 16 rows x 4 K values (one A panel group
//   of 16 rows is exactly 64 contiguous bytes), and each B value (one column's 4 K values, one
//   dword) is broadcast to all 16 lanes. Then one vpdpbusd adds 4 K steps of 16 rows of one
//   column, and an accumulator holds a column of 16 rows. 32 rows x 8 columns = 16 accumulators,
//   per K group 2 A loads + 8 broadcast loads for 16 vpdpbusd (the ports take 2 per cycle here:
//   the ceiling row measures it). The tile is transposed back to rows once, at the end. Its A
//   panels come from an AVX-512 packer (gathers), and its s32 and fixed-point outputs from an
//   AVX-512 epilogue (below): with the portable ones, they took half of a 1024^3 GEMM's time.
// gemv 4x128 — rows of A are few, so B streams: a zmm load of 64 bytes is K groups g and g+1 of
//   one panel's 8 columns; A's dwords of groups g and g+1 are spread to match (lanes 0-7 and
//   8-15) with one vpermd per row; the two halves of the accumulator are added at the end. Four
//   adjacent panels are read side by side: four streams keep more cache misses in flight than
//   one (the kernel's comment has the measurements).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define KEEL_GEMM_I8_HAVE_AVX512VNNI 1

#include <cpuid.h>
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "keel/check.hpp"
#include "keel/kernels/gemm_i8/avx2.hpp"
#include "keel/kernels/gemm_i8/epilogue.hpp"
#include "keel/kernels/gemm_i8/packing.hpp"
#include "keel/kernels/gemm_i8/variant.hpp"

#define KEEL_TARGET_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

// GCC 12's AVX-512 intrinsics start from _mm512_undefined_*(), a self-initialized variable that
// -Wmaybe-uninitialized and -Wuninitialized report once inlined into user code (GCC bug 105593,
// fixed in GCC 13): silenced for this file only.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace keel::kernels::gemm_i8::avx512vnni {

inline constexpr packing kPacking{8, 4};
inline constexpr int kGemmRows = 32;  // the gemm tile's rows: two zmm of 16 rows
inline constexpr int kGemvRows = 4;   // the gemv's rows (M <= 4)

// ---- CPU and OS support ----------------------------------------------------------------------

namespace detail {

// CPUID.(EAX=7,ECX=0): EBX bit 5 AVX2, bit 16 AVX512F, bit 30 AVX512BW, bit 31 AVX512VL; ECX bit 11
// AVX512_VNNI. CPUID.1:ECX bit 27 OSXSAVE (XGETBV usable). XCR0 bits 1 (SSE), 2 (AVX), 5
// (opmask), 6 (upper halves of ZMM0-15), 7 (ZMM16-31): all set when the OS saves the whole
// AVX-512 state on a context switch (Intel SDM vol. 1, 15.2 "Detection of AVX-512 foundation
// instructions").
// The low half of XCR0 (XGETBV with ECX = 0): the state components the OS saves. Only after
// CPUID.1:ECX.OSXSAVE says XGETBV may run.
inline unsigned xcr0_low() noexcept {
  unsigned lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return lo;
}

inline const char* probe_missing_feature() noexcept {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid_max(0, nullptr) < 7) return "CPU lacks avx512f (no CPUID leaf 7)";
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  if ((ebx & (1u << 5)) == 0) return "CPU lacks avx2";  // the shared epilogue and A packer's
  if ((ebx & (1u << 16)) == 0) return "CPU lacks avx512f";
  if ((ebx & (1u << 30)) == 0) return "CPU lacks avx512bw";
  if ((ebx & (1u << 31)) == 0) return "CPU lacks avx512vl";
  if ((ecx & (1u << 11)) == 0) return "CPU lacks avx512_vnni";
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0 || (ecx & (1u << 27)) == 0) {
    return "OS has not enabled XSAVE (no OSXSAVE), so the AVX-512 state is unusable";
  }
  if ((xcr0_low() & 0xE6u) != 0xE6u) return "OS has not enabled the ZMM and opmask state (XCR0)";
  return nullptr;
}

// Whether the CPU is AMD's (CPUID leaf 0: vendor string "AuthenticAMD" in EBX, EDX, ECX). The
// gemv kernels (this file's, and gemm_i4/avx512_gemv.hpp's dynamic_s8 one) leave out their software
// prefetch of the weight streams there: measured on an AMD EPYC VM (Zen 4, family 25 model 17,
// 2026-12-04), the int8 gemv streamed about 15-20% faster without it and the int4 one about 12%
// (docs/cpu-backend.md), while on the Intel Xeon VMs the prefetch gained 2-4%. One VM of each
// vendor: a heuristic, not a law of either microarchitecture.
inline bool probe_vendor_amd() noexcept {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(0, &eax, &ebx, &ecx, &edx) == 0) return false;
  return ebx == 0x68747541u && edx == 0x69746e65u && ecx == 0x444d4163u;  // "Auth" "enti" "cAMD"
}
inline bool vendor_amd() noexcept {
  static const bool amd = probe_vendor_amd();
  return amd;
}

}  // namespace detail

// Why this machine cannot run the kernels of this file ("CPU lacks avx512_vnni", ...), or
// nullptr when it can. Probed once per process.
inline const char* missing_feature() noexcept {
  static const char* const why = detail::probe_missing_feature();
  return why;
}
inline bool cpu_supported() noexcept {
  return missing_feature() == nullptr;
}

namespace detail {

KEEL_TARGET_AVX512VNNI inline __m512i broadcast_dword(const void* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm512_set1_epi32(v);
}

// Accumulators are named variables (macros), not arrays, so that GCC keeps each in a register
// (the AVX2 kernels found GCC 12 keeping an array of vectors in memory).
#define KEEL_VNNI_FOR_COLS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

// ---- gemm 32x8 -------------------------------------------------------------------------------

// Transposes 8 accumulators (column c: 16 rows in lanes 0..15) into rows of 8 int32 and stores
// rows [0, rows) of them at raw + r * ld_raw. In three shuffle steps, per 128-bit lane L (rows
// 4L..4L+3): dword interleave of column pairs, qword interleave of pair pairs (then u_i holds
// columns 0-3 of row 4L+i and v_i columns 4-7), and a two-source qword permute that puts u_i's
// and v_i's lane L side by side: 24 shuffles and up to 16 stores per 16 x 8 block.
KEEL_TARGET_AVX512VNNI inline __attribute__((always_inline)) void store_columns_as_rows(
    __m512i c0, __m512i c1, __m512i c2, __m512i c3, __m512i c4, __m512i c5, __m512i c6, __m512i c7,
    int rows, std::int32_t* raw, std::int64_t ld_raw) noexcept {
  const __m512i t0 = _mm512_unpacklo_epi32(c0, c1), t1 = _mm512_unpackhi_epi32(c0, c1);
  const __m512i t2 = _mm512_unpacklo_epi32(c2, c3), t3 = _mm512_unpackhi_epi32(c2, c3);
  const __m512i t4 = _mm512_unpacklo_epi32(c4, c5), t5 = _mm512_unpackhi_epi32(c4, c5);
  const __m512i t6 = _mm512_unpacklo_epi32(c6, c7), t7 = _mm512_unpackhi_epi32(c6, c7);
  const __m512i u[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                        _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};
  const __m512i v[4] = {_mm512_unpacklo_epi64(t4, t6), _mm512_unpackhi_epi64(t4, t6),
                        _mm512_unpacklo_epi64(t5, t7), _mm512_unpackhi_epi64(t5, t7)};
  // Qword indices: 0-7 pick from u, 8-15 from v. lo = rows i (low half) and 4 + i (high half),
  // hi = rows 8 + i and 12 + i.
  const __m512i idx_lo = _mm512_set_epi64(11, 10, 3, 2, 9, 8, 1, 0);
  const __m512i idx_hi = _mm512_set_epi64(15, 14, 7, 6, 13, 12, 5, 4);
  for (int i = 0; i < 4; ++i) {
    const __m512i lo = _mm512_permutex2var_epi64(u[i], idx_lo, v[i]);
    const __m512i hi = _mm512_permutex2var_epi64(u[i], idx_hi, v[i]);
    const __m256i quarter[4] = {_mm512_castsi512_si256(lo), _mm512_extracti64x4_epi64(lo, 1),
                                _mm512_castsi512_si256(hi), _mm512_extracti64x4_epi64(hi, 1)};
    for (int q = 0; q < 4; ++q) {
      const int r = 4 * q + i;
      if (r < rows) _mm256_storeu_si256(reinterpret_cast<__m256i*>(raw + r * ld_raw), quarter[q]);
    }
  }
}

// One B panel (8 columns) against the 32-row u8 A panel, all of K. Halves = 1 computes rows
// 0-15 only (a tile of at most 16 valid rows), 2 all 32. A panel group g: 128 bytes, rows 0-31
// x 4 K values (packing.hpp, pack_a_panel with mr = 32); B panel group g: 32 bytes.
template <int Halves>
KEEL_TARGET_AVX512VNNI inline void dp4_panel(const std::uint8_t* a, const std::int8_t* b,
                                             std::int64_t kq, int rows, std::int32_t* raw,
                                             std::int64_t ld_raw) noexcept {
  static_assert(Halves == 1 || Halves == 2, "a 32-row tile is one or two halves of 16 rows");
  // Setup: accumulator acc<c>_<h> = column c, rows 16h .. 16h + 15 (zeroed by the asm below).
#define KEEL_VNNI_DECLARE(c) __m512i acc##c##_0, acc##c##_1;
  KEEL_VNNI_FOR_COLS(KEEL_VNNI_DECLARE)
#undef KEEL_VNNI_DECLARE

  // Main loop, in asm: per K group, the A rows as one or two zmm (zmm16, zmm17), then per
  // column one broadcast of its 4 B values and one vpdpbusd per half. With intrinsics GCC 12
  // allocated this loop cleanly in a small translation unit, but inside the cpu backend it added
  // about 20 register moves and a spill per K group (seen with perf annotate in bench_matmul),
  // which cost about a third of the kernel's time. Requires kq >= 1 (K >= 1 is validated).
  // Operands: the accumulators are outputs only (zeroed first: GCC counts an in-out operand
  // twice against its limit of 30), in any zmm but the clobbered ones.
  // A streams from L2 (the driver sweeps an m-block of A panels per B panel, which stays in
  // L1), and perf put the loop's stalls on the A loads: a software prefetch 2 KiB (16 K groups)
  // ahead. Measured on this kernel alone with 1 MiB of A panels in L2, per CPU-second on the
  // shared machine (noisy; best of 3 runs, K = 1024 / 4096): none 627 / 624, 512 B 651 / 704,
  // 1 KiB 657 / 712, 2 KiB 691 / 714 GOPS; the vpdpbusd ceiling row reads about 729. Past the
  // end of a panel it runs on into the next one (or past the buffer: a prefetch never faults).
  // B gets the same 2 KiB (64 K groups) prefetch: its panel is read once per A panel of the
  // m-block, and on an AMD Zen 5 VM (2026-12-04) perf put stalls on the broadcasts too once A's
  // were hidden. Measured there on the kernel alone (K = 1024, 4 A panels x 512 B panels, random
  // data): about 800 GOPS without it, 1000-1040 with it; in bench_matmul M128_N4096_K4096 went
  // from about 805 to 930-945 GOPS (oneDNN 950-985 in the same runs). docs/cpu-backend.md has
  // the Zen 4 figures.
  // One instruction per line in the asm below:
  // clang-format off
#define KEEL_VNNI_A_PREFETCH(off) "prefetcht0 2048+" off "(%[a])\n\t"
#define KEEL_VNNI_B_PREFETCH "prefetcht0 2048(%[b])\n\t"
  const std::uint8_t* ap = a;
  const std::int8_t* bp = b;
  std::int64_t n = kq;
  KEEL_DASSERT(n >= 1, "at least one K group");
  if constexpr (Halves == 2) {
#define KEEL_VNNI_ASM_COL(off, lo, hi)         \
  "vpbroadcastd " off "(%[b]), %%zmm18\n\t"    \
  "vpdpbusd %%zmm18, %%zmm16, %[" lo "]\n\t"   \
  "vpdpbusd %%zmm18, %%zmm17, %[" hi "]\n\t"
#define KEEL_VNNI_ASM_ZERO(r) "vpxord %[" r "], %[" r "], %[" r "]\n\t"
    __asm__ volatile(
        KEEL_VNNI_ASM_ZERO("lo0") KEEL_VNNI_ASM_ZERO("lo1") KEEL_VNNI_ASM_ZERO("lo2")
        KEEL_VNNI_ASM_ZERO("lo3") KEEL_VNNI_ASM_ZERO("lo4") KEEL_VNNI_ASM_ZERO("lo5")
        KEEL_VNNI_ASM_ZERO("lo6") KEEL_VNNI_ASM_ZERO("lo7") KEEL_VNNI_ASM_ZERO("hi0")
        KEEL_VNNI_ASM_ZERO("hi1") KEEL_VNNI_ASM_ZERO("hi2") KEEL_VNNI_ASM_ZERO("hi3")
        KEEL_VNNI_ASM_ZERO("hi4") KEEL_VNNI_ASM_ZERO("hi5") KEEL_VNNI_ASM_ZERO("hi6")
        KEEL_VNNI_ASM_ZERO("hi7")
        "1:\n\t"
        KEEL_VNNI_A_PREFETCH("0") KEEL_VNNI_A_PREFETCH("64")
        KEEL_VNNI_B_PREFETCH
        "vmovdqu64 (%[a]), %%zmm16\n\t"
        "vmovdqu64 64(%[a]), %%zmm17\n\t"
        KEEL_VNNI_ASM_COL("0", "lo0", "hi0") KEEL_VNNI_ASM_COL("4", "lo1", "hi1")
        KEEL_VNNI_ASM_COL("8", "lo2", "hi2") KEEL_VNNI_ASM_COL("12", "lo3", "hi3")
        KEEL_VNNI_ASM_COL("16", "lo4", "hi4") KEEL_VNNI_ASM_COL("20", "lo5", "hi5")
        KEEL_VNNI_ASM_COL("24", "lo6", "hi6") KEEL_VNNI_ASM_COL("28", "lo7", "hi7")
        "add $128, %[a]\n\t"
        "add $32, %[b]\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        : [a] "+r"(ap), [b] "+r"(bp), [n] "+r"(n), [lo0] "=v"(acc0_0), [lo1] "=v"(acc1_0),
          [lo2] "=v"(acc2_0), [lo3] "=v"(acc3_0), [lo4] "=v"(acc4_0), [lo5] "=v"(acc5_0),
          [lo6] "=v"(acc6_0), [lo7] "=v"(acc7_0), [hi0] "=v"(acc0_1), [hi1] "=v"(acc1_1),
          [hi2] "=v"(acc2_1), [hi3] "=v"(acc3_1), [hi4] "=v"(acc4_1), [hi5] "=v"(acc5_1),
          [hi6] "=v"(acc6_1), [hi7] "=v"(acc7_1)
        :
        : "xmm16", "xmm17", "xmm18", "cc", "memory");
#undef KEEL_VNNI_ASM_COL
  } else {
    // One half: each B dword is used once, so it is broadcast by the vpdpbusd itself ({1to16}).
#define KEEL_VNNI_ASM_COL(off, lo) "vpdpbusd " off "(%[b])%{1to16%}, %%zmm16, %[" lo "]\n\t"
    __asm__ volatile(
        KEEL_VNNI_ASM_ZERO("lo0") KEEL_VNNI_ASM_ZERO("lo1") KEEL_VNNI_ASM_ZERO("lo2")
        KEEL_VNNI_ASM_ZERO("lo3") KEEL_VNNI_ASM_ZERO("lo4") KEEL_VNNI_ASM_ZERO("lo5")
        KEEL_VNNI_ASM_ZERO("lo6") KEEL_VNNI_ASM_ZERO("lo7")
        "1:\n\t"
        KEEL_VNNI_A_PREFETCH("0")
        KEEL_VNNI_B_PREFETCH
        "vmovdqu64 (%[a]), %%zmm16\n\t"
        KEEL_VNNI_ASM_COL("0", "lo0") KEEL_VNNI_ASM_COL("4", "lo1")
        KEEL_VNNI_ASM_COL("8", "lo2") KEEL_VNNI_ASM_COL("12", "lo3")
        KEEL_VNNI_ASM_COL("16", "lo4") KEEL_VNNI_ASM_COL("20", "lo5")
        KEEL_VNNI_ASM_COL("24", "lo6") KEEL_VNNI_ASM_COL("28", "lo7")
        "add $128, %[a]\n\t"
        "add $32, %[b]\n\t"
        "dec %[n]\n\t"
        "jnz 1b\n\t"
        : [a] "+r"(ap), [b] "+r"(bp), [n] "+r"(n), [lo0] "=v"(acc0_0), [lo1] "=v"(acc1_0),
          [lo2] "=v"(acc2_0), [lo3] "=v"(acc3_0), [lo4] "=v"(acc4_0), [lo5] "=v"(acc5_0),
          [lo6] "=v"(acc6_0), [lo7] "=v"(acc7_0)
        :
        : "xmm16", "cc", "memory");
#undef KEEL_VNNI_ASM_COL
  }
#undef KEEL_VNNI_ASM_ZERO
#undef KEEL_VNNI_A_PREFETCH
#undef KEEL_VNNI_B_PREFETCH
  // clang-format on

  // Store: back to rows.
  store_columns_as_rows(acc0_0, acc1_0, acc2_0, acc3_0, acc4_0, acc5_0, acc6_0, acc7_0,
                        rows < 16 ? rows : 16, raw, ld_raw);
  if constexpr (Halves > 1) {
    store_columns_as_rows(acc0_1, acc1_1, acc2_1, acc3_1, acc4_1, acc5_1, acc6_1, acc7_1, rows - 16,
                          raw + 16 * ld_raw, ld_raw);
  }
}

// One call: up to two B panels (np = 2, 16 columns), all of K, one after the other over the same
// A panel. Two rather than one: the driver's column block is then 16 wide, which halves its calls
// and epilogue calls (which of that, or the A panel re-read while still warm, gains most was not
// profiled). On AMD Zen 5 (2026-12-04, 1 thread, interleaved runs) BERT 128x1536x384 went from
// about 752 to 856 GOPS and MobileNet 3136x24x144 from 419 to 496, the large shapes within the
// noise; Zen 4 figures in docs/cpu-backend.md. Tried and not kept: four panels per call with K in
// chunks of 512 values, so that a 16 KiB chunk of the A panel served all four from L1 (A from L2
// once per call, not once per panel): no gain measured (1024^3 and 128 x 4096 x 4096 within the
// noise, each a few percent either way).
template <int Halves>
KEEL_TARGET_AVX512VNNI void dp4_tile(const ukernel_args& p) noexcept {
  const auto* a = static_cast<const std::uint8_t*>(p.a);
  for (int j = 0; j < p.panels; ++j) {
    dp4_panel<Halves>(a, p.b + j * p.b_panel_stride, p.kq, p.rows, p.raw + j * 8, p.ld_raw);
  }
}

// ---- gemv 4x128 ------------------------------------------------------------------------------

// Rows (1..4) rows of the 4-row u8 A panel against Streams consecutive B panels at once (b,
// b + stride, ...), each streamed once, with a software prefetch kPrefetchBytes ahead of each
// panel's load stream (past a panel's end it runs on into the next panel, read already or soon).
//
// Per pair of K groups (g, g+1): the B load is [g: c0..c7 | g+1: c0..c7] (64 bytes); the 32
// bytes of A at group g are [g: r0..r3 | g+1: r0..r3], and vpermd with sel_r (lanes 0-7 from
// dword r, lanes 8-15 from dword 4 + r) lines row r's two dwords up with it. One accumulator per
// row and panel, two vpdpbusd into it per step (4 K groups): a step of four panels takes longer
// than two vpdpbusd latencies, so the chain never limits the stream. Lanes 0-7 (groups g) and
// 8-15 (groups g+1) are added at the end.
//
// Why four panels at once: one core's read bandwidth is bounded by the cache misses it keeps in
// flight, and four streams 32 KiB (a panel at K = 4096) apart keep more in flight than one stream
// with a prefetch; they also cut A's loads and vpermd per B byte by four (A is re-read per panel
// group, from L1 or L2). Measured (the kernel alone over 1 GiB of rotating cold weights, M = 1,
// best of 8 interleaved runs per CPU-second on the shared machine; N4096_K4096 / N4096_K11008):
// one panel at a time with a 4 KiB prefetch 9.4 / 9.8 GB/s, 2 KiB 10.4 / 10.4; two panels
// 11.4 / 12.3; four 12.5 / 12.7; eight 12.5 / 12.8 (more registers, no gain); four without the
// prefetch 12.0 / 12.5. A plain AVX-512 read loop over the same weights in the same runs: 11.5.
template <int Rows, int Streams, int kPrefetchBytes>
KEEL_TARGET_AVX512VNNI inline __attribute__((always_inline)) void gemv_dp4_panels(
    const std::uint8_t* a, const std::int8_t* b, std::int64_t stride, std::int64_t kq,
    std::int32_t* raw, std::int64_t ld_raw, int raw_step = 8) noexcept {
  constexpr int kAGroup = kGemvRows * 4;  // bytes of A per K group
  // Setup: row selectors, and acc[r][s] for row r, panel s. Every loop over rows and panels is
  // unrolled, so that the arrays live in registers (rolled at -O2, GCC 12 kept them in memory).
  __m512i sel[Rows];
#pragma GCC unroll 4
  for (int r = 0; r < Rows; ++r) {
    sel[r] = _mm512_set_epi32(4 + r, 4 + r, 4 + r, 4 + r, 4 + r, 4 + r, 4 + r, 4 + r, r, r, r, r, r,
                              r, r, r);
  }
  __m512i acc[Rows][Streams];
#pragma GCC unroll 4
  for (auto& row : acc) {
#pragma GCC unroll 4
    for (auto& v : row) v = _mm512_setzero_si512();
  }

  // Main loop: 4 K groups (128 bytes, two cache lines) of every panel per step.
  std::int64_t g = 0;
  for (; g + 4 <= kq; g += 4) {
    const __m512i a0 = _mm512_castsi256_si512(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + g * kAGroup)));
    const __m512i a1 = _mm512_castsi256_si512(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + (g + 2) * kAGroup)));
    __m512i ar0[Rows], ar1[Rows];
#pragma GCC unroll 4
    for (int r = 0; r < Rows; ++r) {
      ar0[r] = _mm512_permutexvar_epi32(sel[r], a0);
      ar1[r] = _mm512_permutexvar_epi32(sel[r], a1);
    }
#pragma GCC unroll 4
    for (int s = 0; s < Streams; ++s) {
      const std::int8_t* bg = b + s * stride + g * 32;
      if constexpr (kPrefetchBytes > 0) {
        _mm_prefetch(reinterpret_cast<const char*>(bg + kPrefetchBytes), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(bg + kPrefetchBytes + 64), _MM_HINT_T0);
      }
      const __m512i b0 = _mm512_loadu_si512(bg);
      const __m512i b1 = _mm512_loadu_si512(bg + 64);
#pragma GCC unroll 4
      for (int r = 0; r < Rows; ++r) {
        acc[r][s] = _mm512_dpbusd_epi32(acc[r][s], ar0[r], b0);
        acc[r][s] = _mm512_dpbusd_epi32(acc[r][s], ar1[r], b1);
      }
    }
  }

  // Leftovers: one more pair, then a single group (its B half: 32 bytes, the upper lanes zero,
  // so nothing past the panel is read).
  if (g + 2 <= kq) {
    const __m512i a0 = _mm512_castsi256_si512(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + g * kAGroup)));
#pragma GCC unroll 4
    for (int s = 0; s < Streams; ++s) {
      const __m512i b0 = _mm512_loadu_si512(b + s * stride + g * 32);
#pragma GCC unroll 4
      for (int r = 0; r < Rows; ++r) {
        acc[r][s] = _mm512_dpbusd_epi32(acc[r][s], _mm512_permutexvar_epi32(sel[r], a0), b0);
      }
    }
    g += 2;
  }
  if (g < kq) {
#pragma GCC unroll 4
    for (int s = 0; s < Streams; ++s) {
      const __m512i b0 = _mm512_zextsi256_si512(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + s * stride + g * 32)));
#pragma GCC unroll 4
      for (int r = 0; r < Rows; ++r) {
        acc[r][s] = _mm512_dpbusd_epi32(acc[r][s], broadcast_dword(a + g * kAGroup + 4 * r), b0);
      }
    }
  }

  // Reduction and store: lanes 0-7 (groups g) + lanes 8-15 (groups g+1), 8 columns per panel.
#pragma GCC unroll 4
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
    for (int s = 0; s < Streams; ++s) {
      const __m256i cols = _mm256_add_epi32(_mm512_castsi512_si256(acc[r][s]),
                                            _mm512_extracti64x4_epi64(acc[r][s], 1));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(raw + r * ld_raw + s * raw_step), cols);
    }
  }
}

// All `panels` of a call: four at a time, then the rest one at a time. raw_step: the columns from
// one stream's outputs to the next's (8: adjacent panels).
template <int Rows, int kPrefetchBytes>
KEEL_TARGET_AVX512VNNI void gemv_dp4_tile(const ukernel_args& p) noexcept {
  static_assert(Rows >= 1 && Rows <= kGemvRows, "gemv_dp4_tile handles 1..4 rows");
  constexpr int kStreams = 4;
  const auto* a = static_cast<const std::uint8_t*>(p.a);
  int j = 0;
  // Without the prefetch (AMD, gemv_dp4 below), the four streams are panels a quarter of the call
  // apart rather than adjacent ones: on the Zen 4 VM adjacent 32 KiB blocks read side by side were
  // the slowest read pattern measured (mem_read/ceiling/avx512_b4x32k 20 GB/s against 27-28 for
  // one or four distant streams, KEEL_BENCH_READ_METHODS=all), and on 2 threads the gemv gained
  // about 10% at M1_N4096_K4096 and 6% at M1_N11008_K4096, 1 thread within the noise (interleaved
  // runs, 2026-12-04). Not tried on Intel, where adjacent streams with a prefetch measured best.
  if (kPrefetchBytes == 0 && p.panels % kStreams == 0) {
    const int q = p.panels / kStreams;
    for (; j < q; ++j) {
      gemv_dp4_panels<Rows, kStreams, kPrefetchBytes>(a, p.b + j * p.b_panel_stride,
                                                      q * p.b_panel_stride, p.kq, p.raw + j * 8,
                                                      p.ld_raw, q * 8);
    }
    return;
  }
  for (; j + kStreams <= p.panels; j += kStreams) {
    gemv_dp4_panels<Rows, kStreams, kPrefetchBytes>(a, p.b + j * p.b_panel_stride, p.b_panel_stride,
                                                    p.kq, p.raw + j * 8, p.ld_raw);
  }
  for (; j < p.panels; ++j) {
    gemv_dp4_panels<Rows, 1, kPrefetchBytes>(a, p.b + j * p.b_panel_stride, p.b_panel_stride, p.kq,
                                             p.raw + j * 8, p.ld_raw);
  }
}

#undef KEEL_VNNI_FOR_COLS

}  // namespace detail

// ---- A packer for the gemm ---------------------------------------------------------------------

namespace detail {

// Transposes 16 rows of 16 dwords (r[i]: row i's K groups 0..15) into 16 groups of 16 rows
// (r[g]: group g, lane i = row i), in place. Three steps, 64 shuffles: dword interleave of row
// pairs, qword interleave (then u[4q + j] lane L holds rows 4q..4q+3 of group 4L + j), and a
// 4 x 4 transpose of 128-bit lanes among u[j], u[4 + j], u[8 + j], u[12 + j].
KEEL_TARGET_AVX512VNNI inline __attribute__((always_inline)) void transpose_16x16(
    __m512i (&r)[16]) noexcept {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  __m512i u[16];
  for (int q = 0; q < 4; ++q) {
    u[4 * q + 0] = _mm512_unpacklo_epi64(t[4 * q], t[4 * q + 2]);
    u[4 * q + 1] = _mm512_unpackhi_epi64(t[4 * q], t[4 * q + 2]);
    u[4 * q + 2] = _mm512_unpacklo_epi64(t[4 * q + 1], t[4 * q + 3]);
    u[4 * q + 3] = _mm512_unpackhi_epi64(t[4 * q + 1], t[4 * q + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0x44);
    const __m512i v1 = _mm512_shuffle_i32x4(u[j], u[4 + j], 0xEE);
    const __m512i v2 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0x44);
    const __m512i v3 = _mm512_shuffle_i32x4(u[8 + j], u[12 + j], 0xEE);
    r[j] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    r[4 + j] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
    r[8 + j] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
  }
}

}  // namespace detail

// The gemm's A panel (packing.hpp's layout for mr = 32: [kq][32 rows][4] u8, A' = A ^ 0x80 for
// s8, zeros past K and below `rows`) and its row sums, 64 bytes of K (16 groups) at a time: per
// half of 16 rows, one load per row (byte-masked at the end of K, so nothing past a row is
// read), the s8 flip, a 16 x 16 dword transpose, and the row sums as a vpdpbusd of each group
// against bytes of 1 (exact: 255 * 4 per step into int32). The portable packer (the AVX2 build
// of pack_a_panel) writes the same bytes. Measured (perf, share of a call with the VNNI kernel):
// the portable packer took 19% of a 1024^3 GEMM; a first AVX-512 version with one masked gather
// per K group and half took 3% there and 26-30% at M = 3136, K = 144, N = 24. This transpose
// did not change the total time measurably (least CPU time of 6 interleaved runs: 0.071 against
// 0.076 ms at 3136 x 24 x 144, 3.99 against 4.03 ms at 1024^3; the machine's noise is larger),
// and is kept because it reads exactly the bytes of A (no 32-bit gather offsets to overflow) and
// needs no gathers, which microcode mitigations (GDS) slow on some AVX-512 CPUs. Strided K or
// other tiles take the portable packer.
KEEL_TARGET_AVX512VNNI inline void pack_a_gemm(const a_source& a, std::int64_t m0, int rows,
                                               std::int64_t k, int mr, const packing& p,
                                               void* dst_v, std::int32_t* rowsum) noexcept {
  if (mr != kGemmRows || p.k_group != 4 || a.stride_k != 1) {
    return avx2::pack_a<std::uint8_t>(a, m0, rows, k, mr, p, dst_v, rowsum);
  }
  KEEL_DASSERT(rows >= 1 && rows <= kGemmRows, "rows within the panel");
  auto* dst = static_cast<std::uint8_t*>(dst_v);
  const auto* base = static_cast<const std::uint8_t*>(a.data) + a.base + m0 * a.stride_m;
  const __m512i flip = _mm512_set1_epi8(a.type == dtype::s8 ? static_cast<char>(0x80) : 0);
  const __m512i ones = _mm512_set1_epi32(0x01010101);
  const std::int64_t kq = k_groups(k, p);
  __m512i sums[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};

  for (std::int64_t k0 = 0; k0 < k; k0 += 64) {
    // Setup: the bytes of K in this chunk, and its K groups.
    const std::int64_t bytes = k - k0 < 64 ? k - k0 : 64;
    const __mmask64 kmask = bytes == 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
    const std::int64_t g0 = k0 / 4;
    const std::int64_t groups = kq - g0 < 16 ? kq - g0 : 16;
    for (int h = 0; h < 2; ++h) {
      std::uint8_t* out = dst + g0 * (kGemmRows * 4) + 64 * h;
      const int valid = rows - 16 * h;  // rows of this half that exist
      if (valid <= 0) {
        for (std::int64_t g = 0; g < groups; ++g) {
          _mm512_storeu_si512(out + g * (kGemmRows * 4), _mm512_setzero_si512());
        }
        continue;
      }
      // Load: row i's 64 bytes, flipped where they exist, zero elsewhere.
      __m512i r[16];
      for (int i = 0; i < 16; ++i) {
        if (i < valid) {
          const __m512i v = _mm512_maskz_loadu_epi8(kmask, base + (16 * h + i) * a.stride_m + k0);
          r[i] = _mm512_maskz_mov_epi8(kmask, _mm512_xor_si512(v, flip));
        } else {
          r[i] = _mm512_setzero_si512();
        }
      }
      // Transpose, row sums, store.
      detail::transpose_16x16(r);
      for (std::int64_t g = 0; g < groups; ++g) {
        sums[h] = _mm512_dpbusd_epi32(sums[h], r[g], ones);
        _mm512_storeu_si512(out + g * (kGemmRows * 4), r[g]);
      }
    }
  }
  alignas(64) std::int32_t lane_sums[kGemmRows];
  _mm512_store_si512(lane_sums, sums[0]);
  _mm512_store_si512(lane_sums + 16, sums[1]);
  for (int i = 0; i < rows; ++i) rowsum[i] = lane_sums[i];
}

// ---- epilogue ----------------------------------------------------------------------------------

// The epilogue (epilogue.hpp's phases, the same arithmetic) for the integer output stages, with
// 16 columns per zmm: s32, and s8/u8 in fixed_point mode, when out's columns are contiguous.
// Everything else (f32 output, float_scale requantization, strided columns) is the shared AVX2
// epilogue, unchanged: its float steps must not be compiled where AVX-512F lets GCC contract
// them. perf showed the AVX2 epilogue at 26-32% of a 1024^3 GEMM with the VNNI kernel.
//
// Per element, as epilogue.hpp:
//   S   = raw - zb'[n] * rowsum[m] + colterm[n]                         (mod 2^32)
//   acc = S + bias[n], saturated to int32: on overflow (the operands share a sign and the sum's
//         differs) the limit of the operands' sign, INT32_MIN or INT32_MAX
//   s32: acc. s8/u8: ((acc * M + 2^(t-1)) >> t) + zp, clamped to the effective range, with
//         t = 31 - shift in [1, 62], in int64 lanes (acc * M fits: |acc|, M < 2^31). Clamping
//         once after adding zp equals quant.hpp's clamp to int32, + zp, clamp: the range lies
//         inside int32 and |zp| <= 255.
KEEL_TARGET_AVX512VNNI inline void epilogue(const epilogue_params& e, const std::int32_t* raw,
                                            std::int64_t ld_raw, std::int64_t m0, int rows,
                                            std::int64_t n0, int cols) noexcept {
  const bool requant = e.out.type == dtype::s8 || e.out.type == dtype::u8;
  if (e.out_stride_n != 1 ||
      !(e.out.type == dtype::s32 || (requant && e.out.mode == requant_mode::fixed_point))) {
    return avx2::epilogue(e, raw, ld_raw, m0, rows, n0, cols);
  }
  // The parameters in locals: the stores below may alias `e` as far as the compiler knows, and
  // it reloaded e's fields in every row (perf annotate).
  const std::int32_t* const rowsum = e.rowsum;
  const std::int32_t* const bias_data = e.bias;
  void* const out_data = e.out_data;
  const std::int64_t out_base = e.out_base, out_stride_m = e.out_stride_m;
  const bool zb_zero = e.zb_zero;
  const __m512i zero = _mm512_setzero_si512();
  const __m512i int_max = _mm512_set1_epi32(INT32_MAX);
  for (int c0 = 0; c0 < cols; c0 += 16) {
    // Setup: the columns' constants.
    const int nc = cols - c0 < 16 ? cols - c0 : 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << nc) - 1);
    const std::int64_t n = n0 + c0;
    const __m512i zb = _mm512_maskz_loadu_epi32(mask, e.zb + n);
    const __m512i colterm = _mm512_maskz_loadu_epi32(mask, e.colterm + n);
    const __m512i bias =
        bias_data != nullptr ? _mm512_maskz_loadu_epi32(mask, bias_data + n) : zero;
    alignas(64) std::int64_t mult[16], shift[16], round[16];  // requantization only
    if (requant) {
      for (int c = 0; c < 16; ++c) {
        const quantized_multiplier q = c < nc ? e.rq[n + c].fixed : quantized_multiplier{0, 0};
        mult[c] = q.multiplier;
        shift[c] = 31 - q.shift;
        round[c] = std::int64_t{1} << (shift[c] - 1);
      }
    }
    const __m512i lo_limit = _mm512_set1_epi64(effective_min(e.out));
    const __m512i hi_limit = _mm512_set1_epi64(effective_max(e.out));
    const __m512i zp = _mm512_set1_epi64(e.out.zero_point);

    for (int r = 0; r < rows; ++r) {
      const std::int64_t m = m0 + r;
      // Phases 1 and 2: zero points, then the saturating bias.
      // raw by 8-column halves, unmasked: a masked zmm load of a row that the kernel has just
      // written as a ymm cannot take the store's data by forwarding (perf sampling put a third of
      // the epilogue on that load; the total time did not change measurably here). Reading up to
      // the next multiple of 8 stays inside the tile (ld_raw is whole panels); the lanes past
      // `cols` are never stored.
      const std::int32_t* raw_row = raw + r * ld_raw + c0;
      const __m256i raw_lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(raw_row));
      const __m512i raw_v =
          nc > 8 ? _mm512_inserti64x4(
                       _mm512_castsi256_si512(raw_lo),
                       _mm256_loadu_si256(reinterpret_cast<const __m256i*>(raw_row + 8)), 1)
                 : _mm512_castsi256_si512(raw_lo);
      // vpmulld is two uops on one port: skipped for symmetric weights, the common case.
      __m512i acc =
          zb_zero
              ? _mm512_add_epi32(raw_v, colterm)
              : _mm512_add_epi32(
                    _mm512_sub_epi32(raw_v, _mm512_mullo_epi32(zb, _mm512_set1_epi32(rowsum[m]))),
                    colterm);
      if (bias_data != nullptr) {
        const __m512i sum = _mm512_add_epi32(acc, bias);
        const __mmask16 overflow = _mm512_cmplt_epi32_mask(
            _mm512_and_si512(_mm512_xor_si512(acc, sum), _mm512_xor_si512(bias, sum)), zero);
        const __m512i limit = _mm512_xor_si512(_mm512_srai_epi32(acc, 31), int_max);
        acc = _mm512_mask_mov_epi32(sum, overflow, limit);
      }
      // Phase 3: the output stage.
      const std::int64_t off = out_base + m * out_stride_m + n;
      if (!requant) {
        _mm512_mask_storeu_epi32(static_cast<std::int32_t*>(out_data) + off, mask, acc);
        continue;
      }
      __m128i bytes[2];
      for (int h = 0; h < 2; ++h) {
        const __m512i x = _mm512_cvtepi32_epi64(h == 0 ? _mm512_castsi512_si256(acc)
                                                       : _mm512_extracti64x4_epi64(acc, 1));
        __m512i v = _mm512_add_epi64(_mm512_mul_epi32(x, _mm512_load_si512(mult + 8 * h)),
                                     _mm512_load_si512(round + 8 * h));
        v = _mm512_add_epi64(_mm512_srav_epi64(v, _mm512_load_si512(shift + 8 * h)), zp);
        v = _mm512_min_epi64(_mm512_max_epi64(v, lo_limit), hi_limit);
        bytes[h] = _mm512_cvtepi64_epi8(v);  // the low byte: the s8 or u8 value
      }
      _mm_mask_storeu_epi8(static_cast<std::uint8_t*>(out_data) + off, mask,
                           _mm_unpacklo_epi64(bytes[0], bytes[1]));
    }
  }
}

// ---- entry points -------------------------------------------------------------------------------

// The microkernels the registry names. Both use the epilogue above; the gemm the A packer above,
// the gemv the AVX2 build of the portable one (its M <= 4 rows cost little beside its weights).
inline void gemm_dp4(const ukernel_args& p) noexcept {
  KEEL_DASSERT(p.rows >= 1 && p.rows <= kGemmRows, "gemm rows within the tile");
  if (p.rows <= 16) return detail::dp4_tile<1>(p);
  detail::dp4_tile<2>(p);
}

// The prefetch distance: 1 KiB ahead of each of the four panel streams (gemv_dp4_tile above), or
// none on AMD CPUs (detail::vendor_amd()).
template <int kPrefetchBytes = 1024>
void gemv_dp4(const ukernel_args& p) noexcept {
  KEEL_DASSERT(p.rows >= 1 && p.rows <= kGemvRows, "gemv rows within the tile");
  if (kPrefetchBytes > 0 && detail::vendor_amd()) return gemv_dp4<0>(p);
  switch (p.rows) {
    case 1: return detail::gemv_dp4_tile<1, kPrefetchBytes>(p);
    case 2: return detail::gemv_dp4_tile<2, kPrefetchBytes>(p);
    case 3: return detail::gemv_dp4_tile<3, kPrefetchBytes>(p);
    default: return detail::gemv_dp4_tile<4, kPrefetchBytes>(p);
  }
}

}  // namespace keel::kernels::gemm_i8::avx512vnni

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // x86-64, GCC or Clang
