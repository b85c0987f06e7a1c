// The virtual NPU behind keel's router: with the NPU failing (command timeouts, DMA errors, a lost
// device), every request still completes, on the next backend, with the reference's bits; what
// the NPU cannot run never reaches it; and the router's cost model reads the NPU's cycle model.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "keel/backends/npu.hpp"
#include "keel/boards/imx8m_plus.hpp"
#include "keel/boards/rk3588.hpp"
#include "keel/keel.hpp"
#include "keel/router/router.hpp"
#include "support/testing.hpp"

using namespace keel;
using keel::testing::guarded;
using keel::testing::rng;

namespace {

using rk_router = router<boards::rk3588, latency_first<npu::rk3588_vnpu_backend>>;
using imx_router = router<boards::imx8m_plus, latency_first<npu::imx8mp_vnpu_backend>>;

template <class T>
void fill_8bit(rng& r, std::vector<T>& v) {
  r.fill(v, std::is_signed_v<T> ? -128 : 0, std::is_signed_v<T> ? 127 : 255);
}

// A matmul large enough that the NPU (100 us launch) is predicted faster than the reference.
struct mm_request {
  matmul_i8_desc d;
  std::vector<std::uint8_t> a;
  std::vector<std::int8_t> b;
  std::vector<float> scale;
  std::vector<std::int32_t> bias;

  explicit mm_request(rng& r) {
    d.m = r.uniform_int(64, 96);
    d.n = r.uniform_int(96, 160);
    d.k = r.uniform_int(128, 256);
    d.a_type = dtype::u8;
    d.b_type = dtype::s8;
    d.a_zero_point = static_cast<std::int32_t>(r.uniform_int(0, 255));
    d.a_scale = 0.02f;
    d.out.type = dtype::s8;
    d.out.scale = r.uniform_float(1.0f, 4.0f);
    d.out.mode = r.uniform_int(0, 1) ? requant_mode::fixed_point : requant_mode::float_scale;
    a.resize(static_cast<std::size_t>(d.m * d.k));
    b.resize(static_cast<std::size_t>(d.k * d.n));
    fill_8bit(r, a);
    fill_8bit(r, b);
    scale.resize(static_cast<std::size_t>(d.n));
    for (float& s : scale) s = r.uniform_float(0.005f, 0.02f);
    bias.resize(static_cast<std::size_t>(d.n));
    for (auto& x : bias) x = static_cast<std::int32_t>(r.uniform_int(-5000, 5000));
  }
  matmul_i8_args args(void* out) const {
    matmul_i8_args x;
    x.a = view(a.data(), {d.m, d.k});
    x.b = view(b.data(), {d.k, d.n});
    x.b_scale = scale;
    x.bias = bias;
    x.out = tensor_view(out, d.out.type, {d.m, d.n});
    return x;
  }
  std::size_t out_bytes() const {
    return static_cast<std::size_t>(d.m * d.n * (bits_of(d.out.type) / 8));
  }
};

struct conv_request {
  conv2d_desc d;
  conv2d_geometry g;
  std::vector<std::uint8_t> x;
  std::vector<std::int8_t> w;
  std::vector<float> scale;

  explicit conv_request(rng& r) {
    d.in_h = r.uniform_int(14, 20);
    d.in_w = r.uniform_int(14, 20);
    d.in_c = r.uniform_int(24, 40);
    d.out_c = r.uniform_int(24, 48);
    d.kernel_h = d.kernel_w = 3;
    d.padding = padding_mode::same_upper;
    d.in_type = dtype::u8;
    d.w_type = dtype::s8;
    d.in_zero_point = static_cast<std::int32_t>(r.uniform_int(0, 255));
    d.in_scale = 0.02f;
    d.out.type = dtype::u8;
    d.out.scale = r.uniform_float(2.0f, 6.0f);
    d.out.zero_point = 128;
    g = conv2d_output_geometry(d).value();
    x.resize(static_cast<std::size_t>(d.in_h * d.in_w * d.in_c));
    w.resize(static_cast<std::size_t>(d.out_c * 9 * d.in_c));
    fill_8bit(r, x);
    fill_8bit(r, w);
    scale.assign(static_cast<std::size_t>(d.out_c), 0.01f);
  }
  conv2d_args args(void* out) const {
    conv2d_args a;
    a.input = view(x.data(), {1, d.in_h, d.in_w, d.in_c});
    a.weights = view(w.data(), {d.out_c, 3, 3, d.in_c});
    a.w_scale = scale;
    a.out = tensor_view(out, d.out.type, {1, g.out_h, g.out_w, d.out_c});
    return a;
  }
  std::size_t out_bytes() const { return static_cast<std::size_t>(g.out_h * g.out_w * d.out_c); }
};

}  // namespace

TEST_CASE(
    "with the router, every request completes with the reference's bits while the NPU fails") {
  rng r(571);
  rk_router rt;
  npu::virtual_npu& dev = rt.backend<npu::rk3588_vnpu_backend>().driver();
  dev.set_fault(0, {.kind = npu::fault_kind::dma_error, .every_nth = 3});
  dev.set_fault(1, {.kind = npu::fault_kind::timeout, .every_nth = 7});
  dev.set_fault(2, {.kind = npu::fault_kind::device_lost, .every_nth = 11});
  dev.set_device_lost_for(2);

  int on_npu = 0, fell_back = 0;
  for (int i = 0; i < 160; ++i) {
    // The first half lets the circuit breaker hold the NPU out and probe it; the second half
    // closes the breaker every few requests so that the NPU (and its faults) see more traffic.
    if (i >= 80 && i % 3 == 0) rt.reset_health();
    route_report report;
    if (i % 2 == 0) {
      const mm_request q(r);
      INFO("seed=" << r.seed() << " request " << i << " matmul " << q.d.m << "x" << q.d.n << "x"
                   << q.d.k);
      guarded<std::uint8_t> want(q.out_bytes()), got(q.out_bytes());
      REQUIRE(reference::matmul_i8(q.d, q.args(want.data())).ok());
      const Status s = rt.run(q.d, q.args(got.data()), request{}, &report);
      REQUIRE_MESSAGE(s.ok(), s.message());
      CHECK(std::memcmp(want.data(), got.data(), want.size()) == 0);
      CHECK(got.guards_intact());
    } else {
      const conv_request q(r);
      INFO("seed=" << r.seed() << " request " << i << " conv " << q.d.in_h << "x" << q.d.in_w << "x"
                   << q.d.in_c << " -> " << q.d.out_c);
      guarded<std::uint8_t> want(q.out_bytes()), got(q.out_bytes());
      REQUIRE(reference::conv2d_i8(q.d, q.args(want.data())).ok());
      const Status s = rt.run(q.d, q.args(got.data()), request{}, &report);
      REQUIRE_MESSAGE(s.ok(), s.message());
      CHECK(std::memcmp(want.data(), got.data(), want.size()) == 0);
      CHECK(got.guards_intact());
    }
    if (report.backend == npu::rk3588_vnpu_backend::caps.name) ++on_npu;
    if (report.fell_back) {
      ++fell_back;
      CHECK(is_backend_fault(report.first_failure));
      CHECK(report.backend == "reference");
    }
  }
  INFO("on_npu=" << on_npu << " fell_back=" << fell_back);
  // The NPU served requests between its faults, and its faults were all absorbed by fallbacks.
  CHECK(on_npu >= 10);
  CHECK(fell_back >= 5);
  CHECK(dev.stats().faults + dev.stats().refused == static_cast<std::uint64_t>(fell_back));
  CHECK(dev.stats().completed == static_cast<std::uint64_t>(on_npu));
}

TEST_CASE("with the router, what an NPU configuration cannot run goes elsewhere") {
  rng r(572);
  imx_router rt;
  // i.MX 8M Plus's NPU has no f32 output and no float-mode requantization: the cost model drops
  // it for such a call (its estimate is +inf) and the reference serves it, bit for bit.
  mm_request q(r);
  q.d.out = output_quant{};
  q.d.out.type = dtype::f32;
  guarded<std::uint8_t> want(q.out_bytes()), got(q.out_bytes());
  REQUIRE(reference::matmul_i8(q.d, q.args(want.data())).ok());
  route_report report;
  REQUIRE(rt.run(q.d, q.args(got.data()), request{}, &report).ok());
  CHECK(report.backend == "reference");
  CHECK(std::memcmp(want.data(), got.data(), want.size()) == 0);
  // The same shape with an s8 output runs on the NPU, and the router predicted it with the
  // NPU's own cycle model (launch included).
  q.d.out = output_quant{};
  q.d.out.type = dtype::s8;
  q.d.out.scale = 2.0f;
  guarded<std::uint8_t> want8(q.out_bytes()), got8(q.out_bytes());
  REQUIRE(reference::matmul_i8(q.d, q.args(want8.data())).ok());
  REQUIRE(rt.run(q.d, q.args(got8.data()), request{}, &report).ok());
  CHECK(report.backend == npu::imx8mp_vnpu_backend::caps.name);
  CHECK(std::memcmp(want8.data(), got8.data(), want8.size()) == 0);
  const double predicted = rt.backend<npu::imx8mp_vnpu_backend>().estimate_us(q.d);
  CHECK(report.predicted_us == doctest::Approx(predicted).epsilon(1e-5));
  CHECK(predicted >= 200.0);  // the profile's launch alone is 200 us
}
