// keel/backends/reference.hpp — the reference backend: the scalar oracle kernels behind the
// backend concept. It runs every op on every shape keel accepts, bit-exact by definition, and is
// the last candidate of every routing list. Slow on purpose: clarity over speed.
#pragma once

#include "keel/backend.hpp"
#include "keel/kernels/reference/attention.hpp"
#include "keel/kernels/reference/conv2d_i8.hpp"
#include "keel/kernels/reference/matmul_i4.hpp"
#include "keel/kernels/reference/matmul_i8.hpp"

namespace keel::backends {

class reference_backend {
 public:
  static constexpr backend_caps caps{
      .name = "reference",
      .kind = backend_kind::reference,
      .bit_exact = true,
      .ops = op_bit(op_kind::matmul_i8) | op_bit(op_kind::matmul_i4) |
             op_bit(op_kind::conv2d_i8) | op_bit(op_kind::attention) |
             op_bit(op_kind::quantize_linear) | op_bit(op_kind::dequantize_linear) |
             op_bit(op_kind::dynamic_quantize_linear),
      .weight_types = dtype_bit(dtype::s8) | dtype_bit(dtype::u8) | dtype_bit(dtype::s4) |
                      dtype_bit(dtype::u4),
  };

  // The reference keeps no copy: its "packed" weights are the caller's views, which must stay
  // alive and unchanged while the packed object is used. Faster backends own their packing.
  template <class Desc, class Args>
  struct packed_views {
    Desc desc{};
    Args weights{};  // only the weight fields are meaningful
  };
  using packed_matmul_i8 = packed_views<matmul_i8_desc, matmul_i8_args>;
  using packed_matmul_i4 = packed_views<matmul_i4_desc, matmul_i4_args>;
  using packed_conv2d = packed_views<conv2d_desc, conv2d_args>;

  Status supports(const matmul_i8_desc& d) const { return validate(d); }
  Status supports(const matmul_i4_desc& d) const { return validate(d); }
  Status supports(const conv2d_desc& d) const { return validate(d); }
  Status supports(const attention_desc& d) const { return validate(d); }

  Status run(const matmul_i8_desc& d, const matmul_i8_args& a) { return reference::matmul_i8(d, a); }
  Status run(const matmul_i4_desc& d, const matmul_i4_args& a) { return reference::matmul_i4(d, a); }
  Status run(const conv2d_desc& d, const conv2d_args& a) { return reference::conv2d_i8(d, a); }
  Status run(const attention_desc& d, const attention_args& a) { return reference::attention(d, a); }

  Result<packed_matmul_i8> pack(const matmul_i8_desc& d, const matmul_i8_args& a) {
    KEEL_RETURN_IF_ERROR(validate(d));
    matmul_i8_args w;
    w.b = a.b;
    w.b_scale = a.b_scale;
    w.b_zero_point = a.b_zero_point;
    w.bias = a.bias;
    return packed_matmul_i8{d, w};
  }
  Result<packed_matmul_i4> pack(const matmul_i4_desc& d, const matmul_i4_args& a) {
    KEEL_RETURN_IF_ERROR(validate(d));
    matmul_i4_args w;
    w.b = a.b;
    w.scale = a.scale;
    w.zero_point = a.zero_point;
    w.bias = a.bias;
    return packed_matmul_i4{d, w};
  }
  Result<packed_conv2d> pack(const conv2d_desc& d, const conv2d_args& a) {
    KEEL_RETURN_IF_ERROR(validate(d));
    conv2d_args w;
    w.weights = a.weights;
    w.w_scale = a.w_scale;
    w.w_zero_point = a.w_zero_point;
    w.bias = a.bias;
    return packed_conv2d{d, w};
  }

  Status run(const matmul_i8_desc& d, const packed_matmul_i8& p, const matmul_i8_args& a) {
    KEEL_RETURN_IF_ERROR(check_packed("matmul_i8", d.n == p.desc.n && d.k == p.desc.k &&
                                                       d.b_type == p.desc.b_type &&
                                                       d.b_batched == p.desc.b_batched));
    matmul_i8_args full = a;
    full.b = p.weights.b;
    full.b_scale = p.weights.b_scale;
    full.b_zero_point = p.weights.b_zero_point;
    full.bias = p.weights.bias;
    return run(d, full);
  }
  Status run(const matmul_i4_desc& d, const packed_matmul_i4& p, const matmul_i4_args& a) {
    KEEL_RETURN_IF_ERROR(check_packed("matmul_i4", d.n == p.desc.n && d.k == p.desc.k &&
                                                       d.b_type == p.desc.b_type &&
                                                       d.group_size == p.desc.group_size &&
                                                       d.scale_type == p.desc.scale_type));
    matmul_i4_args full = a;
    full.b = p.weights.b;
    full.scale = p.weights.scale;
    full.zero_point = p.weights.zero_point;
    full.bias = p.weights.bias;
    return run(d, full);
  }
  Status run(const conv2d_desc& d, const packed_conv2d& p, const conv2d_args& a) {
    KEEL_RETURN_IF_ERROR(check_packed(
        "conv2d_i8", d.out_c == p.desc.out_c && d.in_c == p.desc.in_c &&
                         d.kernel_h == p.desc.kernel_h && d.kernel_w == p.desc.kernel_w &&
                         d.groups == p.desc.groups && d.w_type == p.desc.w_type));
    conv2d_args full = a;
    full.weights = p.weights.weights;
    full.w_scale = p.weights.w_scale;
    full.w_zero_point = p.weights.w_zero_point;
    full.bias = p.weights.bias;
    return run(d, full);
  }

 private:
  static Status check_packed(const char* op, bool same) {
    if (same) return Status::Ok();
    return Status::make(status_code::shape_mismatch, op,
                        "the desc differs from the one the weights were packed for (weight "
                        "shape, dtype or grouping)");
  }
};

static_assert(backend<reference_backend>, "the reference backend must satisfy keel::backend");

}  // namespace keel::backends
