// ONNX conformance: ONNX's own operator test vectors (Debian's libonnx-testdata) run through
// keel's reference kernels, every output compared bit for bit (memcmp of the bytes, f32 too).
//
// Each ONNX test directory is one TEST_CASE of the same name. The data live in
// /usr/share/libonnx-testdata/data/node unless KEEL_ONNX_TESTDATA names another directory; a
// missing directory fails the suite (scripts/setup.sh installs the package), it never skips.
//
// Mapping onto keel (ONNX semantics from onnx/docs/Operators.md, opset 10-13):
//   QLinearMatMul        -> matmul_i8, s8/u8 output, requant_mode::float_scale
//   MatMulInteger        -> matmul_i8, s32 output
//   QLinearConv          -> conv2d_i8, s8/u8 output, float_scale; NCHW/OIHW transposed to
//   ConvInteger          -> conv2d_i8, s32 output       NHWC/OHWI here, the result back to NCHW
//   QuantizeLinear       -> quantize_linear (per tensor, or per axis)
//   DequantizeLinear     -> dequantize_linear
//   DynamicQuantizeLinear (and its *_expanded function form) -> dynamic_quantize_linear
#include <doctest/doctest.h>
#include <onnx/onnx_pb.h>  // only for the reader's own test, which writes TensorProto files

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <regex>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "keel/keel.hpp"
#include "onnx/onnx_reader.hpp"
#include "support/testing.hpp"

namespace {

namespace ot = keel::onnx_test;
using keel::dtype;

// ---- the case registry ---------------------------------------------------------------------
// Every KEEL_ONNX_CASE registers its directory name, so the coverage test below can check that
// each quantized-op directory the package ships is run, from this one list.

std::vector<std::string>& registered_cases() {
  static std::vector<std::string> names;
  return names;
}
bool register_case(const char* name) {
  registered_cases().emplace_back(name);
  return true;
}

// Which directories count as "quantized-op vectors" (the coverage test's filter).
const std::regex& quantized_op_pattern() {
  static const std::regex re("qlinear|matmulinteger|convinteger|quantizelinear|dynamicquant",
                             std::regex::icase);
  return re;
}

// ---- reading values out of a case ----------------------------------------------------------

// The tensor bound to `name`: a graph input fed by the data set, or an initializer.
const ot::tensor* find_value(const ot::test_case& c, const ot::data_set& ds,
                             const std::string& name) {
  if (name.empty()) return nullptr;  // an omitted optional input
  for (std::size_t i = 0; i < c.graph_inputs.size(); ++i) {
    if (c.graph_inputs[i] == name) return &ds.inputs[i];
  }
  for (const ot::tensor& t : c.initializers) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

const ot::tensor* node_input(const ot::test_case& c, const ot::data_set& ds, const ot::node& n,
                             std::size_t j) {
  return j < n.inputs.size() ? find_value(c, ds, n.inputs[j]) : nullptr;
}

const ot::tensor& expected_output(const ot::test_case& c, const ot::data_set& ds,
                                  const std::string& name) {
  for (std::size_t i = 0; i < c.graph_outputs.size(); ++i) {
    if (c.graph_outputs[i] == name) return ds.outputs[i];
  }
  FAIL("no graph output named '" << name << "'");
  return ds.outputs.front();  // not reached: FAIL throws
}

// The model's one node, which must be `op_type`.
const ot::node& single_node(const ot::test_case& c, const char* op_type) {
  REQUIRE_MESSAGE(c.nodes.size() == 1, c.name << " has " << c.nodes.size() << " nodes");
  const ot::node& n = c.nodes.front();
  REQUIRE_MESSAGE(n.op_type == op_type, c.name << " runs " << n.op_type << ", not " << op_type);
  return n;
}

const ot::tensor& require_tensor(const ot::tensor* t, const char* what) {
  REQUIRE_MESSAGE(t != nullptr, what << " is missing");
  return *t;
}

dtype keel_type(const ot::tensor& t) {
  switch (t.type) {
    case ot::onnx_type::uint8: return dtype::u8;
    case ot::onnx_type::int8: return dtype::s8;
    case ot::onnx_type::int32: return dtype::s32;
    case ot::onnx_type::float32: return dtype::f32;
    default: break;
  }
  FAIL(t.name << " has ONNX type " << ot::to_string(t.type) << ", which keel does not take");
  return dtype::f32;
}

// Integer elements (u8, s8, s32) widened to int32.
std::vector<std::int32_t> int_values(const ot::tensor& t) {
  std::vector<std::int32_t> v;
  switch (keel_type(t)) {
    case dtype::u8:
      for (std::uint8_t x : t.values<std::uint8_t>()) v.push_back(x);
      break;
    case dtype::s8:
      for (std::int8_t x : t.values<std::int8_t>()) v.push_back(x);
      break;
    case dtype::s32: v = t.values<std::int32_t>(); break;
    default: FAIL(t.name << " is not an integer tensor");
  }
  return v;
}

std::vector<float> float_values(const ot::tensor& t) {
  REQUIRE_MESSAGE(t.type == ot::onnx_type::float32, t.name << " is " << ot::to_string(t.type));
  return t.values<float>();
}

float scalar_float(const ot::tensor& t) {
  REQUIRE_MESSAGE(t.numel() == 1, t.name << " has " << t.numel() << " elements (keel needs 1)");
  return float_values(t)[0];
}

// An optional zero point that keel takes per tensor: absent means 0.
std::int32_t scalar_zero_point(const ot::tensor* t) {
  if (t == nullptr) return 0;
  REQUIRE_MESSAGE(t->numel() == 1, t->name << " has " << t->numel()
                                           << " elements (keel takes "
                                              "one zero point for this operand)");
  return int_values(*t)[0];
}

std::string dims_string(const std::vector<std::int64_t>& dims) {
  std::ostringstream s;
  s << '[';
  for (std::size_t i = 0; i < dims.size(); ++i) s << (i ? "," : "") << dims[i];
  s << ']';
  return s.str();
}

template <class View, class P>
View make_view(P data, dtype t, const std::vector<std::int64_t>& dims) {
  REQUIRE_MESSAGE((dims.size() >= 1 && dims.size() <= static_cast<std::size_t>(keel::kMaxRank)),
                  "rank " << dims.size() << " (keel views hold 1 to 4 dims)");
  View v;
  v.data = data;
  v.type = t;
  v.rank = static_cast<int>(dims.size());
  std::copy(dims.begin(), dims.end(), v.shape.begin());
  v.set_dense_strides();
  return v;
}

// ---- bit-for-bit comparison ----------------------------------------------------------------

template <class T>
constexpr ot::onnx_type onnx_type_of() {
  if constexpr (std::is_same_v<T, std::uint8_t>) return ot::onnx_type::uint8;
  if constexpr (std::is_same_v<T, std::int8_t>) return ot::onnx_type::int8;
  if constexpr (std::is_same_v<T, std::int32_t>) return ot::onnx_type::int32;
  if constexpr (std::is_same_v<T, float>) return ot::onnx_type::float32;
}

template <class T>
std::string describe(T v) {
  std::ostringstream s;
  if constexpr (std::is_same_v<T, float>) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.9g (0x%08x)", static_cast<double>(v),
                  std::bit_cast<std::uint32_t>(v));
    s << buf;
  } else {
    s << static_cast<std::int64_t>(v);
  }
  return s.str();
}

// memcmp of keel's output against ONNX's expected tensor; on a difference, prints the first
// few differing elements. Returns the number of elements compared.
template <class T>
std::int64_t compare_bits(const char* what, const T* got, std::int64_t count,
                          const ot::tensor& expected) {
  INFO(std::string(what) << ": expected " << expected.name << " " << dims_string(expected.dims));
  REQUIRE_MESSAGE(expected.type == onnx_type_of<T>(),
                  "expected type " << ot::to_string(expected.type) << ", keel wrote "
                                   << ot::to_string(onnx_type_of<T>()));
  REQUIRE(expected.numel() == count);
  REQUIRE(expected.bytes.size() == static_cast<std::size_t>(count) * sizeof(T));
  const bool same =
      count == 0 || std::memcmp(got, expected.bytes.data(), expected.bytes.size()) == 0;
  if (!same) {
    const std::vector<T> want = expected.values<T>();
    int shown = 0;
    for (std::int64_t i = 0; i < count && shown < 8; ++i) {
      if (std::memcmp(&want[static_cast<std::size_t>(i)], &got[i], sizeof(T)) != 0) {
        std::printf("  %s[%lld]: expected %s, keel %s\n", what, static_cast<long long>(i),
                    describe(want[static_cast<std::size_t>(i)]).c_str(), describe(got[i]).c_str());
        ++shown;
      }
    }
  }
  CHECK_MESSAGE(same, std::string(what) << ": keel's output differs from ONNX's expected bits");
  return count;
}

// Runs a kernel call's Status check and the guard check shared by every case.
void require_ok(const keel::Status& s) {
  INFO("keel: " << std::string(s.message()));
  REQUIRE(s.ok());
}

// ---- matmul: QLinearMatMul, MatMulInteger --------------------------------------------------

// ONNX MatMul shapes for ranks 2 and 3: [M,K] x [K,N], with a leading batch on either or both
// sides broadcast numpy-style (a batch of 1 is shared). keel's matmul_i8 takes a rank-3 A and
// out; a shared A is a batch stride of 0, a shared B is the unbatched [K, N] form.
template <class Out>
std::int64_t run_matmul(const char* what, keel::matmul_i8_desc d, const ot::tensor& a,
                        const ot::tensor& b, std::span<const float> b_scale,
                        std::span<const std::int32_t> b_zero_point, const ot::tensor& expected) {
  const std::size_t ra = a.dims.size(), rb = b.dims.size();
  INFO("A " << dims_string(a.dims) << " B " << dims_string(b.dims));
  REQUIRE_MESSAGE(((ra == 2 || ra == 3) && (rb == 2 || rb == 3)), "ranks other than 2 and 3");
  const std::int64_t m = a.dims[ra - 2], k = a.dims[ra - 1];
  const std::int64_t kb = b.dims[rb - 2], n = b.dims[rb - 1];
  REQUIRE(k == kb);
  const std::int64_t a_batch = ra == 3 ? a.dims[0] : 1, b_batch = rb == 3 ? b.dims[0] : 1;
  const std::int64_t batch = std::max(a_batch, b_batch);
  REQUIRE((a_batch == batch || a_batch == 1));
  REQUIRE((b_batch == batch || b_batch == 1));
  const bool batched_out = ra == 3 || rb == 3;

  d.batch = batch;
  d.m = m;
  d.n = n;
  d.k = k;
  d.a_type = keel_type(a);
  d.b_type = keel_type(b);
  d.b_batched = b_batch > 1;

  keel::matmul_i8_args args;
  keel::testing::guarded<Out> out(static_cast<std::size_t>(batch * m * n));
  if (batched_out) {
    args.a = keel::const_tensor_view(a.bytes.data(), d.a_type, {batch, m, k});
    if (a_batch == 1) args.a.strides[0] = 0;  // one A for every batch of B
    args.out = keel::tensor_view(out.data(), keel::dtype_of_v<Out>, {batch, m, n});
  } else {
    args.a = keel::const_tensor_view(a.bytes.data(), d.a_type, {m, k});
    args.out = keel::tensor_view(out.data(), keel::dtype_of_v<Out>, {m, n});
  }
  args.b = d.b_batched ? keel::const_tensor_view(b.bytes.data(), d.b_type, {batch, k, n})
                       : keel::const_tensor_view(b.bytes.data(), d.b_type, {k, n});
  args.b_scale = b_scale;
  args.b_zero_point = b_zero_point;

  require_ok(keel::reference::matmul_i8(d, args));
  CHECK(out.guards_intact());
  const std::vector<std::int64_t> out_dims =
      batched_out ? std::vector<std::int64_t>{batch, m, n} : std::vector<std::int64_t>{m, n};
  CHECK(expected.dims == out_dims);
  return compare_bits(what, out.data(), batch * m * n, expected);
}

std::int64_t run_qlinearmatmul(const ot::test_case& c, const ot::data_set& ds) {
  const ot::node& node = single_node(c, "QLinearMatMul");
  const ot::tensor& a = require_tensor(node_input(c, ds, node, 0), "a");
  const ot::tensor& b = require_tensor(node_input(c, ds, node, 3), "b");
  const ot::tensor& y_zp = require_tensor(node_input(c, ds, node, 7), "y_zero_point");
  const std::vector<float> b_scale =
      float_values(require_tensor(node_input(c, ds, node, 4), "b_scale"));
  const std::vector<std::int32_t> b_zp =
      int_values(require_tensor(node_input(c, ds, node, 5), "b_zero_point"));

  keel::matmul_i8_desc d;
  d.a_scale = scalar_float(require_tensor(node_input(c, ds, node, 1), "a_scale"));
  d.a_zero_point = scalar_zero_point(node_input(c, ds, node, 2));
  d.out.type = keel_type(y_zp);
  d.out.mode = keel::requant_mode::float_scale;  // ONNX QLinear* semantics
  d.out.scale = scalar_float(require_tensor(node_input(c, ds, node, 6), "y_scale"));
  d.out.zero_point = scalar_zero_point(&y_zp);
  const ot::tensor& expected = expected_output(c, ds, node.outputs[0]);
  if (d.out.type == dtype::u8) {
    return run_matmul<std::uint8_t>("y", d, a, b, b_scale, b_zp, expected);
  }
  REQUIRE(d.out.type == dtype::s8);
  return run_matmul<std::int8_t>("y", d, a, b, b_scale, b_zp, expected);
}

std::int64_t run_matmulinteger(const ot::test_case& c, const ot::data_set& ds) {
  const ot::node& node = single_node(c, "MatMulInteger");
  const ot::tensor& a = require_tensor(node_input(c, ds, node, 0), "A");
  const ot::tensor& b = require_tensor(node_input(c, ds, node, 1), "B");
  std::vector<std::int32_t> b_zp;  // empty: absent, all zero
  if (const ot::tensor* t = node_input(c, ds, node, 3)) b_zp = int_values(*t);

  keel::matmul_i8_desc d;
  // ONNX also allows a per-row A zero point; keel takes one per tensor (scalar_zero_point
  // fails the case if a vector ever ships).
  d.a_zero_point = scalar_zero_point(node_input(c, ds, node, 2));
  d.out.type = dtype::s32;
  return run_matmul<std::int32_t>("Y", d, a, b, {}, b_zp, expected_output(c, ds, node.outputs[0]));
}

// ---- conv: QLinearConv, ConvInteger --------------------------------------------------------

std::vector<std::int64_t> ints_attr(const ot::node& n, const char* name,
                                    std::vector<std::int64_t> fallback) {
  const ot::attribute* a = n.find(name);
  return a != nullptr ? a->ints : fallback;
}

// What differs between QLinearConv and ConvInteger, gathered by their runners.
struct conv_operands {
  const ot::tensor* x = nullptr;
  const ot::tensor* w = nullptr;
  std::int32_t x_zero_point = 0;
  float x_scale = 1.0f;
  std::vector<float> w_scale;
  std::vector<std::int32_t> w_zero_point;
  std::vector<std::int32_t> bias;
  keel::output_quant out;
};

template <class Out>
std::int64_t run_conv(const char* what, const ot::node& node, const conv_operands& o,
                      const ot::tensor& expected) {
  const ot::tensor& x = *o.x;
  const ot::tensor& w = *o.w;
  INFO("x " << dims_string(x.dims) << " w " << dims_string(w.dims));
  REQUIRE_MESSAGE((x.dims.size() == 4 && w.dims.size() == 4), "only 2-D convolutions map to keel");
  const std::int64_t batch = x.dims[0], in_c = x.dims[1], in_h = x.dims[2], in_w = x.dims[3];
  const std::int64_t out_c = w.dims[0], group_c = w.dims[1], kh = w.dims[2], kw = w.dims[3];

  // Attributes, with ONNX's defaults.
  const ot::attribute* group_attr = node.find("group");
  const std::int64_t groups = group_attr != nullptr ? group_attr->i : 1;
  REQUIRE(in_c == group_c * groups);
  CHECK(ints_attr(node, "kernel_shape", {kh, kw}) == std::vector<std::int64_t>{kh, kw});
  const std::vector<std::int64_t> strides = ints_attr(node, "strides", {1, 1});
  const std::vector<std::int64_t> dilations = ints_attr(node, "dilations", {1, 1});
  const std::vector<std::int64_t> pads = ints_attr(node, "pads", {0, 0, 0, 0});
  const ot::attribute* auto_pad_attr = node.find("auto_pad");
  const std::string auto_pad = auto_pad_attr != nullptr ? auto_pad_attr->s : "NOTSET";
  REQUIRE((strides.size() == 2 && dilations.size() == 2 && pads.size() == 4));
  INFO("group " << groups << " strides " << dims_string(strides) << " dilations "
                << dims_string(dilations) << " pads " << dims_string(pads) << " auto_pad "
                << auto_pad);

  keel::conv2d_desc d;
  d.batch = batch;
  d.in_h = in_h;
  d.in_w = in_w;
  d.in_c = in_c;
  d.out_c = out_c;
  d.kernel_h = kh;
  d.kernel_w = kw;
  d.stride_h = strides[0];
  d.stride_w = strides[1];
  d.dilation_h = dilations[0];
  d.dilation_w = dilations[1];
  d.groups = groups;
  d.in_type = keel_type(x);
  d.w_type = keel_type(w);
  d.in_zero_point = o.x_zero_point;
  d.in_scale = o.x_scale;
  d.out = o.out;
  if (auto_pad == "SAME_UPPER") {
    d.padding = keel::padding_mode::same_upper;
  } else if (auto_pad == "SAME_LOWER") {
    d.padding = keel::padding_mode::same_lower;
  } else {
    REQUIRE_MESSAGE((auto_pad == "NOTSET" || auto_pad == "VALID"), "auto_pad " << auto_pad);
    if (auto_pad == "NOTSET") {  // ONNX order: [x1_begin, x2_begin, x1_end, x2_end]
      d.pad_top = pads[0];
      d.pad_left = pads[1];
      d.pad_bottom = pads[2];
      d.pad_right = pads[3];
    }
  }
  const keel::Result<keel::conv2d_geometry> geometry = keel::conv2d_output_geometry(d);
  require_ok(geometry.status());
  const std::int64_t out_h = geometry.value().out_h, out_w = geometry.value().out_w;

  // NCHW -> NHWC and OIHW -> OHWI (8-bit elements: bytes move as they are).
  std::vector<unsigned char> x_nhwc(x.bytes.size()), w_ohwi(w.bytes.size());
  for (std::int64_t n = 0; n < batch; ++n) {
    for (std::int64_t ch = 0; ch < in_c; ++ch) {
      for (std::int64_t h = 0; h < in_h; ++h) {
        for (std::int64_t col = 0; col < in_w; ++col) {
          x_nhwc[static_cast<std::size_t>(((n * in_h + h) * in_w + col) * in_c + ch)] =
              x.bytes[static_cast<std::size_t>(((n * in_c + ch) * in_h + h) * in_w + col)];
        }
      }
    }
  }
  for (std::int64_t oc = 0; oc < out_c; ++oc) {
    for (std::int64_t ic = 0; ic < group_c; ++ic) {
      for (std::int64_t r = 0; r < kh; ++r) {
        for (std::int64_t s = 0; s < kw; ++s) {
          w_ohwi[static_cast<std::size_t>(((oc * kh + r) * kw + s) * group_c + ic)] =
              w.bytes[static_cast<std::size_t>(((oc * group_c + ic) * kh + r) * kw + s)];
        }
      }
    }
  }

  const std::int64_t count = batch * out_h * out_w * out_c;
  keel::testing::guarded<Out> out(static_cast<std::size_t>(count));
  keel::conv2d_args args;
  args.input = keel::const_tensor_view(x_nhwc.data(), d.in_type, {batch, in_h, in_w, in_c});
  args.weights = keel::const_tensor_view(w_ohwi.data(), d.w_type, {out_c, kh, kw, group_c});
  args.w_scale = o.w_scale;
  args.w_zero_point = o.w_zero_point;
  args.bias = o.bias;
  args.out = keel::tensor_view(out.data(), keel::dtype_of_v<Out>, {batch, out_h, out_w, out_c});
  require_ok(keel::reference::conv2d_i8(d, args));
  CHECK(out.guards_intact());

  // NHWC -> NCHW for the comparison.
  std::vector<Out> y(static_cast<std::size_t>(count));
  for (std::int64_t n = 0; n < batch; ++n) {
    for (std::int64_t oc = 0; oc < out_c; ++oc) {
      for (std::int64_t h = 0; h < out_h; ++h) {
        for (std::int64_t col = 0; col < out_w; ++col) {
          y[static_cast<std::size_t>(((n * out_c + oc) * out_h + h) * out_w + col)] =
              out[static_cast<std::size_t>(((n * out_h + h) * out_w + col) * out_c + oc)];
        }
      }
    }
  }
  CHECK(expected.dims == std::vector<std::int64_t>{batch, out_c, out_h, out_w});
  return compare_bits(what, y.data(), count, expected);
}

std::int64_t run_qlinearconv(const ot::test_case& c, const ot::data_set& ds) {
  const ot::node& node = single_node(c, "QLinearConv");
  conv_operands o;
  o.x = &require_tensor(node_input(c, ds, node, 0), "x");
  o.x_scale = scalar_float(require_tensor(node_input(c, ds, node, 1), "x_scale"));
  o.x_zero_point = scalar_zero_point(node_input(c, ds, node, 2));
  o.w = &require_tensor(node_input(c, ds, node, 3), "w");
  o.w_scale = float_values(require_tensor(node_input(c, ds, node, 4), "w_scale"));
  o.w_zero_point = int_values(require_tensor(node_input(c, ds, node, 5), "w_zero_point"));
  const ot::tensor& y_zp = require_tensor(node_input(c, ds, node, 7), "y_zero_point");
  if (const ot::tensor* bias = node_input(c, ds, node, 8)) o.bias = int_values(*bias);
  o.out.type = keel_type(y_zp);
  o.out.mode = keel::requant_mode::float_scale;  // ONNX QLinear* semantics
  o.out.scale = scalar_float(require_tensor(node_input(c, ds, node, 6), "y_scale"));
  o.out.zero_point = scalar_zero_point(&y_zp);
  const ot::tensor& expected = expected_output(c, ds, node.outputs[0]);
  if (o.out.type == dtype::u8) return run_conv<std::uint8_t>("y", node, o, expected);
  REQUIRE(o.out.type == dtype::s8);
  return run_conv<std::int8_t>("y", node, o, expected);
}

std::int64_t run_convinteger(const ot::test_case& c, const ot::data_set& ds) {
  const ot::node& node = single_node(c, "ConvInteger");
  conv_operands o;
  o.x = &require_tensor(node_input(c, ds, node, 0), "x");
  o.w = &require_tensor(node_input(c, ds, node, 1), "w");
  o.x_zero_point = scalar_zero_point(node_input(c, ds, node, 2));
  if (const ot::tensor* t = node_input(c, ds, node, 3)) o.w_zero_point = int_values(*t);
  o.out.type = dtype::s32;
  return run_conv<std::int32_t>("y", node, o, expected_output(c, ds, node.outputs[0]));
}

// ---- QuantizeLinear, DequantizeLinear ------------------------------------------------------

// ONNX: a scale with one element is per tensor; a 1-D scale is per axis, along `axis`
// (attribute, default 1, negative counts from the end).
int quant_axis(const ot::node& node, const ot::tensor& x, const ot::tensor& scale) {
  if (scale.numel() == 1) return -1;
  const ot::attribute* a = node.find("axis");
  std::int64_t axis = a != nullptr ? a->i : 1;
  const auto rank = static_cast<std::int64_t>(x.dims.size());
  if (axis < 0) axis += rank;
  REQUIRE_MESSAGE((axis >= 0 && axis < rank), "axis " << axis << " for rank " << rank);
  REQUIRE(scale.numel() == x.dims[static_cast<std::size_t>(axis)]);
  return static_cast<int>(axis);
}

std::int64_t run_quantizelinear(const ot::test_case& c, const ot::data_set& ds) {
  const ot::node& node = single_node(c, "QuantizeLinear");
  const ot::tensor& x = require_tensor(node_input(c, ds, node, 0), "x");
  const ot::tensor& scale_t = require_tensor(node_input(c, ds, node, 1), "y_scale");
  const ot::tensor* zp_t = node_input(c, ds, node, 2);
  REQUIRE_MESSAGE(x.type == ot::onnx_type::float32, "x is " << ot::to_string(x.type));
  INFO("x " << dims_string(x.dims) << " scale " << dims_string(scale_t.dims));

  const keel::quantize_desc d{quant_axis(node, x, scale_t)};
  const std::vector<float> scale = float_values(scale_t);
  std::vector<std::int32_t> zp;
  if (zp_t != nullptr) zp = int_values(*zp_t);
  const dtype y_type = zp_t != nullptr ? keel_type(*zp_t) : dtype::u8;  // ONNX: u8 if absent
  const std::int64_t n = x.numel();

  keel::quantize_args args;
  args.x = make_view<keel::const_tensor_view>(x.bytes.data(), dtype::f32, x.dims);
  args.scale = scale;
  args.zero_point = zp;
  const ot::tensor& expected = expected_output(c, ds, node.outputs[0]);
  if (y_type == dtype::u8) {
    keel::testing::guarded<std::uint8_t> y(static_cast<std::size_t>(n));
    args.y = make_view<keel::tensor_view>(static_cast<void*>(y.data()), y_type, x.dims);
    require_ok(keel::reference::quantize_linear(d, args));
    CHECK(y.guards_intact());
    CHECK(expected.dims == x.dims);
    return compare_bits("y", y.data(), n, expected);
  }
  REQUIRE(y_type == dtype::s8);
  keel::testing::guarded<std::int8_t> y(static_cast<std::size_t>(n));
  args.y = make_view<keel::tensor_view>(static_cast<void*>(y.data()), y_type, x.dims);
  require_ok(keel::reference::quantize_linear(d, args));
  CHECK(y.guards_intact());
  CHECK(expected.dims == x.dims);
  return compare_bits("y", y.data(), n, expected);
}

std::int64_t run_dequantizelinear(const ot::test_case& c, const ot::data_set& ds) {
  const ot::node& node = single_node(c, "DequantizeLinear");
  const ot::tensor& x = require_tensor(node_input(c, ds, node, 0), "x");
  const ot::tensor& scale_t = require_tensor(node_input(c, ds, node, 1), "x_scale");
  const ot::tensor* zp_t = node_input(c, ds, node, 2);
  INFO("x " << dims_string(x.dims) << " scale " << dims_string(scale_t.dims));

  const keel::quantize_desc d{quant_axis(node, x, scale_t)};
  const std::vector<float> scale = float_values(scale_t);
  std::vector<std::int32_t> zp;
  if (zp_t != nullptr) zp = int_values(*zp_t);
  const std::int64_t n = x.numel();

  keel::testing::guarded<float> y(static_cast<std::size_t>(n));
  keel::dequantize_args args;
  args.x = make_view<keel::const_tensor_view>(x.bytes.data(), keel_type(x), x.dims);
  args.scale = scale;
  args.zero_point = zp;
  args.y = make_view<keel::tensor_view>(static_cast<void*>(y.data()), dtype::f32, x.dims);
  require_ok(keel::reference::dequantize_linear(d, args));
  CHECK(y.guards_intact());
  const ot::tensor& expected = expected_output(c, ds, node.outputs[0]);
  CHECK(expected.dims == x.dims);
  return compare_bits("y", y.data(), n, expected);
}

// ---- DynamicQuantizeLinear -----------------------------------------------------------------

// The plain form is one DynamicQuantizeLinear node; the *_expanded form is the same op written
// as its function body (ReduceMin, Div, ...). Both have one graph input x and the graph outputs
// y, y_scale, y_zero_point, in that order, which is all keel needs.
std::int64_t run_dynamicquantizelinear(const ot::test_case& c, const ot::data_set& ds) {
  std::vector<std::string> outs = c.graph_outputs;
  std::string x_name = c.graph_inputs.empty() ? "" : c.graph_inputs.front();
  if (c.nodes.size() == 1) {
    const ot::node& node = single_node(c, "DynamicQuantizeLinear");
    x_name = node.inputs.at(0);
    outs = node.outputs;
  } else {
    REQUIRE_MESSAGE(c.name.find("_expanded") != std::string::npos,
                    c.name << ": several nodes, but not an _expanded case");
  }
  REQUIRE(c.graph_inputs.size() == 1);
  REQUIRE(outs.size() == 3);
  const ot::tensor& x = require_tensor(find_value(c, ds, x_name), "x");
  REQUIRE_MESSAGE(x.type == ot::onnx_type::float32, "x is " << ot::to_string(x.type));
  INFO("x " << dims_string(x.dims));
  const std::int64_t n = x.numel();

  keel::testing::guarded<std::uint8_t> y(static_cast<std::size_t>(n));
  keel::testing::guarded<float> scale(1);
  keel::testing::guarded<std::uint8_t> zp(1);
  keel::dynamic_quantize_args args;
  args.x = make_view<keel::const_tensor_view>(x.bytes.data(), dtype::f32, x.dims);
  args.y = make_view<keel::tensor_view>(static_cast<void*>(y.data()), dtype::u8, x.dims);
  args.scale = scale.data();
  args.zero_point = zp.data();
  require_ok(keel::reference::dynamic_quantize_linear(args));
  CHECK(y.guards_intact());
  CHECK(scale.guards_intact());
  CHECK(zp.guards_intact());

  const ot::tensor& want_y = expected_output(c, ds, outs[0]);
  const ot::tensor& want_scale = expected_output(c, ds, outs[1]);
  const ot::tensor& want_zp = expected_output(c, ds, outs[2]);
  CHECK(want_y.dims == x.dims);
  std::int64_t compared = compare_bits("y", y.data(), n, want_y);
  compared += compare_bits("y_scale", scale.data(), 1, want_scale);
  compared += compare_bits("y_zero_point", zp.data(), 1, want_zp);
  return compared;
}

// ---- the cases -----------------------------------------------------------------------------

using runner = std::int64_t (*)(const ot::test_case&, const ot::data_set&);

constexpr char kDataHint[] =
    "set KEEL_ONNX_TESTDATA to the directory of ONNX node tests, or install Debian's "
    "libonnx-testdata (scripts/setup.sh does)";

void run_case(const char* name, runner run) {
  const std::string root = ot::testdata_root();
  ot::test_case c;
  std::string error;
  const bool loaded = ot::load_case(root, name, &c, &error);
  INFO("test data: " << root << " (" << kDataHint << ")");
  REQUIRE_MESSAGE(loaded, error);
  for (const ot::data_set& ds : c.data_sets) {
    INFO("data set " << ds.dir);
    const std::int64_t compared = run(c, ds);
    std::printf("%s/%s: %lld elements compared (memcmp of the bytes)\n", name,
                ds.dir.substr(ds.dir.find_last_of('/') + 1).c_str(),
                static_cast<long long>(compared));
    CHECK(compared > 0);
  }
}

#define KEEL_ONNX_CASE(dir, run)                                                       \
  [[maybe_unused]] const bool DOCTEST_ANONYMOUS(keel_onnx_case_) = register_case(dir); \
  TEST_CASE(dir) {                                                                     \
    run_case(dir, run);                                                                \
  }

}  // namespace

KEEL_ONNX_CASE("test_qlinearmatmul_2D", run_qlinearmatmul)
KEEL_ONNX_CASE("test_qlinearmatmul_3D", run_qlinearmatmul)
KEEL_ONNX_CASE("test_matmulinteger", run_matmulinteger)
KEEL_ONNX_CASE("test_qlinearconv", run_qlinearconv)
KEEL_ONNX_CASE("test_basic_convinteger", run_convinteger)
KEEL_ONNX_CASE("test_convinteger_with_padding", run_convinteger)
KEEL_ONNX_CASE("test_convinteger_without_padding", run_convinteger)
KEEL_ONNX_CASE("test_quantizelinear", run_quantizelinear)
KEEL_ONNX_CASE("test_quantizelinear_axis", run_quantizelinear)
KEEL_ONNX_CASE("test_dequantizelinear", run_dequantizelinear)
KEEL_ONNX_CASE("test_dequantizelinear_axis", run_dequantizelinear)
KEEL_ONNX_CASE("test_dynamicquantizelinear", run_dynamicquantizelinear)
KEEL_ONNX_CASE("test_dynamicquantizelinear_expanded", run_dynamicquantizelinear)
KEEL_ONNX_CASE("test_dynamicquantizelinear_max_adjusted", run_dynamicquantizelinear)
KEEL_ONNX_CASE("test_dynamicquantizelinear_max_adjusted_expanded", run_dynamicquantizelinear)
KEEL_ONNX_CASE("test_dynamicquantizelinear_min_adjusted", run_dynamicquantizelinear)
KEEL_ONNX_CASE("test_dynamicquantizelinear_min_adjusted_expanded", run_dynamicquantizelinear)

// The data directory must exist (a missing one fails, never skips), and every quantized-op
// directory the installed package ships must be one of the cases above: a newer package that
// adds a variant makes this fail until the variant is run.
TEST_CASE("every quantized-op vector the package ships is run") {
  const std::string root = ot::testdata_root();
  std::vector<std::string> shipped;
  std::string error;
  INFO("test data: " << root << " (" << kDataHint << ")");
  REQUIRE_MESSAGE(ot::list_cases(root, &shipped, &error), error);
  const std::vector<std::string>& run = registered_cases();
  std::int64_t matched = 0;
  for (const std::string& name : shipped) {
    if (!std::regex_search(name, quantized_op_pattern())) continue;
    ++matched;
    CHECK_MESSAGE(std::find(run.begin(), run.end(), name) != run.end(),
                  name << " is shipped but no case runs it");
  }
  for (const std::string& name : run) {
    CHECK_MESSAGE(std::find(shipped.begin(), shipped.end(), name) != shipped.end(),
                  name << " is expected but missing from " << root);
  }
  std::printf("%lld quantized-op directories shipped, %zu cases run\n",
              static_cast<long long>(matched), run.size());
  CHECK(matched > 0);
}

// The reader itself: both encodings of TensorProto elements, and its refusals. The typed-field
// files are written here with protobuf; the raw_data file is the package's own
// test_quantizelinear input, whose values ONNX's QuantizeLinear documentation lists:
// x = [0, 2, 3, 1000, -254, -1000], y_scale = 2, y_zero_point = 128, y = [128, 129, 130, 255, 1,
// 0].
TEST_CASE("onnx reader: raw_data and typed fields decode alike; bad tensors are refused") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() /
                       ("keel_onnx_reader_" + std::to_string(keel::testing::rng(1).seed()));
  fs::create_directories(dir);
  const auto write = [&](const onnx::TensorProto& p, const char* file) {
    const std::string path = (dir / file).string();
    std::ofstream out(path, std::ios::binary);
    REQUIRE(p.SerializeToOstream(&out));
    return path;
  };
  std::string error;
  ot::tensor t;

  SUBCASE("raw_data: the package's test_quantizelinear tensors") {
    const std::string base = ot::testdata_root() + "/test_quantizelinear/test_data_set_0/";
    REQUIRE_MESSAGE(ot::load_tensor_file(base + "input_0.pb", &t, &error), error);
    CHECK(t.name == "x");
    CHECK(t.type == ot::onnx_type::float32);
    CHECK(t.dims == std::vector<std::int64_t>{6});
    CHECK(t.values<float>() == std::vector<float>{0.0f, 2.0f, 3.0f, 1000.0f, -254.0f, -1000.0f});
    REQUIRE_MESSAGE(ot::load_tensor_file(base + "input_1.pb", &t, &error), error);
    CHECK(t.dims.empty());  // a scalar
    CHECK(t.values<float>() == std::vector<float>{2.0f});
    REQUIRE_MESSAGE(ot::load_tensor_file(base + "output_0.pb", &t, &error), error);
    CHECK(t.values<std::uint8_t>() == std::vector<std::uint8_t>{128, 129, 130, 255, 1, 0});
  }
  SUBCASE("typed fields: int32_data holds 8-bit values, float_data floats") {
    onnx::TensorProto u8;
    u8.set_name("u");
    u8.set_data_type(onnx::TensorProto::UINT8);
    u8.add_dims(3);
    for (int v : {0, 200, 255}) u8.add_int32_data(v);
    REQUIRE_MESSAGE(ot::load_tensor_file(write(u8, "u8.pb"), &t, &error), error);
    CHECK(t.values<std::uint8_t>() == std::vector<std::uint8_t>{0, 200, 255});

    onnx::TensorProto s8;
    s8.set_data_type(onnx::TensorProto::INT8);
    s8.add_dims(2);
    s8.add_dims(1);
    for (int v : {-128, 5}) s8.add_int32_data(v);
    REQUIRE_MESSAGE(ot::load_tensor_file(write(s8, "s8.pb"), &t, &error), error);
    CHECK(t.dims == std::vector<std::int64_t>{2, 1});
    CHECK(t.values<std::int8_t>() == std::vector<std::int8_t>{-128, 5});

    onnx::TensorProto f;
    f.set_data_type(onnx::TensorProto::FLOAT);
    f.add_dims(2);
    f.add_float_data(1.5f);
    f.add_float_data(-0.0f);
    REQUIRE_MESSAGE(ot::load_tensor_file(write(f, "f.pb"), &t, &error), error);
    const std::vector<float> fv = t.values<float>();
    REQUIRE(fv.size() == 2);
    CHECK(std::bit_cast<std::uint32_t>(fv[0]) == 0x3FC00000u);
    CHECK(std::bit_cast<std::uint32_t>(fv[1]) == 0x80000000u);  // the sign of zero survives
  }
  SUBCASE("refusals: element count, raw_data length, undecoded types") {
    onnx::TensorProto short_typed;
    short_typed.set_data_type(onnx::TensorProto::INT32);
    short_typed.add_dims(3);
    short_typed.add_int32_data(7);
    CHECK_FALSE(ot::load_tensor_file(write(short_typed, "short.pb"), &t, &error));
    CHECK(error.find("typed elements") != std::string::npos);

    onnx::TensorProto short_raw;
    short_raw.set_data_type(onnx::TensorProto::FLOAT);
    short_raw.add_dims(2);
    short_raw.set_raw_data(std::string(7, '\0'));
    CHECK_FALSE(ot::load_tensor_file(write(short_raw, "raw.pb"), &t, &error));
    CHECK(error.find("raw_data holds 7 bytes") != std::string::npos);

    onnx::TensorProto strings;
    strings.set_data_type(onnx::TensorProto::STRING);
    strings.add_dims(1);
    strings.add_string_data("x");
    CHECK_FALSE(ot::load_tensor_file(write(strings, "str.pb"), &t, &error));
    CHECK_FALSE(ot::load_tensor_file((dir / "absent.pb").string(), &t, &error));
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}
