// keel/dtype.hpp — element types, their ranges, and exact f16 <-> f32 conversion.
#pragma once

#include <bit>
#include <cstdint>
#include <string_view>

namespace keel {

enum class dtype : std::uint8_t { s8, u8, s4, u4, s32, f32, f16 };

constexpr std::string_view to_string(dtype t) noexcept {
  switch (t) {
    case dtype::s8: return "s8";
    case dtype::u8: return "u8";
    case dtype::s4: return "s4";
    case dtype::u4: return "u4";
    case dtype::s32: return "s32";
    case dtype::f32: return "f32";
    case dtype::f16: return "f16";
  }
  return "?";
}

// Width of one element in bits. s4/u4 pack two elements a byte, low nibble first.
constexpr int bits_of(dtype t) noexcept {
  switch (t) {
    case dtype::s4:
    case dtype::u4: return 4;
    case dtype::s8:
    case dtype::u8: return 8;
    case dtype::f16: return 16;
    case dtype::s32:
    case dtype::f32: return 32;
  }
  return 0;
}

constexpr bool is_integer(dtype t) noexcept {
  return t != dtype::f32 && t != dtype::f16;
}
constexpr bool is_quantized_8bit(dtype t) noexcept { return t == dtype::s8 || t == dtype::u8; }
constexpr bool is_4bit(dtype t) noexcept { return t == dtype::s4 || t == dtype::u4; }

// The representable range of an integer dtype (used for zero points and saturation).
constexpr std::int32_t min_of(dtype t) noexcept {
  switch (t) {
    case dtype::s8: return -128;
    case dtype::s4: return -8;
    case dtype::s32: return INT32_MIN;
    default: return 0;
  }
}
constexpr std::int32_t max_of(dtype t) noexcept {
  switch (t) {
    case dtype::s8: return 127;
    case dtype::u8: return 255;
    case dtype::s4: return 7;
    case dtype::u4: return 15;
    case dtype::s32: return INT32_MAX;
    default: return 0;
  }
}

// Storage of a half-precision value (IEEE 754 binary16). keel never does arithmetic in f16:
// every f16 operand is widened to f32 exactly first.
struct f16 {
  std::uint16_t bits = 0;
};

// binary16 -> binary32; exact for every input, NaN payloads keep their top bits.
constexpr float f16_to_f32(f16 h) noexcept {
  const std::uint32_t sign = static_cast<std::uint32_t>(h.bits & 0x8000u) << 16;
  const std::uint32_t exp = (h.bits >> 10) & 0x1Fu;
  std::uint32_t mant = h.bits & 0x3FFu;
  std::uint32_t out;
  if (exp == 0x1F) {  // inf or NaN
    out = sign | 0x7F800000u | (mant << 13);
  } else if (exp != 0) {  // normal: rebias 15 -> 127
    out = sign | ((exp + 112u) << 23) | (mant << 13);
  } else if (mant == 0) {  // signed zero
    out = sign;
  } else {  // subnormal: normalise the mantissa
    std::uint32_t e = 113;
    while ((mant & 0x400u) == 0) {
      mant <<= 1;
      --e;
    }
    out = sign | (e << 23) | ((mant & 0x3FFu) << 13);
  }
  return std::bit_cast<float>(out);
}

// binary32 -> binary16 with round to nearest, ties to even; overflow gives inf.
constexpr f16 f32_to_f16(float f) noexcept {
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t exp = (x >> 23) & 0xFFu;
  std::uint32_t mant = x & 0x7FFFFFu;
  if (exp == 0xFF) {  // inf or NaN (keep NaN quiet and non-zero)
    return {static_cast<std::uint16_t>(sign | 0x7C00u | (mant ? 0x200u | (mant >> 13) : 0u))};
  }
  const int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 0x1F) return {static_cast<std::uint16_t>(sign | 0x7C00u)};
  if (e <= 0) {  // subnormal or zero in f16
    if (e < -10) return {sign};
    mant |= 0x800000u;
    const int shift = 14 - e;  // 24-bit mantissa down to the 10-bit subnormal field
    std::uint32_t half = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1u);
    const std::uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1u))) ++half;
    return {static_cast<std::uint16_t>(sign | half)};
  }
  std::uint32_t half = (static_cast<std::uint32_t>(e) << 10) | (mant >> 13);
  const std::uint32_t rem = mant & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1u))) ++half;  // may carry into inf: correct
  return {static_cast<std::uint16_t>(sign | half)};
}

// The dtype of a C++ element type, for building views from typed pointers.
template <class T>
struct dtype_of;
template <>
struct dtype_of<std::int8_t> {
  static constexpr dtype value = dtype::s8;
};
template <>
struct dtype_of<std::uint8_t> {
  static constexpr dtype value = dtype::u8;
};
template <>
struct dtype_of<std::int32_t> {
  static constexpr dtype value = dtype::s32;
};
template <>
struct dtype_of<float> {
  static constexpr dtype value = dtype::f32;
};
template <>
struct dtype_of<f16> {
  static constexpr dtype value = dtype::f16;
};
template <class T>
inline constexpr dtype dtype_of_v = dtype_of<T>::value;

}  // namespace keel
