// keel/ops.hpp — op descriptors: what every backend (cpu, vulkan, npu) is asked to run.
//
// An op is two structs. The *desc* holds sizes, dtypes and scalar quantization parameters: it is
// a plain value, cheap to copy, constexpr-constructible, and is all that a backend's supports()
// and the router's cost model read. The *args* hold the operand views and per-channel arrays for
// one call. validate(desc) checks the desc alone; validate(desc, args) checks everything a kernel
// will touch. Both name the op, the value and the rule in the Status they return.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "keel/quant.hpp"
#include "keel/status.hpp"
#include "keel/tensor.hpp"
#include "keel/validate.hpp"

namespace keel {

enum class op_kind : std::uint8_t {
  matmul_i8,                // int8 x int8 -> s32 / f32 / s8 / u8
  matmul_i4,                // f32 (or dynamically quantized int8) x int4 weights -> f32
  conv2d_i8,                // NHWC int8 conv, OHWI weights, groups and depthwise
  attention,                // scaled dot-product attention, int8 or f32 Q, int8 or f32 K/V
  quantize_linear,          // f32 -> s8/u8
  dequantize_linear,        // s8/u8/s32 -> f32
  dynamic_quantize_linear,  // f32 -> u8 with computed scale and zero point
};
inline constexpr int kOpKindCount = 7;

constexpr std::string_view to_string(op_kind k) noexcept {
  switch (k) {
    case op_kind::matmul_i8: return "matmul_i8";
    case op_kind::matmul_i4: return "matmul_i4";
    case op_kind::conv2d_i8: return "conv2d_i8";
    case op_kind::attention: return "attention";
    case op_kind::quantize_linear: return "quantize_linear";
    case op_kind::dequantize_linear: return "dequantize_linear";
    case op_kind::dynamic_quantize_linear: return "dynamic_quantize_linear";
  }
  return "?";
}

// Largest |a - a_zero_point| (or |w - w_zero_point|) an 8-bit type can produce.
constexpr std::int64_t max_abs_offset(dtype t, std::int32_t zero_point) noexcept {
  const std::int64_t lo = min_of(t) - static_cast<std::int64_t>(zero_point);
  const std::int64_t hi = max_of(t) - static_cast<std::int64_t>(zero_point);
  return (-lo > hi) ? -lo : hi;
}

// Largest reduction length for which the int32 sum of products cannot overflow (bias aside: it
// is added with saturation), given the worst |a - za| and |b - zb|.
constexpr std::int64_t max_exact_k(std::int64_t max_abs_a, std::int64_t max_abs_b) noexcept {
  const std::int64_t p = max_abs_a * max_abs_b;
  return p == 0 ? INT64_MAX : static_cast<std::int64_t>(INT32_MAX) / p;
}

// ============================================================================================
// matmul_i8: out[b, m, n] = stage( sum_k (A[b,m,k] - za) * (B[b?,k,n] - zb[n]) + bias[n] )
// ============================================================================================

struct matmul_i8_desc {
  static constexpr op_kind kind = op_kind::matmul_i8;
  std::int64_t batch = 1;  // 0 is allowed: nothing to do
  std::int64_t m = 0, n = 0, k = 0;
  dtype a_type = dtype::u8;  // u8 or s8
  dtype b_type = dtype::s8;  // s8 or u8
  std::int32_t a_zero_point = 0;
  float a_scale = 1.0f;     // read for f32, s8 and u8 outputs
  bool b_batched = false;   // B is [batch, K, N] instead of one [K, N] shared by all batches
  output_quant out;         // s32, f32, s8 or u8
};

struct matmul_i8_args {
  const_tensor_view a;                          // [M, K] (batch == 1) or [batch, M, K]
  const_tensor_view b;                          // [K, N] or, if b_batched, [batch, K, N]
  std::span<const float> b_scale;               // 1 or N entries; unused for s32 output
  std::span<const std::int32_t> b_zero_point;   // 0 (all zero), 1 or N entries
  std::span<const std::int32_t> bias;           // 0 or N entries, added to the int32 sum
  tensor_view out;                              // [M, N] or [batch, M, N]
};

namespace detail {
inline Status validate_output_quant(std::string_view op, const output_quant& o) {
  if (o.type != dtype::s32 && o.type != dtype::f32 && o.type != dtype::s8 &&
      o.type != dtype::u8) {
    return Status::make(status_code::unsupported, op, "output dtype %s (must be s32, f32, s8 or u8)",
                        to_string(o.type).data());
  }
  if (o.type == dtype::s8 || o.type == dtype::u8) {
    KEEL_RETURN_IF_ERROR(require_enum(op, "requantization mode", o.mode, 2));
    KEEL_RETURN_IF_ERROR(require_scale(op, "output scale", o.scale, /*divisor=*/true));
    KEEL_RETURN_IF_ERROR(require_zero_point(op, "output zero point", o.zero_point, o.type));
    if (effective_min(o) > effective_max(o)) {
      return Status::make(status_code::invalid_argument, op,
                          "clamp [%d, %d] is empty within the %s range", o.clamp_min,
                          o.clamp_max, to_string(o.type).data());
    }
  }
  return Status::Ok();
}

// Scales, zero points and bias of a per-output-channel weight (matmul column, conv channel).
inline Status validate_channel_params(std::string_view op, std::int64_t channels, dtype w_type,
                                      const output_quant& o, std::span<const float> w_scale,
                                      std::span<const std::int32_t> w_zero_point,
                                      std::span<const std::int32_t> bias) {
  if (o.type != dtype::s32) {
    KEEL_RETURN_IF_ERROR(require_count(op, "weight scale", w_scale, {1, channels}));
    for (float s : w_scale) KEEL_RETURN_IF_ERROR(require_scale(op, "weight scale", s, false));
  }
  KEEL_RETURN_IF_ERROR(require_count(op, "weight zero point", w_zero_point, {0, 1, channels}));
  for (std::int32_t z : w_zero_point) {
    KEEL_RETURN_IF_ERROR(require_zero_point(op, "weight zero point", z, w_type));
  }
  KEEL_RETURN_IF_ERROR(require_count(op, "bias", bias, {0, channels}));
  return Status::Ok();
}

// The reduction must stay exact in int32 for the actual zero points.
inline Status validate_accumulator(std::string_view op, std::int64_t reduction, dtype a_type,
                                   std::int32_t a_zero_point, dtype w_type,
                                   std::span<const std::int32_t> w_zero_point) {
  std::int64_t worst_w = max_abs_offset(w_type, 0);
  for (std::int32_t z : w_zero_point) {
    const std::int64_t w = max_abs_offset(w_type, z);
    worst_w = w > worst_w ? w : worst_w;
  }
  const std::int64_t limit = max_exact_k(max_abs_offset(a_type, a_zero_point), worst_w);
  if (reduction > limit) {
    return Status::make(status_code::overflow, op,
                        "reduction length %lld exceeds %lld, the largest for which the int32 "
                        "accumulator is exact with these dtypes and zero points",
                        static_cast<long long>(reduction), static_cast<long long>(limit));
  }
  return Status::Ok();
}
}  // namespace detail

inline Status validate(const matmul_i8_desc& d) {
  constexpr std::string_view op = "matmul_i8";
  using namespace detail;
  KEEL_RETURN_IF_ERROR(require_size(op, "batch", d.batch, /*allow_zero=*/true));
  KEEL_RETURN_IF_ERROR(require_size(op, "M", d.m));
  KEEL_RETURN_IF_ERROR(require_size(op, "N", d.n));
  KEEL_RETURN_IF_ERROR(require_size(op, "K", d.k));
  KEEL_RETURN_IF_ERROR(require_product(op, "batch*M*K", {d.batch, d.m, d.k}));
  KEEL_RETURN_IF_ERROR(require_product(op, "batch*K*N", {d.batch, d.k, d.n}));
  KEEL_RETURN_IF_ERROR(require_product(op, "batch*M*N", {d.batch, d.m, d.n}));
  if (!is_quantized_8bit(d.a_type) || !is_quantized_8bit(d.b_type)) {
    return Status::make(status_code::unsupported, op, "dtypes A=%s B=%s (each must be s8 or u8)",
                        to_string(d.a_type).data(), to_string(d.b_type).data());
  }
  KEEL_RETURN_IF_ERROR(require_zero_point(op, "A zero point", d.a_zero_point, d.a_type));
  if (d.out.type != dtype::s32) {
    KEEL_RETURN_IF_ERROR(require_scale(op, "A scale", d.a_scale, false));
  }
  return validate_output_quant(op, d.out);
}

inline Status validate(const matmul_i8_desc& d, const matmul_i8_args& a) {
  constexpr std::string_view op = "matmul_i8";
  using namespace detail;
  KEEL_RETURN_IF_ERROR(validate(d));
  const bool batched = a.a.rank == 3;
  if (!batched && d.batch != 1) {
    return Status::make(status_code::shape_mismatch, op, "A has rank %d with batch = %lld "
                        "(a batch other than 1 needs rank-3 A and out)",
                        a.a.rank, static_cast<long long>(d.batch));
  }
  if (batched) {
    KEEL_RETURN_IF_ERROR(require_view(op, "A", a.a, d.a_type, {d.batch, d.m, d.k}));
    KEEL_RETURN_IF_ERROR(require_view(op, "out", a.out, d.out.type, {d.batch, d.m, d.n}));
  } else {
    KEEL_RETURN_IF_ERROR(require_view(op, "A", a.a, d.a_type, {d.m, d.k}));
    KEEL_RETURN_IF_ERROR(require_view(op, "out", a.out, d.out.type, {d.m, d.n}));
  }
  if (d.b_batched) {
    KEEL_RETURN_IF_ERROR(require_view(op, "B", a.b, d.b_type, {d.batch, d.k, d.n}));
  } else {
    KEEL_RETURN_IF_ERROR(require_view(op, "B", a.b, d.b_type, {d.k, d.n}));
  }
  KEEL_RETURN_IF_ERROR(require_output(op, a.out, {{"A", a.a}, {"B", a.b}}));
  KEEL_RETURN_IF_ERROR(
      validate_channel_params(op, d.n, d.b_type, d.out, a.b_scale, a.b_zero_point, a.bias));
  return validate_accumulator(op, d.k, d.a_type, d.a_zero_point, d.b_type, a.b_zero_point);
}

// ============================================================================================
// matmul_i4: out[b, m, n] = sum over groups g of  s[n,g] * sum_{k in g} A'[b,m,k] * (W[n,k] - z[n,g])
//
// The int4 weight W is stored [N, K]: each output channel's K nibbles together, as every int4
// format keel imports (GGUF Q4_0, ONNX MatMulNBits) stores them and as a GEMV streams them. This is
// the transpose of matmul_i8's B [K, N].
// ============================================================================================

// How the f32 activations meet the int4 weights.
enum class i4_activation : std::uint8_t {
  f32,          // weights dequantized to f32 on the fly; f32 products and sums
  dynamic_s8,   // each activation row quantized to s8 (symmetric, scale = max|x|/127); int32
                // sums per group, then scaled in f32
};

struct matmul_i4_desc {
  static constexpr op_kind kind = op_kind::matmul_i4;
  std::int64_t batch = 1;
  std::int64_t m = 0, n = 0, k = 0;
  dtype b_type = dtype::s4;      // s4 (symmetric) or u4 (zero point per group, default 8)
  std::int64_t group_size = 32;  // a power of two in [16, 256], or K for one group per column
  dtype scale_type = dtype::f32; // f32 or f16
  i4_activation activation = i4_activation::f32;

  constexpr std::int64_t groups() const noexcept {
    return group_size > 0 ? (k + group_size - 1) / group_size : 0;
  }
};

struct matmul_i4_args {
  const_tensor_view a;            // f32 [M, K] or [batch, M, K]
  const_tensor_view b;            // s4/u4 [N, K] (K dense), shared by every batch
  const_tensor_view scale;        // f32/f16 [N, groups]
  const_tensor_view zero_point;   // u4 only, optional: u8 [N, groups], values 0..15
  std::span<const float> bias;    // 0 or N entries, added last
  tensor_view out;                // f32 [M, N] or [batch, M, N]
};

inline Status validate(const matmul_i4_desc& d) {
  constexpr std::string_view op = "matmul_i4";
  using namespace detail;
  KEEL_RETURN_IF_ERROR(require_size(op, "batch", d.batch, /*allow_zero=*/true));
  KEEL_RETURN_IF_ERROR(require_size(op, "M", d.m));
  KEEL_RETURN_IF_ERROR(require_size(op, "N", d.n));
  KEEL_RETURN_IF_ERROR(require_size(op, "K", d.k));
  KEEL_RETURN_IF_ERROR(require_product(op, "batch*M*K", {d.batch, d.m, d.k}));
  KEEL_RETURN_IF_ERROR(require_product(op, "K*N", {d.k, d.n}));
  KEEL_RETURN_IF_ERROR(require_product(op, "batch*M*N", {d.batch, d.m, d.n}));
  KEEL_RETURN_IF_ERROR(require_enum(op, "activation", d.activation, 2));
  if (!is_4bit(d.b_type)) {
    return Status::make(status_code::unsupported, op, "weight dtype %s (must be s4 or u4)",
                        to_string(d.b_type).data());
  }
  const bool pow2 = d.group_size >= 16 && d.group_size <= 256 &&
                    (d.group_size & (d.group_size - 1)) == 0;
  if (!pow2 && d.group_size != d.k) {
    return Status::make(status_code::invalid_argument, op,
                        "group size %lld (must be a power of two in [16, 256], or K = %lld)",
                        static_cast<long long>(d.group_size), static_cast<long long>(d.k));
  }
  if (d.scale_type != dtype::f32 && d.scale_type != dtype::f16) {
    return Status::make(status_code::unsupported, op, "scale dtype %s (must be f32 or f16)",
                        to_string(d.scale_type).data());
  }
  // dynamic_s8: |a| <= 127 and |w - z| <= 15, so a group of 256 sums to at most 487680: exact.
  // One group of K (group_size == K) is exact only while K * 127 * 15 fits in int32.
  if (d.activation == i4_activation::dynamic_s8 && d.group_size > max_exact_k(127, 15)) {
    return Status::make(status_code::overflow, op,
                        "group size %lld exceeds %lld, the largest whose int32 group sum is exact "
                        "with dynamic_s8 activations",
                        static_cast<long long>(d.group_size),
                        static_cast<long long>(max_exact_k(127, 15)));
  }
  return Status::Ok();
}

inline Status validate(const matmul_i4_desc& d, const matmul_i4_args& a) {
  constexpr std::string_view op = "matmul_i4";
  using namespace detail;
  KEEL_RETURN_IF_ERROR(validate(d));
  const bool batched = a.a.rank == 3;
  if (!batched && d.batch != 1) {
    return Status::make(status_code::shape_mismatch, op, "A has rank %d with batch = %lld "
                        "(a batch other than 1 needs rank-3 A and out)",
                        a.a.rank, static_cast<long long>(d.batch));
  }
  if (batched) {
    KEEL_RETURN_IF_ERROR(require_view(op, "A", a.a, dtype::f32, {d.batch, d.m, d.k}));
    KEEL_RETURN_IF_ERROR(require_view(op, "out", a.out, dtype::f32, {d.batch, d.m, d.n}));
  } else {
    KEEL_RETURN_IF_ERROR(require_view(op, "A", a.a, dtype::f32, {d.m, d.k}));
    KEEL_RETURN_IF_ERROR(require_view(op, "out", a.out, dtype::f32, {d.m, d.n}));
  }
  KEEL_RETURN_IF_ERROR(require_view(op, "B", a.b, d.b_type, {d.n, d.k}));
  KEEL_RETURN_IF_ERROR(require_view(op, "scale", a.scale, d.scale_type, {d.n, d.groups()}));
  if (a.zero_point.data != nullptr || a.zero_point.rank != 0) {
    if (d.b_type != dtype::u4) {
      return Status::make(status_code::invalid_argument, op,
                          "zero points given for s4 weights (s4 is symmetric; use u4)");
    }
    KEEL_RETURN_IF_ERROR(require_view(op, "zero point", a.zero_point, dtype::u8, {d.n, d.groups()}));
  }
  KEEL_RETURN_IF_ERROR(require_output(
      op, a.out, {{"A", a.a}, {"B", a.b}, {"scale", a.scale}, {"zero point", a.zero_point}}));
  KEEL_RETURN_IF_ERROR(require_count(op, "bias", a.bias, {0, d.n}));
  return Status::Ok();
}

// ============================================================================================
// conv2d_i8: NHWC input, OHWI weights, groups (depthwise: groups = C_in), explicit or SAME pads
// ============================================================================================

enum class padding_mode : std::uint8_t {
  explicit_pads,  // pad_top/bottom/left/right as given (VALID is all zeros)
  same_upper,     // TF/ONNX SAME_UPPER: out = ceil(in / stride); the odd extra pad goes last
  same_lower,     // ONNX SAME_LOWER: out = ceil(in / stride); the odd extra pad goes first
};

struct conv2d_desc {
  static constexpr op_kind kind = op_kind::conv2d_i8;
  std::int64_t batch = 1;  // 0 is allowed
  std::int64_t in_h = 0, in_w = 0, in_c = 0;
  std::int64_t out_c = 0;
  std::int64_t kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t dilation_h = 1, dilation_w = 1;
  padding_mode padding = padding_mode::explicit_pads;
  std::int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
  std::int64_t groups = 1;  // in_c and out_c both divisible; depthwise: groups == in_c
  dtype in_type = dtype::u8;  // u8 or s8
  dtype w_type = dtype::s8;   // s8 or u8
  std::int32_t in_zero_point = 0;  // also the value padding reads
  float in_scale = 1.0f;
  output_quant out;
};

// The resolved geometry of a conv2d: output size and the pads actually applied.
struct conv2d_geometry {
  std::int64_t out_h = 0, out_w = 0;
  std::int64_t pad_top = 0, pad_bottom = 0, pad_left = 0, pad_right = 0;
};

namespace detail {
// One spatial axis: returns out size (or -1 on an empty output) and the leading/trailing pads.
constexpr std::int64_t conv_axis(std::int64_t in, std::int64_t kernel, std::int64_t stride,
                                 std::int64_t dilation, padding_mode mode, std::int64_t& lead,
                                 std::int64_t& trail) noexcept {
  const std::int64_t span = (kernel - 1) * dilation + 1;
  if (mode != padding_mode::explicit_pads) {
    const std::int64_t out = (in + stride - 1) / stride;
    std::int64_t total = (out - 1) * stride + span - in;
    if (total < 0) total = 0;
    lead = mode == padding_mode::same_upper ? total / 2 : total - total / 2;
    trail = total - lead;
    return out;
  }
  const std::int64_t padded = in + lead + trail;
  if (padded < span) return -1;
  return (padded - span) / stride + 1;
}
}  // namespace detail

inline Result<conv2d_geometry> conv2d_output_geometry(const conv2d_desc& d) {
  constexpr std::string_view op = "conv2d_i8";
  using namespace detail;
  const std::int64_t sizes[] = {d.in_h, d.in_w, d.in_c, d.out_c, d.kernel_h, d.kernel_w,
                                d.stride_h, d.stride_w, d.dilation_h, d.dilation_w, d.groups};
  const char* names[] = {"in_h", "in_w", "in_c", "out_c", "kernel_h", "kernel_w",
                         "stride_h", "stride_w", "dilation_h", "dilation_w", "groups"};
  for (int i = 0; i < 11; ++i) {
    Status s = require_size(op, names[i], sizes[i]);
    if (!s.ok()) return s;
    // Keep every derived product comfortably inside int64.
    if (sizes[i] > (std::int64_t{1} << 31)) {
      return Status::make(status_code::overflow, op, "%s = %lld (must be <= 2^31)", names[i],
                          static_cast<long long>(sizes[i]));
    }
  }
  const std::int64_t pads[] = {d.pad_top, d.pad_bottom, d.pad_left, d.pad_right};
  for (std::int64_t p : pads) {
    if (p < 0 || p > (std::int64_t{1} << 31)) {
      return Status::make(status_code::invalid_argument, op, "padding %lld (must be in [0, 2^31])",
                          static_cast<long long>(p));
    }
  }
  conv2d_geometry g;
  g.pad_top = d.pad_top;
  g.pad_bottom = d.pad_bottom;
  g.pad_left = d.pad_left;
  g.pad_right = d.pad_right;
  g.out_h = conv_axis(d.in_h, d.kernel_h, d.stride_h, d.dilation_h, d.padding, g.pad_top,
                      g.pad_bottom);
  g.out_w = conv_axis(d.in_w, d.kernel_w, d.stride_w, d.dilation_w, d.padding, g.pad_left,
                      g.pad_right);
  if (g.out_h < 1 || g.out_w < 1) {
    return Status::make(status_code::invalid_argument, op,
                        "the dilated kernel (%lldx%lld) is larger than the padded input: empty "
                        "output",
                        static_cast<long long>((d.kernel_h - 1) * d.dilation_h + 1),
                        static_cast<long long>((d.kernel_w - 1) * d.dilation_w + 1));
  }
  return g;
}

struct conv2d_args {
  const_tensor_view input;                      // [N, H, W, C_in]
  const_tensor_view weights;                    // [C_out, KH, KW, C_in / groups]
  std::span<const float> w_scale;               // 1 or C_out entries
  std::span<const std::int32_t> w_zero_point;   // 0, 1 or C_out entries
  std::span<const std::int32_t> bias;           // 0 or C_out entries
  tensor_view out;                              // [N, OH, OW, C_out]
};

inline Status validate(const conv2d_desc& d) {
  constexpr std::string_view op = "conv2d_i8";
  using namespace detail;
  KEEL_RETURN_IF_ERROR(require_size(op, "batch", d.batch, /*allow_zero=*/true));
  KEEL_RETURN_IF_ERROR(require_enum(op, "padding", d.padding, 3));
  Result<conv2d_geometry> g = conv2d_output_geometry(d);
  if (!g.ok()) return g.status();
  if (d.in_c % d.groups != 0 || d.out_c % d.groups != 0) {
    return Status::make(status_code::invalid_argument, op,
                        "groups = %lld must divide in_c = %lld and out_c = %lld",
                        static_cast<long long>(d.groups), static_cast<long long>(d.in_c),
                        static_cast<long long>(d.out_c));
  }
  KEEL_RETURN_IF_ERROR(require_product(op, "input", {d.batch, d.in_h, d.in_w, d.in_c}));
  KEEL_RETURN_IF_ERROR(require_product(op, "output", {d.batch, g->out_h, g->out_w, d.out_c}));
  KEEL_RETURN_IF_ERROR(require_product(op, "weights", {d.out_c, d.kernel_h, d.kernel_w, d.in_c}));
  if (!is_quantized_8bit(d.in_type) || !is_quantized_8bit(d.w_type)) {
    return Status::make(status_code::unsupported, op,
                        "dtypes input=%s weights=%s (each must be s8 or u8)",
                        to_string(d.in_type).data(), to_string(d.w_type).data());
  }
  KEEL_RETURN_IF_ERROR(require_zero_point(op, "input zero point", d.in_zero_point, d.in_type));
  if (d.out.type != dtype::s32) {
    KEEL_RETURN_IF_ERROR(require_scale(op, "input scale", d.in_scale, false));
  }
  return validate_output_quant(op, d.out);
}

inline Status validate(const conv2d_desc& d, const conv2d_args& a) {
  constexpr std::string_view op = "conv2d_i8";
  using namespace detail;
  KEEL_RETURN_IF_ERROR(validate(d));
  const conv2d_geometry g = conv2d_output_geometry(d).value();
  KEEL_RETURN_IF_ERROR(require_view(op, "input", a.input, d.in_type, {d.batch, d.in_h, d.in_w, d.in_c}));
  KEEL_RETURN_IF_ERROR(require_view(op, "weights", a.weights, d.w_type,
                                    {d.out_c, d.kernel_h, d.kernel_w, d.in_c / d.groups}));
  KEEL_RETURN_IF_ERROR(require_view(op, "out", a.out, d.out.type, {d.batch, g.out_h, g.out_w, d.out_c}));
  KEEL_RETURN_IF_ERROR(require_output(op, a.out, {{"input", a.input}, {"weights", a.weights}}));
  KEEL_RETURN_IF_ERROR(
      validate_channel_params(op, d.out_c, d.w_type, d.out, a.w_scale, a.w_zero_point, a.bias));
  return validate_accumulator(op, d.kernel_h * d.kernel_w * (d.in_c / d.groups), d.in_type,
                              d.in_zero_point, d.w_type, a.w_zero_point);
}

// ============================================================================================
// attention: out = softmax(scale * Q K^T + mask) V, per batch and query head
// ============================================================================================

// Which entries a quantization scale array has.
enum class scale_granularity : std::uint8_t {
  per_tensor,  // 1 entry
  per_head,    // one per head of that tensor: [heads]
  per_token,   // one per (batch, head, position): [batch, heads, seq], row-major
};

enum class mask_kind : std::uint8_t {
  none,
  causal,    // key j is visible to query i iff j <= i + causal_offset
  additive,  // f32 [B|1, Hq|1, Sq, Skv] added to the scores; -inf hides a key
};

struct attention_desc {
  static constexpr op_kind kind = op_kind::attention;
  std::int64_t batch = 1;  // 0 is allowed
  std::int64_t q_heads = 1, kv_heads = 1;  // kv_heads divides q_heads (grouped-query)
  std::int64_t q_len = 1, kv_len = 1;
  std::int64_t head_dim = 1;    // of Q and K
  std::int64_t v_head_dim = 0;  // of V and out; 0 means head_dim
  dtype q_type = dtype::f32;    // f32 or s8
  dtype kv_type = dtype::s8;    // s8 or f32
  scale_granularity q_scale = scale_granularity::per_tensor;   // s8 Q only
  scale_granularity kv_scale = scale_granularity::per_tensor;  // s8 K and V
  float softmax_scale = 0.0f;   // 0 means 1/sqrt(head_dim)
  mask_kind mask = mask_kind::none;
  // Causal: query i sits at position i + causal_offset among the keys. The default (the
  // sentinel kAlignEnd) is kv_len - q_len, so the last query sees every key.
  static constexpr std::int64_t kAlignEnd = INT64_MIN;
  std::int64_t causal_offset = kAlignEnd;
  dtype out_type = dtype::f32;  // f32 or s8
  float out_scale = 1.0f;       // s8 output: q = saturate(round_half_even(x / out_scale))

  constexpr std::int64_t value_dim() const noexcept { return v_head_dim ? v_head_dim : head_dim; }
  constexpr std::int64_t resolved_causal_offset() const noexcept {
    return causal_offset == kAlignEnd ? kv_len - q_len : causal_offset;
  }
};

struct attention_args {
  const_tensor_view q;       // [B, Hq, Sq, D]
  const_tensor_view k;       // [B, Hkv, Skv, D]
  const_tensor_view v;       // [B, Hkv, Skv, Dv]
  std::span<const float> q_scale;  // s8 Q: per desc.q_scale granularity
  std::span<const float> k_scale;  // s8 K
  std::span<const float> v_scale;  // s8 V
  const_tensor_view mask;    // additive: f32 rank 4, each of the first two dims full or 1
  tensor_view out;           // [B, Hq, Sq, Dv]
};

namespace detail {
inline std::int64_t scale_entries(scale_granularity g, std::int64_t batch, std::int64_t heads,
                                  std::int64_t len) noexcept {
  switch (g) {
    case scale_granularity::per_tensor: return 1;
    case scale_granularity::per_head: return heads;
    case scale_granularity::per_token: return batch * heads * len;
  }
  return 1;
}
}  // namespace detail

inline Status validate(const attention_desc& d) {
  constexpr std::string_view op = "attention";
  using namespace detail;
  KEEL_RETURN_IF_ERROR(require_size(op, "batch", d.batch, /*allow_zero=*/true));
  KEEL_RETURN_IF_ERROR(require_size(op, "q_heads", d.q_heads));
  KEEL_RETURN_IF_ERROR(require_size(op, "kv_heads", d.kv_heads));
  KEEL_RETURN_IF_ERROR(require_size(op, "q_len", d.q_len));
  KEEL_RETURN_IF_ERROR(require_size(op, "kv_len", d.kv_len));
  KEEL_RETURN_IF_ERROR(require_size(op, "head_dim", d.head_dim));
  if (d.v_head_dim < 0) return require_size(op, "v_head_dim", d.v_head_dim);
  KEEL_RETURN_IF_ERROR(require_enum(op, "mask", d.mask, 3));
  KEEL_RETURN_IF_ERROR(require_enum(op, "q_scale granularity", d.q_scale, 3));
  KEEL_RETURN_IF_ERROR(require_enum(op, "kv_scale granularity", d.kv_scale, 3));
  if (d.q_heads % d.kv_heads != 0) {
    return Status::make(status_code::invalid_argument, op,
                        "kv_heads = %lld does not divide q_heads = %lld",
                        static_cast<long long>(d.kv_heads), static_cast<long long>(d.q_heads));
  }
  KEEL_RETURN_IF_ERROR(require_product(op, "Q", {d.batch, d.q_heads, d.q_len, d.head_dim}));
  KEEL_RETURN_IF_ERROR(require_product(op, "K", {d.batch, d.kv_heads, d.kv_len, d.head_dim}));
  KEEL_RETURN_IF_ERROR(require_product(op, "V", {d.batch, d.kv_heads, d.kv_len, d.value_dim()}));
  KEEL_RETURN_IF_ERROR(require_product(op, "out", {d.batch, d.q_heads, d.q_len, d.value_dim()}));
  KEEL_RETURN_IF_ERROR(require_product(op, "scores", {d.batch, d.q_heads, d.q_len, d.kv_len}));
  if (d.q_type != dtype::f32 && d.q_type != dtype::s8) {
    return Status::make(status_code::unsupported, op, "Q dtype %s (must be f32 or s8)",
                        to_string(d.q_type).data());
  }
  if (d.kv_type != dtype::f32 && d.kv_type != dtype::s8) {
    return Status::make(status_code::unsupported, op, "K/V dtype %s (must be s8 or f32)",
                        to_string(d.kv_type).data());
  }
  if (d.out_type != dtype::f32 && d.out_type != dtype::s8) {
    return Status::make(status_code::unsupported, op, "output dtype %s (must be f32 or s8)",
                        to_string(d.out_type).data());
  }
  if (!(std::isfinite(d.softmax_scale) && d.softmax_scale >= 0.0f)) {
    return Status::make(status_code::invalid_argument, op,
                        "softmax scale %g (must be finite and >= 0; 0 selects 1/sqrt(head_dim))",
                        static_cast<double>(d.softmax_scale));
  }
  if (d.out_type == dtype::s8) {
    KEEL_RETURN_IF_ERROR(require_scale(op, "output scale", d.out_scale, /*divisor=*/true));
  }
  if (d.q_type == dtype::s8 && d.kv_type == dtype::s8 && d.head_dim > max_exact_k(128, 128)) {
    return Status::make(status_code::overflow, op,
                        "head_dim %lld exceeds %lld, the largest for which the int32 dot product "
                        "of s8 Q and K is exact",
                        static_cast<long long>(d.head_dim),
                        static_cast<long long>(max_exact_k(128, 128)));
  }
  if (d.mask == mask_kind::causal && d.causal_offset != attention_desc::kAlignEnd &&
      (d.causal_offset < -(std::int64_t{1} << 62) || d.causal_offset > (std::int64_t{1} << 62))) {
    return Status::make(status_code::invalid_argument, op, "causal offset %lld is out of range",
                        static_cast<long long>(d.causal_offset));
  }
  return Status::Ok();
}

inline Status validate(const attention_desc& d, const attention_args& a) {
  constexpr std::string_view op = "attention";
  using namespace detail;
  KEEL_RETURN_IF_ERROR(validate(d));
  const std::int64_t dv = d.value_dim();
  KEEL_RETURN_IF_ERROR(require_view(op, "Q", a.q, d.q_type, {d.batch, d.q_heads, d.q_len, d.head_dim}));
  KEEL_RETURN_IF_ERROR(require_view(op, "K", a.k, d.kv_type, {d.batch, d.kv_heads, d.kv_len, d.head_dim}));
  KEEL_RETURN_IF_ERROR(require_view(op, "V", a.v, d.kv_type, {d.batch, d.kv_heads, d.kv_len, dv}));
  KEEL_RETURN_IF_ERROR(require_view(op, "out", a.out, d.out_type, {d.batch, d.q_heads, d.q_len, dv}));
  if (d.q_type == dtype::s8) {
    const std::int64_t n = scale_entries(d.q_scale, d.batch, d.q_heads, d.q_len);
    KEEL_RETURN_IF_ERROR(require_count(op, "Q scale", a.q_scale, {n}));
    for (float s : a.q_scale) KEEL_RETURN_IF_ERROR(require_scale(op, "Q scale", s, false));
  }
  if (d.kv_type == dtype::s8) {
    const std::int64_t n = scale_entries(d.kv_scale, d.batch, d.kv_heads, d.kv_len);
    KEEL_RETURN_IF_ERROR(require_count(op, "K scale", a.k_scale, {n}));
    KEEL_RETURN_IF_ERROR(require_count(op, "V scale", a.v_scale, {n}));
    for (float s : a.k_scale) KEEL_RETURN_IF_ERROR(require_scale(op, "K scale", s, false));
    for (float s : a.v_scale) KEEL_RETURN_IF_ERROR(require_scale(op, "V scale", s, false));
  }
  if (d.mask == mask_kind::additive) {
    if (a.mask.rank != 4) {
      return Status::make(status_code::shape_mismatch, op,
                          "additive mask has rank %d (must be 4: [B|1, Hq|1, Sq, Skv])",
                          a.mask.rank);
    }
    const std::int64_t mb = a.mask.dim(0) == 1 ? 1 : d.batch;
    const std::int64_t mh = a.mask.dim(1) == 1 ? 1 : d.q_heads;
    KEEL_RETURN_IF_ERROR(require_view(op, "mask", a.mask, dtype::f32, {mb, mh, d.q_len, d.kv_len}));
  }
  return require_output(op, a.out, {{"Q", a.q}, {"K", a.k}, {"V", a.v}, {"mask", a.mask}});
}

// ============================================================================================
// quantize_linear / dequantize_linear / dynamic_quantize_linear (the ONNX definitions)
// ============================================================================================

// x and y have the same shape (rank 1..4). Per tensor when axis < 0 (one scale and zero point),
// per axis otherwise (one per index of that dimension).
struct quantize_desc {
  static constexpr op_kind kind = op_kind::quantize_linear;
  int axis = -1;
};
struct quantize_args {
  const_tensor_view x;                        // f32
  std::span<const float> scale;               // 1 or dim(axis) entries, each > 0
  std::span<const std::int32_t> zero_point;   // 0 (zero), or as many as the scales
  tensor_view y;                              // s8 or u8
};
struct dequantize_args {
  const_tensor_view x;                        // s8, u8 or s32
  std::span<const float> scale;               // 1 or dim(axis) entries, each >= 0
  std::span<const std::int32_t> zero_point;   // 0 or as many as the scales
  tensor_view y;                              // f32
};
struct dynamic_quantize_args {
  const_tensor_view x;  // f32, any shape
  tensor_view y;        // u8, same shape
  float* scale = nullptr;              // out: one f32
  std::uint8_t* zero_point = nullptr;  // out: one u8
};

namespace detail {
template <bool M1, bool M2>
Status require_same_shape(std::string_view op, const basic_tensor_view<M1>& x,
                          const basic_tensor_view<M2>& y) {
  if (x.rank < 1 || x.rank > kMaxRank) {
    return Status::make(status_code::invalid_argument, op, "x has rank %d (must be 1..4)", x.rank);
  }
  if (y.rank != x.rank) {
    return Status::make(status_code::shape_mismatch, op, "y has rank %d, x has rank %d", y.rank,
                        x.rank);
  }
  for (int i = 0; i < x.rank; ++i) {
    if (x.dim(i) < 0 || x.dim(i) != y.dim(i)) {
      return Status::make(status_code::shape_mismatch, op, "y dim %d is %lld, x dim %d is %lld",
                          i, static_cast<long long>(y.dim(i)), i,
                          static_cast<long long>(x.dim(i)));
    }
  }
  if (x.numel() < 0) {
    return Status::make(status_code::overflow, op, "the element count of x overflows int64");
  }
  return Status::Ok();
}

inline Status require_whole_view(std::string_view op, const char* name, const const_tensor_view& v,
                                 dtype t) {
  switch (v.rank) {
    case 1: return require_view(op, name, v, t, {v.dim(0)});
    case 2: return require_view(op, name, v, t, {v.dim(0), v.dim(1)});
    case 3: return require_view(op, name, v, t, {v.dim(0), v.dim(1), v.dim(2)});
    case 4: return require_view(op, name, v, t, {v.dim(0), v.dim(1), v.dim(2), v.dim(3)});
    default:
      return Status::make(status_code::invalid_argument, op, "%s has rank %d (must be 1..4)",
                          name, v.rank);
  }
}

template <class Args>
Status validate_linear_quant(std::string_view op, const quantize_desc& d, const Args& a,
                             dtype x_type_ok1, dtype x_type_ok2, dtype x_type_ok3,
                             bool scale_divides) {
  KEEL_RETURN_IF_ERROR(require_same_shape(op, a.x, a.y));
  if (a.x.type != x_type_ok1 && a.x.type != x_type_ok2 && a.x.type != x_type_ok3) {
    return Status::make(status_code::unsupported, op, "x dtype %s", to_string(a.x.type).data());
  }
  KEEL_RETURN_IF_ERROR(require_whole_view(op, "x", a.x, a.x.type));
  KEEL_RETURN_IF_ERROR(require_whole_view(op, "y", a.y, a.y.type));
  // Known gap: y overlapping x is not refused here (require_output is not called), unlike the
  // matmul, conv2d and attention ops: whether an exact in-place alias should be allowed for these
  // elementwise ops is undecided. A partial overlap gives order-dependent results.
  if (d.axis >= a.x.rank) {
    return Status::make(status_code::invalid_argument, op, "axis %d (x has rank %d)", d.axis,
                        a.x.rank);
  }
  const std::int64_t channels = d.axis < 0 ? 1 : a.x.dim(d.axis);
  KEEL_RETURN_IF_ERROR(require_count(op, "scale", a.scale, {channels}));
  KEEL_RETURN_IF_ERROR(require_count(op, "zero point", a.zero_point, {0, channels}));
  for (float s : a.scale) KEEL_RETURN_IF_ERROR(require_scale(op, "scale", s, scale_divides));
  return Status::Ok();
}
}  // namespace detail

inline Status validate(const quantize_desc& d, const quantize_args& a) {
  constexpr std::string_view op = "quantize_linear";
  KEEL_RETURN_IF_ERROR(detail::validate_linear_quant(op, d, a, dtype::f32, dtype::f32, dtype::f32,
                                                     /*scale_divides=*/true));
  if (!is_quantized_8bit(a.y.type)) {
    return Status::make(status_code::unsupported, op, "y dtype %s (must be s8 or u8)",
                        to_string(a.y.type).data());
  }
  for (std::int32_t z : a.zero_point) {
    KEEL_RETURN_IF_ERROR(detail::require_zero_point(op, "zero point", z, a.y.type));
  }
  return Status::Ok();
}

inline Status validate(const quantize_desc& d, const dequantize_args& a) {
  constexpr std::string_view op = "dequantize_linear";
  KEEL_RETURN_IF_ERROR(detail::validate_linear_quant(op, d, a, dtype::s8, dtype::u8, dtype::s32,
                                                     /*scale_divides=*/false));
  if (a.y.type != dtype::f32) {
    return Status::make(status_code::unsupported, op, "y dtype %s (must be f32)",
                        to_string(a.y.type).data());
  }
  for (std::int32_t z : a.zero_point) {
    KEEL_RETURN_IF_ERROR(detail::require_zero_point(op, "zero point", z, a.x.type));
  }
  return Status::Ok();
}

inline Status validate(const dynamic_quantize_args& a) {
  constexpr std::string_view op = "dynamic_quantize_linear";
  KEEL_RETURN_IF_ERROR(detail::require_same_shape(op, a.x, a.y));
  KEEL_RETURN_IF_ERROR(detail::require_whole_view(op, "x", a.x, dtype::f32));
  KEEL_RETURN_IF_ERROR(detail::require_whole_view(op, "y", a.y, dtype::u8));
  if (a.scale == nullptr || a.zero_point == nullptr) {
    return Status::make(status_code::invalid_argument, op, "scale or zero point output is null");
  }
  return Status::Ok();
}

}  // namespace keel
