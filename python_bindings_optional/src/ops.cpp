// python_bindings_optional/src/ops.cpp — keel's ops on numpy arrays.
//
// Each function turns its Python arguments into the op's desc and args (keel/ops.hpp), runs it
// on the chosen backend or router with the GIL released, and returns the output array. The
// desc's sizes are read from the operands' shapes; keel's validate() then checks that every
// operand agrees with them, so a shape error reads the same as it does from C++.
#include <cmath>
#include <optional>

#include <nanobind/stl/optional.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>

#include "common.hpp"
#include "keel/kernels/reference/matmul_i4.hpp"
#include "keel/kernels/reference/quantize.hpp"
#include "system.hpp"

namespace keel::python {

namespace {

nb::module_ numpy() {
  return nb::module_::import_("numpy");
}

// A contiguous copy owned by a packed object.
nb::object owned_copy(nb::handle obj) {
  return numpy().attr("array")(obj, nb::arg("copy") = true, nb::arg("order") = "C");
}

void require_rank_in(std::string_view op, const char* name, const input& in, int lo, int hi,
                     const char* layout) {
  if (in.ndim() < lo || in.ndim() > hi) {
    fail(status_code::shape_mismatch, op, "%s has rank %d (must be %s)", name, in.ndim(), layout);
  }
}

template <class T>
std::span<const T> span_of(const std::vector<T>& v) {
  return {v.data(), v.size()};
}

// ---- matmul_i8 ----------------------------------------------------------------------------

nb::object matmul_i8(nb::handle a_obj, nb::handle b_obj, nb::handle a_zero_point, double a_scale,
                     nb::handle b_scale, nb::handle b_zero_point, nb::handle bias,
                     nb::handle out_dtype, double out_scale, nb::handle out_zero_point,
                     nb::handle clamp_min, nb::handle clamp_max, std::string_view requant,
                     nb::handle out, nb::handle backend) {
  constexpr std::string_view op = "matmul_i8";
  const input a = as_input(a_obj, op, "A");
  require_rank_in(op, "A", a, 2, 3, "2: [M, K], or 3: [batch, M, K]");
  const bool batched = a.ndim() == 3;

  matmul_i8_desc d;
  matmul_i8_args args;
  d.a_type = a.view.type;
  d.batch = batched ? a.dim(0) : 1;
  d.m = a.dim(a.ndim() - 2);
  d.k = a.dim(a.ndim() - 1);
  d.a_zero_point = as_int32(a_zero_point, 0, op, "A zero point");
  d.a_scale = static_cast<float>(a_scale);
  args.a = a.view;

  packed_matmul_i8* packed = nullptr;
  nb::try_cast<packed_matmul_i8*>(b_obj, packed);
  input b;
  std::vector<float> scales;
  std::vector<std::int32_t> zero_points, biases;
  if (packed != nullptr) {
    if (!b_scale.is_none() || !b_zero_point.is_none() || !bias.is_none()) {
      fail(status_code::invalid_argument, op,
           "b_scale, b_zero_point and bias come with packed weights (pass them to "
           "pack_matmul_i8)");
    }
    d.n = packed->desc.n;
    d.b_type = packed->desc.b_type;
    d.b_batched = packed->desc.b_batched;
  } else {
    b = as_input(b_obj, op, "B");
    require_rank_in(op, "B", b, 2, 3, "2: [K, N], or 3: [batch, K, N]");
    d.b_type = b.view.type;
    d.b_batched = b.ndim() == 3;
    d.n = b.dim(b.ndim() - 1);
    args.b = b.view;
    scales = as_float_list(b_scale, op, "b_scale");
    zero_points = as_int32_list(b_zero_point, op, "b_zero_point");
    biases = as_int32_list(bias, op, "bias");
    args.b_scale = span_of(scales);
    args.b_zero_point = span_of(zero_points);
    args.bias = span_of(biases);
  }

  const std::int64_t shape3[] = {d.batch, d.m, d.n};
  const std::span<const std::int64_t> shape = batched
                                                  ? std::span<const std::int64_t>(shape3, 3)
                                                  : std::span<const std::int64_t>(shape3 + 1, 2);
  const dtype default_out =
      out_dtype.is_none() ? dtype::s32 : parse_dtype(out_dtype, op, "out_dtype");
  output o = make_output(out, shape, default_out, op);
  const dtype out_type = (out_dtype.is_none() && !out.is_none()) ? o.view.type : default_out;
  d.out = make_output_quant(out_type, out_scale, out_zero_point, clamp_min, clamp_max, requant, op);
  args.out = o.view;

  if (packed != nullptr) {
    check(run_packed(*packed, d, args));
  } else {
    check(run(parse_runner(backend, op), d, args));
  }
  return o.owner;
}

packed_matmul_i8* pack_matmul_i8(nb::handle b_obj, nb::handle b_scale, nb::handle b_zero_point,
                                 nb::handle bias, nb::handle out_dtype, nb::handle backend) {
  constexpr std::string_view op = "matmul_i8";
  const backend_id id = parse_backend(backend, op);
  auto p = std::make_unique<packed_matmul_i8>();
  p->b_copy = owned_copy(as_input(b_obj, op, "B").owner);
  const input b = as_input(p->b_copy, op, "B");
  require_rank_in(op, "B", b, 2, 3, "2: [K, N], or 3: [batch, K, N]");
  matmul_i8_desc& d = p->desc;
  d.b_type = b.view.type;
  d.b_batched = b.ndim() == 3;
  d.batch = d.b_batched ? b.dim(0) : 1;
  d.k = b.dim(b.ndim() - 2);
  d.n = b.dim(b.ndim() - 1);
  d.m = 1;  // any valid M: packing reads only the weight side
  p->scale = as_float_list(b_scale, op, "b_scale");
  p->zero_point = as_int32_list(b_zero_point, op, "b_zero_point");
  p->bias = as_int32_list(bias, op, "bias");
  // The output the weights will serve (a backend may pack per output kind; an NPU may lack
  // some): by default f32 when scales are given, s32 otherwise.
  d.out.type = out_dtype.is_none() ? (p->scale.empty() ? dtype::s32 : dtype::f32)
                                   : parse_dtype(out_dtype, op, "out_dtype");
  matmul_i8_args args;
  args.b = b.view;
  args.b_scale = span_of(p->scale);
  args.b_zero_point = span_of(p->zero_point);
  args.bias = span_of(p->bias);
  check(pack(id, *p, args));
  return p.release();
}

// ---- matmul_i4 ----------------------------------------------------------------------------

i4_activation parse_activation(std::string_view s) {
  if (s == "f32") return i4_activation::f32;
  if (s == "dynamic_s8") return i4_activation::dynamic_s8;
  fail(status_code::invalid_argument, "matmul_i4",
       "activation = '%.*s' (must be 'f32' or 'dynamic_s8')", static_cast<int>(s.size()), s.data());
}

dtype parse_int4_dtype(nb::handle h, std::string_view op) {
  const dtype t = parse_dtype(h, op, "weight dtype");
  if (!is_4bit(t)) {
    fail(status_code::unsupported, op, "weight dtype %s (must be 's4' or 'u4')",
         to_string(t).data());
  }
  return t;
}

nb::object matmul_i4(nb::handle a_obj, nb::handle b_obj, nb::handle scale, nb::handle zero_point,
                     nb::handle bias, nb::handle weight_dtype, std::int64_t group_size,
                     std::string_view activation, nb::handle out, nb::handle backend) {
  constexpr std::string_view op = "matmul_i4";
  const input a = as_input(a_obj, op, "A");
  require_rank_in(op, "A", a, 2, 3, "2: [M, K], or 3: [batch, M, K]");
  const bool batched = a.ndim() == 3;

  matmul_i4_desc d;
  matmul_i4_args args;
  d.batch = batched ? a.dim(0) : 1;
  d.m = a.dim(a.ndim() - 2);
  d.k = a.dim(a.ndim() - 1);
  d.activation = parse_activation(activation);
  args.a = a.view;

  packed_matmul_i4* packed = nullptr;
  nb::try_cast<packed_matmul_i4*>(b_obj, packed);
  input b, s, z;
  std::vector<float> biases;
  if (packed != nullptr) {
    if (!scale.is_none() || !zero_point.is_none() || !bias.is_none()) {
      fail(status_code::invalid_argument, op,
           "scale, zero_point and bias come with packed weights (pass them to pack_matmul_i4)");
    }
    d.n = packed->desc.n;
    d.b_type = packed->desc.b_type;
    d.group_size = packed->desc.group_size;
    d.scale_type = packed->desc.scale_type;
  } else {
    d.b_type = parse_int4_dtype(weight_dtype, op);
    d.group_size = group_size;
    b = as_int4_input(b_obj, d.b_type, d.k, op, "B");
    if (b.ndim() != 2) {
      fail(status_code::shape_mismatch, op, "B has rank %d (must be 2: [N, ceil(K/2)] bytes)",
           b.ndim());
    }
    d.n = b.dim(0);
    s = as_input(scale, op, "scale");
    d.scale_type = s.view.type;
    z = as_optional_input(zero_point, op, "zero point");
    biases = as_float_list(bias, op, "bias");
    args.b = b.view;
    args.scale = s.view;
    args.zero_point = z.view;
    args.bias = span_of(biases);
  }

  const std::int64_t shape3[] = {d.batch, d.m, d.n};
  const std::span<const std::int64_t> shape = batched
                                                  ? std::span<const std::int64_t>(shape3, 3)
                                                  : std::span<const std::int64_t>(shape3 + 1, 2);
  output o = make_output(out, shape, dtype::f32, op);
  args.out = o.view;

  if (packed != nullptr) {
    check(run_packed(*packed, d, args));
  } else {
    check(run(parse_runner(backend, op), d, args));
  }
  return o.owner;
}

packed_matmul_i4* pack_matmul_i4(nb::handle b_obj, std::optional<std::int64_t> k, nb::handle scale,
                                 nb::handle zero_point, nb::handle bias, nb::handle weight_dtype,
                                 std::int64_t group_size, nb::handle backend) {
  constexpr std::string_view op = "matmul_i4";
  const backend_id id = parse_backend(backend, op);
  auto p = std::make_unique<packed_matmul_i4>();
  matmul_i4_desc& d = p->desc;
  d.b_type = parse_int4_dtype(weight_dtype, op);
  d.group_size = group_size;
  p->b_copy = owned_copy(as_input(b_obj, op, "B").owner);
  const input b = as_int4_input(p->b_copy, d.b_type, k.value_or(-1), op, "B");
  if (b.ndim() != 2) {
    fail(status_code::shape_mismatch, op, "B has rank %d (must be 2: [N, ceil(K/2)] bytes)",
         b.ndim());
  }
  d.n = b.dim(0);
  d.k = b.dim(1);
  d.m = 1;  // any valid M: packing reads only the weight side
  p->scale_copy = owned_copy(as_input(scale, op, "scale").owner);
  const input s = as_input(p->scale_copy, op, "scale");
  d.scale_type = s.view.type;
  input z;
  if (!zero_point.is_none()) {
    p->zero_point_copy = owned_copy(as_input(zero_point, op, "zero point").owner);
    z = as_input(p->zero_point_copy, op, "zero point");
  }
  p->bias = as_float_list(bias, op, "bias");
  matmul_i4_args args;
  args.b = b.view;
  args.scale = s.view;
  args.zero_point = z.view;
  args.bias = span_of(p->bias);
  // pack() validates the desc; the weight views are checked here, as run() would.
  check(detail::require_view(op, "B", args.b, d.b_type, {d.n, d.k}));
  check(detail::require_view(op, "scale", args.scale, d.scale_type, {d.n, d.groups()}));
  if (z.present()) {
    if (d.b_type != dtype::u4) {
      fail(status_code::invalid_argument, op,
           "zero points given for s4 weights (s4 is symmetric; use u4)");
    }
    check(detail::require_view(op, "zero point", args.zero_point, dtype::u8, {d.n, d.groups()}));
  }
  check(detail::require_count(op, "bias", args.bias, {0, d.n}));
  check(pack(id, *p, args));
  return p.release();
}

// ---- conv2d_i8 ----------------------------------------------------------------------------

// An int or a pair (h, w).
void parse_pair(nb::handle h, std::string_view op, const char* name, std::int64_t& a,
                std::int64_t& b) {
  std::int64_t v = 0;
  if (nb::try_cast<std::int64_t>(h, v)) {
    a = b = v;
    return;
  }
  nb::tuple t;
  try {
    t = nb::tuple(h);
  } catch (const nb::python_error&) {
    fail(status_code::invalid_argument, op, "%s = %s (must be an int or a pair)", name,
         nb::repr(h).c_str());
  }
  if (t.size() != 2 || !nb::try_cast<std::int64_t>(t[0], a) ||
      !nb::try_cast<std::int64_t>(t[1], b)) {
    fail(status_code::invalid_argument, op, "%s = %s (must be an int or a pair)", name,
         nb::repr(h).c_str());
  }
}

void parse_padding(nb::handle h, conv2d_desc& d) {
  constexpr std::string_view op = "conv2d_i8";
  if (nb::isinstance<nb::str>(h)) {
    const std::string s = nb::cast<std::string>(h);
    if (s == "valid") return;
    if (s == "same" || s == "same_upper") {
      d.padding = padding_mode::same_upper;
      return;
    }
    if (s == "same_lower") {
      d.padding = padding_mode::same_lower;
      return;
    }
    fail(status_code::invalid_argument, op,
         "padding '%s' (must be 'valid', 'same', 'same_upper', 'same_lower', an int, (h, w) or "
         "(top, bottom, left, right))",
         s.c_str());
  }
  std::int64_t v = 0;
  if (nb::try_cast<std::int64_t>(h, v)) {
    d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = v;
    return;
  }
  nb::tuple t;
  try {
    t = nb::tuple(h);
  } catch (const nb::python_error&) {
    t = nb::tuple();
  }
  std::int64_t p[4] = {};
  bool ok = t.size() == 2 || t.size() == 4;
  for (std::size_t i = 0; ok && i < t.size(); ++i) ok = nb::try_cast<std::int64_t>(t[i], p[i]);
  if (!ok) {
    fail(status_code::invalid_argument, op,
         "padding %s (must be 'valid', 'same', 'same_upper', 'same_lower', an int, (h, w) or "
         "(top, bottom, left, right))",
         nb::repr(h).c_str());
  }
  if (t.size() == 2) {
    d.pad_top = d.pad_bottom = p[0];
    d.pad_left = d.pad_right = p[1];
  } else {
    d.pad_top = p[0];
    d.pad_bottom = p[1];
    d.pad_left = p[2];
    d.pad_right = p[3];
  }
}

nb::object conv2d_i8(nb::handle x_obj, nb::handle w_obj, nb::handle stride, nb::handle dilation,
                     nb::handle padding, std::int64_t groups, nb::handle in_zero_point,
                     double in_scale, nb::handle w_scale, nb::handle w_zero_point, nb::handle bias,
                     nb::handle out_dtype, double out_scale, nb::handle out_zero_point,
                     nb::handle clamp_min, nb::handle clamp_max, std::string_view requant,
                     nb::handle out, nb::handle backend) {
  constexpr std::string_view op = "conv2d_i8";
  const input x = as_input(x_obj, op, "input");
  require_rank_in(op, "input", x, 4, 4, "4: [N, H, W, C_in]");
  const input w = as_input(w_obj, op, "weights");
  require_rank_in(op, "weights", w, 4, 4, "4: [C_out, KH, KW, C_in / groups]");

  conv2d_desc d;
  d.batch = x.dim(0);
  d.in_h = x.dim(1);
  d.in_w = x.dim(2);
  d.in_c = x.dim(3);
  d.out_c = w.dim(0);
  d.kernel_h = w.dim(1);
  d.kernel_w = w.dim(2);
  parse_pair(stride, op, "stride", d.stride_h, d.stride_w);
  parse_pair(dilation, op, "dilation", d.dilation_h, d.dilation_w);
  parse_padding(padding, d);
  d.groups = groups;
  d.in_type = x.view.type;
  d.w_type = w.view.type;
  d.in_zero_point = as_int32(in_zero_point, 0, op, "input zero point");
  d.in_scale = static_cast<float>(in_scale);

  const dtype default_out =
      out_dtype.is_none() ? dtype::s32 : parse_dtype(out_dtype, op, "out_dtype");
  // The output shape needs a valid geometry; validate(desc) reports anything else.
  const Result<conv2d_geometry> g = conv2d_output_geometry(d);
  check(g.status());
  const std::int64_t shape[] = {d.batch, g->out_h, g->out_w, d.out_c};
  output o = make_output(out, shape, default_out, op);
  const dtype out_type = (out_dtype.is_none() && !out.is_none()) ? o.view.type : default_out;
  d.out = make_output_quant(out_type, out_scale, out_zero_point, clamp_min, clamp_max, requant, op);

  const std::vector<float> scales = as_float_list(w_scale, op, "w_scale");
  const std::vector<std::int32_t> zero_points = as_int32_list(w_zero_point, op, "w_zero_point");
  const std::vector<std::int32_t> biases = as_int32_list(bias, op, "bias");
  conv2d_args args;
  args.input = x.view;
  args.weights = w.view;
  args.w_scale = span_of(scales);
  args.w_zero_point = span_of(zero_points);
  args.bias = span_of(biases);
  args.out = o.view;
  check(run(parse_runner(backend, op), d, args));
  return o.owner;
}

// ---- attention ----------------------------------------------------------------------------

// A scale operand and the granularity its shape implies: a scalar (per tensor), [heads] (per
// head) or [batch, heads, seq] (per token).
struct scale_operand {
  std::vector<float> values;
  scale_granularity granularity = scale_granularity::per_tensor;
  bool given = false;
};

scale_operand parse_scale(nb::handle h, const char* name) {
  constexpr std::string_view op = "attention";
  scale_operand s;
  if (h.is_none()) return s;
  s.given = true;
  const nb::object arr = numpy().attr("asarray")(h);
  const int ndim = nb::cast<int>(arr.attr("ndim"));
  const auto size = nb::cast<std::int64_t>(arr.attr("size"));
  if (ndim == 0 || (ndim == 1 && size == 1)) {
    s.granularity = scale_granularity::per_tensor;
  } else if (ndim == 1) {
    s.granularity = scale_granularity::per_head;
  } else if (ndim == 3) {
    s.granularity = scale_granularity::per_token;
  } else {
    fail(status_code::shape_mismatch, op,
         "%s has rank %d (must be a scalar, [heads] or [batch, heads, seq])", name, ndim);
  }
  s.values = as_float_list(arr, op, name);
  return s;
}

nb::object attention(nb::handle q_obj, nb::handle k_obj, nb::handle v_obj, nb::handle q_scale,
                     nb::handle k_scale, nb::handle v_scale, double softmax_scale, bool causal,
                     std::optional<std::int64_t> causal_offset, nb::handle mask,
                     nb::handle out_dtype, double out_scale, nb::handle out, nb::handle backend) {
  constexpr std::string_view op = "attention";
  const input q = as_input(q_obj, op, "Q");
  const input k = as_input(k_obj, op, "K");
  const input v = as_input(v_obj, op, "V");
  require_rank_in(op, "Q", q, 4, 4, "4: [B, Hq, Sq, D]");
  require_rank_in(op, "K", k, 4, 4, "4: [B, Hkv, Skv, D]");
  require_rank_in(op, "V", v, 4, 4, "4: [B, Hkv, Skv, Dv]");

  attention_desc d;
  d.batch = q.dim(0);
  d.q_heads = q.dim(1);
  d.q_len = q.dim(2);
  d.head_dim = q.dim(3);
  d.kv_heads = k.dim(1);
  d.kv_len = k.dim(2);
  d.v_head_dim = v.dim(3);
  d.q_type = q.view.type;
  d.kv_type = k.view.type;
  d.softmax_scale = static_cast<float>(softmax_scale);
  d.out_type = out_dtype.is_none() ? dtype::f32 : parse_dtype(out_dtype, op, "out_dtype");
  d.out_scale = static_cast<float>(out_scale);

  const scale_operand qs = parse_scale(q_scale, "q_scale");
  const scale_operand ks = parse_scale(k_scale, "k_scale");
  const scale_operand vs = parse_scale(v_scale, "v_scale");
  if (ks.given && vs.given && ks.granularity != vs.granularity) {
    fail(status_code::invalid_argument, op,
         "k_scale and v_scale have different granularities (keel takes one for K and V)");
  }
  d.q_scale = qs.granularity;
  d.kv_scale = ks.given ? ks.granularity : vs.granularity;
  if (d.q_type == dtype::s8 && !qs.given) {
    fail(status_code::invalid_argument, op, "Q is int8 and q_scale is missing");
  }
  if (d.kv_type == dtype::s8 && (!ks.given || !vs.given)) {
    fail(status_code::invalid_argument, op, "K/V are int8 and k_scale or v_scale is missing");
  }

  input m = as_optional_input(mask, op, "mask");
  if (m.present() && causal) {
    fail(status_code::invalid_argument, op, "causal=True and an additive mask: give one of them");
  }
  if (causal_offset.has_value() && !causal) {
    fail(status_code::invalid_argument, op, "causal_offset is given without causal=True");
  }
  d.mask = m.present() ? mask_kind::additive : (causal ? mask_kind::causal : mask_kind::none);
  if (causal_offset.has_value()) d.causal_offset = *causal_offset;

  const std::int64_t shape[] = {d.batch, d.q_heads, d.q_len, d.value_dim()};
  output o = make_output(out, shape, d.out_type, op);

  attention_args args;
  args.q = q.view;
  args.k = k.view;
  args.v = v.view;
  args.q_scale = span_of(qs.values);
  args.k_scale = span_of(ks.values);
  args.v_scale = span_of(vs.values);
  args.mask = m.view;
  args.out = o.view;
  check(run(parse_runner(backend, op), d, args));
  return o.owner;
}

// ---- quantize ops -------------------------------------------------------------------------

// Python's axis (None: per tensor; negative counts from the end) as keel's (-1: per tensor).
int keel_axis(std::optional<int> axis, int rank, std::string_view op) {
  if (!axis.has_value()) return -1;
  const int a = *axis < 0 ? *axis + rank : *axis;
  if (a < 0 || a >= rank) {
    fail(status_code::invalid_argument, op, "axis %d (x has rank %d)", *axis, rank);
  }
  return a;
}

std::span<const std::int64_t> shape_of(const input& in) {
  return {in.view.shape.data(), static_cast<std::size_t>(in.view.rank)};
}

template <class Call>
Status without_gil(Call&& call) {
  nb::gil_scoped_release unlocked;
  return call();
}

nb::object quantize_linear(nb::handle x_obj, nb::handle scale, nb::handle zero_point,
                           std::optional<int> axis, nb::handle out_dtype, nb::handle out) {
  constexpr std::string_view op = "quantize_linear";
  const input x = as_input(x_obj, op, "x");
  quantize_desc d;
  d.axis = keel_axis(axis, x.ndim(), op);
  const dtype yt = parse_dtype(out_dtype, op, "dtype");
  output y = make_output(out, shape_of(x), yt, op);
  const std::vector<float> scales = as_float_list(scale, op, "scale");
  const std::vector<std::int32_t> zps = as_int32_list(zero_point, op, "zero point");
  quantize_args a;
  a.x = x.view;
  a.scale = span_of(scales);
  a.zero_point = span_of(zps);
  a.y = y.view;
  check(without_gil([&] { return reference::quantize_linear(d, a); }));
  return y.owner;
}

nb::object dequantize_linear(nb::handle x_obj, nb::handle scale, nb::handle zero_point,
                             std::optional<int> axis, nb::handle out) {
  constexpr std::string_view op = "dequantize_linear";
  const input x = as_input(x_obj, op, "x");
  quantize_desc d;
  d.axis = keel_axis(axis, x.ndim(), op);
  output y = make_output(out, shape_of(x), dtype::f32, op);
  const std::vector<float> scales = as_float_list(scale, op, "scale");
  const std::vector<std::int32_t> zps = as_int32_list(zero_point, op, "zero point");
  dequantize_args a;
  a.x = x.view;
  a.scale = span_of(scales);
  a.zero_point = span_of(zps);
  a.y = y.view;
  check(without_gil([&] { return reference::dequantize_linear(d, a); }));
  return y.owner;
}

nb::tuple dynamic_quantize_linear(nb::handle x_obj, nb::handle out) {
  constexpr std::string_view op = "dynamic_quantize_linear";
  const input x = as_input(x_obj, op, "x");
  output y = make_output(out, shape_of(x), dtype::u8, op);
  float scale = 0.0f;
  std::uint8_t zero_point = 0;
  dynamic_quantize_args a;
  a.x = x.view;
  a.y = y.view;
  a.scale = &scale;
  a.zero_point = &zero_point;
  check(without_gil([&] { return reference::dynamic_quantize_linear(a); }));
  return nb::make_tuple(y.owner, nb::cast(numpy().attr("float32")(scale)),
                        static_cast<int>(zero_point));
}

nb::tuple quantize_rows_s8(nb::handle x_obj) {
  constexpr std::string_view op = "quantize_rows_s8";
  const input x = as_input(x_obj, op, "x");
  require_rank_in(op, "x", x, 2, 2, "2: [rows, K]");
  check(detail::require_view(op, "x", x.view, dtype::f32, {x.dim(0), x.dim(1)}));
  const std::int64_t rows = x.dim(0), k = x.dim(1);
  const std::int64_t qshape[] = {rows, k};
  const std::int64_t sshape[] = {rows};
  output q = make_output(nb::none(), qshape, dtype::s8, op);
  output s = make_output(nb::none(), sshape, dtype::f32, op);
  check(without_gil([&]() -> Status {
    for (std::int64_t r = 0; r < rows; ++r) {
      const float* row = x.view.at<float>(r * x.view.stride(0));
      for (std::int64_t i = 0; i < k; ++i) {
        if (!std::isfinite(row[i * x.view.stride(1)])) {
          return Status::make(status_code::invalid_argument, "quantize_rows_s8",
                              "x[%lld, %lld] is not finite (the row scale would be meaningless)",
                              static_cast<long long>(r), static_cast<long long>(i));
        }
      }
    }
    for (std::int64_t r = 0; r < rows; ++r) {
      *s.view.at<float>(r) =
          reference::quantize_row_s8_symmetric(x.view.at<float>(r * x.view.stride(0)),
                                               x.view.stride(1), k, q.view.at<std::int8_t>(r * k));
    }
    return Status::Ok();
  }));
  return nb::make_tuple(q.owner, s.owner);
}

// ---- int4 storage -------------------------------------------------------------------------

nb::object pack_int4(nb::handle values, nb::handle weight_dtype) {
  constexpr std::string_view op = "pack_int4";
  const dtype t = parse_int4_dtype(weight_dtype, op);
  // Widen to int32 rows (a copy: the values are about to be repacked anyway).
  nb::object v32 = numpy().attr("ascontiguousarray")(values, nb::arg("dtype") = "int32");
  const input v = as_input(v32, op, "values");
  if (v.ndim() < 1 || v.ndim() > 3) {
    fail(status_code::shape_mismatch, op, "values has rank %d (must be 1 to 3, K last)", v.ndim());
  }
  const std::int64_t k = v.dim(v.ndim() - 1);
  const std::int64_t rows = v.view.numel() / (k > 0 ? k : 1);
  std::int64_t out_shape[4] = {};
  for (int i = 0; i < v.ndim(); ++i) out_shape[i] = v.dim(i);
  out_shape[v.ndim() - 1] = (k + 1) / 2;
  output o =
      make_output(nb::none(), std::span<const std::int64_t>(out_shape, v.ndim()), dtype::u8, op);
  const std::int32_t* src = v.view.at<std::int32_t>(0);
  for (std::int64_t i = 0; i < rows * k; ++i) {
    if (src[i] < min_of(t) || src[i] > max_of(t)) {
      fail(status_code::invalid_argument, op, "values[%lld] = %d is outside the %s range [%d, %d]",
           static_cast<long long>(i), src[i], to_string(t).data(), min_of(t), max_of(t));
    }
  }
  auto* dst = static_cast<std::uint8_t*>(o.view.data);
  const std::int64_t row_bytes = (k + 1) / 2;
  for (std::int64_t r = 0; r < rows; ++r) {
    std::uint8_t* row = dst + r * row_bytes;
    row[row_bytes - 1] = 0;  // an odd K leaves the last high nibble zero
    for (std::int64_t i = 0; i < k; ++i) store_nibble(row, i, src[r * k + i]);
  }
  return o.owner;
}

nb::object unpack_int4(nb::handle packed, std::optional<std::int64_t> k, nb::handle weight_dtype) {
  constexpr std::string_view op = "unpack_int4";
  const dtype t = parse_int4_dtype(weight_dtype, op);
  const input b = as_int4_input(packed, t, k.value_or(-1), op, "packed");
  std::int64_t shape[4] = {};
  for (int i = 0; i < b.ndim(); ++i) shape[i] = b.dim(i);
  output o = make_output(nb::none(), std::span<const std::int64_t>(shape, b.ndim()),
                         t == dtype::s4 ? dtype::s8 : dtype::u8, op);
  const std::int64_t kk = b.dim(b.ndim() - 1);
  const std::int64_t rows = kk > 0 ? b.view.numel() / kk : 0;
  // Row r of the (up to 3-D) view: its nibble offset through the view's strides.
  for (std::int64_t r = 0; r < rows; ++r) {
    std::int64_t rem = r, off = 0;
    for (int i = b.ndim() - 2; i >= 0; --i) {
      off += (rem % b.dim(i)) * b.view.stride(i);
      rem /= b.dim(i);
    }
    const auto* bytes = static_cast<const std::uint8_t*>(b.view.data) + off / 2;
    for (std::int64_t i = 0; i < kk; ++i) {
      const std::int32_t n = load_nibble(bytes, i, t);
      if (t == dtype::s4) {
        *o.view.at<std::int8_t>(r * kk + i) = static_cast<std::int8_t>(n);
      } else {
        *o.view.at<std::uint8_t>(r * kk + i) = static_cast<std::uint8_t>(n);
      }
    }
  }
  return o.owner;
}

}  // namespace

// ---- Python surface -------------------------------------------------------------------------

void bind_ops(nb::module_& m) {
  using nb::arg;
  const auto none = nb::none();

  nb::class_<packed_matmul_i8>(
      m, "PackedMatmulI8",
      "int8 matmul weights packed once by one backend (keel.pack_matmul_i8). Pass it as B to\n"
      "keel.matmul_i8; it owns a copy of the weights, so the caller's arrays may change.")
      .def_prop_ro(
          "k", [](const packed_matmul_i8& p) { return p.desc.k; }, "Reduction length K.")
      .def_prop_ro(
          "n", [](const packed_matmul_i8& p) { return p.desc.n; }, "Output columns N.")
      .def_prop_ro(
          "weight_dtype",
          [](const packed_matmul_i8& p) { return std::string(to_string(p.desc.b_type)); },
          "'s8' or 'u8'.")
      .def_prop_ro(
          "backend", [](const packed_matmul_i8& p) { return std::string(backend_name(p.backend)); },
          "The backend that packed it, and the one that runs it.")
      .def_prop_ro(
          "weights", [](const packed_matmul_i8& p) { return p.b_copy; },
          "The weights as packed ([K, N] or [batch, K, N]), read-only by convention.")
      .def("__repr__", [](const packed_matmul_i8& p) {
        return "keel.PackedMatmulI8(k=" + std::to_string(p.desc.k) +
               ", n=" + std::to_string(p.desc.n) + ", weight_dtype='" +
               std::string(to_string(p.desc.b_type)) + "', backend='" +
               std::string(backend_name(p.backend)) + "')";
      });

  nb::class_<packed_matmul_i4>(
      m, "PackedMatmulI4",
      "int4 matmul weights packed once by one backend (keel.pack_matmul_i4). Pass it as B to\n"
      "keel.matmul_i4; it owns a copy of the weights, scales and zero points.")
      .def_prop_ro(
          "k", [](const packed_matmul_i4& p) { return p.desc.k; }, "Reduction length K.")
      .def_prop_ro(
          "n", [](const packed_matmul_i4& p) { return p.desc.n; }, "Output columns N.")
      .def_prop_ro(
          "group_size", [](const packed_matmul_i4& p) { return p.desc.group_size; },
          "Elements of K per scale.")
      .def_prop_ro(
          "weight_dtype",
          [](const packed_matmul_i4& p) { return std::string(to_string(p.desc.b_type)); },
          "'s4' or 'u4'.")
      .def_prop_ro(
          "backend", [](const packed_matmul_i4& p) { return std::string(backend_name(p.backend)); },
          "The backend that packed it, and the one that runs it.")
      .def("__repr__", [](const packed_matmul_i4& p) {
        return "keel.PackedMatmulI4(k=" + std::to_string(p.desc.k) +
               ", n=" + std::to_string(p.desc.n) +
               ", group_size=" + std::to_string(p.desc.group_size) + ", weight_dtype='" +
               std::string(to_string(p.desc.b_type)) + "', backend='" +
               std::string(backend_name(p.backend)) + "')";
      });

  m.def("matmul_i8", &matmul_i8, arg("a").none(), arg("b").none(), nb::kw_only(),
        arg("a_zero_point") = 0, arg("a_scale") = 1.0, arg("b_scale") = none,
        arg("b_zero_point") = none, arg("bias") = none, arg("out_dtype") = none,
        arg("out_scale") = 1.0, arg("out_zero_point") = none, arg("clamp_min") = none,
        arg("clamp_max") = none, arg("requant") = "fixed_point", arg("out") = none,
        arg("backend") = none,
        R"(int8 matrix multiply:
out[b, m, n] = stage(sum_k (A[b,m,k] - za) * (B[b?,k,n] - zb[n]) + bias[n]).

A is int8 or uint8, [M, K] or [batch, M, K]; B is int8 or uint8, [K, N] (shared by every batch)
or [batch, K, N], or a PackedMatmulI8. The int32 sum is exact; the bias is added with saturation.
b_scale (1 or N), b_zero_point (none, 1 or N) and bias (none or N, int32) are per column.
out_dtype selects the output stage: int32 (the accumulator, the default), float32
(float(acc) * (a_scale * b_scale[n])), or int8/uint8 (requantized with out_scale,
out_zero_point, the clamp and requant = 'fixed_point' (TFLite) or 'float_scale' (ONNX)).
Arrays are read through their strides without copying; `out` is written in place when given.
backend: a name from keel.backends(), 'auto' (None), or a keel.Router. Raises keel.KeelError
with keel's Status text on bad input, having written nothing.)");

  m.def(
      "pack_matmul_i8", &pack_matmul_i8, arg("b").none(), nb::kw_only(), arg("b_scale") = none,
      arg("b_zero_point") = none, arg("bias") = none, arg("out_dtype") = none,
      arg("backend") = none, nb::rv_policy::take_ownership,
      R"(Packs int8 matmul weights B ([K, N] or [batch, K, N], int8 or uint8) with their per-column
scales, zero points and int32 bias into the backend's layout, once. out_dtype names the output
the weights will mostly serve (default float32 with b_scale, int32 without; a backend may check
that it can produce it). Returns a PackedMatmulI8 for keel.matmul_i8.)");

  m.def("matmul_i4", &matmul_i4, arg("a").none(), arg("b").none(), nb::kw_only(),
        arg("scale") = none, arg("zero_point") = none, arg("bias") = none,
        arg("weight_dtype") = "s4", arg("group_size") = 32, arg("activation") = "f32",
        arg("out") = none, arg("backend") = none,
        R"(int4-weight matrix multiply:
out[b, m, n] = sum_g s[n,g] * sum_{k in g} A'[b,m,k] * (W[n,k] - z[n,g]) + bias[n].

A is float32 [M, K] or [batch, M, K]. B is the packed int4 weights, uint8 [N, ceil(K/2)] (two
elements a byte, low nibble first: keel.pack_int4), or a PackedMatmulI4. scale is float32 or
float16 [N, groups] with groups = ceil(K / group_size); group_size is a power of two in
[16, 256] or K. weight_dtype 's4' (symmetric) or 'u4' (zero_point: uint8 [N, groups], default 8).
activation 'f32' (weights dequantized on the fly) or 'dynamic_s8' (each row of A quantized to
int8 symmetrically, exact int32 group sums). bias: float32, none or N. Returns float32.)");

  m.def("pack_matmul_i4", &pack_matmul_i4, arg("b").none(), nb::kw_only(), arg("k") = none,
        arg("scale") = none, arg("zero_point") = none, arg("bias") = none,
        arg("weight_dtype") = "s4", arg("group_size") = 32, arg("backend") = none,
        nb::rv_policy::take_ownership,
        R"(Packs int4 weights (uint8 [N, ceil(K/2)]; k defaults to twice the row bytes) with their
group scales, zero points and bias, once. Returns a PackedMatmulI4 for keel.matmul_i4.)");

  m.def("conv2d_i8", &conv2d_i8, arg("x").none(), arg("w").none(), nb::kw_only(), arg("stride") = 1,
        arg("dilation") = 1, arg("padding") = "valid", arg("groups") = 1, arg("in_zero_point") = 0,
        arg("in_scale") = 1.0, arg("w_scale") = none, arg("w_zero_point") = none,
        arg("bias") = none, arg("out_dtype") = none, arg("out_scale") = 1.0,
        arg("out_zero_point") = none, arg("clamp_min") = none, arg("clamp_max") = none,
        arg("requant") = "fixed_point", arg("out") = none, arg("backend") = none,
        R"(int8 2-D convolution, NHWC input [N, H, W, C_in] (int8/uint8, zero point in_zero_point),
OHWI weights [C_out, KH, KW, C_in / groups] (int8/uint8, per-channel w_scale and w_zero_point),
int32 bias per output channel. stride and dilation: an int or (h, w). padding: 'valid', 'same'
(= 'same_upper', TensorFlow's SAME), 'same_lower', an int, (h, w) or (top, bottom, left, right);
padded taps read the input zero point. groups = C_in is depthwise. The output stage is
matmul_i8's (out_dtype, out_scale, out_zero_point, clamp, requant). Returns [N, OH, OW, C_out].)");

  m.def("attention", &attention, arg("q").none(), arg("k").none(), arg("v").none(), nb::kw_only(),
        arg("q_scale") = none, arg("k_scale") = none, arg("v_scale") = none,
        arg("softmax_scale") = 0.0, arg("causal") = false, arg("causal_offset") = none,
        arg("mask") = none, arg("out_dtype") = none, arg("out_scale") = 1.0, arg("out") = none,
        arg("backend") = none,
        R"(Scaled dot-product attention, per batch and head:
out = softmax(softmax_scale * Q K^T + mask) V.

Q [B, Hq, Sq, D] float32 or int8; K [B, Hkv, Skv, D] and V [B, Hkv, Skv, Dv] both int8 or both
float32 (Hkv divides Hq: grouped-query). int8 operands need their scales: a scalar (per tensor),
[heads] (per head) or [B, heads, seq] (per token); k_scale and v_scale share a granularity.
softmax_scale 0 means 1/sqrt(D). causal=True: key j is visible to query i iff
j <= i + causal_offset (default Skv - Sq); or mask: an additive float32 [B|1, Hq|1, Sq, Skv]
(-inf hides a key). A row with every key hidden is zeros. Output float32, or int8 with out_scale.
Strided views (e.g. a [S, H, D] projection transposed to [1, H, S, D]) are read in place.)");

  m.def("quantize_linear", &quantize_linear, arg("x").none(), arg("scale").none(),
        arg("zero_point") = none, nb::kw_only(), arg("axis") = none, arg("dtype") = "int8",
        arg("out") = none,
        R"(ONNX QuantizeLinear: y = saturate(round_half_even(x / scale) + zero_point), float32 ->
int8 or uint8. Per tensor (axis None) or per index of `axis` (scale and zero_point of that
length).)");

  m.def(
      "dequantize_linear", &dequantize_linear, arg("x").none(), arg("scale").none(),
      arg("zero_point") = none, nb::kw_only(), arg("axis") = none, arg("out") = none,
      R"(ONNX DequantizeLinear: y = float32(x - zero_point) * scale, for int8, uint8 or int32 x. Per
tensor (axis None) or per index of `axis`.)");

  m.def(
      "dynamic_quantize_linear", &dynamic_quantize_linear, arg("x").none(), nb::kw_only(),
      arg("out") = none,
      R"(ONNX DynamicQuantizeLinear: float32 x -> (y uint8, scale float32, zero_point int) with the
range widened to include 0, scale = (max - min) / 255. An all-zero x gives scale 0, zero point
0. NaN or infinity raises keel.KeelError.)");

  m.def(
      "quantize_rows_s8", &quantize_rows_s8, arg("x").none(),
      R"(The dynamic int8 row quantizer of matmul_i4 (activation='dynamic_s8'): each row of float32
x [rows, K] becomes int8 q = clamp(round_half_even(x / s), -127, 127) with s = max|row| / 127
(0 for an all-zero row). Returns (q int8 [rows, K], s float32 [rows]).)");

  m.def("pack_int4", &pack_int4, arg("values").none(), arg("weight_dtype") = "s4",
        R"(Packs int4 values (integers in [-8, 7] for 's4', [0, 15] for 'u4'; K last, rank 1 to 3)
into uint8 bytes [..., ceil(K/2)]: two a byte, low nibble first, as keel's int4 views read them.)");

  m.def("unpack_int4", &unpack_int4, arg("packed").none(), arg("k") = none,
        arg("weight_dtype") = "s4",
        R"(The inverse of pack_int4: uint8 bytes [..., ceil(K/2)] -> int8 ('s4') or uint8 ('u4')
values [..., K]; k defaults to twice the row bytes.)");
}

}  // namespace keel::python
