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

std::int64_t out_bytes_of(dtype t) {
  return bits_of(t) / 8;
}

// ---- random device configurations -----------------------------------------------------------

// A random but valid configuration; SRAM often small so that every dimension gets tiled.
vnpu_config random_config(rng& r) {
  vnpu_config c;
  const std::int64_t sides[] = {1, 2, 3, 4, 8, 16, 32};
  c.mac_rows = sides[r.uniform_int(0, 6)];
  c.mac_cols = sides[r.uniform_int(0, 6)];
  const std::int64_t aligns[] = {4, 16, 64, 256};
  c.alignment = aligns[r.uniform_int(0, 3)];
  c.sram_bytes =
      r.uniform_int(0, 3) == 0 ? r.uniform_int(64, 512) * 1024 : r.uniform_int(3, 24) * 1024;
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
  if (!v.empty() && std::all_of(v.begin(), v.end(), [](std::uint8_t x) { return x == 0; }))
    v[0] = 1;
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
  for (auto& z : c.b_zp)
    z = static_cast<std::int32_t>(r.uniform_int(min_of(d.b_type), max_of(d.b_type)));
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
    a.weights =
        const_tensor_view(w.data(), d.w_type, {d.out_c, d.kernel_h, d.kernel_w, d.in_c / d.groups});
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
    d.in_zero_point =
        static_cast<std::int32_t>(r.uniform_int(min_of(d.in_type), max_of(d.in_type)));
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
    for (auto& z : c.w_zp)
      z = static_cast<std::int32_t>(r.uniform_int(min_of(d.w_type), max_of(d.w_type)));
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
                to_string(d.a_type).data(), to_string(d.b_type).data(), d.a_zero_point, d.b_batched,
                to_string(d.out.type).data(), to_string(d.out.mode));
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

// =============================================================================================
// Tiling: every command stream stays inside the configured SRAM and covers the output once
// =============================================================================================

namespace {

// Checks, with arithmetic of its own, what the tiler promises about a stream built for `cfg`:
//   1. the regions lie inside the SRAM, are aligned, and do not overlap;
//   2. every descriptor stays inside the regions it names, in the role the region was made for;
//   3. the stores write every output byte exactly once;
//   4. (matmul) the tiles' MACs add up to the op's.
void check_stream(const vnpu::command_stream& s, const vnpu_config& cfg, std::int64_t out_bytes,
                  std::int64_t op_macs, bool is_matmul) {
  using vnpu::region_role;
  // ---- 1. regions --------------------------------------------------------------------------
  std::int64_t total = 0;
  for (std::size_t i = 0; i < s.regions.size(); ++i) {
    const vnpu::sram_region& g = s.regions[i];
    INFO("region " << i << " offset=" << g.offset << " bytes=" << g.bytes);
    CHECK(g.offset >= 0);
    CHECK(g.bytes > 0);
    CHECK(g.offset + g.bytes <= cfg.sram_bytes);
    CHECK(g.offset % cfg.alignment == 0);
    total += g.bytes;
    for (std::size_t j = 0; j < i; ++j) {
      const vnpu::sram_region& h = s.regions[j];
      CHECK((g.offset >= h.offset + h.bytes || h.offset >= g.offset + g.bytes));
    }
  }
  CHECK(total <= cfg.sram_bytes);
  CHECK(s.tiling.footprint == total);

  auto fits = [&](std::int32_t r, std::int64_t bytes, region_role role) {
    if (r < 0 || r >= static_cast<std::int32_t>(s.regions.size())) return false;
    const vnpu::sram_region& g = s.regions[static_cast<std::size_t>(r)];
    return g.role == role && bytes <= g.bytes;
  };

  // ---- 2. descriptors ----------------------------------------------------------------------
  std::vector<int> written(static_cast<std::size_t>(out_bytes), 0);
  std::int64_t macs = 0, outside = 0;
  for (std::size_t i = 0; i < s.commands.size(); ++i) {
    const vnpu::command& c = s.commands[i];
    INFO("command " << i << " " << to_string(c.op));
    switch (c.op) {
      case vnpu::opcode::load:
      case vnpu::opcode::store: {
        const vnpu::dma_desc& d = c.dma;
        REQUIRE(d.planes >= 1);
        REQUIRE(d.rows >= 1);
        REQUIRE(d.row_bytes >= 1);
        const std::int64_t last = d.region_offset + (d.planes - 1) * d.sram_plane_stride +
                                  (d.rows - 1) * d.sram_row_stride + d.row_bytes;
        const vnpu::sram_region& g = s.regions.at(static_cast<std::size_t>(d.region));
        CHECK(last <= g.bytes);
        if (c.op == vnpu::opcode::load) {
          CHECK((g.role == region_role::input || g.role == region_role::weights ||
                 g.role == region_role::params));
        } else {
          CHECK(g.role == region_role::output);
          for (std::int64_t p = 0; p < d.planes; ++p)
            for (std::int64_t r = 0; r < d.rows; ++r)
              for (std::int64_t b = 0; b < d.row_bytes; ++b) {
                const std::int64_t at =
                    d.dram_offset + p * d.dram_plane_stride + r * d.dram_row_stride + b;
                if (at < 0 || at >= out_bytes) {
                  ++outside;
                } else {
                  ++written[static_cast<std::size_t>(at)];
                }
              }
        }
        break;
      }
      case vnpu::opcode::matmul_tile: {
        const vnpu::matmul_tile_desc& m = c.mm;
        CHECK(fits(m.a_region, m.m * m.k, region_role::input));
        CHECK(fits(m.b_region, m.k * m.n, region_role::weights));
        CHECK(fits(m.params_region, m.n * 24, region_role::params));
        CHECK(fits(m.acc_region, m.m * m.n * 4, region_role::acc));
        macs += m.m * m.n * m.k;
        break;
      }
      case vnpu::opcode::conv_tile: {
        const vnpu::conv_tile_desc& t = c.conv;
        CHECK(fits(t.in_region, t.win_rows * t.win_cols * t.win_chans, region_role::input));
        CHECK(fits(t.w_region, t.channels * t.kernel_h * t.kernel_w * t.w_chans,
                   region_role::weights));
        CHECK(fits(t.params_region, t.channels * 24, region_role::params));
        CHECK(fits(t.acc_region, t.out_rows * t.out_cols * t.channels * 4, region_role::acc));
        // The window holds the last tap of the last pixel.
        CHECK((t.out_rows - 1) * t.stride_h + (t.kernel_h - 1) * t.dilation_h < t.win_rows);
        CHECK((t.out_cols - 1) * t.stride_w + (t.kernel_w - 1) * t.dilation_w < t.win_cols);
        break;
      }
      case vnpu::opcode::requantize: {
        const vnpu::requant_desc& q = c.rq;
        CHECK(fits(q.acc_region, q.rows * q.cols * 4, region_role::acc));
        CHECK(fits(q.params_region, q.cols * 24, region_role::params));
        CHECK(fits(q.out_region, q.rows * q.cols * out_bytes_of(q.out.type), region_role::output));
        break;
      }
    }
  }

  // ---- 3. every output byte stored exactly once ---------------------------------------------
  std::int64_t wrong = 0;
  for (int w : written) wrong += (w != 1) ? 1 : 0;
  CHECK(wrong == 0);
  CHECK(outside == 0);
  // ---- 4. matmul: the tiles' MACs are the op's ----------------------------------------------
  if (is_matmul) CHECK(macs == op_macs);
}

}  // namespace

TEST_CASE("tiling never exceeds the configured SRAM (random devices, random ops)") {
  rng r(511);
  int streams = 0, refused = 0;
  for (int iter = 0; iter < 300; ++iter) {
    vnpu_config cfg = random_config(r);
    if (r.uniform_int(0, 2) == 0) cfg.sram_bytes = r.uniform_int(1, 8) * 1024;  // very tight
    const virtual_npu dev(cfg);
    npu_op op;
    std::int64_t out_bytes = 0, macs = 0;
    std::string what;
    if (iter % 2 == 0) {
      const matmul_case c = random_matmul(r, 90, 120, 400);
      op.kind = op_kind::matmul_i8;
      op.matmul = c.d;
      out_bytes = c.out_bytes();
      macs = c.d.batch * c.d.m * c.d.n * c.d.k;
      what = describe(c.d);
    } else {
      const conv_case c = random_conv(r, -1, 20);
      op.kind = op_kind::conv2d_i8;
      op.conv = c.d;
      out_bytes = c.out_bytes();
      what = describe(c.d);
    }
    INFO("seed=" << r.seed() << " iter=" << iter << " " << what << " " << describe(cfg));
    vnpu::command_stream s;
    const Status st = dev.build(op, s);
    if (!st.ok()) {
      INFO(st.message());
      CHECK(st.code() == status_code::unsupported);
      CHECK(contains(st, "SRAM"));
      ++refused;
      continue;
    }
    ++streams;
    check_stream(s, cfg, out_bytes, macs, op.kind == op_kind::matmul_i8);
  }
  INFO("streams=" << streams << " refused=" << refused);
  CHECK(streams >= 250);
}

TEST_CASE("tiling cuts every dimension when the SRAM is small") {
  // Hand-sized: a 64 x 64 x 256 matmul on 4 KiB cannot keep any operand whole, so the stream has
  // several tiles along M, N and K (and K chunks accumulate).
  vnpu_config cfg;
  cfg.sram_bytes = 4096;
  cfg.alignment = 16;
  const virtual_npu dev(cfg);
  npu_op op;
  op.matmul.m = 64;
  op.matmul.n = 64;
  op.matmul.k = 256;
  op.matmul.out.type = dtype::s32;
  vnpu::command_stream s;
  REQUIRE(dev.build(op, s).ok());
  check_stream(s, cfg, 64 * 64 * 4, 64 * 64 * 256, true);
  CHECK(s.tiling.tile[0] < 64);
  CHECK(s.tiling.tile[1] < 64);
  CHECK(s.tiling.tile[2] < 256);
  int accumulating = 0;
  for (const vnpu::command& c : s.commands) {
    if (c.op == vnpu::opcode::matmul_tile && c.mm.accumulate) ++accumulating;
  }
  CHECK(accumulating > 0);
  // With the SRAM below the smallest possible tile (2 slots x 5 regions of at least 16 bytes,
  // params 32), the op is refused, naming the SRAM.
  cfg.sram_bytes = 128;
  const virtual_npu tiny(cfg);
  const Status refused = tiny.build(op, s);
  CHECK(refused.code() == status_code::unsupported);
  CHECK(contains(refused, "SRAM"));
}

// =============================================================================================
// Timing: per command, per stream, and the roofline the configuration implies
// =============================================================================================

namespace {

vnpu::command dma_cmd(vnpu::opcode op, std::int32_t region, std::int64_t bytes) {
  vnpu::command c;
  c.op = op;
  c.dma.region = region;
  c.dma.row_bytes = bytes;
  return c;
}

vnpu::command matmul_cmd(std::int32_t a, std::int32_t b, std::int32_t p, std::int32_t acc,
                         std::int64_t m, std::int64_t n, std::int64_t k) {
  vnpu::command c;
  c.op = vnpu::opcode::matmul_tile;
  c.mm.a_region = a;
  c.mm.b_region = b;
  c.mm.params_region = p;
  c.mm.acc_region = acc;
  c.mm.m = m;
  c.mm.n = n;
  c.mm.k = k;
  return c;
}

// Predicted cycles of a matmul on a device; the stream's own figures on the side.
cycle_estimate matmul_estimate(const vnpu_config& cfg, std::int64_t m, std::int64_t n,
                               std::int64_t k, dtype out) {
  const virtual_npu dev(cfg);
  npu_op op;
  op.matmul.m = m;
  op.matmul.n = n;
  op.matmul.k = k;
  op.matmul.out.type = out;
  const Result<cycle_estimate> e = dev.estimate(op);
  REQUIRE_MESSAGE(e.ok(), e.status().message());
  return e.value();
}

cycle_estimate conv_estimate(const vnpu_config& cfg, const conv2d_desc& d) {
  const virtual_npu dev(cfg);
  npu_op op;
  op.kind = op_kind::conv2d_i8;
  op.conv = d;
  const Result<cycle_estimate> e = dev.estimate(op);
  REQUIRE_MESSAGE(e.ok(), e.status().message());
  return e.value();
}

double ceil_div_d(std::int64_t a, std::int64_t b) {
  return static_cast<double>((a + b - 1) / b);
}

}  // namespace

TEST_CASE("timing: the cost of each command, hand-computed") {
  vnpu_config c;
  c.mac_rows = 16;
  c.mac_cols = 16;
  c.dma_bytes_per_cycle = 16;
  c.dma_setup_cycles = 64;
  c.requant_lanes = 16;
  c.requant_setup_cycles = 8;
  // DMA: 64 + ceil(1000 / 16) = 64 + 63.
  CHECK(vnpu::cycles_of(dma_cmd(vnpu::opcode::load, 0, 1000), c) == 127);
  vnpu::command st = dma_cmd(vnpu::opcode::store, 0, 10);
  st.dma.planes = 3;
  st.dma.rows = 4;  // 120 bytes: 64 + ceil(7.5)
  CHECK(vnpu::cycles_of(st, c) == 72);
  // matmul 20 x 33 x 7: ceil(20/16) = 2 row passes, ceil(33/16) = 3 column passes, 7 steps each,
  // plus 16 + 16 to fill and drain the array.
  CHECK(vnpu::cycles_of(matmul_cmd(0, 1, 2, 3, 20, 33, 7), c) == 2 * 3 * 7 + 32);
  // Requantization of 10 x 10: 8 + ceil(100 / 16).
  vnpu::command rq;
  rq.op = vnpu::opcode::requantize;
  rq.rq.rows = 10;
  rq.rq.cols = 10;
  CHECK(vnpu::cycles_of(rq, c) == 8 + 7);
  // conv, regular: 3 x 5 = 15 pixels -> 1 row pass; 20 channels -> 2 column passes; 3 x 3 taps
  // over 6 input channels.
  vnpu::command cv;
  cv.op = vnpu::opcode::conv_tile;
  cv.conv.out_rows = 3;
  cv.conv.out_cols = 5;
  cv.conv.channels = 20;
  cv.conv.kernel_h = 3;
  cv.conv.kernel_w = 3;
  cv.conv.w_chans = 6;
  CHECK(vnpu::cycles_of(cv, c) == 1 * 2 * 9 * 6 + 32);
  // Depthwise on a 4 x 8 array: 15 pixels -> 4 row passes, 20 channels -> 3 column passes, one
  // input channel per output: 9 steps.
  c.mac_rows = 4;
  c.mac_cols = 8;
  cv.conv.depthwise = true;
  cv.conv.w_chans = 1;
  CHECK(vnpu::cycles_of(cv, c) == 4 * 3 * 9 + 12);
}

TEST_CASE("timing: engines overlap, and wait for the regions they read and write") {
  vnpu_config c;
  c.mac_rows = 4;
  c.mac_cols = 4;  // fill 8
  c.dma_bytes_per_cycle = 1;
  c.dma_setup_cycles = 10;
  c.requant_lanes = 4;
  c.requant_setup_cycles = 2;
  vnpu::command_stream s;
  using vnpu::region_role;
  s.regions = {{region_role::input, 0, 128},    {region_role::input, 128, 128},
               {region_role::weights, 256, 64}, {region_role::params, 320, 128},
               {region_role::acc, 448, 64},     {region_role::output, 512, 64}};
  vnpu::command rq;
  rq.op = vnpu::opcode::requantize;
  rq.rq.rows = 4;
  rq.rq.cols = 4;
  rq.rq.acc_region = 4;
  rq.rq.params_region = 3;
  rq.rq.out_region = 5;
  s.commands = {
      dma_cmd(vnpu::opcode::load, 0, 90),   // [0, 100)
      dma_cmd(vnpu::opcode::load, 2, 40),   // [100, 150)
      dma_cmd(vnpu::opcode::load, 3, 24),   // [150, 184)
      matmul_cmd(0, 2, 3, 4, 4, 4, 10),     // after its three loads: [184, 202)
      dma_cmd(vnpu::opcode::load, 1, 90),   // the other slot: overlaps the matmul, [184, 284)
      dma_cmd(vnpu::opcode::load, 0, 90),   // slot 0 again: after the matmul read it, [284, 384)
      rq,                                   // after the matmul wrote acc: [202, 208)
      dma_cmd(vnpu::opcode::store, 5, 16),  // behind the DMA queue: [384, 410)
      matmul_cmd(1, 2, 3, 4, 4, 4, 10),  // after its load and the requantize read acc: [284, 302)
  };
  std::vector<vnpu::command_time> t;
  const vnpu::timing_report r = vnpu::simulate_timing(s, c, &t);
  const std::int64_t want[][2] = {{0, 100},   {100, 150}, {150, 184}, {184, 202}, {184, 284},
                                  {284, 384}, {202, 208}, {384, 410}, {284, 302}};
  for (std::size_t i = 0; i < t.size(); ++i) {
    INFO("command " << i);
    CHECK(t[i].start == want[i][0]);
    CHECK(t[i].end == want[i][1]);
  }
  CHECK(r.cycles == 410);
  CHECK(r.busy_of(vnpu::engine::dma) == 100 + 50 + 34 + 100 + 100 + 26);
  CHECK(r.busy_of(vnpu::engine::mac) == 36);
  CHECK(r.busy_of(vnpu::engine::requant) == 6);
  CHECK(r.dram_bytes == 90 + 40 + 24 + 90 + 90 + 16);
  // The launch cost is paid once per job.
  c.launch_cycles = 1000;
  CHECK(vnpu::simulate_timing(s, c).cycles == 1410);
}

TEST_CASE("timing follows the roofline: compute-bound shapes by MACs / array size") {
  // Bounds of any schedule: the array needs ceil(M/R) * ceil(N/C) * K cycles, the DMA needs
  // every input and output byte once. A shape far on the compute side must land within 10% of
  // the first (the rest is the prologue, the epilogue and the array's fill per tile).
  vnpu_config c;
  c.sram_bytes = 1 << 20;
  c.dma_bytes_per_cycle = 256;
  c.dma_setup_cycles = 8;
  for (std::int64_t side : {16, 32}) {
    c.mac_rows = side;
    c.mac_cols = side;
    const std::int64_t M = 256, N = 256, K = 512;
    const cycle_estimate e = matmul_estimate(c, M, N, K, dtype::s32);
    const double compute = ceil_div_d(M, side) * ceil_div_d(N, side) * static_cast<double>(K);
    const double bytes = static_cast<double>(M * K + K * N + N * 24 + M * N * 4);
    INFO("side=" << side << " cycles=" << e.cycles << " compute=" << compute);
    CHECK(static_cast<double>(e.cycles) >= std::max(compute, bytes / c.dma_bytes_per_cycle));
    CHECK(static_cast<double>(e.cycles) <= 1.10 * compute);
    CHECK(e.macs == M * N * K);
  }
  // Four times the MACs: about a quarter of the cycles; twice the bandwidth: no change.
  c.mac_rows = c.mac_cols = 16;
  const double small = static_cast<double>(matmul_estimate(c, 256, 256, 512, dtype::s32).cycles);
  c.mac_rows = c.mac_cols = 32;
  const double big = static_cast<double>(matmul_estimate(c, 256, 256, 512, dtype::s32).cycles);
  CHECK(small / big >= 3.5);
  CHECK(small / big <= 4.05);
  c.mac_rows = c.mac_cols = 16;
  c.dma_bytes_per_cycle = 512;
  const double faster_dma =
      static_cast<double>(matmul_estimate(c, 256, 256, 512, dtype::s32).cycles);
  CHECK(std::abs(faster_dma / small - 1.0) < 0.03);

  // A 3x3 convolution (SAME, 32x32x64 -> 64): compute-bound the same way.
  conv2d_desc d;
  d.in_h = d.in_w = 32;
  d.in_c = d.out_c = 64;
  d.kernel_h = d.kernel_w = 3;
  d.padding = padding_mode::same_upper;
  d.out.type = dtype::s8;
  d.out.scale = 1.0f;
  vnpu_config cc;
  cc.sram_bytes = 256 * 1024;
  cc.dma_bytes_per_cycle = 64;
  const cycle_estimate ce = conv_estimate(cc, d);
  const double conv_compute = ceil_div_d(32 * 32, 16) * ceil_div_d(64, 16) * 9 * 64;
  INFO("conv cycles=" << ce.cycles << " compute=" << conv_compute);
  CHECK(static_cast<double>(ce.cycles) >= conv_compute);
  CHECK(static_cast<double>(ce.cycles) <= 1.10 * conv_compute);
}

TEST_CASE("timing follows the roofline: bandwidth-bound shapes by bytes / DMA bandwidth") {
  // GEMV (M = 1, the LLM decode shape): every weight byte is used once, so the DMA bounds it.
  vnpu_config c;
  c.sram_bytes = 256 * 1024;
  c.dma_bytes_per_cycle = 4;
  const std::int64_t N = 2048, K = 1024;
  const double bytes = static_cast<double>(K + K * N + N * 24 + N);
  const double compute = ceil_div_d(1, 16) * ceil_div_d(N, 16) * static_cast<double>(K);
  const cycle_estimate e = matmul_estimate(c, 1, N, K, dtype::s8);
  INFO("gemv cycles=" << e.cycles << " bytes/bw=" << bytes / 4 << " compute=" << compute);
  REQUIRE(bytes / 4 > 2 * compute);  // the shape is bandwidth-bound on this device
  CHECK(static_cast<double>(e.cycles) >= bytes / 4);
  CHECK(static_cast<double>(e.cycles) <= 1.10 * bytes / 4);
  // Twice the bandwidth: about half the cycles; four times the MACs: no change.
  c.dma_bytes_per_cycle = 8;
  const double twice_bw = static_cast<double>(matmul_estimate(c, 1, N, K, dtype::s8).cycles);
  CHECK(static_cast<double>(e.cycles) / twice_bw >= 1.8);
  CHECK(static_cast<double>(e.cycles) / twice_bw <= 2.05);
  c.dma_bytes_per_cycle = 4;
  c.mac_rows = c.mac_cols = 32;
  const double more_macs = static_cast<double>(matmul_estimate(c, 1, N, K, dtype::s8).cycles);
  CHECK(std::abs(more_macs / static_cast<double>(e.cycles) - 1.0) < 0.03);

  // Depthwise 3x3 (MobileNet-like 56x56x128): one MAC per byte or so, bandwidth-bound too.
  conv2d_desc d;
  d.in_h = d.in_w = 56;
  d.in_c = d.out_c = d.groups = 128;
  d.kernel_h = d.kernel_w = 3;
  d.padding = padding_mode::same_upper;
  d.out.type = dtype::s8;
  d.out.scale = 1.0f;
  vnpu_config dc;
  dc.sram_bytes = 256 * 1024;
  dc.dma_bytes_per_cycle = 8;
  const double dw_bytes = 2.0 * 56 * 56 * 128 + 128 * 9 + 128 * 24;
  const double dw_compute = ceil_div_d(56 * 56, 16) * ceil_div_d(128, 16) * 9;
  const double dw = static_cast<double>(conv_estimate(dc, d).cycles);
  INFO("depthwise cycles=" << dw << " bytes/bw=" << dw_bytes / 8 << " compute=" << dw_compute);
  REQUIRE(dw_bytes / 8 > 2 * dw_compute);
  CHECK(dw >= dw_bytes / 8);
  // Window halos are re-read, so not as tight as the GEMV: within 25%.
  CHECK(dw <= 1.25 * dw_bytes / 8);
  dc.mac_rows = dc.mac_cols = 32;
  CHECK(std::abs(static_cast<double>(conv_estimate(dc, d).cycles) / dw - 1.0) < 0.05);
}

TEST_CASE("timing: double buffering overlaps DMA with compute") {
  // A shape where DMA and compute are of the same order: single-buffered, they add up; double-
  // buffered, the op tends to the larger of the two.
  vnpu_config c;
  c.sram_bytes = 256 * 1024;
  c.dma_bytes_per_cycle = 4;
  const double dbl = static_cast<double>(matmul_estimate(c, 256, 256, 256, dtype::s8).cycles);
  c.double_buffer = false;
  const double single = static_cast<double>(matmul_estimate(c, 256, 256, 256, dtype::s8).cycles);
  const double compute = 16.0 * 16.0 * 256.0;
  INFO("double=" << dbl << " single=" << single << " compute=" << compute);
  CHECK(dbl < 0.8 * single);
  CHECK(single > compute * 1.5);  // nothing hides the DMA time
}

TEST_CASE("timing: what a job is charged is what estimate() predicts, and its clock") {
  rng r(521);
  vnpu_config cfg;
  cfg.clock_hz = 5.0e8;
  cfg.launch_cycles = 1234;
  vnpu_backend npu{virtual_npu(cfg)};
  matmul_case c = random_matmul(r, 30, 40, 50);
  while (c.d.batch != 1) c = random_matmul(r, 30, 40, 50);
  const Result<cycle_estimate> e = npu.estimate(c.d);
  REQUIRE(e.ok());
  guarded<std::uint8_t> out(static_cast<std::size_t>(c.out_bytes()));
  REQUIRE(npu.run(c.d, c.args(out.data())).ok());
  CHECK(npu.driver().last_timing().cycles == e.value().cycles);
  CHECK(e.value().seconds == doctest::Approx(static_cast<double>(e.value().cycles) / 5.0e8));
  CHECK(npu.estimate_us(c.d) == doctest::Approx(e.value().seconds * 1e6));
  // launch_cycles is part of every job.
  cfg.launch_cycles = 0;
  vnpu_backend no_launch{virtual_npu(cfg)};
  CHECK(e.value().cycles - no_launch.estimate(c.d).value().cycles == 1234);
}

TEST_CASE(
    "timing: estimates are memoised per shape and forgotten when the device is reconfigured") {
  vnpu_config cfg;
  virtual_npu dev(cfg);
  npu_op op;
  op.matmul.m = 96;
  op.matmul.n = 200;
  op.matmul.k = 300;
  op.matmul.out.type = dtype::s32;
  const cycle_estimate first = dev.estimate(op).value();
  // Fields the stream does not depend on (zero point, scale) hit the memo; the answer is the one
  // a fresh device computes.
  op.matmul.a_zero_point = 7;
  op.matmul.a_scale = 0.5f;
  CHECK(dev.estimate(op).value().cycles == first.cycles);
  CHECK(virtual_npu(cfg).estimate(op).value().cycles == first.cycles);
  // An invalid desc is refused before the memo is consulted.
  op.matmul.a_zero_point = 300;  // outside u8
  CHECK(dev.estimate(op).status().code() == status_code::invalid_argument);
  op.matmul.a_zero_point = 7;
  // Another shape is another entry; many shapes evict old ones and still answer correctly.
  for (std::int64_t n = 1; n <= 40; ++n) {
    npu_op other = op;
    other.matmul.n = n;
    INFO("n=" << n);
    CHECK(dev.estimate(other).value().cycles == virtual_npu(cfg).estimate(other).value().cycles);
  }
  // Reconfigured to a quarter of the DMA bandwidth: the memo is cleared, the estimate grows.
  cfg.dma_bytes_per_cycle /= 4;
  REQUIRE(dev.configure(cfg).ok());
  const cycle_estimate slower = dev.estimate(op).value();
  CHECK(slower.cycles > first.cycles);
  CHECK(slower.cycles == virtual_npu(cfg).estimate(op).value().cycles);
}

// =============================================================================================
// Faults: each surfaces as its Status, and a failed job never writes the caller's output
// =============================================================================================

namespace {

// A small fixed matmul with its reference output, to run again and again.
struct fixed_job {
  matmul_case c;
  std::vector<std::uint8_t> want;

  explicit fixed_job(rng& r) {
    do {
      c = random_matmul(r, 24, 40, 64);
    } while (c.d.batch == 0);
    want.resize(static_cast<std::size_t>(c.out_bytes()));
    REQUIRE(reference::matmul_i8(c.d, c.args(want.data())).ok());
  }

  // Runs on `npu`; on success CHECKs the bits, on failure that nothing was written.
  template <class Backend>
  Status run(Backend& npu) const {
    guarded<std::uint8_t> out(want.size());
    const Status s = npu.run(c.d, c.args(out.data()));
    CHECK(out.guards_intact());
    if (s.ok()) {
      CHECK(std::memcmp(out.data(), want.data(), want.size()) == 0);
    } else {
      CHECK(out.untouched());
    }
    return s;
  }
};

}  // namespace

TEST_CASE("faults: timeout, DMA error and lost device each surface as their Status") {
  rng r(531);
  const fixed_job job(r);
  INFO("seed=" << r.seed() << " " << describe(job.c.d));

  SUBCASE("an injected hang is a timeout; the next job runs") {
    vnpu_backend npu;
    npu.driver().set_fault(0, {.kind = fault_kind::timeout, .every_nth = 1});
    const Status s = job.run(npu);
    CHECK(s.code() == status_code::timeout);
    CHECK(contains(s, "hang"));
    npu.driver().clear_faults();
    CHECK(job.run(npu).ok());
  }
  SUBCASE("a DMA error aborts the job as device_lost; the device itself survives") {
    vnpu_backend npu;
    npu.driver().set_fault(0, {.kind = fault_kind::dma_error, .every_nth = 2});
    CHECK(job.run(npu).ok());       // submission 1
    const Status s = job.run(npu);  // submission 2
    CHECK(s.code() == status_code::device_lost);
    CHECK(contains(s, "DMA error"));
    CHECK_FALSE(npu.driver().device_lost());
    CHECK(job.run(npu).ok());                                // submission 3
    CHECK(job.run(npu).code() == status_code::device_lost);  // submission 4
  }
  SUBCASE("a lost device refuses every job until it is reset") {
    vnpu_backend npu;
    npu.driver().set_fault(0, {.kind = fault_kind::device_lost, .every_nth = 1});
    CHECK(job.run(npu).code() == status_code::device_lost);
    npu.driver().clear_faults();
    CHECK(npu.driver().device_lost());
    for (int i = 0; i < 3; ++i) CHECK(job.run(npu).code() == status_code::device_lost);
    npu.driver().reset();
    CHECK(job.run(npu).ok());
  }
  SUBCASE("a lost device may come back by itself after some refusals") {
    vnpu_backend npu;
    npu.driver().set_fault(0, {.kind = fault_kind::device_lost, .every_nth = 1});
    npu.driver().set_device_lost_for(2);
    CHECK(job.run(npu).code() == status_code::device_lost);
    npu.driver().clear_faults();
    CHECK(job.run(npu).code() == status_code::device_lost);  // refusal 1
    CHECK(job.run(npu).code() == status_code::device_lost);  // refusal 2: back afterwards
    CHECK(job.run(npu).ok());
  }
  SUBCASE("a job longer than the adapter's timeout is a timeout") {
    vnpu_config slow;
    slow.clock_hz = 1.0e3;  // a 1 kHz device: every job takes far more than a millisecond
    vnpu_backend npu{virtual_npu(slow), npu_backend_options{.timeout_us = 1000}};
    const Status s = job.run(npu);
    CHECK(s.code() == status_code::timeout);
    CHECK(contains(s, "device time"));
    npu.options().timeout_us = std::int64_t{1} << 50;
    CHECK(job.run(npu).ok());
  }
}

TEST_CASE("faults: every Nth job fails, the others are bit-exact; seeded faults replay") {
  rng r(532);
  const fixed_job job(r);
  INFO("seed=" << r.seed() << " " << describe(job.c.d));
  vnpu_backend npu;
  npu.driver().set_fault(0, {.kind = fault_kind::dma_error, .every_nth = 3});
  npu.driver().set_fault(1, {.kind = fault_kind::timeout, .every_nth = 5});
  for (int i = 1; i <= 15; ++i) {
    INFO("job " << i);
    const Status s = job.run(npu);
    if (i % 3 == 0) {
      CHECK(s.code() == status_code::device_lost);
    } else if (i % 5 == 0) {
      CHECK(s.code() == status_code::timeout);
    } else {
      CHECK(s.ok());
    }
  }
  CHECK(npu.driver().stats().faults == 5 + 2);  // 3, 6, 9, 12, 15 and 5, 10

  // Probabilistic faults are a function of (seed, submission): two devices with one seed fail
  // the same jobs; another seed fails others.
  auto pattern = [&](std::uint64_t seed) {
    vnpu_backend dev;
    dev.driver().set_fault(0, {.kind = fault_kind::timeout, .per_million = 500000, .seed = seed});
    std::vector<int> failed;
    for (int i = 0; i < 48; ++i) failed.push_back(job.run(dev).ok() ? 0 : 1);
    return failed;
  };
  const std::uint64_t seed = r.seed();
  const std::vector<int> a = pattern(seed), b = pattern(seed), c = pattern(seed + 1);
  CHECK(a == b);
  CHECK(a != c);
  const long failures = std::count(a.begin(), a.end(), 1);
  CHECK(failures > 8);  // 48 draws at 1/2: 24 expected
  CHECK(failures < 40);
}

TEST_CASE("faults strike part-way: the device wrote its staging output, the caller's is intact") {
  // The fault lands at a command chosen by the hash; over many seeds some land after stores, so
  // the staging buffer holds part of a result. The caller's output must still be untouched.
  rng r(533);
  const fixed_job job(r);
  INFO("seed=" << r.seed() << " " << describe(job.c.d));
  vnpu_config cfg;
  cfg.sram_bytes = 4096;  // many tiles, many stores
  for (std::uint64_t seed = 0; seed < 32; ++seed) {
    vnpu_backend npu{virtual_npu(cfg)};
    npu.driver().set_fault(0, {.kind = fault_kind::device_lost, .every_nth = 1, .seed = seed});
    CHECK(job.run(npu).code() == status_code::device_lost);
  }
}

// =============================================================================================
// What the NPU cannot run is unsupported (so the router sends it elsewhere); bad input a Status
// =============================================================================================

TEST_CASE("unsupported: attention, int4 weights, and what a configuration lacks") {
  rng r(541);
  vnpu_backend npu;
  SUBCASE("attention's softmax and int4 weights are never run") {
    attention_desc ad;
    ad.head_dim = 8;
    CHECK(npu.supports(ad).code() == status_code::unsupported);
    CHECK(contains(npu.supports(ad), "softmax"));
    matmul_i4_desc i4;
    i4.m = 1;
    i4.n = 8;
    i4.k = 32;
    CHECK(npu.supports(i4).code() == status_code::unsupported);
    std::vector<float> a(32, 1.0f), out(8, 0.0f), scale(8, 1.0f);
    std::vector<std::uint8_t> w(8 * 16, 0x11);
    matmul_i4_args args;
    args.a = view(a.data(), {1, 32});
    args.b = view_int4(w.data(), dtype::s4, {8, 32});
    args.scale = view(static_cast<const float*>(scale.data()), {8, 1});
    args.out = view(out.data(), {1, 8});
    CHECK(npu.run(i4, args).code() == status_code::unsupported);
    CHECK(npu.pack(i4, args).status().code() == status_code::unsupported);
    static_assert(!vnpu_backend::caps.runs(op_kind::attention));
    static_assert(!vnpu_backend::caps.runs(op_kind::matmul_i4));
    static_assert(vnpu_backend::caps.runs(op_kind::matmul_i8) && vnpu_backend::caps.bit_exact);
    static_assert(vnpu_backend::caps.kind == backend_kind::npu);
  }
  SUBCASE("a configuration without a dtype, an output, a mode or a conv feature") {
    matmul_case c = random_matmul(r, 8, 8, 8);
    while (c.d.batch == 0) c = random_matmul(r, 8, 8, 8);
    c.d.a_type = dtype::s8;
    c.d.a_zero_point = 0;
    c.d.out = output_quant{};
    c.d.out.type = dtype::f32;
    c.b_scale = {0.01f};
    vnpu_config cfg;
    cfg.input_types = dtype_bit(dtype::u8);
    vnpu_backend u8_only{virtual_npu(cfg)};
    guarded<std::uint8_t> out(static_cast<std::size_t>(c.out_bytes()));
    Status s = u8_only.run(c.d, c.args(out.data()));
    CHECK(s.code() == status_code::unsupported);
    CHECK(contains(s, "s8"));
    CHECK(out.untouched());

    imx8mp_vnpu_backend imx;
    s = imx.supports(c.d);  // f32 output
    CHECK(s.code() == status_code::unsupported);
    CHECK(contains(s, "output dtype f32"));
    c.d.out.type = dtype::s8;
    c.d.out.scale = 1.0f;
    c.d.out.zero_point = 0;
    c.d.out.mode = requant_mode::float_scale;
    s = imx.supports(c.d);
    CHECK(s.code() == status_code::unsupported);
    CHECK(contains(s, "float_scale"));
    c.d.out.mode = requant_mode::fixed_point;
    CHECK(imx.supports(c.d).ok());
    // Asymmetric weights: a non-zero weight zero point, known only from the args.
    c.b_scale = {0.01f};
    c.b_zp = {3};
    guarded<std::uint8_t> out8(static_cast<std::size_t>(c.out_bytes()));
    s = imx.run(c.d, c.args(out8.data()));
    CHECK(s.code() == status_code::unsupported);
    CHECK(contains(s, "zero point"));
    CHECK(out8.untouched());

    // Per-tensor requantization tables: distinct per-channel scales are refused, equal ones not.
    vnpu_config pt;
    pt.scales = weight_scales::per_tensor;
    vnpu_backend per_tensor{virtual_npu(pt)};
    c.b_zp.clear();
    c.b_scale.assign(static_cast<std::size_t>(c.d.n), 0.01f);
    CHECK(per_tensor.run(c.d, c.args(out8.data())).ok());
    if (c.d.n > 1) {
      c.b_scale[1] = 0.02f;
      guarded<std::uint8_t> o(static_cast<std::size_t>(c.out_bytes()));
      s = per_tensor.run(c.d, c.args(o.data()));
      CHECK(s.code() == status_code::unsupported);
      CHECK(contains(s, "per-channel"));
      CHECK(o.untouched());
    }

    vnpu_config no_dw;
    no_dw.depthwise_conv = false;
    no_dw.dilation = false;
    no_dw.max_kernel = 3;
    vnpu_backend limited{virtual_npu(no_dw)};
    conv2d_desc d;
    d.in_h = d.in_w = 8;
    d.in_c = d.out_c = d.groups = 4;
    d.kernel_h = d.kernel_w = 3;
    d.out.type = dtype::s32;
    CHECK(contains(limited.supports(d), "depthwise"));
    d.groups = 1;
    CHECK(limited.supports(d).ok());
    d.dilation_h = 2;
    CHECK(contains(limited.supports(d), "dilation"));
    d.dilation_h = 1;
    d.kernel_w = 5;
    CHECK(contains(limited.supports(d), "kernel_w"));
    CHECK(limited.supports(d).code() == status_code::unsupported);
  }
}

TEST_CASE("bad input returns a Status naming the rule and writes nothing") {
  rng r(542);
  vnpu_backend npu;
  matmul_case c = random_matmul(r, 16, 16, 16);
  while (c.d.batch == 0) c = random_matmul(r, 16, 16, 16);
  guarded<std::uint8_t> out(static_cast<std::size_t>(c.out_bytes()));
  INFO("seed=" << r.seed() << " " << describe(c.d));

  matmul_i8_desc bad = c.d;
  bad.k = 0;
  Status s = npu.run(bad, c.args(out.data()));
  CHECK(s.code() == status_code::invalid_argument);
  CHECK(contains(s, "K = 0"));
  CHECK(npu.supports(bad).code() == status_code::invalid_argument);
  CHECK(npu.estimate(bad).status().code() == status_code::invalid_argument);
  CHECK(std::isinf(npu.estimate_us(bad)));

  matmul_i8_args args = c.args(out.data());
  args.b.shape[args.b.rank - 1] += 1;  // B's N disagrees with the desc
  CHECK(npu.run(c.d, args).code() == status_code::shape_mismatch);
  args = c.args(out.data());
  std::vector<std::int32_t> short_bias(static_cast<std::size_t>(c.d.n + 1), 0);
  args.bias = short_bias;
  CHECK(npu.run(c.d, args).code() == status_code::shape_mismatch);
  args = c.args(nullptr);
  CHECK(npu.run(c.d, args).code() == status_code::invalid_argument);
  CHECK(out.untouched());

  // Misaligned and strided operands are legal: the adapter stages them.
  const keel::testing::misaligned_copy<std::uint8_t> a_odd(c.a, 3);
  guarded<std::uint8_t> want(static_cast<std::size_t>(c.out_bytes()));
  REQUIRE(reference::matmul_i8(c.d, c.args(want.data())).ok());
  args = c.args(out.data());
  args.a.data = a_odd.data();
  REQUIRE(npu.run(c.d, args).ok());
  CHECK(std::memcmp(out.data(), want.data(), want.size()) == 0);
  CHECK(out.guards_intact());
}

TEST_CASE("strided views in and out: staged through dense copies, bits unchanged") {
  rng r(543);
  for (int iter = 0; iter < 20; ++iter) {
    conv_case c = random_conv(r, -1, 8);
    while (c.d.batch == 0) c = random_conv(r, -1, 8);
    INFO("seed=" << r.seed() << " iter=" << iter << " " << describe(c.d));
    // The output written into every other row of a wider buffer: padding columns untouched.
    const std::int64_t eb = out_bytes_of(c.d.out.type);
    const std::int64_t rows = c.d.batch * c.g.out_h * c.g.out_w, row = c.d.out_c;
    guarded<std::uint8_t> want(static_cast<std::size_t>(c.out_bytes()));
    REQUIRE(reference::conv2d_i8(c.d, c.args(want.data())).ok());
    std::vector<std::uint8_t> wide(static_cast<std::size_t>(rows * (row + 3) * eb), 0x5A);
    conv2d_args a = c.args(wide.data());
    a.out.strides = {c.g.out_h * c.g.out_w * (row + 3), c.g.out_w * (row + 3), row + 3, 1};
    vnpu_backend npu;
    REQUIRE(npu.run(c.d, a).ok());
    for (std::int64_t i = 0; i < rows; ++i) {
      CHECK(std::memcmp(wide.data() + i * (row + 3) * eb, want.data() + i * row * eb,
                        static_cast<std::size_t>(row * eb)) == 0);
      for (std::int64_t b = row * eb; b < (row + 3) * eb; ++b) {
        CHECK(wide[static_cast<std::size_t>(i * (row + 3) * eb + b)] == 0x5A);
      }
    }
  }
}

TEST_CASE("packed weights: pack once, run many; a different desc is refused") {
  rng r(544);
  vnpu_backend npu;
  for (int iter = 0; iter < 20; ++iter) {
    const matmul_case m = random_matmul(r, 20, 30, 40);
    const conv_case c = random_conv(r, -1, 8);
    INFO("seed=" << r.seed() << " iter=" << iter << " " << describe(m.d) << " " << describe(c.d));
    guarded<std::uint8_t> want_m(static_cast<std::size_t>(m.out_bytes()));
    guarded<std::uint8_t> got_m(static_cast<std::size_t>(m.out_bytes()));
    REQUIRE(reference::matmul_i8(m.d, m.args(want_m.data())).ok());
    Result<vnpu_backend::packed_matmul_i8> pm = npu.pack(m.d, m.args(nullptr));
    REQUIRE_MESSAGE(pm.ok(), pm.status().message());
    const vnpu_backend::packed_matmul_i8 copy = pm.value();  // copies share the packed bytes
    matmul_i8_args without_weights = m.args(got_m.data());
    without_weights.b = {};
    without_weights.b_scale = {};
    without_weights.b_zero_point = {};
    without_weights.bias = {};
    REQUIRE(npu.run(m.d, copy, without_weights).ok());
    CHECK(std::memcmp(want_m.data(), got_m.data(), want_m.size()) == 0);

    guarded<std::uint8_t> want_c(static_cast<std::size_t>(c.out_bytes()));
    guarded<std::uint8_t> got_c(static_cast<std::size_t>(c.out_bytes()));
    REQUIRE(reference::conv2d_i8(c.d, c.args(want_c.data())).ok());
    Result<vnpu_backend::packed_conv2d> pc = npu.pack(c.d, c.args(nullptr));
    REQUIRE_MESSAGE(pc.ok(), pc.status().message());
    REQUIRE(npu.run(c.d, pc.value(), c.args(got_c.data())).ok());
    CHECK(std::memcmp(want_c.data(), got_c.data(), want_c.size()) == 0);

    matmul_i8_desc other = m.d;
    other.n += 1;
    guarded<std::uint8_t> untouched(static_cast<std::size_t>(m.out_bytes()));
    CHECK(npu.run(other, copy, m.args(untouched.data())).code() == status_code::shape_mismatch);
    CHECK(untouched.untouched());
  }
}

TEST_CASE("the driver's own API rejects misuse with a Status") {
  vnpu_config cfg;
  virtual_npu dev(cfg);
  alignas(64) static unsigned char buf[256];
  CHECK(dev.register_input(buf + 1, 16).status().code() == status_code::invalid_argument);
  CHECK(dev.register_input(nullptr, 16).status().code() == status_code::invalid_argument);
  CHECK(dev.register_input(buf, -1).status().code() == status_code::invalid_argument);
  CHECK(dev.release_buffer(12345).code() == status_code::invalid_argument);
  CHECK(dev.wait(99, 1000).code() == status_code::invalid_argument);
  const Result<buffer_id> in = dev.register_input(buf, 64);
  const Result<buffer_id> out = dev.register_output(buf + 128, 64);
  REQUIRE(in.ok());
  REQUIRE(out.ok());
  CHECK(in.value() != out.value());

  // Hand-made streams: each breaks one rule the device checks before running anything.
  vnpu::command_stream s;
  s.regions = {{vnpu::region_role::input, 0, 64}, {vnpu::region_role::output, 64, 64}};
  vnpu::command load = dma_cmd(vnpu::opcode::load, 0, 64);
  load.dma.buffer = in.value();
  s.commands = {load};
  CHECK(dev.submit(s).ok());  // the good one
  vnpu::command_stream bad = s;
  bad.commands[0].dma.row_bytes = 65;  // past the region and the buffer
  CHECK(contains(dev.submit(bad).status(), "outside"));
  bad = s;
  bad.commands[0].dma.dram_offset = 8;  // past the end of the 64-byte buffer
  CHECK(contains(dev.submit(bad).status(), "DRAM buffer"));
  bad = s;
  bad.commands[0].dma.buffer = 777;
  CHECK(contains(dev.submit(bad).status(), "unregistered"));
  bad = s;
  bad.commands[0].op = vnpu::opcode::store;  // into an input buffer
  CHECK(contains(dev.submit(bad).status(), "input"));
  bad = s;
  bad.regions[1].bytes = cfg.sram_bytes;  // a region past the end of SRAM
  CHECK(contains(dev.submit(bad).status(), "outside the SRAM"));
  bad = s;
  bad.commands = {matmul_cmd(0, 0, 0, 1, 8, 8, 8)};  // an 8x8 int32 accumulator in 64 bytes
  CHECK(dev.submit(bad).status().code() == status_code::invalid_argument);
  CHECK(dev.wait(1, -5).code() == status_code::invalid_argument);
  CHECK(dev.release_buffer(in.value()).ok());
  CHECK(dev.release_buffer(in.value()).code() == status_code::invalid_argument);

  // An invalid configuration is reported by every call.
  vnpu_config broken;
  broken.alignment = 48;
  virtual_npu b(broken);
  CHECK(b.config_status().code() == status_code::invalid_argument);
  CHECK(contains(b.config_status(), "alignment"));
  npu_op op;
  op.matmul.m = op.matmul.n = op.matmul.k = 4;
  op.matmul.out.type = dtype::s32;
  CHECK(b.estimate(op).status().code() == status_code::invalid_argument);
  CHECK(b.register_input(buf, 16).status().code() == status_code::invalid_argument);
  broken = vnpu_config{};
  broken.dma_bytes_per_cycle = 0;
  CHECK(validate(broken).code() == status_code::invalid_argument);
  broken = vnpu_config{};
  broken.input_types = dtype_bit(dtype::f32);
  CHECK(validate(broken).code() == status_code::invalid_argument);
}

// =============================================================================================
// Profiles
// =============================================================================================

TEST_CASE("profiles: the peak rates they model match the public figures") {
  auto tops = [](const vnpu_config& c) {
    return 2.0 * static_cast<double>(c.mac_rows * c.mac_cols) * c.clock_hz / 1e12;
  };
  CHECK(validate(profiles::rk3588::config).ok());
  CHECK(validate(profiles::imx8mp::config).ok());
  CHECK(validate(profiles::generic_16x16::config).ok());
  // RK3588: 3 x 1024 MACs at 1 GHz = 6.1 TOPS (advertised 6).
  CHECK(tops(profiles::rk3588::config) == doctest::Approx(6.144));
  CHECK(tops(profiles::rk3588::config) >= 6.0);
  // i.MX 8M Plus: 2.3 TOPS.
  CHECK(tops(profiles::imx8mp::config) == doctest::Approx(2.3).epsilon(0.01));
  static_assert(rk3588_vnpu_backend::caps.name == "rk3588_npu");
  static_assert(imx8mp_vnpu_backend::caps.name == "imx8mp_npu");
  static_assert(backend<rk3588_vnpu_backend> && backend<imx8mp_vnpu_backend>);
  rk3588_vnpu_backend rk;
  CHECK(rk.driver().capabilities().macs_per_cycle == 3072);
  CHECK(rk.driver().capabilities().sram_bytes == profiles::rk3588::config.sram_bytes);
}
