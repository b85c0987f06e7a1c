// keel/kernels/reference/quantize.hpp — QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear
// as ONNX defines them (opset 13), bit for bit. See docs/semantics.md, "quantize".
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "keel/ops.hpp"

namespace keel::reference {

namespace detail {
// Calls f(offset_x, offset_y, channel) for every element, in row-major order of the shape.
template <class X, class Y, class F>
void for_each_element(const X& x, const Y& y, int axis, F&& f) {
  std::int64_t idx[kMaxRank] = {0, 0, 0, 0};
  const std::int64_t total = x.numel();
  for (std::int64_t e = 0; e < total; ++e) {
    std::int64_t ox = 0, oy = 0;
    for (int i = 0; i < x.rank; ++i) {
      ox += idx[i] * x.stride(i);
      oy += idx[i] * y.stride(i);
    }
    f(ox, oy, axis < 0 ? 0 : idx[axis]);
    for (int i = x.rank - 1; i >= 0; --i) {  // odometer increment
      if (++idx[i] < x.dim(i)) break;
      idx[i] = 0;
    }
  }
}

// y = saturate(round_half_even(x / scale) + zero_point), the ONNX QuantizeLinear formula.
inline std::int32_t quantize_value(float x, float scale, std::int32_t zero_point, dtype t) noexcept {
  const float q = round_half_even(x / scale);
  return clamp_i32(static_cast<std::int64_t>(saturate_to_i32(q)) + zero_point, min_of(t), max_of(t));
}
}  // namespace detail

inline Status quantize_linear(const quantize_desc& d, const quantize_args& a) {
  KEEL_RETURN_IF_ERROR(validate(d, a));
  detail::for_each_element(a.x, a.y, d.axis, [&](std::int64_t ox, std::int64_t oy, std::int64_t c) {
    const float x = *a.x.at<float>(ox);
    const std::int32_t zp = a.zero_point.empty() ? 0 : a.zero_point[static_cast<std::size_t>(c)];
    const std::int32_t q = detail::quantize_value(x, a.scale[static_cast<std::size_t>(c)], zp, a.y.type);
    if (a.y.type == dtype::s8) {
      *a.y.at<std::int8_t>(oy) = static_cast<std::int8_t>(q);
    } else {
      *a.y.at<std::uint8_t>(oy) = static_cast<std::uint8_t>(q);
    }
  });
  return Status::Ok();
}

// y = float(x - zero_point) * scale; the difference is formed exactly in int64 first.
inline Status dequantize_linear(const quantize_desc& d, const dequantize_args& a) {
  KEEL_RETURN_IF_ERROR(validate(d, a));
  detail::for_each_element(a.x, a.y, d.axis, [&](std::int64_t ox, std::int64_t oy, std::int64_t c) {
    std::int64_t x = 0;
    switch (a.x.type) {
      case dtype::s8: x = *a.x.at<std::int8_t>(ox); break;
      case dtype::u8: x = *a.x.at<std::uint8_t>(ox); break;
      default: x = *a.x.at<std::int32_t>(ox); break;
    }
    const std::int32_t zp = a.zero_point.empty() ? 0 : a.zero_point[static_cast<std::size_t>(c)];
    *a.y.at<float>(oy) = static_cast<float>(x - zp) * a.scale[static_cast<std::size_t>(c)];
  });
  return Status::Ok();
}

// The scale and zero point DynamicQuantizeLinear computes for a range [x_min, x_max].
struct dynamic_quant_params {
  float scale = 0.0f;
  std::uint8_t zero_point = 0;
};

// ONNX: the range is widened to include 0; scale = (max - min) / 255; zero point =
// saturate(round_half_even(0 - min / scale)). A range of width 0 (all-zero input) gives scale 0
// and zero point 0 rather than 0/0 = NaN; every element then quantizes to 0.
inline dynamic_quant_params dynamic_quant_params_for(float x_min, float x_max) noexcept {
  const float lo = std::min(x_min, 0.0f);
  const float hi = std::max(x_max, 0.0f);
  dynamic_quant_params p;
  p.scale = (hi - lo) / 255.0f;
  if (!(p.scale > 0.0f) || !std::isfinite(p.scale)) return p;  // 0, or inf (rejected by caller)
  const float zp = round_half_even(0.0f - lo / p.scale);
  p.zero_point = static_cast<std::uint8_t>(std::clamp(zp, 0.0f, 255.0f));
  return p;
}

inline Status dynamic_quantize_linear(const dynamic_quantize_args& a) {
  KEEL_RETURN_IF_ERROR(validate(a));
  float lo = 0.0f, hi = 0.0f;
  bool finite = true;
  detail::for_each_element(a.x, a.y, -1, [&](std::int64_t ox, std::int64_t, std::int64_t) {
    const float x = *a.x.at<float>(ox);
    if (!std::isfinite(x)) finite = false;
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  });
  if (!finite) {
    return Status::make(status_code::invalid_argument, "dynamic_quantize_linear",
                        "x holds a NaN or infinity (the range must be finite)");
  }
  const dynamic_quant_params p = dynamic_quant_params_for(lo, hi);
  if (!std::isfinite(p.scale)) {
    return Status::make(status_code::overflow, "dynamic_quantize_linear",
                        "the range [%g, %g] is too wide: (max - min) / 255 overflows f32",
                        static_cast<double>(lo), static_cast<double>(hi));
  }
  *a.scale = p.scale;
  *a.zero_point = p.zero_point;
  detail::for_each_element(a.x, a.y, -1, [&](std::int64_t ox, std::int64_t oy, std::int64_t) {
    const std::int32_t q =
        p.scale > 0.0f ? detail::quantize_value(*a.x.at<float>(ox), p.scale, p.zero_point, dtype::u8)
                       : 0;
    *a.y.at<std::uint8_t>(oy) = static_cast<std::uint8_t>(q);
  });
  return Status::Ok();
}

}  // namespace keel::reference
