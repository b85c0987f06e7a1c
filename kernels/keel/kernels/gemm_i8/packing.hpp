// keel/kernels/gemm_i8/packing.hpp — packing of A and B for the gemm_i8 microkernels, and the
// exact mapping of every dtype pair onto the u8 x s8 product the microkernels compute.
//
// The mapping (all four dtype pairs onto one kernel, with no loss):
//
//   A s8:  a - za = (a + 128) - (za + 128)      a + 128 = a ^ 0x80 read as u8, in [0, 255]
//   B u8:  b - zb = (b - 128) - (zb - 128)      b - 128 = b ^ 0x80 read as s8, in [-128, 127]
//
// so every kernel sees A' in [0, 255] (u8) and B' in [-128, 127] (s8), with zero points
// za' = za (+128 for s8 A) in [0, 255] and zb' = zb (-128 for u8 B) in [-128, 127]. Then
//
//   sum_k (A'-za')(B'-zb') = sum_k A'B' - zb' * rowsum(A') - za' * colsum(B') + K * za' * zb'
//
// which the epilogue evaluates modulo 2^32 (see variant.hpp: the true value fits int32).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "keel/check.hpp"
#include "keel/kernels/gemm_i8/variant.hpp"
#include "keel/tensor.hpp"

// Forced inline so that an ISA's wrapper (e.g. avx2::pack_a) compiles the A packer for its own
// target (GCC does not inline it into a target-attributed function on its own).
#if defined(__GNUC__)
#define KEEL_PACK_INLINE inline __attribute__((always_inline))
#else
#define KEEL_PACK_INLINE inline
#endif

namespace keel::kernels::gemm_i8 {

constexpr std::int32_t a_offset(dtype a_type) noexcept {
  return a_type == dtype::s8 ? 128 : 0;
}
constexpr std::int32_t b_offset(dtype b_type) noexcept {
  return b_type == dtype::u8 ? -128 : 0;
}

// A' and B' of one element (see the mapping above).
inline std::int32_t load_a_mapped(const void* base, std::int64_t off, dtype t) noexcept {
  const std::uint8_t raw = static_cast<const std::uint8_t*>(base)[off];
  return t == dtype::s8 ? (raw ^ 0x80) : raw;
}
inline std::int8_t load_b_mapped(const void* base, std::int64_t off, dtype t) noexcept {
  const std::uint8_t raw = static_cast<const std::uint8_t*>(base)[off];
  return static_cast<std::int8_t>(t == dtype::u8 ? (raw ^ 0x80) : raw);
}

constexpr std::int64_t k_groups(std::int64_t k, const packing& p) noexcept {
  return (k + p.k_group - 1) / p.k_group;
}
constexpr std::int64_t panel_count(std::int64_t n, const packing& p) noexcept {
  return (n + p.panel_cols - 1) / p.panel_cols;
}
// Bytes of one packed B matrix of K x N.
constexpr std::int64_t packed_b_bytes(std::int64_t k, std::int64_t n, const packing& p) noexcept {
  return panel_count(n, p) * k_groups(k, p) * p.group_bytes();
}

// The facts about packed B that decide whether a `ubs` kernel is exact (docs/cpu-backend.md,
// "the ubs range check"). For every pair (b0, b1) of B' values that vpmaddubsw adds together
// (K positions 2i and 2i+1 of one column), pos = max(b0,0) + max(b1,0) and
// neg = -(min(b0,0) + min(b1,0)); these are the largest of each over the matrix.
struct pair_range {
  std::int32_t max_pos = 0;  // 0..254
  std::int32_t max_neg = 0;  // 0..256
  constexpr void merge(const pair_range& o) noexcept {
    max_pos = std::max(max_pos, o.max_pos);
    max_neg = std::max(max_neg, o.max_neg);
  }
  // True when a0*b0 + a1*b1 fits int16 for every pair and every A' value in [0, a_max]:
  // a0*b0 + a1*b1 <= a_max * max_pos <= 32767 and >= -a_max * max_neg >= -32768.
  constexpr bool ubs_exact(std::int32_t a_max) const noexcept {
    return a_max * max_pos <= 32767 && a_max * max_neg <= 32768;
  }
};

// ---- B ------------------------------------------------------------------------------------

// Packs B' (K x N, any strides, starting at element offset `base`) into panels
// [first_panel, first_panel + panel_n):
//   dst[((panel * kq) + g) * group_bytes + col * k_group + kk] = B'[g*k_group + kk][panel*pc + col]
// (dst and colsum point at the whole packed matrix) with zeros past K and past N.
// colsum[n] = sum_k B'[k][n] for the packed columns (0 for padding). Returns the pair range of
// what it wrote. Reads each K row's panel_cols bytes together, so a row-major B streams.
inline pair_range pack_b(const void* b, dtype b_type, std::int64_t base, std::int64_t k,
                         std::int64_t n, std::int64_t stride_k, std::int64_t stride_n,
                         const packing& p, std::int64_t first_panel, std::int64_t panel_n,
                         std::int8_t* dst, std::int32_t* colsum) noexcept {
  constexpr int kMaxPanelCols = 64;
  const std::int64_t kq = k_groups(k, p);
  const int pc = p.panel_cols;
  const int kg = p.k_group;
  KEEL_DASSERT(pc <= kMaxPanelCols, "panel width within the packer's column buffer");
  pair_range range;
  for (std::int64_t panel = first_panel; panel < first_panel + panel_n; ++panel) {
    std::int8_t* pd = dst + panel * kq * p.group_bytes();
    const std::int64_t col0 = panel * pc;
    const int cols =
        static_cast<int>(std::max<std::int64_t>(0, std::min<std::int64_t>(pc, n - col0)));
    std::int32_t sums[kMaxPanelCols] = {};
    std::memset(pd, 0, static_cast<std::size_t>(kq * p.group_bytes()));
    for (std::int64_t g = 0; g < kq; ++g) {
      std::int8_t* out = pd + g * p.group_bytes();
      const int rows = static_cast<int>(std::min<std::int64_t>(kg, k - g * kg));
      for (int kk = 0; kk < rows; ++kk) {
        const std::int64_t row_off = base + (g * kg + kk) * stride_k + col0 * stride_n;
        for (int c = 0; c < cols; ++c) {
          const std::int8_t v = load_b_mapped(b, row_off + c * stride_n, b_type);
          out[c * kg + kk] = v;
          sums[c] += v;
        }
      }
      // Pairs (0,1), (2,3), ... of each column's k_group: the pairs a pairwise multiply-add
      // sums into one int16 lane.
      for (int c = 0; c < cols; ++c) {
        for (int kk = 0; kk + 1 < kg; kk += 2) {
          const std::int32_t b0 = out[c * kg + kk], b1 = out[c * kg + kk + 1];
          range.max_pos = std::max(range.max_pos, std::max(b0, 0) + std::max(b1, 0));
          range.max_neg = std::max(range.max_neg, -(std::min(b0, 0) + std::min(b1, 0)));
        }
      }
    }
    // |sum| <= 128 * K fits int32 for every K validation accepts.
    for (int c = 0; c < pc; ++c) colsum[col0 + c] = sums[c];
  }
  return range;
}

// ---- A ------------------------------------------------------------------------------------

// Where one matrix of A lives: element (m, k) is at base + m*stride_m + k*stride_k.
struct a_source {
  const void* data = nullptr;
  dtype type = dtype::u8;
  std::int64_t base = 0;
  std::int64_t stride_m = 0;
  std::int64_t stride_k = 0;
};

// Packs `rows` (<= mr) rows of A' starting at row m0 into one A panel of element type T
// (uint8_t or int16_t): dst[(g * mr + r) * k_group + kk] = A'[m0 + r][g*k_group + kk], zero
// past K and for rows >= `rows`. rowsum[r] = sum_k A'[m0 + r][k] for r < rows.
//
// Per row, in chunks: phase 1 maps (s8 -> u8) and widens the chunk into a contiguous buffer and
// sums it, a loop the compiler vectorizes; phase 2 copies whole K groups into the panel. (The
// first version did both per byte and was half the time of a 3136x24x144 GEMM.)
template <class T>
KEEL_PACK_INLINE void pack_a_panel(const a_source& a, std::int64_t m0, int rows, std::int64_t k,
                                   int mr, const packing& p, T* dst,
                                   std::int32_t* rowsum) noexcept {
  constexpr int kChunk = 256;  // elements per pass: a multiple of every k_group (1, 2, 4, 8)
  const std::int64_t kq = k_groups(k, p);
  const int kg = p.k_group;
  std::memset(static_cast<void*>(dst), 0, static_cast<std::size_t>(kq * mr * kg) * sizeof(T));
  const std::uint8_t flip = a.type == dtype::s8 ? 0x80 : 0x00;
  alignas(64) T mapped[kChunk];
  for (int r = 0; r < rows; ++r) {
    const auto* src = static_cast<const std::uint8_t*>(a.data) + a.base + (m0 + r) * a.stride_m;
    std::uint32_t sum = 0;  // <= 255 * K: fits for every K validation accepts
    for (std::int64_t k0 = 0; k0 < k; k0 += kChunk) {
      const int n = static_cast<int>(std::min<std::int64_t>(kChunk, k - k0));
      // Phase 1: map, widen, sum.
      if (a.stride_k == 1) {
        for (int i = 0; i < n; ++i) {
          const std::uint8_t v = static_cast<std::uint8_t>(src[k0 + i] ^ flip);
          mapped[i] = static_cast<T>(v);
          sum += v;
        }
      } else {
        for (int i = 0; i < n; ++i) {
          const std::uint8_t v = static_cast<std::uint8_t>(src[(k0 + i) * a.stride_k] ^ flip);
          mapped[i] = static_cast<T>(v);
          sum += v;
        }
      }
      // Phase 2: K groups into the panel (the last may be partial; the rest of it stays zero).
      const std::int64_t g0 = k0 / kg;
      if (kg == 4) {
        const int full = n / 4;
        T* out = dst + (g0 * mr + r) * 4;
        for (int i = 0; i < full; ++i) std::memcpy(out + i * mr * 4, mapped + 4 * i, 4 * sizeof(T));
        if (n % 4 != 0) {
          std::memcpy(out + full * mr * 4, mapped + 4 * full,
                      static_cast<std::size_t>(n % 4) * sizeof(T));
        }
      } else {
        for (int i = 0; i < n; i += kg) {
          std::memcpy(dst + ((g0 + i / kg) * mr + r) * kg, mapped + i,
                      static_cast<std::size_t>(std::min(kg, n - i)) * sizeof(T));
        }
      }
    }
    rowsum[r] = static_cast<std::int32_t>(sum);
  }
}

// The A packer of a kernel: pack_a_panel for the kernel's A layout, compiled for its ISA.
using pack_a_fn = void (*)(const a_source& a, std::int64_t m0, int rows, std::int64_t k, int mr,
                           const packing& p, void* dst, std::int32_t* rowsum);

template <class T>
void pack_a(const a_source& a, std::int64_t m0, int rows, std::int64_t k, int mr, const packing& p,
            void* dst, std::int32_t* rowsum) noexcept {
  pack_a_panel(a, m0, rows, k, mr, p, static_cast<T*>(dst), rowsum);
}

// Largest A' value over rows [0, m) of one matrix (for the ubs range check).
inline std::int32_t max_a_mapped(const a_source& a, std::int64_t m, std::int64_t k) noexcept {
  std::int32_t best = 0;
  for (std::int64_t r = 0; r < m && best < 255; ++r) {
    const std::int64_t row_base = a.base + r * a.stride_m;
    if (a.stride_k == 1) {
      const auto* src = static_cast<const std::uint8_t*>(a.data) + row_base;
      const std::uint8_t flip = a.type == dtype::s8 ? 0x80 : 0x00;
      std::uint8_t row_max = 0;
      for (std::int64_t kk = 0; kk < k; ++kk) {
        row_max = std::max(row_max, static_cast<std::uint8_t>(src[kk] ^ flip));
      }
      best = std::max<std::int32_t>(best, row_max);
    } else {
      for (std::int64_t kk = 0; kk < k; ++kk) {
        best = std::max(best, load_a_mapped(a.data, row_base + kk * a.stride_k, a.type));
      }
    }
  }
  return best;
}

}  // namespace keel::kernels::gemm_i8
