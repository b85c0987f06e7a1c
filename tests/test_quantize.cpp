// QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear: hand-computed values, ties on
// negative values, saturation, per-axis parameters, a zero range, and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "keel/keel.hpp"
#include "support/testing.hpp"

using namespace keel;
using keel::testing::guarded;
using keel::testing::rng;

namespace {
bool contains(const Status& s, const char* word) {
  return std::string(s.message()).find(word) != std::string::npos;
}
}  // namespace

TEST_CASE("quantize_linear: ties to even on both signs, saturation, zero point added after") {
  // scale 2: x / 2 gives ties at odd x. -5/2 = -2.5 -> -2; -3/2 = -1.5 -> -2; 5/2 -> 2; 3/2 -> 2.
  const std::vector<float> x = {-5.0f, -3.0f, 3.0f, 5.0f, 1000.0f, -1000.0f, 1.0f};
  const std::vector<float> scale = {2.0f};
  SUBCASE("s8, zero point 0") {
    guarded<std::int8_t> y(x.size());
    REQUIRE(reference::quantize_linear({}, {view(x.data(), {7}), scale, {}, view(y.data(), {7})}).ok());
    const std::int8_t expect[] = {-2, -2, 2, 2, 127, -128, 0};  // 1/2 = 0.5 -> 0
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(y[i] == expect[i]);
    CHECK(y.guards_intact());
  }
  SUBCASE("u8, zero point 3: round first, then add (round(2.5) + 3 = 5, not round(5.5) = 6)") {
    const std::vector<std::int32_t> zp = {3};
    guarded<std::uint8_t> y(x.size());
    REQUIRE(reference::quantize_linear({}, {view(x.data(), {7}), scale, zp, view(y.data(), {7})}).ok());
    const std::uint8_t expect[] = {1, 1, 5, 5, 255, 0, 3};
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(y[i] == expect[i]);
  }
}

TEST_CASE("quantize_linear and dequantize_linear per axis") {
  // x [2, 3], axis 1: column scales [1, 2, 4], zero points [0, 10, -10].
  const std::vector<float> x = {1.0f, 2.0f, 4.0f, -1.0f, -2.0f, -6.0f};
  const std::vector<float> scale = {1.0f, 2.0f, 4.0f};
  const std::vector<std::int32_t> zp = {0, 10, -10};
  std::vector<std::int8_t> q(6);
  quantize_desc d;
  d.axis = 1;
  REQUIRE(reference::quantize_linear(d, {view(x.data(), {2, 3}), scale, zp, view(q.data(), {2, 3})}).ok());
  // Row 0: 1/1 + 0 = 1; 2/2 + 10 = 11; 4/4 - 10 = -9. Row 1: -1; -1 + 10 = 9; -1.5 -> -2, - 10 = -12.
  const std::int8_t expect_q[] = {1, 11, -9, -1, 9, -12};
  for (std::size_t i = 0; i < 6; ++i) CHECK(q[i] == expect_q[i]);
  std::vector<float> back(6);
  REQUIRE(reference::dequantize_linear(d, {view(q.data(), {2, 3}), scale, zp, view(back.data(), {2, 3})}).ok());
  const float expect_back[] = {1.0f, 2.0f, 4.0f, -1.0f, -2.0f, -8.0f};
  for (std::size_t i = 0; i < 6; ++i) CHECK(back[i] == expect_back[i]);
}

TEST_CASE("dequantize_linear: int32 input with a zero point is exact beyond 2^24") {
  // float(x) - float(zp) would round both; keel subtracts in integers first.
  const std::vector<std::int32_t> x = {16777217 + 3};
  const std::vector<std::int32_t> zp = {3};
  const std::vector<float> scale = {1.0f};
  float y = 0.0f;
  // s32 zero points must lie in the s32 range: any int32 is fine.
  REQUIRE(reference::dequantize_linear({}, {view(x.data(), {1}), scale, zp, view(&y, {1})}).ok());
  CHECK(y == 16777216.0f);  // 16777217 rounds to even in f32
}

TEST_CASE("dynamic_quantize_linear: hand case, all zeros, all negative, random round trip") {
  SUBCASE("hand case") {
    // Range [-1, 3] (0 included): scale = 4 / 255; zp = round(1 / (4/255)) = round(63.75) = 64.
    const std::vector<float> x = {-1.0f, 0.0f, 3.0f, 1.0f};
    std::vector<std::uint8_t> y(4);
    float scale = 0.0f;
    std::uint8_t zp = 0;
    REQUIRE(reference::dynamic_quantize_linear({view(x.data(), {4}), view(y.data(), {4}), &scale, &zp}).ok());
    CHECK(scale == 4.0f / 255.0f);
    CHECK(zp == 64);
    CHECK(y[0] == 0);    // -63.75 -> -64, + 64 = 0
    CHECK(y[1] == 64);
    CHECK(y[2] == 255);  // 191.25 -> 191, + 64 = 255
    CHECK(y[3] == 128);  // 63.75 -> 64, + 64 = 128
  }
  SUBCASE("an all-zero input gives scale 0 and zeros, never NaN") {
    const std::vector<float> x(5, 0.0f);
    std::vector<std::uint8_t> y(5, 99);
    float scale = -1.0f;
    std::uint8_t zp = 99;
    REQUIRE(reference::dynamic_quantize_linear({view(x.data(), {5}), view(y.data(), {5}), &scale, &zp}).ok());
    CHECK(scale == 0.0f);
    CHECK(zp == 0);
    for (std::uint8_t v : y) CHECK(v == 0);
  }
  SUBCASE("random round trip stays within half a step") {
    rng r(3);
    INFO("seed " << r.seed());
    std::vector<float> x(257);
    r.fill(x, -7.0f, 3.0f);
    std::vector<std::uint8_t> y(x.size());
    float scale = 0.0f;
    std::uint8_t zp = 0;
    REQUIRE(reference::dynamic_quantize_linear({view(x.data(), {257}), view(y.data(), {257}), &scale, &zp}).ok());
    for (std::size_t i = 0; i < x.size(); ++i) {
      const float back = static_cast<float>(static_cast<int>(y[i]) - zp) * scale;
      // Half a step of rounding plus the zero point's own rounding (at most half a step).
      CHECK(std::fabs(back - x[i]) <= scale * 1.0001f);
    }
  }
}

TEST_CASE("quantize ops reject bad input and write nothing") {
  const std::vector<float> x = {1.0f, 2.0f, 3.0f, 4.0f};
  std::vector<float> scale = {0.5f};
  guarded<std::int8_t> y(4);
  auto expect = [&](const Status& s, const char* word) {
    INFO(std::string(s.message()));
    CHECK_FALSE(s.ok());
    CHECK(contains(s, word));
    CHECK(y.untouched());
  };
  SUBCASE("zero, negative and NaN scales (the divisor of quantize)") {
    for (float bad : {0.0f, -1.0f, std::numeric_limits<float>::quiet_NaN()}) {
      scale[0] = bad;
      expect(reference::quantize_linear({}, {view(x.data(), {4}), scale, {}, view(y.data(), {4})}), "scale");
    }
  }
  SUBCASE("shape mismatch, bad axis, wrong counts, null") {
    expect(reference::quantize_linear({}, {view(x.data(), {4}), scale, {}, view(y.data(), {2, 2})}), "rank");
    quantize_desc d;
    d.axis = 3;
    expect(reference::quantize_linear(d, {view(x.data(), {4}), scale, {}, view(y.data(), {4})}), "axis 3");
    d.axis = 0;
    expect(reference::quantize_linear(d, {view(x.data(), {4}), scale, {}, view(y.data(), {4})}), "scale has 1 entries");
    const float* null_x = nullptr;
    expect(reference::quantize_linear({}, {view(null_x, {4}), scale, {}, view(y.data(), {4})}), "x is null");
    const std::vector<std::int32_t> zp = {300};
    expect(reference::quantize_linear({}, {view(x.data(), {4}), scale, zp, view(y.data(), {4})}), "zero point = 300");
  }
  SUBCASE("dynamic quantize of NaN or infinity") {
    const std::vector<float> bad = {1.0f, std::numeric_limits<float>::infinity(), 0.0f, 2.0f};
    guarded<std::uint8_t> yu(4);
    float s = 0.0f;
    std::uint8_t z = 0;
    const Status st = reference::dynamic_quantize_linear({view(bad.data(), {4}), view(yu.data(), {4}), &s, &z});
    CHECK(contains(st, "NaN or infinity"));
    CHECK(yu.untouched());
  }
}
