// keel/kernels/gemm_i8/amx.hpp — the AMX-INT8 microkernel for int8 GEMM.
//
// Compiled with a function-level target attribute like the AVX-512 VNNI kernels, and run only
// where `missing_feature()` finds the CPU's AMX-TILE and AMX-INT8, the OS's tile state and the
// process's permission to use it (which it requests once: Linux hands the tile data state to a
// process only after arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA); without it the first
// tile instruction faults).
//
// The instruction: tdpbusd C, A, B (AMX-INT8) treats a tile as rows of up to 64 bytes. For every
// row m of A and dword column n of C, it adds to C[m][n] the products of the unsigned bytes
// A[m][4r..4r+3] by the signed bytes B[r][4n..4n+3], for every row r of B, each 4-product sum
// formed in 32 bits and added with no saturation (Intel SDM vol. 2, "TDPBUSD"; Intel
// Architecture Instruction Set Extensions Programming Reference, chapter 3). So each C element
// is acc + sum of u8 x s8 products modulo 2^32: the microkernel contract of variant.hpp,
// technique `dp4`, exact for every input, as vpdpbusd is.
//
// Layouts. A is the kernel's own, rows of 64 bytes of K: an A panel is, per block of 16 K
// groups (64 K values), 32 rows x 64 bytes (2 KiB, two A tiles of 16 rows), K zero-padded to
// whole blocks (a_panel_groups() in variant.hpp rounds the panel's size up to match). B arrives
// in the shared p8k4 panels, whose K group g (8 columns x 4 K values, 32 bytes) would be one row
// of an 8-column tile; but tdpbusd takes the same time whatever the columns (measured: 8-column
// tiles ran at half the rate of the ceiling row int8_mac/ceiling/amx), so prepare_b() joins
// panels in pairs into 16-column tiles, once per panel group of a task (the driver reuses it
// across the task's A panels): per pair and K block, 16 rows of 64 bytes (panel 2q's group in
// bytes 0-31, panel 2q+1's in 32-63, zeros past K and for a missing odd panel).
//
// The tile: 32 rows x 32 columns = 2 A tiles x 2 B tiles = 4 C tiles of 16 x 16 int32, all 8
// tile registers; per K block 2 A loads, 2 B loads and 4 tdpbusd of 16 x 16 x 64 multiply-adds.
// A call covers up to 16 panels (128 columns), two pairs at a time, K in chunks (kChunkBlocks).
//
// The epilogue: the kernel runs it itself (registry: epilogue_in_kernel), for each 32 columns
// while the tile unit computes the next 32, so that its stores overlap the tile work.
//
// Shortcomings (docs/cpu-backend.md, "Known shortcomings (AMX)"): at K <= 1024 a call's fixed
// costs (A packing, prepare_b repeated per task and m-block, the epilogue) leave it at 0.3-0.8x
// oneDNN; a p16k4 packed layout for this kernel would drop prepare_b, at the price of a second
// packed layout. At large K (11008) the driver caps a call's B in L2 (call_panels), so A streams
// from L2 per 32 columns; K-blocking in the driver would keep both close.
#pragma once

#include "keel/kernels/gemm_i8/avx512vnni.hpp"

#if defined(KEEL_GEMM_I8_HAVE_AVX512VNNI) && defined(__linux__)
#define KEEL_GEMM_I8_HAVE_AMX 1

#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

#include "keel/check.hpp"
#include "keel/kernels/gemm_i8/packing.hpp"
#include "keel/kernels/gemm_i8/variant.hpp"

#define KEEL_TARGET_AMX \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,amx-tile,amx-int8")))

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace keel::kernels::gemm_i8::amx {

inline constexpr packing kPacking{8, 4};
inline constexpr int kGemmRows = 32;       // two A tiles of 16 rows
inline constexpr int kPanelsPerCall = 16;  // 128 columns: the driver's raw tile width
inline constexpr int kBlockGroups = 16;    // K groups per A tile row (64 bytes)
inline constexpr int kBlockBytes = kGemmRows * kBlockGroups * 4;  // one A block: 2 KiB

// ---- CPU and OS support ----------------------------------------------------------------------

namespace detail {

// CPUID.(EAX=7,ECX=0):EDX bit 24 AMX-TILE, bit 25 AMX-INT8. XCR0 bits 17 (XTILECFG) and 18
// (XTILEDATA): the OS manages the tile state. CPUID leaf 0x1D subleaf 1 describes palette 1:
// EBX[15:0] bytes per row, EBX[31:16] tile names, ECX[15:0] rows (Intel SDM vol. 1, 3.2 "AMX"
// and vol. 2, CPUID leaf 1DH). Linux: arch_prctl(ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA
// = 18) grants the process the tile data state (Linux Documentation/arch/x86/xstate.rst).
inline const char* probe_missing_feature() noexcept {
  if (const char* why = avx512vnni::missing_feature()) return why;  // epilogue and A packer
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  if ((edx & (1u << 24)) == 0) return "CPU lacks amx_tile";
  if ((edx & (1u << 25)) == 0) return "CPU lacks amx_int8";
  if (__get_cpuid_max(0, nullptr) < 0x1D) return "CPU lacks the AMX palette leaf (CPUID 0x1D)";
  __cpuid_count(0x1D, 1, eax, ebx, ecx, edx);
  if ((ebx & 0xFFFFu) < 64 || (ebx >> 16) < 8 || (ecx & 0xFFFFu) < 16) {
    return "AMX palette 1 is smaller than 8 tiles of 16 rows x 64 bytes";
  }
  // XGETBV is safe here: the VNNI probe above checked OSXSAVE.
  if ((avx512vnni::detail::xcr0_low() & (3u << 17)) != (3u << 17)) {
    return "OS has not enabled the AMX tile state (XCR0)";
  }
  constexpr long kArchReqXcompPerm = 0x1023;
  constexpr long kXfeatureXtiledata = 18;
  if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0) {
    return "the OS refused this process the AMX tile data state (arch_prctl)";
  }
  return nullptr;
}

}  // namespace detail

// Why this machine cannot run the kernel of this file, or nullptr. Probed once per process (the
// probe also asks the OS for the tile state, which then holds for every thread of the process).
inline const char* missing_feature() noexcept {
  static const char* const why = detail::probe_missing_feature();
  return why;
}
inline bool cpu_supported() noexcept {
  return missing_feature() == nullptr;
}

// ---- A packing -------------------------------------------------------------------------------

// The A panel of `rows` (<= 32) rows from m0: per K block b, row r's 64 bytes at
// dst + b * kBlockBytes + r * 64 (A' = A, or A ^ 0x80 for s8), zero past K, in the padding
// blocks and for rows >= `rows`; rowsum[r] = sum of the row's A'. a_panel_groups(v, kq) groups
// of panel: what the driver allocates.
KEEL_TARGET_AMX inline void pack_a(const a_source& a, std::int64_t m0, int rows, std::int64_t k,
                                   int mr, const packing& p, void* dst_v,
                                   std::int32_t* rowsum) noexcept {
  KEEL_DASSERT(mr == kGemmRows && p.k_group == 4, "the AMX kernel's own A panel");
  KEEL_DASSERT(rows >= 1 && rows <= kGemmRows, "rows within the panel");
  (void)mr;
  auto* dst = static_cast<std::uint8_t*>(dst_v);
  const std::int64_t blocks = (k_groups(k, p) + kBlockGroups - 1) / kBlockGroups;
  const std::uint8_t flip_byte = a.type == dtype::s8 ? 0x80 : 0x00;
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(flip_byte));
  const __m512i zero = _mm512_setzero_si512();
  for (int r = 0; r < kGemmRows; ++r) {
    std::uint8_t* out = dst + r * 64;
    if (r >= rows) {
      for (std::int64_t b = 0; b < blocks; ++b) _mm512_store_si512(out + b * kBlockBytes, zero);
      continue;
    }
    const auto* src = static_cast<const std::uint8_t*>(a.data) + a.base + (m0 + r) * a.stride_m;
    __m512i sum = zero;  // 8 qword partial sums of the row
    for (std::int64_t b = 0; b < blocks; ++b) {
      const std::int64_t k0 = b * 64;
      const std::int64_t bytes = k - k0 >= 64 ? 64 : (k - k0 > 0 ? k - k0 : 0);
      __m512i v;
      if (a.stride_k == 1) {
        const __mmask64 m = bytes == 64 ? ~__mmask64{0} : (__mmask64{1} << bytes) - 1;
        v = _mm512_maskz_mov_epi8(m, _mm512_xor_si512(_mm512_maskz_loadu_epi8(m, src + k0), flip));
      } else {
        alignas(64) std::uint8_t tmp[64] = {};
        for (std::int64_t i = 0; i < bytes; ++i) {
          tmp[i] = static_cast<std::uint8_t>(src[(k0 + i) * a.stride_k] ^ flip_byte);
        }
        v = _mm512_load_si512(tmp);
      }
      sum = _mm512_add_epi64(sum, _mm512_sad_epu8(v, zero));
      _mm512_store_si512(out + b * kBlockBytes, v);
    }
    // <= 255 * K fits int32 for every K validation accepts.
    rowsum[r] = static_cast<std::int32_t>(_mm512_reduce_add_epi64(sum));
  }
}

// ---- B preparation ---------------------------------------------------------------------------

// Bytes of one pair's prepared K block: 16 rows x 64 bytes.
inline constexpr int kPairBlockBytes = kBlockGroups * 64;

// a.panels p8k4 panels from a.b (a.b_panel_stride apart, a.kq groups each) into dst: pair q's
// block blk at dst + (q * blocks + blk) * kPairBlockBytes, row r = K group blk * 16 + r, bytes
// 0-31 from panel 2q, 32-63 from panel 2q + 1; zero past kq and for a missing panel 2q + 1.
KEEL_TARGET_AMX inline void prepare_b(const ukernel_args& a, std::int8_t* dst) noexcept {
  const std::int64_t blocks = (a.kq + kBlockGroups - 1) / kBlockGroups;
  const int pairs = (a.panels + 1) / 2;
  const __m256i zero = _mm256_setzero_si256();
  for (int q = 0; q < pairs; ++q) {
    const std::int8_t* lo = a.b + (2 * q) * a.b_panel_stride;
    const bool has_hi = 2 * q + 1 < a.panels;
    const std::int8_t* hi = has_hi ? lo + a.b_panel_stride : nullptr;
    std::int8_t* out = dst + q * blocks * kPairBlockBytes;
    for (std::int64_t g = 0; g < blocks * kBlockGroups; ++g) {
      const bool in_k = g < a.kq;
      const __m256i l =
          in_k ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo + g * 32)) : zero;
      const __m256i h =
          in_k && has_hi ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi + g * 32)) : zero;
      _mm512_store_si512(out + g * 64, _mm512_inserti64x4(_mm512_castsi256_si512(l), h, 1));
    }
  }
}

// ---- gemm 32x128 -----------------------------------------------------------------------------

namespace detail {

// The tile configuration (palette 1): tmm0-3 C (16 rows x 64 bytes: 16 int32 columns; C[h][j]
// is tmm 2h + j), tmm4-5 A and tmm6-7 B (16 rows x 64 bytes). Layout of the 64-byte operand of
// ldtilecfg: byte 0 palette, byte 1 start row, bytes 16-47 the 16 tiles' bytes per row
// (uint16), bytes 48-63 their rows (Intel SDM vol. 2, LDTILECFG).
struct alignas(64) tile_config {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  std::uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};
static_assert(sizeof(tile_config) == 64, "ldtilecfg reads 64 bytes");

// ldtilecfg and sttilecfg with all 64 bytes as the asm operand. GCC 12's _tile_loadconfig and
// _tile_storeconfig name only a pointer-sized object at the address, so the compiler may drop
// the stores that fill a local configuration before ldtilecfg (seen: ldtilecfg faulted on an
// uninitialized one) or keep stale bytes of one that sttilecfg wrote.
KEEL_TARGET_AMX inline void load_tile_config(const tile_config& c) noexcept {
  __asm__ volatile("ldtilecfg %0" : : "m"(c));
}
KEEL_TARGET_AMX inline void store_tile_config(tile_config* c) noexcept {
  __asm__ volatile("sttilecfg %0" : "=m"(*c));
}

// Blocks [blk0, blk1) of K for prepared pairs q (b0) and q + 1 (b1; only q when Two is false);
// Halves A tiles (rows 0-15, and 16-31 when 2). C starts from zero (First) or from the partial
// sums in raw, and goes back to raw as int32 rows (16 rows per tile, valid or not: raw has room
// for 32, and the epilogue reads only the valid ones; likewise the columns of a missing panel).
// `between` runs after the tdpbusd are issued and before C is stored: while the tile unit works
// through them, the core is free for other work (the fused epilogue of the previous columns).
template <int Halves, bool Two, bool First, class Between>
KEEL_TARGET_AMX inline __attribute__((always_inline)) void pair_tiles(
    const std::uint8_t* a, const std::int8_t* b0, const std::int8_t* b1, std::int64_t blk0,
    std::int64_t blk1, std::int32_t* raw, std::int64_t ld_raw, const Between& between) noexcept {
  const std::int64_t stride = ld_raw * 4;
  if constexpr (First) {
    _tile_zero(0);
    if constexpr (Two) _tile_zero(1);
    if constexpr (Halves == 2) {
      _tile_zero(2);
      if constexpr (Two) _tile_zero(3);
    }
  } else {
    _tile_loadd(0, raw, stride);
    if constexpr (Two) _tile_loadd(1, raw + 16, stride);
    if constexpr (Halves == 2) {
      _tile_loadd(2, raw + 16 * ld_raw, stride);
      if constexpr (Two) _tile_loadd(3, raw + 16 * ld_raw + 16, stride);
    }
  }
  for (std::int64_t blk = blk0; blk < blk1; ++blk) {
    const std::uint8_t* ab = a + blk * kBlockBytes;
    _tile_loadd(4, ab, 64);
    _tile_loadd(6, b0 + blk * kPairBlockBytes, 64);
    _tile_dpbusd(0, 4, 6);
    if constexpr (Two) {
      _tile_loadd(7, b1 + blk * kPairBlockBytes, 64);
      _tile_dpbusd(1, 4, 7);
    }
    if constexpr (Halves == 2) {
      _tile_loadd(5, ab + 1024, 64);
      _tile_dpbusd(2, 5, 6);
      if constexpr (Two) _tile_dpbusd(3, 5, 7);
    }
  }
  between();
  _tile_stored(0, raw, stride);
  if constexpr (Two) _tile_stored(1, raw + 16, stride);
  if constexpr (Halves == 2) {
    _tile_stored(2, raw + 16 * ld_raw, stride);
    if constexpr (Two) _tile_stored(3, raw + 16 * ld_raw + 16, stride);
  }
}

// K blocks per chunk: the call walks K in chunks and, within a chunk, every pair of pairs, so the
// chunk of the A panel (16 KiB) stays in L1 while the prepared B streams past it once; the price
// is C's partial sums stored and reloaded once per chunk (4 KiB per 32 columns against 8 x 4
// tdpbusd). Measured on 1024^3, one thread, before B was prepared: the whole of K per column
// group (A re-read from L2 for each) ran the kernel at about a third of its tdpbusd rate.
inline constexpr std::int64_t kChunkBlocks = 8;

// The epilogue of raw's columns [c0, c0 + width) (clipped to the call's columns), when the driver
// left it to the kernel (ukernel_args::epilogue_params); the registry registers this kernel with
// the same avx512vnni::epilogue.
KEEL_TARGET_AMX inline void fused_epilogue(const ukernel_args& p, int c0, int width) noexcept {
  const int cols = p.out_cols - c0 < width ? p.out_cols - c0 : width;
  if (p.epilogue_params == nullptr || cols <= 0) return;
  avx512vnni::epilogue(*static_cast<const epilogue_params*>(p.epilogue_params), p.raw + c0,
                       p.ld_raw, p.out_m0, p.rows, p.out_n0 + c0, cols);
}

// Blocks [blk0, blk1) of K for every column pair of the call. In the last chunk (Last), the
// epilogue of each group of columns runs while the tile unit computes the next group (the
// epilogue of the last group after it): measured on 1024^3 and 128 x 1536 x 384 before this, the
// epilogue after the call took 30-37% of the time with the tile unit idle.
template <int Halves, bool First, bool Last>
KEEL_TARGET_AMX inline __attribute__((always_inline)) void chunk(const ukernel_args& p,
                                                                 std::int64_t blocks,
                                                                 std::int64_t blk0,
                                                                 std::int64_t blk1) noexcept {
  const auto* a = static_cast<const std::uint8_t*>(p.a);
  const std::int64_t pair_bytes = blocks * kPairBlockBytes;
  const int pairs = (p.panels + 1) / 2;
  int pending_c0 = 0, pending_width = 0;  // columns computed, epilogue not yet run
  const auto run_pending = [&] {
    if constexpr (Last) fused_epilogue(p, pending_c0, pending_width);
  };
  int q = 0;
  for (; q + 2 <= pairs; q += 2) {
    pair_tiles<Halves, true, First>(a, p.b + q * pair_bytes, p.b + (q + 1) * pair_bytes, blk0, blk1,
                                    p.raw + q * 16, p.ld_raw, run_pending);
    pending_c0 = q * 16;
    pending_width = 32;
  }
  if (q < pairs) {
    pair_tiles<Halves, false, First>(a, p.b + q * pair_bytes, nullptr, blk0, blk1, p.raw + q * 16,
                                     p.ld_raw, run_pending);
    pending_c0 = q * 16;
    pending_width = 16;
  }
  run_pending();
}

// Loads the kernel's tile configuration unless it is the one in force: ldtilecfg waits for the
// tile unit to drain (perf put about a tenth of the kernel's time on it when every call loaded
// and released), sttilecfg and a compare cost a few nanoseconds. The configuration is kept after
// the call: another user of AMX on the thread (another library) finds its own config gone and
// must load it, as AMX code must anyway; this kernel never trusts one it did not check.
KEEL_TARGET_AMX inline void configure_tiles() noexcept {
  static constexpr tile_config kWanted{};
  tile_config current;
  store_tile_config(&current);
  if (std::memcmp(&current, &kWanted, sizeof(tile_config)) != 0) load_tile_config(kWanted);
}

// One call: p.b is prepare_b()'s output for the call's panels.
template <int Halves>
KEEL_TARGET_AMX void gemm_tiles(const ukernel_args& p) noexcept {
  configure_tiles();
  const std::int64_t blocks = (p.kq + kBlockGroups - 1) / kBlockGroups;
  if (blocks <= kChunkBlocks) {
    chunk<Halves, true, true>(p, blocks, 0, blocks);
    return;
  }
  chunk<Halves, true, false>(p, blocks, 0, kChunkBlocks);
  std::int64_t blk0 = kChunkBlocks;
  for (; blocks - blk0 > kChunkBlocks; blk0 += kChunkBlocks) {
    chunk<Halves, false, false>(p, blocks, blk0, blk0 + kChunkBlocks);
  }
  chunk<Halves, false, true>(p, blocks, blk0, blocks);
}

}  // namespace detail

// ---- the tile unit's peak ----------------------------------------------------------------------

// tdpbusd on full tiles, C (16 x 16 int32) += A (16 x 64 u8) . B (16 x 64 s8), `iterations` times
// 4 independent C tiles from 2 A and 2 B tiles loaded once (all 8 tile registers): the peak int8
// rate of one core, for the ceilings of bench/bench_ceiling.cpp and keel-envelope. Returns the ops
// (2 per multiply-add). The caller checks missing_feature() first. (16-column tiles: the kernel
// below reaches this rate only in its tdpbusd; its loads, B preparation and epilogue come on top.)
inline constexpr std::int64_t kPeakOpsPerIteration = 4 * 16 * 16 * 64 * 2;

KEEL_TARGET_AMX inline std::int64_t peak_loop(std::int64_t iterations) noexcept {
  if (iterations <= 0) return 0;
  static constexpr detail::tile_config kConfig{};  // 8 tiles of 16 rows x 64 bytes
  alignas(64) static const std::uint8_t operand[1024] = {1};
  detail::load_tile_config(kConfig);
  _tile_loadd(4, operand, 64);
  _tile_loadd(5, operand, 64);
  _tile_loadd(6, operand, 64);
  _tile_loadd(7, operand, 64);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (std::int64_t i = 0; i < iterations; ++i) {  // the tile intrinsics are volatile asm
    _tile_dpbusd(0, 4, 6);
    _tile_dpbusd(1, 4, 7);
    _tile_dpbusd(2, 5, 6);
    _tile_dpbusd(3, 5, 7);
  }
  _tile_release();
  return iterations * kPeakOpsPerIteration;
}

inline void gemm_dp4(const ukernel_args& p) noexcept {
  KEEL_DASSERT(p.rows >= 1 && p.rows <= kGemmRows, "gemm rows within the tile");
  KEEL_DASSERT(p.panels >= 1 && p.panels <= kPanelsPerCall, "panels within the raw tile");
  if (p.rows <= 16) return detail::gemm_tiles<1>(p);
  detail::gemm_tiles<2>(p);
}

}  // namespace keel::kernels::gemm_i8::amx

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // AVX-512 VNNI kernels built, Linux
