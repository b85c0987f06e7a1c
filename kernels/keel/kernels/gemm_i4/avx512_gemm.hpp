// keel/kernels/gemm_i4/avx512_gemm.hpp — the AVX-512 VNNI int4 GEMM kernel for dynamic_s8
// activations (M > 4: prefill), gemm 60x64 dp4. Layout p8k8 (variant.hpp), unchanged: the packed
// weights of every other kernel. Compiled with function-level target attributes (AVX512F/BW/VL/
// VNNI); the registry runs it only where avx512::missing_feature() finds nothing missing.
//
// Why not the GEMV's loop: gemv_s8_dp4 splits the nibbles of every 64-byte load for each of its
// (at most 4) rows, and spreads each row's activations with vpermd. At M = 512 both costs are
// per row; here the split is paid once per call of 60 rows, and the activations need no spread:
//
//   1. unpack  per K chunk (kChunkUnits units: 256 K values), the call's 8 panels (64 columns)
//              are split into u8 values 0..15 in an L1 buffer laid out for vpdpbusd with a
//              broadcast activation: one 64-byte vector per K step (4 K values) and 16 columns,
//              dword c = column c's 4 values (lanes 0-7 panel 2b, lanes 8-15 panel 2b + 1). One
//              p8k8 unit gives two steps: `& 0x0F` is K values 0..3, `>> 4 & 0x0F` 4..7. The
//              scales (and zero points as int32) of each group go beside it in the same order.
//   2. tiles   6 rows x 64 columns (24 int32 accumulators): per K step, 4 weight loads and, per
//              row, the row's 4 s8 values broadcast (a load, no ALU uop) into 4 vpdpbusd. u
//              (0..15) is vpdpbusd's unsigned operand and q (-127..127) its signed one; the 4
//              products and their sum enter the int32 lane with no saturation (Intel SDM,
//              VPDPBUSD), so each lane is exact modulo 2^32.
//   3. groups  the accumulators start at -z * sum q (per row and group: -8 * qsum, prepared per
//              chunk, one broadcast load; with zero points, z * -qsum per column, a vpmulld), so
//              the lane ends at isum = sum q * (u - z), which validate() keeps inside int32:
//              exact, whatever wrapped on the way. Then the reference's f32 steps in its order,
//              each rounded: c = a_scale * s, t = float(isum) * c, acc += t (add_rounded_product:
//              never fused), acc in the call's out tile (L1), one output column per lane.
//
// Cost per group, per row and 16 columns: 2 * units vpdpbusd, and the epilogue's 4 vector uops
// (convert, 2 multiplies, add), all on the two 512-bit ports. At G = 32 (4 units) that is 8
// vpdpbusd to 4 epilogue uops: the epilogue alone caps the kernel at 2/3 of the int8 VNNI MAC
// ceiling. Measured (docs/cpu-backend.md), it reaches about 35% of that ceiling at M = 512,
// N = K = 4096, G = 32, and 46% at G = 128: fitting both, the main loop runs at about half of the
// vpdpbusd peak and a group end costs about 3.6 cycles per row and 16 columns. Why the main loop
// loses half was not pinned down (no PMU counters under KVM; with A's rows read from L1 instead
// of L2 it ran 15% faster, so part is A's latency). Kept: a prefetch of A's rows (1-3%), the
// quantized rows padded off a 512-byte multiple (driver.hpp: rows 4096 bytes apart share L1 sets).
// Tile shapes 8x32, 6x64 and 4x64 measured within 3%; 12x32 spilled (40% slower). Dropped (no gain
// or slower; the list is in docs/cpu-backend.md): copying A's rows into L1 per chunk, longer
// chunks, deferring a group's epilogue past the next piece, an embedded-broadcast vpdpbusd. A group
// longer than a chunk (G = K > 256) keeps its int32 sums in a buffer between chunks. Stack: about
// 45 KiB (the chunk) besides the driver's 15 KiB tile.
#pragma once

#include "keel/kernels/gemm_i4/avx512_gemv.hpp"
#include "keel/kernels/gemm_i4/variant.hpp"

#if defined(KEEL_GEMM_I4_HAVE_AVX512)

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace keel::kernels::gemm_i4::avx512 {

inline constexpr int kGemmRows = 60;   // rows per call: 10 register tiles share each chunk
inline constexpr int kGemmPanels = 8;  // panels per call: 64 columns, four 16-column blocks

namespace gemm_detail {

inline constexpr int kBlocks = kGemmPanels / 2;  // 16-column blocks (one zmm of int32 each)
inline constexpr int kTileRows = 6;              // rows of one register tile: 24 accumulators
// K units per chunk: 64 K steps x 4 blocks x 64 bytes = 16 KiB of unpacked weights, in L1 with
// the tile's rows of activations and its part of the out tile.
inline constexpr int kChunkUnits = 32;
// Groups of a chunk: whole groups of at least 2 units (G >= 16), or one piece of one group.
inline constexpr int kMaxPieces = kChunkUnits / 2;
inline constexpr int kStepBytes = kBlocks * 64;  // one K step of the call's 64 columns
static_assert(kGemmRows % kTileRows == 0, "whole tiles in a full call");
inline constexpr int kPrefetchA = 128;  // bytes ahead in each row of A

// A piece of a chunk: units [ua, ub) of group g.
struct piece {
  std::int64_t g = 0;
  std::int64_t ua = 0, ub = 0;
  std::int64_t units = 0;    // the group's units
  std::int64_t rec_off = 0;  // the group's record offset in a panel
  std::int64_t k0 = 0;       // the group's first padded K position
  int step0 = 0;             // the piece's first K step in the chunk buffer
};

struct chunk {
  alignas(64) std::uint8_t w[2 * kChunkUnits * kStepBytes];  // [step][block][64]
  alignas(64) float s[kMaxPieces][kBlocks][16];              // scales, in the vectors' order
  alignas(64) std::int32_t z[kMaxPieces][kBlocks][16];       // zero points (ZP)
  alignas(64) std::int32_t start[kGemmRows][kMaxPieces];     // -8 * qsum, or -qsum (ZP)
  alignas(64) std::int32_t open[kGemmRows][kBlocks * 16];    // sums of a group left open
  piece pieces[kMaxPieces];
  int count = 0;
};

// Phase 1: the chunk's weights, scales and zero points; the rows' start values.
template <bool ZP>
KEEL_I4_AVX512_TARGET inline void unpack(const kernel_args& p, chunk& c) noexcept {
  const __m512i nibble = _mm512_set1_epi8(0x0F);
  const int blocks = (p.panels + 1) / 2;
  for (int i = 0; i < c.count; ++i) {
    const piece& pc = c.pieces[i];
    for (int b = 0; b < blocks; ++b) {
      const std::uint8_t* w0 = p.w + 2 * b * p.panel_stride + pc.rec_off;
      const bool pair = 2 * b + 1 < p.panels;
      const std::uint8_t* w1 = pair ? w0 + p.panel_stride : w0;  // read only when pair
      for (std::int64_t u = pc.ua; u < pc.ub; ++u) {
        const __m256i lo =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0 + u * kUnitBytes));
        const __m256i hi =
            pair ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w1 + u * kUnitBytes))
                 : _mm256_setzero_si256();
        const __m512i v = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        std::uint8_t* dst = c.w + (pc.step0 + 2 * (u - pc.ua)) * kStepBytes + b * 64;
        _mm512_store_si512(dst, _mm512_and_si512(v, nibble));
        _mm512_store_si512(dst + kStepBytes, _mm512_and_si512(_mm512_srli_epi32(v, 4), nibble));
      }
      // The group's tail: its zero points start its first piece, its scales end its last.
      const std::uint8_t* t0 = w0 + pc.units * kUnitBytes;
      const std::uint8_t* t1 = w1 + pc.units * kUnitBytes;
      const __m256 s1 =
          pair ? _mm256_loadu_ps(reinterpret_cast<const float*>(t1)) : _mm256_setzero_ps();
      _mm512_store_ps(c.s[i][b], _mm512_castpd_ps(_mm512_insertf64x4(
                                     _mm512_castpd256_pd512(_mm256_castps_pd(
                                         _mm256_loadu_ps(reinterpret_cast<const float*>(t0)))),
                                     _mm256_castps_pd(s1), 1)));
      if constexpr (ZP) {
        std::uint64_t z0, z1 = 0x0808080808080808u;  // a missing panel: any z (its scale is 0)
        std::memcpy(&z0, t0 + kScaleBytes, sizeof(z0));
        if (pair) std::memcpy(&z1, t1 + kScaleBytes, sizeof(z1));
        _mm512_store_si512(c.z[i][b], _mm512_cvtepu8_epi32(_mm_set_epi64x(
                                          static_cast<long long>(z1), static_cast<long long>(z0))));
      }
    }
  }
  // The start values, per row: -8 * qsum (or -qsum with zero points) of the chunk's groups,
  // consecutive (a piece of a longer group is alone in its chunk), 16 at a time.
  const std::int64_t g0 = c.pieces[0].g;
  const __mmask16 m0 = c.count >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << c.count) - 1);
  const __mmask16 m1 = c.count > 16 ? __mmask16((1u << (c.count - 16)) - 1) : __mmask16(0);
  for (int r = 0; r < p.rows; ++r) {
    const std::int32_t* qs = p.qsum + r * p.ld_qsum + g0;
    for (int h = 0; h < 2; ++h) {
      const __mmask16 m = h == 0 ? m0 : m1;
      if (m == 0) break;
      __m512i v = _mm512_maskz_loadu_epi32(m, qs + 16 * h);
      if constexpr (!ZP) v = _mm512_slli_epi32(v, 3);
      _mm512_store_si512(c.start[r] + 16 * h, _mm512_sub_epi32(_mm512_setzero_si512(), v));
    }
  }
}
static_assert(kDefaultZeroPoint == 8, "unpack multiplies by the default zero point with a shift");
static_assert(kMaxPieces <= 32, "unpack prepares the start values 16 at a time, twice");
// ... with aligned 64-byte stores into each row of chunk::start (a kChunkUnits of 16 made its rows
// 32 bytes and the stores fault).
static_assert(kMaxPieces % 16 == 0, "chunk::start rows are whole 64-byte vectors");

// The call's rows as a tile reads them (locals: the compiler cannot keep kernel_args' fields in
// registers across the tile's stores).
struct tile_rows_view {
  const std::int8_t* q = nullptr;  // row 0 of the tile
  std::int64_t lda = 0;
  const float* a_scale = nullptr;
  float* out = nullptr;
  std::int64_t ld_out = 0;
  int r0 = 0;  // the tile's first row in the call
};

// Phase 2 and 3: Rows rows x Blocks blocks over the chunk.
template <int Rows, int Blocks, bool ZP>
KEEL_I4_AVX512_TARGET inline void tile(const tile_rows_view t, chunk& c,
                                       const __mmask16 last_mask) noexcept {
  const int count = c.count;
  // The rows' addresses as integers: the prefetches may point past the end of A (harmless: a
  // prefetch never faults), which pointer arithmetic may not.
  std::uintptr_t row_base[Rows];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) row_base[r] = reinterpret_cast<std::uintptr_t>(t.q + r * t.lda);
  for (int i = 0; i < count; ++i) {
    const piece pc = c.pieces[i];
    // Setup: a group's start value, or the sums it left open in the last chunk.
    __m512i acc[Rows][Blocks];
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
      for (int b = 0; b < Blocks; ++b) {
        if (pc.ua != 0) {
          acc[r][b] = _mm512_load_si512(c.open[t.r0 + r] + 16 * b);
        } else if constexpr (ZP) {
          acc[r][b] = _mm512_mullo_epi32(_mm512_load_si512(c.z[i][b]),
                                         _mm512_set1_epi32(c.start[t.r0 + r][i]));
        } else {
          acc[r][b] = _mm512_set1_epi32(c.start[t.r0 + r][i]);
        }
      }
    }

    // Main loop: one unit (2 K steps of 4 K values) of every block per iteration.
    const std::uint8_t* wk = c.w + pc.step0 * kStepBytes;
    const std::int8_t* qk = t.q + pc.k0 + pc.ua * kUnitK;
    const std::int64_t units = pc.ub - pc.ua;
    const std::int64_t kunit0 = pc.k0 / kUnitK + pc.ua;
    for (std::int64_t u = 0; u < units; ++u) {
      // A's rows stream from L2, 8 bytes per row per unit: one prefetch per unit, the rows in
      // turn, a line each (per row, a line per 8 units) two lines ahead.
      {
        const std::int64_t ku = kunit0 + u;
        _mm_prefetch(
            reinterpret_cast<const char*>(row_base[ku % Rows] +
                                          static_cast<std::uintptr_t>(ku * kUnitK + kPrefetchA)),
            _MM_HINT_T0);
      }
#pragma GCC unroll 2
      for (int h = 0; h < 2; ++h) {
        __m512i wv[Blocks];
#pragma GCC unroll 4
        for (int b = 0; b < Blocks; ++b) {
          wv[b] = _mm512_load_si512(wk + (2 * u + h) * kStepBytes + b * 64);
        }
#pragma GCC unroll 8
        for (int r = 0; r < Rows; ++r) {
          std::int32_t a4;
          std::memcpy(&a4, qk + r * t.lda + u * kUnitK + 4 * h, sizeof(a4));
          const __m512i ab = _mm512_set1_epi32(a4);
#pragma GCC unroll 4
          for (int b = 0; b < Blocks; ++b) acc[r][b] = _mm512_dpbusd_epi32(acc[r][b], wv[b], ab);
        }
      }
    }

    // Group end: the reference's f32 steps into the out tile; else keep the sums open.
    if (pc.ub == pc.units) {
#pragma GCC unroll 4
      for (int b = 0; b < Blocks; ++b) {
        const __m512 s = _mm512_load_ps(c.s[i][b]);
        const __mmask16 m = b + 1 == Blocks ? last_mask : __mmask16(0xFFFF);
#pragma GCC unroll 8
        for (int r = 0; r < Rows; ++r) {
          float* o = t.out + r * t.ld_out + 16 * b;
          const __m512 cs = _mm512_mul_ps(_mm512_set1_ps(t.a_scale[r]), s);  // a product only
          const __m512 sum = detail::add_rounded_product(_mm512_maskz_loadu_ps(m, o),
                                                         _mm512_cvtepi32_ps(acc[r][b]), cs);
          _mm512_mask_storeu_ps(o, m, sum);
        }
      }
    } else {
#pragma GCC unroll 8
      for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
        for (int b = 0; b < Blocks; ++b) _mm512_store_si512(c.open[t.r0 + r] + 16 * b, acc[r][b]);
      }
    }
  }
}

template <int Blocks, bool ZP, int Rows = 1>
KEEL_I4_AVX512_TARGET inline void tile_rows(const tile_rows_view t, chunk& c, int rows,
                                            __mmask16 last_mask) noexcept {
  if constexpr (Rows <= kTileRows) {
    if (rows == Rows) return tile<Rows, Blocks, ZP>(t, c, last_mask);
    return tile_rows<Blocks, ZP, Rows + 1>(t, c, rows, last_mask);
  }
}

template <bool ZP, int Blocks = kBlocks>
KEEL_I4_AVX512_TARGET inline void block_dispatch(const tile_rows_view t, chunk& c, int rows,
                                                 int blocks, __mmask16 last_mask) noexcept {
  if constexpr (Blocks >= 1) {
    if (blocks == Blocks) return tile_rows<Blocks, ZP>(t, c, rows, last_mask);
    return block_dispatch<ZP, Blocks - 1>(t, c, rows, blocks, last_mask);
  }
}

template <bool ZP>
KEEL_I4_AVX512_TARGET inline void gemm_s8(const kernel_args& p) noexcept {
  const packed_geometry& geo = *p.geo;
  alignas(64) chunk c;
  const int blocks = (p.panels + 1) / 2;
  const __mmask16 last_mask = (p.panels & 1) != 0 ? __mmask16(0x00FF) : __mmask16(0xFFFF);
  for (int r = 0; r < p.rows; ++r) {
    std::fill(p.out + r * p.ld_out, p.out + r * p.ld_out + p.panels * kPanelCols, 0.0f);
  }

  // Chunks: as many whole groups as fit kChunkUnits units, or a group kChunkUnits units at a time.
  std::int64_t g = 0, ua = 0, rec_off = 0, k0 = 0;
  while (g < geo.groups) {
    c.count = 0;
    std::int64_t n = 0;
    while (g < geo.groups && c.count < kMaxPieces) {
      const std::int64_t units = geo.units_of(g);
      // A whole group if it fits; a piece of a longer one only alone in its chunk.
      std::int64_t take = units - ua;
      if (take > kChunkUnits - n) {
        if (n > 0) break;
        take = kChunkUnits;
      }
      piece& pc = c.pieces[c.count++];
      pc.g = g;
      pc.ua = ua;
      pc.ub = ua + take;
      pc.units = units;
      pc.rec_off = rec_off;
      pc.k0 = k0;
      pc.step0 = static_cast<int>(2 * n);
      n += take;
      ua += take;
      if (ua == units) {
        rec_off += geo.record_bytes_for(units);
        k0 += units * kUnitK;
        ++g;
        ua = 0;
      }
    }
    unpack<ZP>(p, c);
    for (int r0 = 0; r0 < p.rows; r0 += kTileRows) {
      const int rows = std::min(kTileRows, p.rows - r0);
      tile_rows_view t;
      t.q = static_cast<const std::int8_t*>(p.a) + r0 * p.lda;
      t.lda = p.lda;
      t.a_scale = p.a_scale + r0;
      t.out = p.out + r0 * p.ld_out;
      t.ld_out = p.ld_out;
      t.r0 = r0;
      block_dispatch<ZP>(t, c, rows, blocks, last_mask);
    }
  }
}

}  // namespace gemm_detail

// gemm, dynamic_s8: up to 60 rows by up to 8 panels, the weights unpacked once per call.
inline void gemm_s8_dp4(const kernel_args& p) noexcept {
  if (p.geo->has_zero_points) return gemm_detail::gemm_s8<true>(p);
  return gemm_detail::gemm_s8<false>(p);
}

}  // namespace keel::kernels::gemm_i4::avx512

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#endif  // KEEL_GEMM_I4_HAVE_AVX512
