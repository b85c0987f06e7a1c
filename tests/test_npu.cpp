// The NPU backend: the virtual NPU against the reference (bit for bit, random shapes and random
// device configurations), its tiling against the SRAM budget, its timing against the roofline
// it implies, fault injection, profiles, and bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "keel/backends/npu.hpp"
#include "keel/keel.hpp"
#include "support/testing.hpp"

using namespace keel;
using namespace keel::npu;
using keel::testing::guarded;
using keel::testing::rng;

namespace {

bool contains(const Status& s, const char* word) {
  return std::string(s.message()).find(word) != std::string::npos;
}

std::int64_t out_bytes_of(dtype t) { return bits_of(t) / 8; }

// ---- random device configurations -----------------------------------------------------------

// A random but valid configuration; SRAM often small so that every dimension gets tiled.
vnpu_config random_config(rng& r) {
  vnpu_config c;
  const std::int64_t sides[] = {1, 2, 3, 4, 8, 16, 32};
  c.mac_rows = sides[r.uniform_int(0, 6)];
  c.mac_cols = sides[r.uniform_int(0, 6)];
  const std::int64_t aligns[] = {4, 16, 64, 256};
  c.alignment = aligns[r.uniform_int(0, 3)];
  c.sram_bytes = r.uniform_int(0, 3) == 0 ? r.uniform_int(64, 512) * 1024
                                          : r.uniform_int(3, 24) * 1024;
  const double bws[] = {1.0, 3.5, 16.0, 64.0};
  c.dma_bytes_per_cycle = bws[r.uniform_int(0, 3)];
  c.dma_setup_cycles = r.uniform_int(0, 100);
  c.requant_lanes = sides[r.uniform_int(0, 6)];
  c.requant_setup_cycles = r.uniform_int(0, 16);
  c.double_buffer = r.uniform_int(0, 1) == 1;
  return c;
}

// ---- random matmul_i8 cases ------------------------------------------------------------------

struct matmul_case {
  matmul_i8_desc d;
  std::vector<std::uint8_t> a, b;  // raw s8/u8 bytes
  std::vector<float> b_scale;
  std::vector<std::int32_t> b_zp, bias;

  matmul_i8_args args(void* out) const {
    matmul_i8_args x;
    const bool batched = d.batch != 1;
    x.a = batched ? const_tensor_view(a.data(), d.a_type, {d.batch, d.m, d.k})
                  : const_tensor_view(a.data(), d.a_type, {d.m, d.k});
    x.b = d.b_batched ? const_tensor_view(b.data(), d.b_type, {d.batch, d.k, d.n})
                      : const_tensor_view(b.data(), d.b_type, {d.k, d.n});
    x.b_scale = b_scale;
    x.b_zero_point = b_zp;
    x.bias = bias;
    x.out = batched ? tensor_view(out, d.out.type, {d.batch, d.m, d.n})
                    : tensor_view(out, d.out.type, {d.m, d.n});
    return x;
  }
  std::int64_t out_bytes() const { return d.batch * d.m * d.n * out_bytes_of(d.out.type); }
};

void fill_8bit(rng& r, std::vector<std::uint8_t>& v, dtype t) {
  for (auto& x : v) x = static_cast<std::uint8_t>(r.uniform_int(min_of(t), max_of(t)));
  if (!v.empty() && std::all_of(v.begin(), v.end(), [](std::uint8_t x) { return x == 0; })) v[0] = 1;
}

// The output stage: a random dtype, mode, scale (spread so the 8-bit range is exercised),
// zero point and, sometimes, a fused ReLU-style clamp.
output_quant random_output(rng& r, std::int64_t reduction, float in_scale, float w_scale) {
  output_quant o;
  const dtype types[] = {dtype::s32, dtype::f32, dtype::s8, dtype::u8};
  o.type = types[r.uniform_int(0, 3)];
  o.mode = r.uniform_int(0, 1) ? requant_mode::fixed_point : requant_mode::float_scale;
  if (o.type == dtype::s8 || o.type == dtype::u8) {
    const float spread = std::sqrt(static_cast<float>(reduction)) * 60.0f * in_scale * w_scale;
    o.scale = spread / 127.0f * r.uniform_float(0.3f, 3.0f);
    o.zero_point = static_cast<std::int32_t>(r.uniform_int(min_of(o.type), max_of(o.type)));
    if (r.uniform_int(0, 3) == 0) o.clamp_min = o.zero_point;  // ReLU
  }
  return o;
}

matmul_case random_matmul(rng& r, std::int64_t max_m, std::int64_t max_n, std::int64_t max_k) {
  matmul_case c;
  matmul_i8_desc& d = c.d;
  d.batch = r.uniform_int(0, 6) == 0 ? 0 : r.uniform_int(1, 3);
  d.m = r.uniform_int(1, max_m);
  d.n = r.uniform_int(1, max_n);
  d.k = r.uniform_int(1, max_k);
  d.a_type = r.uniform_int(0, 1) ? dtype::u8 : dtype::s8;
  d.b_type = r.uniform_int(0, 3) ? dtype::s8 : dtype::u8;
  d.a_zero_point = static_cast<std::int32_t>(r.uniform_int(min_of(d.a_type), max_of(d.a_type)));
  d.a_scale = r.uniform_float(0.002f, 0.05f);
  d.b_batched = d.batch > 1 && r.uniform_int(0, 1) == 1;
  d.out = random_output(r, d.k, d.a_scale, 0.01f);
  c.a.resize(static_cast<std::size_t>(d.batch * d.m * d.k));
  c.b.resize(static_cast<std::size_t>((d.b_batched ? d.batch : 1) * d.k * d.n));
  fill_8bit(r, c.a, d.a_type);
  fill_8bit(r, c.b, d.b_type);
  const std::int64_t nscale = r.uniform_int(0, 1) ? d.n : 1;
  if (d.out.type != dtype::s32 || r.uniform_int(0, 1)) {
    c.b_scale.resize(static_cast<std::size_t>(nscale));
    for (float& s : c.b_scale) s = r.uniform_float(0.005f, 0.02f);
  }
  const std::int64_t nzp[] = {0, 1, d.n};
  c.b_zp.resize(static_cast<std::size_t>(nzp[r.uniform_int(0, 2)]));
  for (auto& z : c.b_zp) z = static_cast<std::int32_t>(r.uniform_int(min_of(d.b_type), max_of(d.b_type)));
  if (r.uniform_int(0, 1)) {
    c.bias.resize(static_cast<std::size_t>(d.n));
    for (auto& b : c.bias) b = static_cast<std::int32_t>(r.uniform_int(-20000, 20000));
    // The saturating bias add: an extreme bias on one column.
    if (r.uniform_int(0, 4) == 0) c.bias[0] = r.uniform_int(0, 1) ? INT32_MAX : INT32_MIN;
  }
  return c;
}

// ---- random conv2d_i8 cases ------------------------------------------------------------------

struct conv_case {
  conv2d_desc d;
  conv2d_geometry g;
  std::vector<std::uint8_t> x, w;
  std::vector<float> w_scale;
  std::vector<std::int32_t> w_zp, bias;

  conv2d_args args(void* out) const {
    conv2d_args a;
    a.input = const_tensor_view(x.data(), d.in_type, {d.batch, d.in_h, d.in_w, d.in_c});
    a.weights = const_tensor_view(w.data(), d.w_type,
                                  {d.out_c, d.kernel_h, d.kernel_w, d.in_c / d.groups});
    a.w_scale = w_scale;
    a.w_zero_point = w_zp;
    a.bias = bias;
    a.out = tensor_view(out, d.out.type, {d.batch, g.out_h, g.out_w, d.out_c});
    return a;
  }
  std::int64_t out_bytes() const {
    return d.batch * g.out_h * g.out_w * d.out_c * out_bytes_of(d.out.type);
  }
};

// kind: 0 regular, 1 grouped, 2 depthwise (with a channel multiplier), -1 any.
conv_case random_conv(rng& r, int kind = -1, std::int64_t max_hw = 10) {
  for (;;) {
    conv_case c;
    conv2d_desc& d = c.d;
    const int k = kind < 0 ? static_cast<int>(r.uniform_int(0, 2)) : kind;
    d.batch = r.uniform_int(0, 8) == 0 ? 0 : r.uniform_int(1, 2);
    d.in_h = r.uniform_int(1, max_hw);
    d.in_w = r.uniform_int(1, max_hw);
    if (k == 0) {
      d.groups = 1;
      d.in_c = r.uniform_int(1, 24);
      d.out_c = r.uniform_int(1, 40);
    } else if (k == 1) {
      d.groups = r.uniform_int(2, 4);
      d.in_c = d.groups * r.uniform_int(2, 6);
      d.out_c = d.groups * r.uniform_int(1, 7);
    } else {
      d.in_c = r.uniform_int(1, 24);
      d.groups = d.in_c;
      d.out_c = d.in_c * r.uniform_int(1, 3);
    }
    d.kernel_h = r.uniform_int(1, 4);
    d.kernel_w = r.uniform_int(1, 4);
    d.stride_h = r.uniform_int(1, 3);
    d.stride_w = r.uniform_int(1, 3);
    d.dilation_h = r.uniform_int(1, 2);
    d.dilation_w = r.uniform_int(1, 2);
    const padding_mode modes[] = {padding_mode::explicit_pads, padding_mode::same_upper,
                                  padding_mode::same_lower};
    d.padding = modes[r.uniform_int(0, 2)];
    d.pad_top = r.uniform_int(0, 2);
    d.pad_bottom = r.uniform_int(0, 2);
    d.pad_left = r.uniform_int(0, 2);
    d.pad_right = r.uniform_int(0, 2);
    d.in_type = r.uniform_int(0, 1) ? dtype::u8 : dtype::s8;
    d.w_type = r.uniform_int(0, 3) ? dtype::s8 : dtype::u8;
    d.in_zero_point = static_cast<std::int32_t>(r.uniform_int(min_of(d.in_type), max_of(d.in_type)));
    d.in_scale = r.uniform_float(0.002f, 0.05f);
    const std::int64_t reduction = d.kernel_h * d.kernel_w * (d.in_c / d.groups);
    d.out = random_output(r, reduction, d.in_scale, 0.01f);
    Result<conv2d_geometry> g = conv2d_output_geometry(d);
    if (!g.ok()) continue;  // the dilated kernel is larger than the padded input: draw again
    c.g = g.value();
    c.x.resize(static_cast<std::size_t>(d.batch * d.in_h * d.in_w * d.in_c));
    c.w.resize(static_cast<std::size_t>(d.out_c * d.kernel_h * d.kernel_w * (d.in_c / d.groups)));
    fill_8bit(r, c.x, d.in_type);
    fill_8bit(r, c.w, d.w_type);
    const std::int64_t nscale = r.uniform_int(0, 1) ? d.out_c : 1;
    if (d.out.type != dtype::s32 || r.uniform_int(0, 1)) {
      c.w_scale.resize(static_cast<std::size_t>(nscale));
      for (float& s : c.w_scale) s = r.uniform_float(0.005f, 0.02f);
    }
    const std::int64_t nzp[] = {0, 1, d.out_c};
    c.w_zp.resize(static_cast<std::size_t>(nzp[r.uniform_int(0, 2)]));
    for (auto& z : c.w_zp) z = static_cast<std::int32_t>(r.uniform_int(min_of(d.w_type), max_of(d.w_type)));
    if (r.uniform_int(0, 1)) {
      c.bias.resize(static_cast<std::size_t>(d.out_c));
      for (auto& b : c.bias) b = static_cast<std::int32_t>(r.uniform_int(-20000, 20000));
    }
    return c;
  }
}

std::string describe(const matmul_i8_desc& d) {
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "matmul batch=%lld M=%lld N=%lld K=%lld A=%s B=%s za=%d b_batched=%d out=%s %s",
                static_cast<long long>(d.batch), static_cast<long long>(d.m),
                static_cast<long long>(d.n), static_cast<long long>(d.k),
                to_string(d.a_type).data(), to_string(d.b_type).data(), d.a_zero_point,
                d.b_batched, to_string(d.out.type).data(), to_string(d.out.mode));
  return buf;
}

std::string describe(const conv2d_desc& d) {
  char buf[320];
  std::snprintf(buf, sizeof buf,
                "conv batch=%lld in=%lldx%lldx%lld out_c=%lld k=%lldx%lld s=%lldx%lld "
                "d=%lldx%lld pad=%d(%lld,%lld,%lld,%lld) groups=%lld in=%s w=%s out=%s %s",
                static_cast<long long>(d.batch), static_cast<long long>(d.in_h),
                static_cast<long long>(d.in_w), static_cast<long long>(d.in_c),
                static_cast<long long>(d.out_c), static_cast<long long>(d.kernel_h),
                static_cast<long long>(d.kernel_w), static_cast<long long>(d.stride_h),
                static_cast<long long>(d.stride_w), static_cast<long long>(d.dilation_h),
                static_cast<long long>(d.dilation_w), static_cast<int>(d.padding),
                static_cast<long long>(d.pad_top), static_cast<long long>(d.pad_bottom),
                static_cast<long long>(d.pad_left), static_cast<long long>(d.pad_right),
                static_cast<long long>(d.groups), to_string(d.in_type).data(),
                to_string(d.w_type).data(), to_string(d.out.type).data(), to_string(d.out.mode));
  return buf;
}

std::string describe(const vnpu_config& c) {
  char buf[200];
  std::snprintf(buf, sizeof buf,
                "vnpu %lldx%lld sram=%lld align=%lld bw=%g setup=%lld lanes=%lld double=%d",
                static_cast<long long>(c.mac_rows), static_cast<long long>(c.mac_cols),
                static_cast<long long>(c.sram_bytes), static_cast<long long>(c.alignment),
                c.dma_bytes_per_cycle, static_cast<long long>(c.dma_setup_cycles),
                static_cast<long long>(c.requant_lanes), c.double_buffer);
  return buf;
}

using vnpu_backend = npu_backend<virtual_npu>;

// Runs a case on the reference and on the NPU; CHECKs bit equality (or an unsupported Status
// that names the SRAM and leaves the output untouched). Returns whether the NPU ran it.
template <class Backend, class Case>
bool cross_check(Backend& npu, const Case& c, bool allow_sram_refusal) {
  guarded<std::uint8_t> want(static_cast<std::size_t>(c.out_bytes()));
  guarded<std::uint8_t> got(static_cast<std::size_t>(c.out_bytes()));
  Status ref;
  if constexpr (std::is_same_v<Case, matmul_case>) {
    ref = reference::matmul_i8(c.d, c.args(want.data()));
  } else {
    ref = reference::conv2d_i8(c.d, c.args(want.data()));
  }
  REQUIRE_MESSAGE(ref.ok(), ref.message());
  const Status s = npu.run(c.d, c.args(got.data()));
  CHECK(got.guards_intact());
  if (!s.ok()) {
    INFO(s.message());
    CHECK(allow_sram_refusal);
    CHECK(s.code() == status_code::unsupported);
    CHECK(contains(s, "SRAM"));
    CHECK(got.untouched());
    return false;
  }
  CHECK(std::memcmp(want.data(), got.data(), want.size()) == 0);
  return true;
}

}  // namespace

// =============================================================================================
// Cross-check: every supported op, bit for bit, over random shapes and random devices
// =============================================================================================

TEST_CASE("virtual NPU matmul_i8 is bit-identical to the reference (random shapes, devices)") {
  rng r(501);
  int ran = 0, refused = 0;
  for (int iter = 0; iter < 150; ++iter) {
    const vnpu_config cfg = random_config(r);
    vnpu_backend npu{virtual_npu(cfg)};
    const matmul_case c = random_matmul(r, 40, 70, 160);
    INFO("seed=" << r.seed() << " iter=" << iter << " " << describe(c.d) << " " << describe(cfg));
    (cross_check(npu, c, /*allow_sram_refusal=*/false) ? ran : refused)++;
  }
  CHECK(ran == 150);
  CHECK(refused == 0);
}

TEST_CASE("virtual NPU conv2d_i8 is bit-identical to the reference (regular, grouped, depthwise)") {
  rng r(502);
  for (int kind = 0; kind < 3; ++kind) {
    int ran = 0;
    for (int iter = 0; iter < 60; ++iter) {
      const vnpu_config cfg = random_config(r);
      vnpu_backend npu{virtual_npu(cfg)};
      const conv_case c = random_conv(r, kind);
      INFO("seed=" << r.seed() << " kind=" << kind << " iter=" << iter << " " << describe(c.d)
                   << " " << describe(cfg));
      ran += cross_check(npu, c, /*allow_sram_refusal=*/true) ? 1 : 0;
    }
    INFO("kind=" << kind << " ran=" << ran);
    CHECK(ran >= 50);  // a refusal needs a window too large for a few KiB: rare
  }
}

TEST_CASE("virtual NPU on the shipped profiles is bit-identical to the reference") {
  rng r(503);
  generic_vnpu_backend generic;
  rk3588_vnpu_backend rk;
  imx8mp_vnpu_backend imx;
  for (int iter = 0; iter < 12; ++iter) {
    matmul_case m = random_matmul(r, 70, 130, 300);
    conv_case c = random_conv(r, -1, 16);
    INFO("seed=" << r.seed() << " iter=" << iter << " " << describe(m.d) << " " << describe(c.d));
    CHECK(cross_check(generic, m, false));
    CHECK(cross_check(generic, c, false));
    CHECK(cross_check(rk, m, false));
    CHECK(cross_check(rk, c, false));
    // i.MX 8M Plus: 8-bit outputs, fixed-point requantization, symmetric weights only.
    for (output_quant* o : {&m.d.out, &c.d.out}) {
      if (o->type == dtype::s32 || o->type == dtype::f32) {
        o->type = dtype::s8;
        o->scale = 0.5f;
      }
      o->mode = requant_mode::fixed_point;
      o->zero_point = std::clamp(o->zero_point, min_of(o->type), max_of(o->type));
    }
    if (m.b_scale.empty()) m.b_scale = {0.01f};
    if (c.w_scale.empty()) c.w_scale = {0.01f};
    m.b_zp.clear();
    c.w_zp.clear();
    CHECK(cross_check(imx, m, false));
    CHECK(cross_check(imx, c, false));
  }
}
