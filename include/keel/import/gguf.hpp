// keel/import/gguf.hpp — GGUF (ggml) Q4_0 and Q8_0 weight blocks to keel's layouts, and back.
//
// The byte layouts, with their sources, are drawn in docs/formats.md. In short (ggml's
// ggml/src/ggml-common.h, structs block_q4_0 and block_q8_0; ggml/src/ggml-quants.c,
// dequantize_row_q4_0 and dequantize_row_q8_0):
//
//   Q4_0, 18 bytes per 32 weights:  d (binary16) | qs[16]
//         byte j of qs holds element j in its low nibble and element j + 16 in its high nibble;
//         weight = (nibble - 8) * d.
//   Q8_0, 34 bytes per 32 weights:  d (binary16) | qs[32] (int8); weight = qs[j] * d.
//
// A 2-D GGUF weight tensor has ne[0] = K (the reduction, contiguous) and ne[1] = N: N rows of
// K / 32 blocks each, which is keel's [N, K] weight orientation. Multi-byte values are read and
// written little-endian, the GGUF default, whatever the host's byte order.
//
// What each import produces:
//   Q4_0 -> u4 weights [N, K] in keel's nibble order (element k at nibble k), f16 scales
//           [N, K/32]; run matmul_i4 with b_type u4, group_size 32, scale_type f16 and no
//           zero-point view (u4 without one means zero point 8, exactly Q4_0's offset).
//   Q8_0 -> s8 weights [N, K] and f16 scales [N, K/32]. keel's matmul_i8 takes one scale per
//           output column, not per group of 32, so Q8_0 is not a matmul_i8 operand as is:
//           dequantize_gguf_q8_0 turns it into f32 exactly, or a future grouped-int8 op takes it.
// Each export is the exact inverse: import then export gives back the same bytes.
//
// Every function checks its sizes and pointers first and returns a Status naming the function,
// the value and the rule; on failure it writes nothing.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "keel/check.hpp"
#include "keel/dtype.hpp"
#include "keel/import/span_check.hpp"
#include "keel/status.hpp"

namespace keel::import {

inline constexpr std::int64_t kGgufBlockSize = 32;       // weights per Q4_0 / Q8_0 block
inline constexpr std::int64_t kGgufQ4_0BlockBytes = 18;  // f16 d + 16 bytes of nibbles
inline constexpr std::int64_t kGgufQ8_0BlockBytes = 34;  // f16 d + 32 int8

namespace detail {

inline std::uint16_t load_le16(const std::uint8_t* p) noexcept {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline void store_le16(std::uint8_t* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::uint8_t>(v & 0xFF);
  p[1] = static_cast<std::uint8_t>(v >> 8);
}

// The sizes every GGUF block function shares: N >= 1, K >= 1 and a multiple of 32 (GGUF rows are
// whole blocks), and byte counts that fit in int64. Writes the block count per row.
inline Status check_gguf_shape(std::string_view fn, std::int64_t n, std::int64_t k,
                               std::int64_t block_bytes, std::int64_t* blocks_per_row) {
  if (n < 1 || k < 1) {
    return Status::make(status_code::invalid_argument, fn, "N = %lld, K = %lld (each must be >= 1)",
                        static_cast<long long>(n), static_cast<long long>(k));
  }
  if (k % kGgufBlockSize != 0) {
    return Status::make(status_code::invalid_argument, fn,
                        "K = %lld is not a multiple of 32 (GGUF rows are whole 32-weight blocks)",
                        static_cast<long long>(k));
  }
  std::int64_t total = 0;
  if (!checked_mul(n, k, &total) || !checked_mul(n * (k / kGgufBlockSize), block_bytes, &total)) {
    return Status::make(status_code::overflow, fn, "N * K = %lld * %lld overflows int64",
                        static_cast<long long>(n), static_cast<long long>(k));
  }
  *blocks_per_row = k / kGgufBlockSize;
  return Status::Ok();
}

}  // namespace detail

// Bytes of GGUF data for an [N, K] tensor, or -1 when K is not a multiple of 32 or it overflows.
constexpr std::int64_t gguf_q4_0_bytes(std::int64_t n, std::int64_t k) noexcept {
  std::int64_t b = 0;
  if (n < 0 || k < 0 || k % kGgufBlockSize != 0) return -1;
  return checked_mul(n, (k / kGgufBlockSize) * kGgufQ4_0BlockBytes, &b) ? b : -1;
}
constexpr std::int64_t gguf_q8_0_bytes(std::int64_t n, std::int64_t k) noexcept {
  std::int64_t b = 0;
  if (n < 0 || k < 0 || k % kGgufBlockSize != 0) return -1;
  return checked_mul(n, (k / kGgufBlockSize) * kGgufQ8_0BlockBytes, &b) ? b : -1;
}

// ---- Q4_0 ---------------------------------------------------------------------------------

// blocks: N * K/32 Q4_0 blocks (18 bytes each), row by row.
// weights (out): N * K/2 bytes, u4 [N, K] dense, element k of row n at nibble n*K + k.
// scales (out): N * K/32 f16, [N, K/32] dense: the blocks' d, bit for bit.
inline Status import_gguf_q4_0(std::span<const std::uint8_t> blocks, std::int64_t n, std::int64_t k,
                               std::span<std::uint8_t> weights, std::span<f16> scales) {
  constexpr std::string_view fn = "import_gguf_q4_0";
  std::int64_t nb = 0;
  KEEL_RETURN_IF_ERROR(detail::check_gguf_shape(fn, n, k, kGgufQ4_0BlockBytes, &nb));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "blocks", blocks, n * nb * kGgufQ4_0BlockBytes,
                                          "N * K/32 * 18 bytes"));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "weights", weights, n * k / 2, "N * K/2 bytes"));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "scales", scales, n * nb, "N * K/32"));

  for (std::int64_t blk = 0; blk < n * nb; ++blk) {  // rows are whole blocks: one flat walk
    const std::uint8_t* src = blocks.data() + blk * kGgufQ4_0BlockBytes;
    const std::uint8_t* qs = src + 2;
    std::uint8_t* dst = weights.data() + blk * (kGgufBlockSize / 2);
    scales[static_cast<std::size_t>(blk)] = f16{detail::load_le16(src)};
    // keel byte t holds elements 2t (low) and 2t+1 (high). Elements 0..15 are the low nibbles
    // of qs[0..15]; elements 16..31 are their high nibbles.
    for (int t = 0; t < 8; ++t) {
      dst[t] = static_cast<std::uint8_t>((qs[2 * t] & 0x0F) | ((qs[2 * t + 1] & 0x0F) << 4));
      dst[t + 8] = static_cast<std::uint8_t>((qs[2 * t] >> 4) | (qs[2 * t + 1] & 0xF0));
    }
  }
  return Status::Ok();
}

// The inverse of import_gguf_q4_0: keel u4 [N, K] + f16 scales [N, K/32] -> Q4_0 blocks.
inline Status export_gguf_q4_0(std::span<const std::uint8_t> weights, std::span<const f16> scales,
                               std::int64_t n, std::int64_t k, std::span<std::uint8_t> blocks) {
  constexpr std::string_view fn = "export_gguf_q4_0";
  std::int64_t nb = 0;
  KEEL_RETURN_IF_ERROR(detail::check_gguf_shape(fn, n, k, kGgufQ4_0BlockBytes, &nb));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "weights", weights, n * k / 2, "N * K/2 bytes"));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "scales", scales, n * nb, "N * K/32"));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "blocks", blocks, n * nb * kGgufQ4_0BlockBytes,
                                          "N * K/32 * 18 bytes"));

  for (std::int64_t blk = 0; blk < n * nb; ++blk) {
    const std::uint8_t* src = weights.data() + blk * (kGgufBlockSize / 2);
    std::uint8_t* dst = blocks.data() + blk * kGgufQ4_0BlockBytes;
    detail::store_le16(dst, scales[static_cast<std::size_t>(blk)].bits);
    std::uint8_t* qs = dst + 2;
    // qs[j] = element j (low) | element j+16 (high); element e is nibble e&1 of keel byte e/2.
    for (int j = 0; j < 16; ++j) {
      const int lo = (src[j / 2] >> (4 * (j & 1))) & 0x0F;
      const int hi = (src[8 + j / 2] >> (4 * (j & 1))) & 0x0F;
      qs[j] = static_cast<std::uint8_t>(lo | (hi << 4));
    }
  }
  return Status::Ok();
}

// ---- Q8_0 ---------------------------------------------------------------------------------

// blocks: N * K/32 Q8_0 blocks (34 bytes each). weights (out): s8 [N, K]. scales (out): f16
// [N, K/32].
inline Status import_gguf_q8_0(std::span<const std::uint8_t> blocks, std::int64_t n, std::int64_t k,
                               std::span<std::int8_t> weights, std::span<f16> scales) {
  constexpr std::string_view fn = "import_gguf_q8_0";
  std::int64_t nb = 0;
  KEEL_RETURN_IF_ERROR(detail::check_gguf_shape(fn, n, k, kGgufQ8_0BlockBytes, &nb));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "blocks", blocks, n * nb * kGgufQ8_0BlockBytes,
                                          "N * K/32 * 34 bytes"));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "weights", weights, n * k, "N * K"));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "scales", scales, n * nb, "N * K/32"));

  for (std::int64_t blk = 0; blk < n * nb; ++blk) {
    const std::uint8_t* src = blocks.data() + blk * kGgufQ8_0BlockBytes;
    scales[static_cast<std::size_t>(blk)] = f16{detail::load_le16(src)};
    for (std::int64_t j = 0; j < kGgufBlockSize; ++j) {
      // The byte is the two's-complement int8 (ggml's int8_t qs[32]).
      weights[static_cast<std::size_t>(blk * kGgufBlockSize + j)] =
          static_cast<std::int8_t>(src[2 + j]);
    }
  }
  return Status::Ok();
}

// The inverse of import_gguf_q8_0.
inline Status export_gguf_q8_0(std::span<const std::int8_t> weights, std::span<const f16> scales,
                               std::int64_t n, std::int64_t k, std::span<std::uint8_t> blocks) {
  constexpr std::string_view fn = "export_gguf_q8_0";
  std::int64_t nb = 0;
  KEEL_RETURN_IF_ERROR(detail::check_gguf_shape(fn, n, k, kGgufQ8_0BlockBytes, &nb));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "weights", weights, n * k, "N * K"));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "scales", scales, n * nb, "N * K/32"));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "blocks", blocks, n * nb * kGgufQ8_0BlockBytes,
                                          "N * K/32 * 34 bytes"));

  for (std::int64_t blk = 0; blk < n * nb; ++blk) {
    std::uint8_t* dst = blocks.data() + blk * kGgufQ8_0BlockBytes;
    detail::store_le16(dst, scales[static_cast<std::size_t>(blk)].bits);
    for (std::int64_t j = 0; j < kGgufBlockSize; ++j) {
      dst[2 + j] =
          static_cast<std::uint8_t>(weights[static_cast<std::size_t>(blk * kGgufBlockSize + j)]);
    }
  }
  return Status::Ok();
}

// Imported Q8_0 (s8 [N, K] + f16 scales [N, K/32]) to f32 [N, K]: out = f16_to_f32(d) * q. Exact:
// d has an 11-bit significand and q at most 8 bits, so every product fits in f32's 24 bits
// (subnormal d included: 2^-24 * q is still a normal f32).
inline Status dequantize_gguf_q8_0(std::span<const std::int8_t> weights,
                                   std::span<const f16> scales, std::int64_t n, std::int64_t k,
                                   std::span<float> out) {
  constexpr std::string_view fn = "dequantize_gguf_q8_0";
  std::int64_t nb = 0;
  KEEL_RETURN_IF_ERROR(detail::check_gguf_shape(fn, n, k, kGgufQ8_0BlockBytes, &nb));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "weights", weights, n * k, "N * K"));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "scales", scales, n * nb, "N * K/32"));
  KEEL_RETURN_IF_ERROR(detail::check_span(fn, "out", out, n * k, "N * K"));
  for (std::int64_t i = 0; i < n * k; ++i) {
    const float d = f16_to_f32(scales[static_cast<std::size_t>(i / kGgufBlockSize)]);
    out[static_cast<std::size_t>(i)] = d * static_cast<float>(weights[static_cast<std::size_t>(i)]);
  }
  return Status::Ok();
}

}  // namespace keel::import
