// keel/import/matmul_nbits.hpp — ONNX Runtime's com.microsoft MatMulNBits weights (bits = 4) to
// keel's int4 layout, and back.
//
// The layout, from ONNX Runtime's docs/ContribOperators.md, section com.microsoft.MatMulNBits
// (drawn and cited in docs/formats.md):
//
//   attributes  K, N, bits (4 here), block_size: a power of two >= 16.
//   B           uint8 [N][k_blocks][blob_size], k_blocks = ceil(K / block_size),
//               blob_size = block_size * bits / 8 = block_size / 2. Within a block the first
//               weight is in the low 4 bits of byte 0, the second in its high 4 bits, and so on.
//               A K that block_size does not divide leaves padding nibbles in the last block.
//   scales      [N, k_blocks] (older revisions of the document: [N * k_blocks]; same bytes),
//               the type of A: f32 or f16 here (bf16 is not supported by keel).
//   zero_points optional; the packed uint8 form, [N, ceil(k_blocks * 4 / 8)]: per row n, block
//               b's zero point in byte b / 2, low nibble for even b. Absent means 2^(bits-1) = 8.
//               (The unpacked float form of zero_points is not supported: keel's zero points are
//               integers.)
//   value       (q - zero_point) * scale, per block.
//
// keel's side is matmul_i4's operands: u4 weights [N, K] with K dense (rows of ceil(K/2) bytes),
// scales [N, k_blocks] of the same type, and, when the source has zero points, u8 zero points
// [N, k_blocks] (0..15). Run matmul_i4 with b_type u4, group_size matmul_nbits_group_size(attrs),
// and a zero-point view exactly when zero points were imported. Because block_size is even, weight
// k of row n sits in byte k/2 of the row on both sides, low nibble for even k: the weight bytes
// move as they are, only the row stride and the padding differ.
//
// Padding (nibbles past K in B's last block, the high nibble of a zero-point row with an odd
// k_blocks, and, for an odd K, the high nibble of a keel weight row's last byte) is ignored on
// import and written as 0 on export. Import then export gives back the same bytes whenever the
// source's padding was 0.
//
// Every function checks its sizes and pointers first and returns a Status naming the function,
// the value and the rule; on failure it writes nothing.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <type_traits>

#include "keel/check.hpp"
#include "keel/dtype.hpp"
#include "keel/import/span_check.hpp"
#include "keel/status.hpp"

namespace keel::import {

// The node attributes that fix the layout (ONNX names: N, K, bits, block_size).
struct matmul_nbits_attrs {
  std::int64_t n = 0;
  std::int64_t k = 0;
  std::int64_t bits = 4;  // only 4 is supported
  std::int64_t block_size = 0;

  constexpr std::int64_t k_blocks() const noexcept {
    return block_size > 0 ? k / block_size + (k % block_size != 0) : 0;  // no k + bs overflow
  }
  constexpr std::int64_t blob_size() const noexcept { return block_size / 2; }
  constexpr std::int64_t zero_point_row_bytes() const noexcept {
    return k_blocks() / 2 + (k_blocks() & 1);
  }
  // Bytes of B, scales (entries) and packed zero points for the whole tensor.
  constexpr std::int64_t b_bytes() const noexcept { return n * k_blocks() * blob_size(); }
  constexpr std::int64_t scale_count() const noexcept { return n * k_blocks(); }
  constexpr std::int64_t zero_point_bytes() const noexcept { return n * zero_point_row_bytes(); }
  // keel's side: u4 weight bytes (rows of ceil(K/2) bytes).
  constexpr std::int64_t keel_row_bytes() const noexcept { return k / 2 + (k & 1); }
  constexpr std::int64_t keel_weight_bytes() const noexcept { return n * keel_row_bytes(); }
};

// The matmul_i4 group size that reproduces the blocks: block_size, or K when one block covers
// all of K (matmul_i4 accepts a power of two in [16, 256], or K).
constexpr std::int64_t matmul_nbits_group_size(const matmul_nbits_attrs& a) noexcept {
  return a.block_size >= a.k ? a.k : a.block_size;
}

namespace detail {

inline Status check_nbits_attrs(std::string_view fn, const matmul_nbits_attrs& a) {
  if (a.bits != 4) {
    return Status::make(status_code::unsupported, fn, "bits = %lld (keel imports bits = 4 only)",
                        static_cast<long long>(a.bits));
  }
  if (a.n < 1 || a.k < 1) {
    return Status::make(status_code::invalid_argument, fn, "N = %lld, K = %lld (each must be >= 1)",
                        static_cast<long long>(a.n), static_cast<long long>(a.k));
  }
  if (a.block_size < 16 || (a.block_size & (a.block_size - 1)) != 0) {
    return Status::make(status_code::invalid_argument, fn,
                        "block_size = %lld (must be a power of two >= 16)",
                        static_cast<long long>(a.block_size));
  }
  // N * k_blocks * block_size bounds every byte and element count used below.
  std::int64_t t = 0;
  if (!checked_mul(a.n, a.k_blocks(), &t) || !checked_mul(t, a.block_size, &t)) {
    return Status::make(status_code::overflow, fn,
                        "N * k_blocks * block_size = %lld * %lld * %lld overflows int64",
                        static_cast<long long>(a.n), static_cast<long long>(a.k_blocks()),
                        static_cast<long long>(a.block_size));
  }
  return Status::Ok();
}

// Zero points: absent (empty) on both sides, or present on both sides.
template <class A, class B>
Status check_zero_point_pair(std::string_view fn, std::span<A> in, const char* in_name,
                             std::int64_t in_want, const char* in_rule, std::span<B> out,
                             const char* out_name, std::int64_t out_want, const char* out_rule) {
  if (in.empty() && out.empty()) return Status::Ok();
  if (in.empty() != out.empty()) {
    return Status::make(status_code::invalid_argument, fn,
                        "%s has %zu entries and %s has %zu (zero points are absent on both sides "
                        "or present on both)",
                        in_name, in.size(), out_name, out.size());
  }
  KEEL_RETURN_IF_ERROR(check_span(fn, in_name, in, in_want, in_rule));
  return check_span(fn, out_name, out, out_want, out_rule);
}

template <class S>
Status import_nbits(const matmul_nbits_attrs& a, std::span<const std::uint8_t> b,
                    std::span<const S> scales, std::span<const std::uint8_t> zero_points,
                    std::span<std::uint8_t> weights, std::span<S> keel_scales,
                    std::span<std::uint8_t> keel_zero_points) {
  constexpr std::string_view fn = "import_matmul_nbits";
  KEEL_RETURN_IF_ERROR(check_nbits_attrs(fn, a));
  KEEL_RETURN_IF_ERROR(check_span(fn, "B", b, a.b_bytes(), "N * k_blocks * block_size/2"));
  KEEL_RETURN_IF_ERROR(check_span(fn, "scales", scales, a.scale_count(), "N * k_blocks"));
  KEEL_RETURN_IF_ERROR(
      check_span(fn, "weights", weights, a.keel_weight_bytes(), "N * ceil(K/2) bytes"));
  KEEL_RETURN_IF_ERROR(
      check_span(fn, "keel scales", keel_scales, a.scale_count(), "N * k_blocks"));
  KEEL_RETURN_IF_ERROR(check_zero_point_pair(fn, zero_points, "zero_points", a.zero_point_bytes(),
                                             "N * ceil(k_blocks/2) bytes", keel_zero_points,
                                             "keel zero points", a.scale_count(), "N * k_blocks"));

  const std::int64_t row_in = a.k_blocks() * a.blob_size();
  const std::int64_t row_out = a.keel_row_bytes();
  for (std::int64_t n = 0; n < a.n; ++n) {
    // ---- weights: the same bytes (see the header comment), minus the padding --------------
    const std::uint8_t* src = b.data() + n * row_in;
    std::uint8_t* dst = weights.data() + n * row_out;
    for (std::int64_t i = 0; i < row_out; ++i) dst[i] = src[i];
    if (a.k & 1) dst[row_out - 1] &= 0x0F;  // nibble K is padding: 0 on keel's side

    // ---- zero points: unpack one nibble per block --------------------------------------------
    if (!zero_points.empty()) {
      const std::uint8_t* zsrc = zero_points.data() + n * a.zero_point_row_bytes();
      for (std::int64_t g = 0; g < a.k_blocks(); ++g) {
        keel_zero_points[static_cast<std::size_t>(n * a.k_blocks() + g)] =
            static_cast<std::uint8_t>((zsrc[g / 2] >> (4 * (g & 1))) & 0x0F);
      }
    }
  }
  // ---- scales: the same entries, bit for bit ----------------------------------------------------
  for (std::size_t i = 0; i < scales.size(); ++i) keel_scales[i] = scales[i];
  return Status::Ok();
}

template <class S>
Status export_nbits(const matmul_nbits_attrs& a, std::span<const std::uint8_t> weights,
                    std::span<const S> keel_scales, std::span<const std::uint8_t> keel_zero_points,
                    std::span<std::uint8_t> b, std::span<S> scales,
                    std::span<std::uint8_t> zero_points) {
  constexpr std::string_view fn = "export_matmul_nbits";
  KEEL_RETURN_IF_ERROR(check_nbits_attrs(fn, a));
  KEEL_RETURN_IF_ERROR(
      check_span(fn, "weights", weights, a.keel_weight_bytes(), "N * ceil(K/2) bytes"));
  KEEL_RETURN_IF_ERROR(
      check_span(fn, "keel scales", keel_scales, a.scale_count(), "N * k_blocks"));
  KEEL_RETURN_IF_ERROR(check_span(fn, "B", b, a.b_bytes(), "N * k_blocks * block_size/2"));
  KEEL_RETURN_IF_ERROR(check_span(fn, "scales", scales, a.scale_count(), "N * k_blocks"));
  KEEL_RETURN_IF_ERROR(check_zero_point_pair(
      fn, keel_zero_points, "keel zero points", a.scale_count(), "N * k_blocks", zero_points,
      "zero_points", a.zero_point_bytes(), "N * ceil(k_blocks/2) bytes"));
  for (std::size_t i = 0; i < keel_zero_points.size(); ++i) {
    if (keel_zero_points[i] > 15) {
      return Status::make(status_code::invalid_argument, fn,
                          "keel zero point %zu = %u (must be a u4 value, 0..15)", i,
                          static_cast<unsigned>(keel_zero_points[i]));
    }
  }

  const std::int64_t row_out = a.k_blocks() * a.blob_size();
  const std::int64_t row_in = a.keel_row_bytes();
  for (std::int64_t n = 0; n < a.n; ++n) {
    // ---- weights: the same bytes, padding written as 0 ---------------------------------------
    const std::uint8_t* src = weights.data() + n * row_in;
    std::uint8_t* dst = b.data() + n * row_out;
    for (std::int64_t i = 0; i < row_in; ++i) dst[i] = src[i];
    if (a.k & 1) dst[row_in - 1] &= 0x0F;
    for (std::int64_t i = row_in; i < row_out; ++i) dst[i] = 0;

    // ---- zero points: two blocks a byte, low nibble first, a lone last block's partner 0 --------
    if (!keel_zero_points.empty()) {
      std::uint8_t* zdst = zero_points.data() + n * a.zero_point_row_bytes();
      for (std::int64_t i = 0; i < a.zero_point_row_bytes(); ++i) zdst[i] = 0;
      for (std::int64_t g = 0; g < a.k_blocks(); ++g) {
        const auto z = keel_zero_points[static_cast<std::size_t>(n * a.k_blocks() + g)];
        zdst[g / 2] = static_cast<std::uint8_t>(zdst[g / 2] | (z << (4 * (g & 1))));
      }
    }
  }
  for (std::size_t i = 0; i < scales.size(); ++i) scales[i] = keel_scales[i];
  return Status::Ok();
}

}  // namespace detail

// MatMulNBits (bits = 4) -> keel. zero_points empty means absent in the model; keel_zero_points
// must then be empty too (matmul_i4 runs without a zero-point view: 8, the same default).
inline Status import_matmul_nbits(const matmul_nbits_attrs& attrs, std::span<const std::uint8_t> b,
                                  std::span<const float> scales,
                                  std::span<const std::uint8_t> zero_points,
                                  std::span<std::uint8_t> weights, std::span<float> keel_scales,
                                  std::span<std::uint8_t> keel_zero_points) {
  return detail::import_nbits<float>(attrs, b, scales, zero_points, weights, keel_scales,
                                     keel_zero_points);
}
inline Status import_matmul_nbits(const matmul_nbits_attrs& attrs, std::span<const std::uint8_t> b,
                                  std::span<const f16> scales,
                                  std::span<const std::uint8_t> zero_points,
                                  std::span<std::uint8_t> weights, std::span<f16> keel_scales,
                                  std::span<std::uint8_t> keel_zero_points) {
  return detail::import_nbits<f16>(attrs, b, scales, zero_points, weights, keel_scales,
                                   keel_zero_points);
}

// keel -> MatMulNBits (bits = 4), the inverse of import_matmul_nbits.
inline Status export_matmul_nbits(const matmul_nbits_attrs& attrs,
                                  std::span<const std::uint8_t> weights,
                                  std::span<const float> keel_scales,
                                  std::span<const std::uint8_t> keel_zero_points,
                                  std::span<std::uint8_t> b, std::span<float> scales,
                                  std::span<std::uint8_t> zero_points) {
  return detail::export_nbits<float>(attrs, weights, keel_scales, keel_zero_points, b, scales,
                                     zero_points);
}
inline Status export_matmul_nbits(const matmul_nbits_attrs& attrs,
                                  std::span<const std::uint8_t> weights,
                                  std::span<const f16> keel_scales,
                                  std::span<const std::uint8_t> keel_zero_points,
                                  std::span<std::uint8_t> b, std::span<f16> scales,
                                  std::span<std::uint8_t> zero_points) {
  return detail::export_nbits<f16>(attrs, weights, keel_scales, keel_zero_points, b, scales,
                                   zero_points);
}

}  // namespace keel::import
