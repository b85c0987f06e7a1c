// keel/kernels/reference/matmul_i8.hpp — the oracle for int8 matmul (gemm_*8*8_* variants).
//
// Plain scalar C++: every other implementation must produce the same bits on s32/s8/u8 outputs
// and the same bits on f32 outputs too (one float multiply of an exact int32). See
// docs/semantics.md, "matmul_i8".
#pragma once

#include <cstdint>

#include "keel/ops.hpp"

namespace keel::reference {

namespace detail {
// Reads an 8-bit element (s8 or u8) widened to int32.
inline std::int32_t load_8bit(const void* base, std::int64_t offset, dtype t) noexcept {
  return t == dtype::s8 ? static_cast<const std::int8_t*>(base)[offset]
                        : static_cast<const std::uint8_t*>(base)[offset];
}

// Stores one output of the shared output stage (s32, f32, s8, u8).
inline void store_output(void* base, std::int64_t offset, std::int32_t acc,
                         const channel_requant& c, const output_quant& o) noexcept {
  switch (o.type) {
    case dtype::s32: static_cast<std::int32_t*>(base)[offset] = acc; break;
    case dtype::f32: static_cast<float*>(base)[offset] = dequantize_acc(acc, c); break;
    case dtype::s8:
      static_cast<std::int8_t*>(base)[offset] = static_cast<std::int8_t>(requantize(acc, c, o));
      break;
    case dtype::u8:
      static_cast<std::uint8_t*>(base)[offset] = static_cast<std::uint8_t>(requantize(acc, c, o));
      break;
    default: KEEL_DASSERT(false, "validated output dtype"); break;
  }
}

// sum + bias with saturation to int32 (the sum itself is exact: validate_accumulator).
constexpr std::int32_t add_bias(std::int64_t sum, std::int32_t bias) noexcept {
  return clamp_i32(sum + bias, INT32_MIN, INT32_MAX);
}

template <class T>
constexpr T pick(std::span<const T> s, std::int64_t i, T absent) noexcept {
  if (s.empty()) return absent;
  return s.size() == 1 ? s[0] : s[static_cast<std::size_t>(i)];
}
}  // namespace detail

inline Status matmul_i8(const matmul_i8_desc& d, const matmul_i8_args& a) {
  KEEL_RETURN_IF_ERROR(validate(d, a));
  const bool batched = a.a.rank == 3;
  const int ra = batched ? 1 : 0;  // index of the M dim in A and out
  for (std::int64_t bi = 0; bi < d.batch; ++bi) {
    const std::int64_t a_base = batched ? bi * a.a.stride(0) : 0;
    const std::int64_t o_base = batched ? bi * a.out.stride(0) : 0;
    const std::int64_t b_base = d.b_batched ? bi * a.b.stride(0) : 0;
    const int rb = d.b_batched ? 1 : 0;
    for (std::int64_t n = 0; n < d.n; ++n) {
      const std::int32_t zb = detail::pick(a.b_zero_point, n, 0);
      const std::int32_t bias = detail::pick(a.bias, n, 0);
      const channel_requant c =
          d.out.type == dtype::s32
              ? channel_requant{}
              : make_channel_requant(d.a_scale, detail::pick(a.b_scale, n, 0.0f), d.out.scale);
      for (std::int64_t m = 0; m < d.m; ++m) {
        std::int64_t sum = 0;
        for (std::int64_t k = 0; k < d.k; ++k) {
          const std::int32_t av =
              detail::load_8bit(a.a.data, a_base + m * a.a.stride(ra) + k * a.a.stride(ra + 1),
                                d.a_type);
          const std::int32_t bv =
              detail::load_8bit(a.b.data, b_base + k * a.b.stride(rb) + n * a.b.stride(rb + 1),
                                d.b_type);
          sum += static_cast<std::int64_t>(av - d.a_zero_point) * (bv - zb);
        }
        KEEL_DASSERT(sum >= INT32_MIN && sum <= INT32_MAX, "validated K keeps the sum in int32");
        detail::store_output(a.out.data, o_base + m * a.out.stride(ra) + n * a.out.stride(ra + 1),
                             detail::add_bias(sum, bias), c, d.out);
      }
    }
  }
  return Status::Ok();
}

}  // namespace keel::reference
