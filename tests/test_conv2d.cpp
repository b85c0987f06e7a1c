// conv2d_i8 reference kernel: hand-computed cases per edge class, an independent formulation
// (explicit im2col, then reference::matmul_i8 per group) over random and prime-sized shapes,
// strided, broadcast and misaligned views, long reductions at the dtype extremes, and bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "keel/keel.hpp"
#include "support/testing.hpp"

using namespace keel;

namespace {
using values = std::vector<std::int64_t>;
}  // namespace

// Lets CHECK print both sides of a failed comparison of decoded outputs.
namespace doctest {
template <>
struct StringMaker<values> {
  static String convert(const values& v) {
    std::ostringstream os;
    os << '{';
    for (std::size_t i = 0; i < v.size(); ++i) os << (i ? ", " : "") << v[i];
    os << '}';
    return os.str().c_str();
  }
};
}  // namespace doctest

namespace {

constexpr std::int32_t kI32Max = std::numeric_limits<std::int32_t>::max();
constexpr std::int32_t kI32Min = std::numeric_limits<std::int32_t>::min();

// Raw bytes of 8-bit elements: s8 values are stored two's complement, so one vector type holds
// every dtype combination.
std::vector<std::uint8_t> bytes(std::initializer_list<int> v) {
  std::vector<std::uint8_t> out;
  for (int x : v) out.push_back(static_cast<std::uint8_t>(x));
  return out;
}

std::size_t elem_bytes(dtype t) {
  return static_cast<std::size_t>(bits_of(t) / 8);
}

// One conv2d problem with dense NHWC input and OHWI weights.
struct problem {
  conv2d_desc d;
  std::vector<std::uint8_t> input;    // [N, H, W, C_in]
  std::vector<std::uint8_t> weights;  // [C_out, KH, KW, C_in / groups]
  std::vector<float> w_scale;
  std::vector<std::int32_t> w_zero_point;
  std::vector<std::int32_t> bias;

  conv2d_geometry geometry() const { return conv2d_output_geometry(d).value(); }
  std::int64_t out_elems() const {
    const conv2d_geometry g = geometry();
    return d.batch * g.out_h * g.out_w * d.out_c;
  }
  std::size_t out_bytes() const {
    return static_cast<std::size_t>(out_elems()) * elem_bytes(d.out.type);
  }
  conv2d_args args(void* out) const {
    const conv2d_geometry g = geometry();
    conv2d_args a;
    a.input = const_tensor_view(input.data(), d.in_type, {d.batch, d.in_h, d.in_w, d.in_c});
    a.weights = const_tensor_view(weights.data(), d.w_type,
                                  {d.out_c, d.kernel_h, d.kernel_w, d.in_c / d.groups});
    a.w_scale = w_scale;
    a.w_zero_point = w_zero_point;
    a.bias = bias;
    a.out = tensor_view(out, d.out.type, {d.batch, g.out_h, g.out_w, d.out_c});
    return a;
  }
};

std::string describe(const problem& p) {
  const conv2d_desc& d = p.d;
  const char* pad = d.padding == padding_mode::explicit_pads ? "explicit"
                    : d.padding == padding_mode::same_upper  ? "same_upper"
                                                             : "same_lower";
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "N=%lld H=%lld W=%lld Cin=%lld Cout=%lld groups=%lld kernel=%lldx%lld "
                "stride=%lldx%lld dilation=%lldx%lld pad=%s(t%lld b%lld l%lld r%lld) in=%s(zp %d) "
                "w=%s out=%s(%s, scale %g, zp %d, clamp [%d, %d]) entries: w_scale %zu "
                "w_zp %zu bias %zu",
                static_cast<long long>(d.batch), static_cast<long long>(d.in_h),
                static_cast<long long>(d.in_w), static_cast<long long>(d.in_c),
                static_cast<long long>(d.out_c), static_cast<long long>(d.groups),
                static_cast<long long>(d.kernel_h), static_cast<long long>(d.kernel_w),
                static_cast<long long>(d.stride_h), static_cast<long long>(d.stride_w),
                static_cast<long long>(d.dilation_h), static_cast<long long>(d.dilation_w), pad,
                static_cast<long long>(d.pad_top), static_cast<long long>(d.pad_bottom),
                static_cast<long long>(d.pad_left), static_cast<long long>(d.pad_right),
                to_string(d.in_type).data(), d.in_zero_point, to_string(d.w_type).data(),
                to_string(d.out.type).data(), to_string(d.out.mode),
                static_cast<double>(d.out.scale), d.out.zero_point, d.out.clamp_min,
                d.out.clamp_max, p.w_scale.size(), p.w_zero_point.size(), p.bias.size());
  return buf;
}

// Integer outputs (s32, s8, u8) widened to int64.
values decode(const std::uint8_t* p, dtype t, std::int64_t count) {
  values v(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) {
    std::int64_t x = 0;
    switch (t) {
      case dtype::s8: x = static_cast<std::int8_t>(p[i]); break;
      case dtype::u8: x = p[i]; break;
      case dtype::s32: {
        std::int32_t w;
        std::memcpy(&w, p + 4 * i, 4);
        x = w;
        break;
      }
      default: FAIL("decode: not an integer output dtype");
    }
    v[static_cast<std::size_t>(i)] = x;
  }
  return v;
}

// Runs the kernel into a guarded buffer; requires success and intact guards.
void run_into(const problem& p, keel::testing::guarded<std::uint8_t>& out) {
  REQUIRE(static_cast<std::int64_t>(p.input.size()) == p.d.batch * p.d.in_h * p.d.in_w * p.d.in_c);
  REQUIRE(static_cast<std::int64_t>(p.weights.size()) ==
          p.d.out_c * p.d.kernel_h * p.d.kernel_w * (p.d.in_c / p.d.groups));
  const Status s = reference::conv2d_i8(p.d, p.args(out.data()));
  const std::string msg = s.message();
  INFO(msg);
  REQUIRE(s.ok());
  CHECK(out.guards_intact());
}

values run_values(const problem& p) {
  keel::testing::guarded<std::uint8_t> out(p.out_bytes());
  run_into(p, out);
  return decode(out.data(), p.d.out.type, p.out_elems());
}

std::vector<float> run_f32(const problem& p) {
  REQUIRE(p.d.out.type == dtype::f32);
  keel::testing::guarded<std::uint8_t> out(p.out_bytes());
  run_into(p, out);
  std::vector<float> v(static_cast<std::size_t>(p.out_elems()));
  std::memcpy(v.data(), out.data(), v.size() * 4);
  return v;
}

// ---- the independent formulation -------------------------------------------------------------
//
// For each image and each group: gather every receptive field into an im2col matrix
// A [OH*OW, KH*KW*Cg] (a tap in the padding holds the input zero point), copy the group's filters
// transposed into B [KH*KW*Cg, Og], and let reference::matmul_i8 do the reduction and the output
// stage, writing into the group's channel slice of the output through a strided view. The pads
// are resolved here from the ONNX / TensorFlow definitions, not by conv2d_output_geometry.

struct axis_plan {
  std::int64_t out = 0, lead = 0;
};

axis_plan plan_axis(std::int64_t in, std::int64_t k, std::int64_t stride, std::int64_t dilation,
                    padding_mode mode, std::int64_t lead, std::int64_t trail) {
  const std::int64_t span = dilation * (k - 1) + 1;
  if (mode == padding_mode::explicit_pads) {
    return {(in + lead + trail - span) / stride + 1, lead};
  }
  const std::int64_t out = (in + stride - 1) / stride;  // ceil(in / stride)
  const std::int64_t total = std::max<std::int64_t>(0, (out - 1) * stride + span - in);
  // SAME_UPPER puts the odd pad at the end, SAME_LOWER at the beginning.
  return {out, mode == padding_mode::same_upper ? total / 2 : (total + 1) / 2};
}

template <class T>
std::span<const T> channel_slice(const std::vector<T>& v, std::int64_t first, std::int64_t n) {
  if (v.size() <= 1) return v;  // absent or one per tensor: the same for every group
  return std::span<const T>(v).subspan(static_cast<std::size_t>(first),
                                       static_cast<std::size_t>(n));
}

Status conv_by_im2col(const problem& p, std::uint8_t* out) {
  const conv2d_desc& d = p.d;
  const axis_plan ph =
      plan_axis(d.in_h, d.kernel_h, d.stride_h, d.dilation_h, d.padding, d.pad_top, d.pad_bottom);
  const axis_plan pw =
      plan_axis(d.in_w, d.kernel_w, d.stride_w, d.dilation_w, d.padding, d.pad_left, d.pad_right);
  const std::int64_t cg = d.in_c / d.groups, og = d.out_c / d.groups;
  const std::int64_t k = d.kernel_h * d.kernel_w * cg;
  const std::int64_t m = ph.out * pw.out;
  const std::uint8_t pad_byte = static_cast<std::uint8_t>(d.in_zero_point);
  std::vector<std::uint8_t> a_mat(static_cast<std::size_t>(m * k));
  std::vector<std::uint8_t> b_mat(static_cast<std::size_t>(k * og));

  for (std::int64_t n = 0; n < d.batch; ++n) {
    for (std::int64_t grp = 0; grp < d.groups; ++grp) {
      for (std::int64_t oh = 0; oh < ph.out; ++oh) {
        for (std::int64_t ow = 0; ow < pw.out; ++ow) {
          std::uint8_t* row = a_mat.data() + (oh * pw.out + ow) * k;
          for (std::int64_t kh = 0; kh < d.kernel_h; ++kh) {
            for (std::int64_t kw = 0; kw < d.kernel_w; ++kw) {
              const std::int64_t ih = oh * d.stride_h + kh * d.dilation_h - ph.lead;
              const std::int64_t iw = ow * d.stride_w + kw * d.dilation_w - pw.lead;
              const bool inside = ih >= 0 && ih < d.in_h && iw >= 0 && iw < d.in_w;
              for (std::int64_t c = 0; c < cg; ++c) {
                row[(kh * d.kernel_w + kw) * cg + c] =
                    inside ? p.input[static_cast<std::size_t>(
                                 ((n * d.in_h + ih) * d.in_w + iw) * d.in_c + grp * cg + c)]
                           : pad_byte;
              }
            }
          }
        }
      }
      // A dense OHWI filter is one row of K = KH*KW*Cg values in im2col column order.
      for (std::int64_t j = 0; j < og; ++j) {
        for (std::int64_t kk = 0; kk < k; ++kk) {
          b_mat[static_cast<std::size_t>(kk * og + j)] =
              p.weights[static_cast<std::size_t>((grp * og + j) * k + kk)];
        }
      }

      matmul_i8_desc md;
      md.m = m;
      md.n = og;
      md.k = k;
      md.a_type = d.in_type;
      md.b_type = d.w_type;
      md.a_zero_point = d.in_zero_point;
      md.a_scale = d.in_scale;
      md.out = d.out;
      matmul_i8_args ma;
      ma.a = const_tensor_view(a_mat.data(), d.in_type, {m, k});
      ma.b = const_tensor_view(b_mat.data(), d.w_type, {k, og});
      ma.b_scale = channel_slice(p.w_scale, grp * og, og);
      ma.b_zero_point = channel_slice(p.w_zero_point, grp * og, og);
      ma.bias = channel_slice(p.bias, grp * og, og);
      const std::int64_t first =
          (n * m * d.out_c + grp * og) * static_cast<std::int64_t>(elem_bytes(d.out.type));
      ma.out = tensor_view(out + first, d.out.type, {m, og});
      ma.out.strides = {d.out_c, 1, 0, 0};
      KEEL_RETURN_IF_ERROR(reference::matmul_i8(md, ma));
    }
  }
  return Status::Ok();
}

// -1 when equal, else the first differing element.
std::int64_t first_mismatch(const std::uint8_t* a, const std::uint8_t* b, std::int64_t count,
                            dtype t) {
  const std::size_t eb = elem_bytes(t);
  for (std::int64_t i = 0; i < count; ++i) {
    if (std::memcmp(a + i * static_cast<std::int64_t>(eb), b + i * static_cast<std::int64_t>(eb),
                    eb) != 0) {
      return i;
    }
  }
  return -1;
}

std::string show_element(const std::uint8_t* base, const problem& p, std::int64_t i) {
  if (i < 0) return "-";
  const std::uint8_t* at = base + static_cast<std::size_t>(i) * elem_bytes(p.d.out.type);
  if (p.d.out.type != dtype::f32) return std::to_string(decode(at, p.d.out.type, 1)[0]);
  float f;
  std::memcpy(&f, at, 4);
  return std::to_string(f);
}

// Runs the kernel and the im2col formulation and compares every output bit for bit.
void check_against_im2col(const problem& p) {
  keel::testing::guarded<std::uint8_t> got(p.out_bytes());
  run_into(p, got);
  std::vector<std::uint8_t> want(p.out_bytes());
  const Status s = conv_by_im2col(p, want.data());
  const std::string msg = s.message();
  INFO("im2col: " << msg);
  REQUIRE(s.ok());
  const std::int64_t bad = first_mismatch(got.data(), want.data(), p.out_elems(), p.d.out.type);
  INFO("first mismatch at element " << bad << ": kernel " << show_element(got.data(), p, bad)
                                    << ", im2col " << show_element(want.data(), p, bad));
  CHECK(bad == -1);
}

// Random data for every operand of a problem whose desc is set; zero points and scales too.
void fill_random(problem& p, keel::testing::rng& r) {
  conv2d_desc& d = p.d;
  const std::int64_t cg = d.in_c / d.groups;
  p.input.resize(static_cast<std::size_t>(d.batch * d.in_h * d.in_w * d.in_c));
  p.weights.resize(static_cast<std::size_t>(d.out_c * d.kernel_h * d.kernel_w * cg));
  r.fill(p.input, min_of(d.in_type), max_of(d.in_type));
  r.fill(p.weights, min_of(d.w_type), max_of(d.w_type));
  d.in_zero_point = static_cast<std::int32_t>(r.uniform_int(min_of(d.in_type), max_of(d.in_type)));

  const std::int64_t zp_count[] = {0, 1, d.out_c};
  p.w_zero_point.resize(static_cast<std::size_t>(zp_count[r.uniform_int(0, 2)]));
  for (auto& z : p.w_zero_point) {
    z = static_cast<std::int32_t>(r.uniform_int(min_of(d.w_type), max_of(d.w_type)));
  }
  p.bias.resize(static_cast<std::size_t>(r.uniform_int(0, 1) ? d.out_c : 0));
  for (auto& b : p.bias) {
    // Mostly moderate; now and then at the int32 limits, where the bias add must saturate.
    b = r.uniform_int(0, 7) == 0 ? (r.uniform_int(0, 1) ? kI32Max : kI32Min)
                                 : static_cast<std::int32_t>(r.uniform_int(-70000, 70000));
  }
  d.in_scale = r.uniform_float(0.01f, 0.1f);
  p.w_scale.resize(static_cast<std::size_t>(r.uniform_int(0, 1) ? d.out_c : 1));
  for (auto& s : p.w_scale) s = r.uniform_int(0, 15) == 0 ? 0.0f : r.uniform_float(0.005f, 0.05f);

  const dtype out_types[] = {dtype::s32, dtype::f32, dtype::s8, dtype::u8};
  d.out = output_quant{};
  d.out.type = out_types[r.uniform_int(0, 3)];
  d.out.mode = r.uniform_int(0, 1) ? requant_mode::fixed_point : requant_mode::float_scale;
  if (d.out.type == dtype::s8 || d.out.type == dtype::u8) {
    // Aim the typical |acc| (about sqrt(K) * 70 * 70) at about 100 output steps, then scatter
    // by up to 8x either way so that some outputs saturate and some land on small values.
    const double k = static_cast<double>(d.kernel_h * d.kernel_w * cg);
    const double typical = std::sqrt(k) * 4900.0 * d.in_scale * 0.0275 / 100.0;
    d.out.scale = static_cast<float>(typical * std::exp2(r.uniform_float(-3.0f, 3.0f)));
    const dtype t = d.out.type;
    d.out.zero_point = static_cast<std::int32_t>(r.uniform_int(min_of(t), max_of(t)));
    if (r.uniform_int(0, 2) == 0) {
      d.out.clamp_min = static_cast<std::int32_t>(r.uniform_int(min_of(t), d.out.zero_point));
      d.out.clamp_max = static_cast<std::int32_t>(r.uniform_int(d.out.clamp_min, max_of(t)));
    }
  }
}

// A random shape, padding and grouping with a non-empty output, then random data.
problem random_problem(keel::testing::rng& r) {
  problem p;
  conv2d_desc& d = p.d;
  for (;;) {
    d = conv2d_desc{};
    d.batch = r.uniform_int(1, 2);
    d.groups = r.uniform_int(0, 2) == 0 ? 1 : r.uniform_int(1, 4);
    const bool depthwise = r.uniform_int(0, 3) == 0;
    d.in_c = d.groups * (depthwise ? 1 : r.uniform_int(1, 6));
    d.out_c = d.groups * r.uniform_int(1, depthwise ? 3 : 4);
    d.in_h = r.uniform_int(1, 9);
    d.in_w = r.uniform_int(1, 9);
    d.kernel_h = r.uniform_int(1, 4);
    d.kernel_w = r.uniform_int(1, 4);
    d.stride_h = r.uniform_int(1, 3);
    d.stride_w = r.uniform_int(1, 3);
    d.dilation_h = r.uniform_int(0, 1) ? 1 : r.uniform_int(2, 3);
    d.dilation_w = r.uniform_int(0, 1) ? 1 : r.uniform_int(2, 3);
    d.padding = static_cast<padding_mode>(r.uniform_int(0, 2));
    if (d.padding == padding_mode::explicit_pads) {
      d.pad_top = r.uniform_int(0, 3);
      d.pad_bottom = r.uniform_int(0, 3);
      d.pad_left = r.uniform_int(0, 3);
      d.pad_right = r.uniform_int(0, 3);
      const std::int64_t span_h = (d.kernel_h - 1) * d.dilation_h + 1;
      const std::int64_t span_w = (d.kernel_w - 1) * d.dilation_w + 1;
      if (d.in_h + d.pad_top + d.pad_bottom < span_h) continue;
      if (d.in_w + d.pad_left + d.pad_right < span_w) continue;
    }
    break;
  }
  d.in_type = r.uniform_int(0, 1) ? dtype::u8 : dtype::s8;
  d.w_type = r.uniform_int(0, 3) ? dtype::s8 : dtype::u8;
  fill_random(p, r);
  return p;
}

// A hand-sized problem: s32 output, per-tensor unit scales, no zero points unless set later.
problem hand(conv2d_desc d, std::initializer_list<int> x, std::initializer_list<int> w) {
  problem p;
  p.d = d;
  p.input = bytes(x);
  p.weights = bytes(w);
  p.w_scale = {1.0f};
  return p;
}

conv2d_desc shape(std::int64_t h, std::int64_t w, std::int64_t cin, std::int64_t cout,
                  std::int64_t kh, std::int64_t kw) {
  conv2d_desc d;
  d.in_h = h;
  d.in_w = w;
  d.in_c = cin;
  d.out_c = cout;
  d.kernel_h = kh;
  d.kernel_w = kw;
  return d;
}

}  // namespace

// ==============================================================================================
// Hand-computed cases
// ==============================================================================================

TEST_CASE("conv2d_i8: hand-computed small cases") {
  SUBCASE("3x3 input, 2x2 kernel, one channel") {
    // x = 1 2 3    w = 1 2    out(i,j) = x(i,j) + 2x(i,j+1) + 3x(i+1,j) + 4x(i+1,j+1)
    //     4 5 6        3 4    out(0,0) = 1 + 4 + 12 + 20 = 37   out(0,1) = 2 + 6 + 15 + 24 = 47
    //     7 8 9               out(1,0) = 4 + 10 + 21 + 32 = 67  out(1,1) = 5 + 12 + 24 + 36 = 77
    problem p = hand(shape(3, 3, 1, 1, 2, 2), {1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4});
    CHECK(run_values(p) == values{37, 47, 67, 77});
    p.bias = {100};
    CHECK(run_values(p) == values{137, 147, 167, 177});
    SUBCASE("f32 output is acc * in_scale * w_scale") {
      // (37..77 + 100) * 0.5 * 0.25, exact in float.
      p.d.out.type = dtype::f32;
      p.d.in_scale = 0.5f;
      p.w_scale = {0.25f};
      CHECK(run_f32(p) == std::vector<float>{17.125f, 18.375f, 20.875f, 22.125f});
    }
    SUBCASE("input and weight zero points are subtracted") {
      // The same offsets stored around zp 20 (u8 input) and zp -3 (s8 weights).
      p.d.in_zero_point = 20;
      p.input = bytes({21, 22, 23, 24, 25, 26, 27, 28, 29});
      p.w_zero_point = {-3};
      p.weights = bytes({-2, -1, 0, 1});
      CHECK(run_values(p) == values{137, 147, 167, 177});
    }
  }
  SUBCASE("two input channels, two filters: the channel order inside a tap") {
    // x ch0 = 1 2   ch1 = 5 6   stored NHWC: (1,5) (2,6) (3,7) (4,8)
    //         3 4         7 8
    // filter 0 reads ch0 only with weight 1 at every tap: 1 + 2 + 3 + 4 = 10
    // filter 1, (ch0, ch1) per tap: (1,-1) (0,2) (-3,0) (0,1):
    //   1*1 + 5*(-1) + 6*2 + 3*(-3) + 8*1 = 1 - 5 + 12 - 9 + 8 = 7
    problem p = hand(shape(2, 2, 2, 2, 2, 2), {1, 5, 2, 6, 3, 7, 4, 8},
                     {1, 0, 1, 0, 1, 0, 1, 0, 1, -1, 0, 2, -3, 0, 0, 1});
    CHECK(run_values(p) == values{10, 7});
  }
}

TEST_CASE("conv2d_i8: padding reads the input zero point") {
  // A 2x2 input under a 3x3 kernel with every pad 1: each output sees the whole input, and five
  // of its nine taps are padding. Offsets x - zp = [[2 -2] [0 10]], w = [[1 2 3] [4 5 6] [7 8 9]].
  // out(oh,ow) = sum x'(ih,iw) * w(ih - oh + 1, iw - ow + 1):
  //   out(0,0) = 2*5 - 2*6 + 0*8 + 10*9 = 88      out(0,1) = 2*4 - 2*5 + 0*7 + 10*8 = 78
  //   out(1,0) = 2*2 - 2*3 + 0*5 + 10*6 = 58      out(1,1) = 2*1 - 2*2 + 0*4 + 10*5 = 48
  // Were the padding read as a raw 0, each padded tap would add (0 - 128) * w instead of 0.
  conv2d_desc d = shape(2, 2, 1, 1, 3, 3);
  d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
  const std::initializer_list<int> w = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  SUBCASE("u8 input, zero point 128") {
    problem p = hand(d, {130, 126, 128, 138}, w);
    p.d.in_zero_point = 128;
    CHECK(run_values(p) == values{88, 78, 58, 48});
    SUBCASE("requantized to u8 with the same padding") {
      // out = round(acc * 0.5) + 100: 144, 139, 129, 124 (no ties).
      p.d.in_scale = 0.5f;
      p.d.out = output_quant{.type = dtype::u8, .scale = 1.0f, .zero_point = 100};
      CHECK(run_values(p) == values{144, 139, 129, 124});
    }
  }
  SUBCASE("s8 input, zero point -100") {
    problem p = hand(d, {-98, -102, -100, -90}, w);
    p.d.in_type = dtype::s8;
    p.d.in_zero_point = -100;
    CHECK(run_values(p) == values{88, 78, 58, 48});
  }
  SUBCASE("SAME_UPPER resolves the same pads here") {
    problem p = hand(d, {130, 126, 128, 138}, w);
    p.d.in_zero_point = 128;
    p.d.pad_top = p.d.pad_bottom = p.d.pad_left = p.d.pad_right = 0;
    p.d.padding = padding_mode::same_upper;
    CHECK(run_values(p) == values{88, 78, 58, 48});
  }
}

TEST_CASE("conv2d_i8: asymmetric explicit pads") {
  SUBCASE("left only, then right only") {
    // x = [1 2 3], w = [1 10] (1x2).
    // pads left 2: [p p 1 2 3] -> 0, 10, 1 + 20 = 21, 2 + 30 = 32
    // pads right 2: [1 2 3 p p] -> 21, 32, 3, 0
    problem p = hand(shape(1, 3, 1, 1, 1, 2), {1, 2, 3}, {1, 10});
    p.d.pad_left = 2;
    CHECK(run_values(p) == values{0, 10, 21, 32});
    p.d.pad_left = 0;
    p.d.pad_right = 2;
    CHECK(run_values(p) == values{21, 32, 3, 0});
  }
  SUBCASE("top 1, bottom 0, left 0, right 1, input zero point -7") {
    // Offsets x' = [[1 2] [3 4]] stored as x' - 7; w = [[1 2] [3 4]]. Padded:
    //   p p p
    //   1 2 p       out(0,0) = 1*3 + 2*4 = 11          out(0,1) = 2*3 = 6
    //   3 4 p       out(1,0) = 1 + 4 + 9 + 16 = 30     out(1,1) = 2*1 + 4*3 = 14
    problem p = hand(shape(2, 2, 1, 1, 2, 2), {-6, -5, -4, -3}, {1, 2, 3, 4});
    p.d.in_type = dtype::s8;
    p.d.in_zero_point = -7;
    p.d.pad_top = 1;
    p.d.pad_right = 1;
    CHECK(run_values(p) == values{11, 6, 30, 14});
  }
  SUBCASE("pads wider than the kernel: whole output rows of padding give the bias") {
    // x = [5], w = [2], bias 7; pads top 2, right 1 -> a 3x2 output where only (2,0) sees x:
    // 5*2 + 7 = 17, every other output is 0 + 7.
    problem p = hand(shape(1, 1, 1, 1, 1, 1), {5}, {2});
    p.bias = {7};
    p.d.pad_top = 2;
    p.d.pad_right = 1;
    CHECK(run_values(p) == values{7, 7, 7, 7, 17, 7});
  }
}

TEST_CASE("conv2d_i8: SAME_UPPER vs SAME_LOWER with odd total padding") {
  SUBCASE("along W, stride 1") {
    // W = 4, kernel 2: out = 4, total pad = 3 + 2 - 4 = 1.
    // upper (pad at the end):   [1 2 3 4 p] * [1 10] -> 21, 32, 43, 4
    // lower (pad at the start): [p 1 2 3 4] * [1 10] -> 10, 21, 32, 43
    problem p = hand(shape(1, 4, 1, 1, 1, 2), {1, 2, 3, 4}, {1, 10});
    p.d.padding = padding_mode::same_upper;
    CHECK(run_values(p) == values{21, 32, 43, 4});
    p.d.padding = padding_mode::same_lower;
    CHECK(run_values(p) == values{10, 21, 32, 43});
  }
  SUBCASE("along H, stride 2, u8 input zero point 50") {
    // H = 4, kernel 3, stride 2: out = ceil(4/2) = 2, total = 1*2 + 3 - 4 = 1. Offsets 1 2 3 4.
    // upper: [1 2 3 4 p] -> taps rows 0..2 = 1 + 20 + 300 = 321, rows 2..4 = 3 + 40 + 0 = 43
    // lower: [p 1 2 3 4] -> 0 + 10 + 200 = 210, 2 + 30 + 400 = 432
    problem p = hand(shape(4, 1, 1, 1, 3, 1), {51, 52, 53, 54}, {1, 10, 100});
    p.d.in_zero_point = 50;
    p.d.stride_h = 2;
    p.d.padding = padding_mode::same_upper;
    CHECK(run_values(p) == values{321, 43});
    p.d.padding = padding_mode::same_lower;
    CHECK(run_values(p) == values{210, 432});
  }
}

TEST_CASE("conv2d_i8: stride 2 and dilation 2") {
  // x(r, c) = 10r + c on a 5x6 input (H != W catches swapped axes), w = [[1 2] [3 4]].
  std::vector<std::uint8_t> x;
  for (int r = 0; r < 5; ++r) {
    for (int c = 0; c < 6; ++c) x.push_back(static_cast<std::uint8_t>(10 * r + c));
  }
  problem p = hand(shape(5, 6, 1, 1, 2, 2), {}, {1, 2, 3, 4});
  p.input = x;
  SUBCASE("stride 2") {
    // x(r,c) + 2x(r,c+1) + 3x(r+1,c) + 4x(r+1,c+1) = 100r + 10c + 76 at r = 2oh, c = 2ow;
    // out 2x3.
    p.d.stride_h = p.d.stride_w = 2;
    CHECK(run_values(p) == values{76, 96, 116, 276, 296, 316});
  }
  SUBCASE("dilation 2") {
    // x(r,c) + 2x(r,c+2) + 3x(r+2,c) + 4x(r+2,c+2) = 100r + 10c + 152; span 3, out 3x4.
    p.d.dilation_h = p.d.dilation_w = 2;
    CHECK(run_values(p) == values{152, 162, 172, 182, 252, 262, 272, 282, 352, 362, 372, 382});
  }
  SUBCASE("stride 2 and dilation 2") {
    // 100r + 10c + 152 at r = 2oh, c = 2ow; out (5-3)/2+1 = 2 by (6-3)/2+1 = 2.
    p.d.stride_h = p.d.stride_w = 2;
    p.d.dilation_h = p.d.dilation_w = 2;
    CHECK(run_values(p) == values{152, 172, 352, 372});
  }
  SUBCASE("stride along H, dilation along W") {
    // x(r,c) + 2x(r,c+2) + 3x(r+1,c) + 4x(r+1,c+2) = 100r + 10c + 82 at r = 2oh, c = ow;
    // out 2x4.
    p.d.stride_h = 2;
    p.d.dilation_w = 2;
    CHECK(run_values(p) == values{82, 92, 102, 112, 282, 292, 302, 312});
  }
  SUBCASE("dilation along H, stride along W") {
    // x(r,c) + 2x(r,c+1) + 3x(r+2,c) + 4x(r+2,c+1) = 100r + 10c + 146 at r = oh, c = 2ow;
    // out 3x3.
    p.d.dilation_h = 2;
    p.d.stride_w = 2;
    CHECK(run_values(p) == values{146, 166, 186, 246, 266, 286, 346, 366, 386});
  }
}

TEST_CASE("conv2d_i8: grouped convolution") {
  SUBCASE("2 groups, 2 filters each") {
    // x = [1 2 | 3 4]; each filter reads its group's two channels.
    // group 0: [1 1] -> 3, [10 1] -> 12;  group 1: [1 1] -> 7, [10 1] -> 34.
    // (Without grouping the last two would read channels 0-1 again: 3 and 12.)
    problem p = hand(shape(1, 1, 4, 4, 1, 1), {1, 2, 3, 4}, {1, 1, 10, 1, 1, 1, 10, 1});
    p.d.groups = 2;
    CHECK(run_values(p) == values{3, 12, 7, 34});
  }
  SUBCASE("3 groups, 1 filter each, per-channel weight zero points") {
    // x = [1 2 | 3 4 | 5 6], filters [1 100] stored around zero points 0, 5, -5:
    // 1 + 200 = 201, 3 + 400 = 403, 5 + 600 = 605.
    problem p = hand(shape(1, 1, 6, 3, 1, 1), {1, 2, 3, 4, 5, 6}, {1, 100, 6, 105, -4, 95});
    p.d.groups = 3;
    p.w_zero_point = {0, 5, -5};
    CHECK(run_values(p) == values{201, 403, 605});
  }
}

TEST_CASE("conv2d_i8: depthwise with a channel multiplier, per-channel parameters, requantized") {
  SUBCASE("multiplier 2: 2 channels, 4 filters, 2x2 kernel") {
    // s8 input, zp 1. Offsets by tap (0,0) (0,1) (1,0) (1,1): ch0 = [2 0 -1 4], ch1 = [-2 1 0 0].
    // Filters 0, 1 read ch0; filters 2, 3 read ch1. Weight offsets (raw - zp[oc]):
    //   oc0 zp 0:  [1 1 1 1]       -> 2 + 0 - 1 + 4 = 5
    //   oc1 zp 2:  [1 3 -1 1]      -> 2 + 0 + 1 + 4 = 7
    //   oc2 zp -1: [3 -3 6 8]      -> -6 - 3 + 0 + 0 = -9
    //   oc3 zp 3:  [-5 -3 -2 -2]   -> 10 - 3 + 0 + 0 = 7, then bias -14 -> -7
    problem p = hand(shape(2, 2, 2, 4, 2, 2), {3, -1, 1, 2, 0, 1, 5, 1},
                     {1, 1, 1, 1, 3, 5, 1, 3, 2, -4, 5, 7, -2, 0, 1, 1});
    p.d.groups = 2;
    p.d.in_type = dtype::s8;
    p.d.in_zero_point = 1;
    p.w_zero_point = {0, 2, -1, 3};
    p.bias = {0, 0, 0, -14};
    CHECK(run_values(p) == values{5, 7, -9, -7});

    // in_scale 0.5, w_scale [1 0.5 2 1], out scale 1: multipliers [0.5 0.25 1 0.5], so the
    // scaled accumulators are 2.5, 1.75, -9, -3.5; s8 output zp 10.
    p.d.in_scale = 0.5f;
    p.w_scale = {1.0f, 0.5f, 2.0f, 1.0f};
    p.d.out = output_quant{.type = dtype::s8, .scale = 1.0f, .zero_point = 10};
    SUBCASE("fixed point: ties toward +inf") {
      p.d.out.mode = requant_mode::fixed_point;  // 3, 2, -9, -3
      CHECK(run_values(p) == values{13, 12, 1, 7});
    }
    SUBCASE("float scale: ties to even") {
      p.d.out.mode = requant_mode::float_scale;  // 2, 2, -9, -4
      CHECK(run_values(p) == values{12, 12, 1, 6});
    }
    SUBCASE("f32 output") {
      p.d.out = output_quant{.type = dtype::f32};
      CHECK(run_f32(p) == std::vector<float>{2.5f, 1.75f, -9.0f, -3.5f});
    }
  }
  SUBCASE("multiplier 3: 2 channels, 6 filters, 1x1 kernel over two pixels, u8 output") {
    // s8 input, zp -2: pixel 0 offsets (3, -3), pixel 1 offsets (0, 6).
    // Weight offsets, raw [2 -1 5 3 0 -4] minus zp [0 1 2 0 -3 -4]: [2 -2 3 3 3 0].
    // Filters 0-2 read ch0, 3-5 read ch1:
    //   pixel 0: 6 -6 9 | -9 -9 0      pixel 1: 0 0 0 | 18 18 0
    // in_scale 0.25, w_scale [1 2 1 0.5 1 4], out scale 0.5 -> multipliers w_scale / 2 =
    // [0.5 1 0.5 0.25 0.5 2]; scaled: pixel 0: 3 -6 4.5 -2.25 -4.5 0, pixel 1: 0 0 0 4.5 9 0.
    problem p = hand(shape(1, 2, 2, 6, 1, 1), {1, -5, -2, 4}, {2, -1, 5, 3, 0, -4});
    p.d.groups = 2;
    p.d.in_type = dtype::s8;
    p.d.in_zero_point = -2;
    p.w_zero_point = {0, 1, 2, 0, -3, -4};
    CHECK(run_values(p) == values{6, -6, 9, -9, -9, 0, 0, 0, 0, 18, 18, 0});
    p.d.in_scale = 0.25f;
    p.w_scale = {1.0f, 2.0f, 1.0f, 0.5f, 1.0f, 4.0f};
    p.d.out = output_quant{.type = dtype::u8, .scale = 0.5f, .zero_point = 100};
    SUBCASE("fixed point") {
      // 4.5 -> 5, -4.5 -> -4 (ties toward +inf), -2.25 -> -2
      p.d.out.mode = requant_mode::fixed_point;
      CHECK(run_values(p) == values{103, 94, 105, 98, 96, 100, 100, 100, 100, 105, 109, 100});
    }
    SUBCASE("float scale") {
      // 4.5 -> 4, -4.5 -> -4 (ties to even)
      p.d.out.mode = requant_mode::float_scale;
      CHECK(run_values(p) == values{103, 94, 104, 98, 96, 100, 100, 100, 100, 104, 109, 100});
    }
  }
}

TEST_CASE("conv2d_i8: fused clamp (ReLU, ReLU6)") {
  // 1x1 conv with w = 1 over x = [-5 0 3 8 20]; unit scales, s8 output zp -10:
  // unclamped out = acc - 10 = [-15 -10 -7 -2 10].
  problem p = hand(shape(1, 5, 1, 1, 1, 1), {-5, 0, 3, 8, 20}, {1});
  p.d.in_type = dtype::s8;
  p.d.out = output_quant{.type = dtype::s8, .scale = 1.0f, .zero_point = -10};
  CHECK(run_values(p) == values{-15, -10, -7, -2, 10});
  SUBCASE("ReLU: clamp_min = output zero point") {
    p.d.out.clamp_min = -10;
    CHECK(run_values(p) == values{-10, -10, -7, -2, 10});
  }
  SUBCASE("ReLU6: [zp, zp + 6 / scale]") {
    p.d.out.clamp_min = -10;
    p.d.out.clamp_max = -4;  // 6 / 1
    CHECK(run_values(p) == values{-10, -10, -7, -4, -4});
    // Scale 0.5: out = 2 acc - 10 = [-20 -10 -4 6 30], ReLU6 max = -10 + 12 = 2.
    p.d.out.scale = 0.5f;
    p.d.out.clamp_max = 2;
    CHECK(run_values(p) == values{-10, -10, -4, 2, 2});
  }
  SUBCASE("a clamp wider than the type is cut to the type: u8 ReLU") {
    p.d.out = output_quant{.type = dtype::u8, .scale = 1.0f, .zero_point = 0};
    p.d.out.clamp_min = 0;
    p.d.out.clamp_max = 100000;
    CHECK(run_values(p) == values{0, 0, 3, 8, 20});
  }
}

TEST_CASE("conv2d_i8: outputs saturate, never wrap") {
  // 64 channels of x = 100 against filters of +100 and -100: acc = +-640000 (640000 = 2500 *
  // 256, so a wrapping int8 store would give 0).
  conv2d_desc d = shape(1, 1, 64, 2, 1, 1);
  d.in_type = dtype::s8;
  problem p;
  p.d = d;
  p.input.assign(64, 100);
  p.weights.assign(64, 100);
  p.weights.insert(p.weights.end(), 64, static_cast<std::uint8_t>(-100));
  p.w_scale = {1.0f};
  CHECK(run_values(p) == values{640000, -640000});
  for (requant_mode mode : {requant_mode::fixed_point, requant_mode::float_scale}) {
    INFO("mode " << to_string(mode));
    p.d.out = output_quant{.type = dtype::s8, .mode = mode, .scale = 1.0f};
    CHECK(run_values(p) == values{127, -128});
    p.d.out = output_quant{.type = dtype::u8, .mode = mode, .scale = 1.0f};
    CHECK(run_values(p) == values{255, 0});
    // Scale 10000: +-64 around zp 200 -> 264 saturates to 255, 136 fits.
    p.d.out = output_quant{.type = dtype::u8, .mode = mode, .scale = 10000.0f, .zero_point = 200};
    CHECK(run_values(p) == values{255, 136});
    // A multiplier of 1e30 saturates inside the requantizer (Q31 at its largest shift, or a
    // float product far past int32) and still lands on the type's limits.
    p.d.out = output_quant{.type = dtype::s8, .mode = mode, .scale = 1e-30f, .zero_point = 3};
    CHECK(run_values(p) == values{127, -128});
  }
  SUBCASE("the bias add saturates to int32") {
    p.d.out = output_quant{};
    p.bias = {kI32Max, kI32Min};
    CHECK(run_values(p) == values{kI32Max, kI32Min});
    p.bias = {kI32Min, kI32Max};
    CHECK(run_values(p) == values{640000LL + kI32Min, kI32Max - 640000LL});
  }
}

TEST_CASE("conv2d_i8: extremes over a long reduction match the closed form") {
  SUBCASE("s8 -128 against w = -128, K = 131071, the largest exact length") {
    // max_exact_k = floor((2^31 - 1) / 16384) = 131071; acc = 131071 * 16384 = 2147467264.
    // Biases 0, 16383 (lands exactly on INT32_MAX) and 16384 (one past: saturates).
    const std::int64_t k = 131071;
    problem p;
    p.d = shape(1, 1, k, 3, 1, 1);
    p.d.in_type = dtype::s8;
    p.input.assign(static_cast<std::size_t>(k), static_cast<std::uint8_t>(-128));
    p.weights.assign(static_cast<std::size_t>(3 * k), static_cast<std::uint8_t>(-128));
    p.w_scale = {1.0f};
    p.bias = {0, 16383, 16384};
    const std::int64_t closed = k * 128 * 128;
    CHECK(closed == 2147467264LL);
    CHECK(run_values(p) == values{closed, kI32Max, kI32Max});
    SUBCASE("one more element is rejected: the int32 accumulator would not be exact") {
      p.d.in_c = k + 1;
      p.input.push_back(0);
      p.weights.resize(static_cast<std::size_t>(3 * (k + 1)), 0);
      keel::testing::guarded<std::uint8_t> out(p.out_bytes());
      const Status s = reference::conv2d_i8(p.d, p.args(out.data()));
      CHECK(s.code() == status_code::overflow);
      CHECK(std::string(s.message()).find("reduction length 131072") != std::string::npos);
      CHECK(out.untouched());
    }
  }
  SUBCASE("u8 255 against w = -128 through a 3x3 window, K = 9 * 7281 = 65529") {
    // max_exact_k(255, 128) = floor((2^31 - 1) / 32640) = 65793 >= 65529.
    // acc = -65529 * 255 * 128 = -2138866560; requantized to s8 it saturates at -128.
    const std::int64_t c = 7281;
    problem p;
    p.d = shape(3, 3, c, 3, 3, 3);
    p.input.assign(static_cast<std::size_t>(9 * c), 255);
    p.weights.assign(static_cast<std::size_t>(3 * 9 * c), static_cast<std::uint8_t>(-128));
    p.w_scale = {1.0f};
    // Biases: none; -8616960, which lands exactly on INT32_MIN + 128 (-2147483520); and
    // -8617089, one past INT32_MIN, which saturates.
    p.bias = {0, -8616960, -8617089};
    const std::int64_t closed = -9 * c * 255 * 128;
    CHECK(closed == -2138866560LL);
    CHECK(run_values(p) == values{closed, std::int64_t{kI32Min} + 128, kI32Min});
    p.d.out = output_quant{.type = dtype::s8, .scale = 1.0f};
    CHECK(run_values(p) == values{-128, -128, -128});
    SUBCASE("K = 9 * 7311 = 65799 is past the bound") {
      p.d.in_c = 7311;
      p.input.assign(9 * 7311, 255);
      p.weights.assign(3 * 9 * 7311, static_cast<std::uint8_t>(-128));
      keel::testing::guarded<std::uint8_t> out(p.out_bytes());
      const Status s = reference::conv2d_i8(p.d, p.args(out.data()));
      CHECK(s.code() == status_code::overflow);
      CHECK(std::string(s.message()).find("reduction length 65799 exceeds 65793") !=
            std::string::npos);
      CHECK(out.untouched());
    }
  }
  SUBCASE("zero points push both offsets to -255: s8 -128 (zp 127) against u8 0 (zp 255)") {
    // max_exact_k(255, 255) = floor((2^31 - 1) / 65025) = 33025; acc = 33025 * 65025.
    const std::int64_t k = 33025;
    problem p;
    p.d = shape(1, 1, k, 1, 1, 1);
    p.d.in_type = dtype::s8;
    p.d.w_type = dtype::u8;
    p.d.in_zero_point = 127;
    p.input.assign(static_cast<std::size_t>(k), static_cast<std::uint8_t>(-128));
    p.weights.assign(static_cast<std::size_t>(k), 0);
    p.w_zero_point = {255};
    p.w_scale = {1.0f};
    CHECK(run_values(p) == values{2147450625LL});
    CHECK(33025LL * 65025 == 2147450625LL);
  }
}

// ==============================================================================================
// Cross-checks against the im2col + matmul_i8 formulation
// ==============================================================================================

TEST_CASE("conv2d_i8: channel counts that are not multiples of 4, 8 or 16") {
  keel::testing::rng r(101);
  INFO("seed " << r.seed());
  const std::int64_t primes[] = {1, 2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
  SUBCASE("dense: every C_in against every C_out, 3x3 SAME") {
    for (std::int64_t cin : primes) {
      for (std::int64_t cout : primes) {
        problem p;
        p.d = shape(4, 5, cin, cout, 3, 3);
        p.d.padding = padding_mode::same_upper;
        p.d.in_type = r.uniform_int(0, 1) ? dtype::u8 : dtype::s8;
        fill_random(p, r);
        INFO(describe(p));
        check_against_im2col(p);
      }
    }
  }
  SUBCASE("depthwise and grouped with prime group widths") {
    for (std::int64_t c : primes) {
      for (std::int64_t mult = 1; mult <= 3; ++mult) {
        problem p;
        p.d = shape(5, 4, c, c * mult, 3, 3);
        p.d.groups = c;
        p.d.pad_top = 1;
        p.d.pad_left = 2;
        fill_random(p, r);
        INFO(describe(p));
        check_against_im2col(p);

        problem q;
        q.d = shape(4, 3, 3 * c, 3 * (mult + 2), 2, 2);
        q.d.groups = 3;
        q.d.stride_w = 2;
        fill_random(q, r);
        INFO(describe(q));
        check_against_im2col(q);
      }
    }
  }
}

TEST_CASE("conv2d_i8: random shapes, strides, dilations, pads and groups against im2col") {
  keel::testing::rng r(202);
  INFO("seed " << r.seed());
  for (int iter = 0; iter < 400; ++iter) {
    problem p = random_problem(r);
    INFO("iteration " << iter << ": " << describe(p));
    // The pads and output size match the independently resolved ones.
    const conv2d_geometry g = p.geometry();
    const axis_plan ph = plan_axis(p.d.in_h, p.d.kernel_h, p.d.stride_h, p.d.dilation_h,
                                   p.d.padding, p.d.pad_top, p.d.pad_bottom);
    const axis_plan pw = plan_axis(p.d.in_w, p.d.kernel_w, p.d.stride_w, p.d.dilation_w,
                                   p.d.padding, p.d.pad_left, p.d.pad_right);
    CHECK(g.out_h == ph.out);
    CHECK(g.out_w == pw.out);
    CHECK(g.pad_top == ph.lead);
    CHECK(g.pad_left == pw.lead);
    check_against_im2col(p);
  }
}

namespace {
// Copies a dense NHWC / OHWI tensor into storage with the given strides; gaps keep their junk.
void scatter(const std::vector<std::uint8_t>& dense, std::vector<std::uint8_t>& strided,
             const std::int64_t (&dims)[4], const std::int64_t (&strides)[4]) {
  std::int64_t flat = 0;
  for (std::int64_t i0 = 0; i0 < dims[0]; ++i0) {
    for (std::int64_t i1 = 0; i1 < dims[1]; ++i1) {
      for (std::int64_t i2 = 0; i2 < dims[2]; ++i2) {
        for (std::int64_t i3 = 0; i3 < dims[3]; ++i3) {
          const std::int64_t at =
              i0 * strides[0] + i1 * strides[1] + i2 * strides[2] + i3 * strides[3];
          strided[static_cast<std::size_t>(at)] = dense[static_cast<std::size_t>(flat++)];
        }
      }
    }
  }
}
}  // namespace

TEST_CASE("conv2d_i8: strided and broadcast views") {
  SUBCASE("padded and interleaved strides; gaps hold junk that must not be read or written") {
    keel::testing::rng r(303);
    INFO("seed " << r.seed());
    for (int iter = 0; iter < 40; ++iter) {
      const problem p = random_problem(r);
      INFO("iteration " << iter << ": " << describe(p));
      const conv2d_desc& d = p.d;
      const conv2d_geometry g = p.geometry();
      const std::int64_t cg = d.in_c / d.groups;
      std::vector<std::uint8_t> want(p.out_bytes());
      REQUIRE(conv_by_im2col(p, want.data()).ok());

      // Input: channels every 2nd element, pixels and rows padded by odd amounts.
      const std::int64_t xc = 2, xw = 2 * d.in_c + 1, xh = xw * d.in_w + 3, xn = xh * d.in_h + 5;
      std::vector<std::uint8_t> xs(static_cast<std::size_t>(xn * d.batch));
      r.fill(xs, 0, 255);
      scatter(p.input, xs, {d.batch, d.in_h, d.in_w, d.in_c}, {xn, xh, xw, xc});
      // Weights: every 3rd element along C, padded pixels and rows.
      const std::int64_t wc = 3, ww = 3 * cg + 2, wh = ww * d.kernel_w + 1,
                         wo = wh * d.kernel_h + 7;
      std::vector<std::uint8_t> ws(static_cast<std::size_t>(wo * d.out_c));
      r.fill(ws, 0, 255);
      scatter(p.weights, ws, {d.out_c, d.kernel_h, d.kernel_w, cg}, {wo, wh, ww, wc});
      // Output: channels every 2nd element, padded pixels and rows.
      const std::int64_t zc = 2, zw = 2 * d.out_c + 1, zh = zw * g.out_w + 1, zn = zh * g.out_h + 2;
      const std::size_t eb = elem_bytes(d.out.type);
      keel::testing::guarded<std::uint8_t> out(static_cast<std::size_t>(zn * d.batch) * eb);

      conv2d_args a = p.args(nullptr);
      a.input.data = xs.data();
      a.input.strides = {xn, xh, xw, xc};
      a.weights.data = ws.data();
      a.weights.strides = {wo, wh, ww, wc};
      a.out.data = out.data();
      a.out.strides = {zn, zh, zw, zc};
      const Status s = reference::conv2d_i8(d, a);
      INFO(std::string(s.message()));
      REQUIRE(s.ok());
      CHECK(out.guards_intact());

      // Every element matches im2col; every byte between elements still holds the sentinel.
      std::vector<bool> covered(out.size(), false);
      std::int64_t mismatches = 0, flat = 0;
      for (std::int64_t n = 0; n < d.batch; ++n) {
        for (std::int64_t h = 0; h < g.out_h; ++h) {
          for (std::int64_t w = 0; w < g.out_w; ++w) {
            for (std::int64_t c = 0; c < d.out_c; ++c, ++flat) {
              const std::size_t at =
                  static_cast<std::size_t>(n * zn + h * zh + w * zw + c * zc) * eb;
              if (std::memcmp(out.data() + at, want.data() + flat * static_cast<std::int64_t>(eb),
                              eb) != 0) {
                ++mismatches;
              }
              for (std::size_t byte = 0; byte < eb; ++byte) covered[at + byte] = true;
            }
          }
        }
      }
      CHECK(mismatches == 0);
      std::int64_t stray = 0;
      for (std::size_t i = 0; i < out.size(); ++i) {
        if (!covered[i] && out[i] != keel::testing::guarded<std::uint8_t>::kPattern) ++stray;
      }
      CHECK(stray == 0);
    }
  }
  SUBCASE("stride 0 broadcasts one input row to every row and one filter to every filter") {
    keel::testing::rng r(313);
    INFO("seed " << r.seed());
    for (int iter = 0; iter < 40; ++iter) {
      const problem p = random_problem(r);
      INFO("iteration " << iter << ": " << describe(p));
      const conv2d_desc& d = p.d;
      // The expected result: im2col over dense copies with row 0 and filter 0 replicated.
      problem q = p;
      const std::int64_t row = d.in_w * d.in_c, img = d.in_h * row;
      for (std::int64_t n = 0; n < d.batch; ++n) {
        for (std::int64_t h = 1; h < d.in_h; ++h) {
          std::memcpy(q.input.data() + n * img + h * row, q.input.data() + n * img,
                      static_cast<std::size_t>(row));
        }
      }
      const std::int64_t filt = d.kernel_h * d.kernel_w * (d.in_c / d.groups);
      for (std::int64_t o = 1; o < d.out_c; ++o) {
        std::memcpy(q.weights.data() + o * filt, q.weights.data(), static_cast<std::size_t>(filt));
      }
      std::vector<std::uint8_t> want(q.out_bytes());
      REQUIRE(conv_by_im2col(q, want.data()).ok());

      keel::testing::guarded<std::uint8_t> out(p.out_bytes());
      conv2d_args a = p.args(out.data());
      a.input.strides[1] = 0;
      a.weights.strides[0] = 0;
      const Status s = reference::conv2d_i8(d, a);
      INFO(std::string(s.message()));
      REQUIRE(s.ok());
      CHECK(out.guards_intact());
      const std::int64_t bad = first_mismatch(out.data(), want.data(), p.out_elems(), d.out.type);
      INFO("first mismatch at element " << bad);
      CHECK(bad == -1);
    }
  }
}

TEST_CASE("conv2d_i8: misaligned (odd address) input, weight and 8-bit output pointers") {
  keel::testing::rng r(404);
  INFO("seed " << r.seed());
  for (int iter = 0; iter < 40; ++iter) {
    problem p = random_problem(r);
    INFO("iteration " << iter << ": " << describe(p));
    std::vector<std::uint8_t> want(p.out_bytes());
    REQUIRE(conv_by_im2col(p, want.data()).ok());

    const keel::testing::misaligned_copy<std::uint8_t> x(p.input, 3);
    const keel::testing::misaligned_copy<std::uint8_t> w(p.weights, 1);
    REQUIRE(reinterpret_cast<std::uintptr_t>(x.data()) % 2 == 1);
    REQUIRE(reinterpret_cast<std::uintptr_t>(w.data()) % 2 == 1);
    // 8-bit outputs promise 1-byte alignment only: shift them by one byte as well.
    const std::size_t shift = elem_bytes(p.d.out.type) == 1 ? 1 : 0;
    keel::testing::guarded<std::uint8_t> out(p.out_bytes() + shift);
    conv2d_args a = p.args(out.data() + shift);
    a.input.data = x.data();
    a.weights.data = w.data();
    const Status s = reference::conv2d_i8(p.d, a);
    INFO(std::string(s.message()));
    REQUIRE(s.ok());
    CHECK(out.guards_intact());
    if (shift) CHECK(out[0] == keel::testing::guarded<std::uint8_t>::kPattern);
    CHECK(first_mismatch(out.data() + shift, want.data(), p.out_elems(), p.d.out.type) == -1);
  }
}

TEST_CASE("conv2d_i8: the reference backend runs this kernel, packed or not") {
  keel::testing::rng r(505);
  INFO("seed " << r.seed());
  for (int iter = 0; iter < 10; ++iter) {
    problem p = random_problem(r);
    INFO("iteration " << iter << ": " << describe(p));
    std::vector<std::uint8_t> want(p.out_bytes());
    REQUIRE(conv_by_im2col(p, want.data()).ok());
    backends::reference_backend be;
    keel::testing::guarded<std::uint8_t> out(p.out_bytes());
    REQUIRE(be.run(p.d, p.args(out.data())).ok());
    CHECK(first_mismatch(out.data(), want.data(), p.out_elems(), p.d.out.type) == -1);

    keel::testing::guarded<std::uint8_t> out2(p.out_bytes());
    auto packed = be.pack(p.d, p.args(nullptr));
    REQUIRE(packed.ok());
    conv2d_args a = p.args(out2.data());
    a.weights = {};  // the packed object supplies the weights
    REQUIRE(be.run(p.d, packed.value(), a).ok());
    CHECK(first_mismatch(out2.data(), want.data(), p.out_elems(), p.d.out.type) == -1);
    CHECK(out2.guards_intact());
  }
}

// ==============================================================================================
// Batch 0 and bad input
// ==============================================================================================

TEST_CASE("conv2d_i8: batch 0 is valid and writes nothing") {
  problem p = hand(shape(3, 3, 2, 2, 2, 2), {}, {1, 2, 3, 4, 5, 6, 7, 8, 1, 2, 3, 4, 5, 6, 7, 8});
  p.d.batch = 0;
  keel::testing::guarded<std::uint8_t> out(16);
  conv2d_args a = p.args(out.data());
  a.input.data = nullptr;  // nothing to read: a null input is fine for an empty batch
  const Status s = reference::conv2d_i8(p.d, a);
  INFO(std::string(s.message()));
  CHECK(s.ok());
  CHECK(out.untouched());
}

namespace {
struct bad_case {
  const char* key;  // a word the Status message must contain
  std::function<void(conv2d_desc&, conv2d_args&)> mutate;
};

// A valid problem: u8 input zp 5, s8 weights, groups 2, 3x3 kernel pad 1, s8 output.
problem valid_problem() {
  keel::testing::rng r(606);
  problem p;
  p.d = shape(5, 6, 4, 6, 3, 3);
  p.d.batch = 2;
  p.d.groups = 2;
  p.d.pad_top = p.d.pad_bottom = p.d.pad_left = p.d.pad_right = 1;
  fill_random(p, r);
  p.d.in_zero_point = 5;
  p.w_scale.assign(6, 0.02f);
  p.w_zero_point.assign(6, 1);
  p.bias.assign(6, 1000);
  p.d.out = output_quant{.type = dtype::s8, .scale = 0.5f, .zero_point = -3};
  return p;
}

void expect_rejected(std::initializer_list<bad_case> cases) {
  const problem p = valid_problem();
  {
    keel::testing::guarded<std::uint8_t> out(p.out_bytes());
    run_into(p, out);  // the unmutated problem is accepted
  }
  for (const bad_case& c : cases) {
    keel::testing::guarded<std::uint8_t> out(p.out_bytes());
    conv2d_desc d = p.d;
    conv2d_args a = p.args(out.data());
    c.mutate(d, a);
    const Status s = reference::conv2d_i8(d, a);
    const std::string msg = s.message();
    INFO("expected \"" << c.key << "\" in: " << msg);
    CHECK_FALSE(s.ok());
    CHECK(msg.rfind("conv2d_i8: ", 0) == 0);
    CHECK(msg.find(c.key) != std::string::npos);
    CHECK(out.untouched());
  }
}
}  // namespace

TEST_CASE("conv2d_i8: bad input returns a Status that names it and writes nothing") {
  using D = conv2d_desc;
  using A = conv2d_args;
  SUBCASE("mismatched shapes") {
    expect_rejected({
        {"input dim 2 is 5", [](D&, A& a) { a.input.shape[2] = 5; }},
        {"input dim 0", [](D&, A& a) { a.input.shape[0] = 1; }},
        {"input has rank 3", [](D&, A& a) { a.input.rank = 3; }},
        {"weights dim 3 is 4", [](D&, A& a) { a.weights.shape[3] = 4; }},  // C_in, not C_in/groups
        {"weights dim 1", [](D&, A& a) { a.weights.shape[1] = 2; }},
        {"out dim 1 is 6", [](D&, A& a) { a.out.shape[1] = 6; }},
        {"out dim 3", [](D&, A& a) { a.out.shape[3] = 3; }},
    });
  }
  SUBCASE("per-channel arrays of the wrong length") {
    static const float two_scales[] = {1.0f, 1.0f};
    static const std::int32_t five[] = {0, 0, 0, 0, 0};
    expect_rejected({
        {"weight scale has 2 entries", [](D&, A& a) { a.w_scale = two_scales; }},
        {"weight scale has 0 entries", [](D&, A& a) { a.w_scale = {}; }},
        {"weight zero point has 5 entries", [](D&, A& a) { a.w_zero_point = five; }},
        {"bias has 5 entries", [](D&, A& a) { a.bias = five; }},
    });
  }
  SUBCASE("zero and negative sizes") {
    expect_rejected({
        {"batch = -1", [](D& d, A&) { d.batch = -1; }},
        {"in_h = 0", [](D& d, A&) { d.in_h = 0; }},
        {"in_w = -6", [](D& d, A&) { d.in_w = -6; }},
        {"in_c = 0", [](D& d, A&) { d.in_c = 0; }},
        {"out_c = -6", [](D& d, A&) { d.out_c = -6; }},
        {"kernel_h = 0", [](D& d, A&) { d.kernel_h = 0; }},
        {"kernel_w = -3", [](D& d, A&) { d.kernel_w = -3; }},
        {"stride_h = 0", [](D& d, A&) { d.stride_h = 0; }},
        {"stride_w = -1", [](D& d, A&) { d.stride_w = -1; }},
        {"dilation_h = 0", [](D& d, A&) { d.dilation_h = 0; }},
        {"dilation_w = -2", [](D& d, A&) { d.dilation_w = -2; }},
        {"groups = 0", [](D& d, A&) { d.groups = 0; }},
        {"padding -1", [](D& d, A&) { d.pad_left = -1; }},
        {"padding -2", [](D& d, A&) { d.pad_bottom = -2; }},
    });
  }
  SUBCASE("groups that do not divide the channels") {
    expect_rejected({
        {"groups = 3 must divide in_c = 4", [](D& d, A&) { d.groups = 3; }},
        {"groups = 4 must divide in_c = 4 and out_c = 6", [](D& d, A&) { d.groups = 4; }},
    });
  }
  SUBCASE("a kernel larger than the padded input") {
    expect_rejected({
        {"larger than the padded input", [](D& d, A&) { d.kernel_h = 8; }},  // 8 > 5 + 2
        {"(11x3) is larger than the padded input",
         [](D& d, A&) {  // dilated: (3 - 1) * 5 + 1 = 11 > 5 + 2
           d.dilation_h = 5;
         }},
        {"larger than the padded input",
         [](D& d, A&) {  // without the pads a 6-wide kernel fits 6 but 7 does not
           d.pad_left = d.pad_right = 0;
           d.kernel_w = 7;
         }},
    });
  }
  SUBCASE("size products that overflow") {
    constexpr std::int64_t k2e31 = std::int64_t{1} << 31;
    expect_rejected({
        {"in_w = 1099511627776 (must be <= 2^31)",
         [](D& d, A&) { d.in_w = std::int64_t{1} << 40; }},
        {"input: the product of sizes overflows int64",
         [](D& d, A&) {
           d.batch = std::int64_t{1} << 40;
           d.in_h = d.in_w = d.in_c = k2e31;
           d.out_c = 2;
           d.groups = 1;
           d.kernel_h = d.kernel_w = 1;
         }},
        {"weights: the product of sizes overflows int64",
         [](D& d, A&) {
           d.batch = 1;
           d.in_h = d.in_w = 1;
           d.in_c = d.out_c = k2e31;
           d.kernel_h = d.kernel_w = 2;
           d.groups = 1;
           d.pad_right = d.pad_bottom = 1;
         }},
        {"input: its extent in bytes overflows int64",
         [](D&, A& a) { a.input.strides[1] = std::int64_t{1} << 62; }},
    });
  }
  SUBCASE("null buffers") {
    expect_rejected({
        {"input is null", [](D&, A& a) { a.input.data = nullptr; }},
        {"weights is null", [](D&, A& a) { a.weights.data = nullptr; }},
        {"out is null", [](D&, A& a) { a.out.data = nullptr; }},
    });
  }
  SUBCASE("wrong dtypes") {
    expect_rejected({
        {"dtypes input=f32", [](D& d, A&) { d.in_type = dtype::f32; }},
        {"weights=s4", [](D& d, A&) { d.w_type = dtype::s4; }},
        {"input has dtype s8 (must be u8)", [](D&, A& a) { a.input.type = dtype::s8; }},
        {"weights has dtype u8 (must be s8)", [](D&, A& a) { a.weights.type = dtype::u8; }},
        {"out has dtype u8 (must be s8)", [](D&, A& a) { a.out.type = dtype::u8; }},
        {"output dtype s4",
         [](D& d, A& a) {
           d.out.type = dtype::s4;
           a.out.type = dtype::s4;
         }},
    });
  }
  SUBCASE("zero points out of range") {
    static const std::int32_t bad_wzp[] = {1, 1, 1, -129, 1, 1};
    expect_rejected({
        {"input zero point = 256", [](D& d, A&) { d.in_zero_point = 256; }},
        {"input zero point = -1", [](D& d, A&) { d.in_zero_point = -1; }},
        {"input zero point = 128 is outside the s8 range",
         [](D& d, A& a) {
           d.in_type = dtype::s8;
           a.input.type = dtype::s8;
           d.in_zero_point = 128;
         }},
        {"weight zero point = -129", [](D&, A& a) { a.w_zero_point = bad_wzp; }},
        {"output zero point = 128", [](D& d, A&) { d.out.zero_point = 128; }},
        {"output zero point = -1",
         [](D& d, A& a) {
           d.out.type = dtype::u8;
           a.out.type = dtype::u8;
           d.out.zero_point = -1;
         }},
    });
  }
  SUBCASE("scales: zero, negative, NaN, infinite") {
    static const float neg_scale[] = {0.02f, 0.02f, -0.5f, 0.02f, 0.02f, 0.02f};
    static const float nan_scale[] = {std::numeric_limits<float>::quiet_NaN()};
    expect_rejected({
        {"output scale = 0", [](D& d, A&) { d.out.scale = 0.0f; }},
        {"output scale = -1", [](D& d, A&) { d.out.scale = -1.0f; }},
        {"output scale = nan",
         [](D& d, A&) { d.out.scale = std::numeric_limits<float>::quiet_NaN(); }},
        {"output scale = inf",
         [](D& d, A&) { d.out.scale = std::numeric_limits<float>::infinity(); }},
        {"input scale = nan",
         [](D& d, A&) { d.in_scale = std::numeric_limits<float>::quiet_NaN(); }},
        {"input scale = -2", [](D& d, A&) { d.in_scale = -2.0f; }},
        {"weight scale = -0.5", [](D&, A& a) { a.w_scale = neg_scale; }},
        {"weight scale = nan", [](D&, A& a) { a.w_scale = nan_scale; }},
    });
  }
  SUBCASE("an empty clamp, a misaligned s32 output, a negative view stride") {
    expect_rejected({
        {"clamp [10, 5] is empty",
         [](D& d, A&) {
           d.out.clamp_min = 10;
           d.out.clamp_max = 5;
         }},
        {"clamp [200, 300] is empty within the s8 range",
         [](D& d, A&) {
           d.out.clamp_min = 200;
           d.out.clamp_max = 300;
         }},
        {"misaligned",
         [](D& d, A& a) {
           d.out = output_quant{};
           a.out.type = dtype::s32;
           a.out.data = static_cast<std::uint8_t*>(a.out.data) + 1;
         }},
        {"stride 2 is -1", [](D&, A& a) { a.input.strides[2] = -1; }},
    });
  }
}
