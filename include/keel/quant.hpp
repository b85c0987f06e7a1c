// keel/quant.hpp — quantization parameters and the two requantization modes, bit for bit.
//
// Every backend calls these same functions (or reproduces them exactly) to turn an int32
// accumulator into an output value; docs/semantics.md states them in words. Nothing here is
// sensitive to FP contraction: no expression has the shape a*b+c in floating point, and the
// float-mode products are formed one rounding at a time.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "keel/dtype.hpp"

namespace keel {

// How an int32 accumulator becomes an 8-bit output.
enum class requant_mode : std::uint8_t {
  // Integer only, bit-compatible with TFLite's reference kernels built with single rounding:
  // multiplier M in Q31 and a shift, acc*M + 2^(30-shift) then an arithmetic right shift by
  // 31-shift (ties go toward +inf), then + zero point, then clamp.
  fixed_point,
  // ONNX QLinear*: float32(acc) * float32 multiplier, round half to even, + zero point, saturate.
  float_scale,
};

constexpr const char* to_string(requant_mode m) noexcept {
  return m == requant_mode::fixed_point ? "fixed_point" : "float_scale";
}

// Round to nearest, ties to even, independent of the FP environment's rounding mode.
inline float round_half_even(float x) noexcept {
  const float t = std::trunc(x);
  const float frac = x - t;  // exact for every finite float
  if (frac == 0.5f || frac == -0.5f) {
    return (std::fmod(t, 2.0f) == 0.0f) ? t : t + (frac > 0 ? 1.0f : -1.0f);
  }
  return std::round(x);  // not a tie: round() and round-half-even agree
}

// a * b rounded to f32 before any later use: a product that an add consumes can never be fused
// into a multiply-add. GCC contracts across statements by default in C++ (-ffp-contract=fast
// even with -std=c++20; seen with GCC 12 -mfma) and Clang within one expression; the volatile
// round trip defeats both under every flag. For the reference kernels' f32 sums only: fast
// kernels state their own float bound instead.
inline float rounded_product(float a, float b) noexcept {
  const volatile float p = a * b;
  return p;
}

// float -> int32 with saturation; NaN becomes 0. Avoids the UB of an out-of-range cast.
inline std::int32_t saturate_to_i32(float x) noexcept {
  if (std::isnan(x)) return 0;
  if (x >= 2147483648.0f) return std::numeric_limits<std::int32_t>::max();
  if (x < -2147483648.0f) return std::numeric_limits<std::int32_t>::min();
  return static_cast<std::int32_t>(x);
}

constexpr std::int32_t clamp_i32(std::int64_t v, std::int32_t lo, std::int32_t hi) noexcept {
  return static_cast<std::int32_t>(v < lo ? lo : (v > hi ? hi : v));
}

// ---- fixed point --------------------------------------------------------------------------

struct quantized_multiplier {
  std::int32_t multiplier = 0;  // Q31, in [2^30, 2^31) or 0
  std::int32_t shift = 0;       // left shift; the real value is multiplier * 2^(shift-31)
};

// Represents a non-negative real multiplier as Q31 * 2^shift, as TFLite's QuantizeMultiplier
// does: frexp, round the mantissa half away from zero to 31 bits, renormalise on carry; values
// too small for shift >= -31 become 0; values too large saturate at shift 30.
inline quantized_multiplier quantize_multiplier(double real) noexcept {
  if (!(real > 0.0) || !std::isfinite(real)) return {0, 0};
  int shift = 0;
  const double q = std::frexp(real, &shift);  // real = q * 2^shift, q in [0.5, 1)
  auto q_fixed = static_cast<std::int64_t>(std::round(q * 2147483648.0));
  if (q_fixed == (std::int64_t{1} << 31)) {
    q_fixed /= 2;
    ++shift;
  }
  if (shift < -31) return {0, 0};
  if (shift > 30) return {std::numeric_limits<std::int32_t>::max(), 30};
  return {static_cast<std::int32_t>(q_fixed), shift};
}

// x * M * 2^(shift-31) with one rounding (add half, arithmetic shift: ties toward +inf),
// saturated to int32. Requires M >= 0 and shift in [-31, 30] (quantize_multiplier's range).
constexpr std::int32_t multiply_by_quantized_multiplier(std::int32_t x,
                                                        quantized_multiplier qm) noexcept {
  const int total_shift = 31 - qm.shift;  // in [1, 62]
  const std::int64_t round = std::int64_t{1} << (total_shift - 1);
  const std::int64_t result = (static_cast<std::int64_t>(x) * qm.multiplier + round) >> total_shift;
  return clamp_i32(result, std::numeric_limits<std::int32_t>::min(),
                   std::numeric_limits<std::int32_t>::max());
}

// ---- the output stage shared by matmul and conv2d ------------------------------------------

// What the int32 accumulator (products plus bias) becomes. For s32 output the accumulator is
// stored as is; for f32 it is dequantized; for s8/u8 it is requantized.
struct output_quant {
  dtype type = dtype::s32;  // s32, f32, s8 or u8
  requant_mode mode = requant_mode::fixed_point;
  float scale = 1.0f;            // output scale (s8/u8 only); must be finite and > 0
  std::int32_t zero_point = 0;   // output zero point (s8/u8 only), in the type's range
  std::int32_t clamp_min = std::numeric_limits<std::int32_t>::min();  // fused activation:
  std::int32_t clamp_max = std::numeric_limits<std::int32_t>::max();  // intersected with type
};

// The per-output-channel constants every backend derives the same way from the scales.
struct channel_requant {
  quantized_multiplier fixed;  // fixed_point mode
  float multiplier = 0.0f;     // float_scale mode: (in_scale * w_scale) / out_scale in float32
  float dequant = 0.0f;        // f32 output: in_scale * w_scale in float32
};

inline channel_requant make_channel_requant(float in_scale, float w_scale, float out_scale) noexcept {
  channel_requant c;
  const float product = in_scale * w_scale;  // one rounding
  c.dequant = product;
  c.multiplier = product / out_scale;  // one more; never contracted (a division)
  c.fixed = quantize_multiplier(static_cast<double>(in_scale) * static_cast<double>(w_scale) /
                                static_cast<double>(out_scale));
  return c;
}

// The clamp actually applied: the user's range intersected with the output type's range.
constexpr std::int32_t effective_min(const output_quant& o) noexcept {
  return o.clamp_min > min_of(o.type) ? o.clamp_min : min_of(o.type);
}
constexpr std::int32_t effective_max(const output_quant& o) noexcept {
  return o.clamp_max < max_of(o.type) ? o.clamp_max : max_of(o.type);
}

// int32 accumulator -> 8-bit output value (returned widened to int32).
inline std::int32_t requantize(std::int32_t acc, const channel_requant& c,
                               const output_quant& o) noexcept {
  std::int64_t v;
  if (o.mode == requant_mode::fixed_point) {
    v = multiply_by_quantized_multiplier(acc, c.fixed);
  } else {
    const float scaled = static_cast<float>(acc) * c.multiplier;
    v = saturate_to_i32(round_half_even(scaled));
  }
  return clamp_i32(v + o.zero_point, effective_min(o), effective_max(o));
}

// int32 accumulator -> f32 output.
inline float dequantize_acc(std::int32_t acc, const channel_requant& c) noexcept {
  return static_cast<float>(acc) * c.dequant;
}

// Scales are finite and non-negative: 0 is a legal weight scale (an all-zero channel). The
// output scale of a requantized op must be > 0 (it divides).
inline bool is_valid_scale(float s) noexcept { return std::isfinite(s) && s >= 0.0f; }
inline bool is_valid_divisor_scale(float s) noexcept { return std::isfinite(s) && s > 0.0f; }

}  // namespace keel
