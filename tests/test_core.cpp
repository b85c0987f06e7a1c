// Core types: Status, dtypes and f16, tensor views, int4 nibbles, fixed-point helpers.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "keel/keel.hpp"
#include "support/testing.hpp"

using namespace keel;

TEST_CASE("Status names the op, the value and the rule") {
  const Status s = Status::make(status_code::shape_mismatch, "matmul_i8", "A dim %d is %d", 1, 7);
  CHECK_FALSE(s.ok());
  CHECK(s.code() == status_code::shape_mismatch);
  CHECK(std::string(s.message()) == "matmul_i8: A dim 1 is 7");
  CHECK(std::string(Status::Ok().message()) == "ok");
  // A message longer than the buffer is truncated, never overflowed.
  std::string long_text(500, 'x');
  const Status t = Status::make(status_code::internal, "op", "%s", long_text.c_str());
  CHECK(std::strlen(t.message()) == Status::kMessageCapacity - 1);
}

TEST_CASE("f16 round trip is exact for every half value") {
  for (std::uint32_t b = 0; b < 0x10000u; ++b) {
    const f16 h{static_cast<std::uint16_t>(b)};
    const float f = f16_to_f32(h);
    INFO("bits = " << b);
    if (std::isnan(f)) {
      CHECK(std::isnan(f16_to_f32(f32_to_f16(f))));
    } else {
      CHECK(f32_to_f16(f).bits == h.bits);
    }
  }
  // Ties to even between two halves: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
  CHECK(f32_to_f16(1.0f + std::ldexp(1.0f, -11)).bits == 0x3C00);
  CHECK(f32_to_f16(1.0f + 3 * std::ldexp(1.0f, -11)).bits == 0x3C02);
  CHECK(f32_to_f16(70000.0f).bits == 0x7C00);  // overflow -> inf
  CHECK(f16_to_f32(f16{0x0001}) == std::ldexp(1.0f, -24));  // smallest subnormal
}

TEST_CASE("int4 nibbles: low nibble first, s4 sign-extends") {
  std::vector<std::uint8_t> bytes(2, 0);
  store_nibble(bytes.data(), 0, -8);
  store_nibble(bytes.data(), 1, 7);
  store_nibble(bytes.data(), 2, -1);
  store_nibble(bytes.data(), 3, 3);
  CHECK(bytes[0] == 0x78);
  CHECK(bytes[1] == 0x3F);
  CHECK(load_nibble(bytes.data(), 0, dtype::s4) == -8);
  CHECK(load_nibble(bytes.data(), 1, dtype::s4) == 7);
  CHECK(load_nibble(bytes.data(), 2, dtype::s4) == -1);
  CHECK(load_nibble(bytes.data(), 2, dtype::u4) == 15);
  CHECK(load_nibble(bytes.data(), 3, dtype::u4) == 3);
}

TEST_CASE("tensor views: dense strides, extents, overflow") {
  std::vector<float> buf(24);
  const tensor_view v = view(buf.data(), {2, 3, 4});
  CHECK(v.rank == 3);
  CHECK(v.stride(0) == 12);
  CHECK(v.stride(1) == 4);
  CHECK(v.stride(2) == 1);
  CHECK(v.numel() == 24);
  CHECK(v.extent() == 24);
  CHECK(v.extent_bytes() == 96);
  // int4 rows start on a byte: an odd inner extent is rounded up.
  std::vector<std::uint8_t> nib(12);
  const const_tensor_view w = view_int4(nib.data(), dtype::s4, {3, 7});
  CHECK(w.stride(0) == 8);
  CHECK(w.extent_bytes() == 12);
  // A shape whose element count overflows int64 reports -1, not a wrapped number.
  tensor_view big = v;
  big.shape = {std::int64_t{1} << 40, std::int64_t{1} << 40, 1, 1};
  big.rank = 2;
  CHECK(big.numel() == -1);
}

TEST_CASE("fixed-point multiplier: one rounding, ties toward +inf") {
  // 0.5 exactly: M = 2^30, shift 0.
  const quantized_multiplier half = quantize_multiplier(0.5);
  CHECK(half.multiplier == (1 << 30));
  CHECK(half.shift == 0);
  CHECK(multiply_by_quantized_multiplier(5, half) == 3);    // 2.5 -> 3
  CHECK(multiply_by_quantized_multiplier(-5, half) == -2);  // -2.5 -> -2 (toward +inf)
  CHECK(multiply_by_quantized_multiplier(-7, half) == -3);  // -3.5 -> -3
  CHECK(multiply_by_quantized_multiplier(7, half) == 4);
  // Tiny and zero multipliers become exactly 0, never NaN.
  CHECK(quantize_multiplier(0.0).multiplier == 0);
  CHECK(quantize_multiplier(1e-30).multiplier == 0);
  CHECK(multiply_by_quantized_multiplier(123456, quantize_multiplier(0.0)) == 0);
  // Round-trip accuracy over a sweep of real multipliers.
  for (double r = 1e-6; r < 1e3; r *= 1.37) {
    const quantized_multiplier q = quantize_multiplier(r);
    const double back = std::ldexp(static_cast<double>(q.multiplier), q.shift - 31);
    CHECK(std::fabs(back - r) <= r * 1e-9);
  }
}

TEST_CASE("round_half_even ignores the FP rounding mode") {
  CHECK(round_half_even(0.5f) == 0.0f);
  CHECK(round_half_even(1.5f) == 2.0f);
  CHECK(round_half_even(2.5f) == 2.0f);
  CHECK(round_half_even(-0.5f) == 0.0f);
  CHECK(round_half_even(-1.5f) == -2.0f);
  CHECK(round_half_even(-2.5f) == -2.0f);
  CHECK(round_half_even(-2.6f) == -3.0f);
  CHECK(round_half_even(8388609.0f) == 8388609.0f);  // above 2^23 every float is an integer
  CHECK(saturate_to_i32(3e9f) == std::numeric_limits<std::int32_t>::max());
  CHECK(saturate_to_i32(-3e9f) == std::numeric_limits<std::int32_t>::min());
  CHECK(saturate_to_i32(std::numeric_limits<float>::quiet_NaN()) == 0);
}

TEST_CASE("validate: an enum field outside its enumerators is refused by name") {
  // Values cast in from an integer (a file, a binding): each desc's own validate() names them.
  matmul_i4_desc m4;
  m4.m = m4.n = 4;
  m4.k = 32;
  m4.group_size = 32;
  REQUIRE(validate(m4).ok());
  m4.activation = static_cast<i4_activation>(7);
  CHECK(validate(m4).code() == status_code::invalid_argument);
  CHECK(std::string(validate(m4).message()).find("activation = 7") != std::string::npos);

  matmul_i8_desc m8;
  m8.m = m8.n = m8.k = 4;
  m8.out.type = dtype::s8;
  m8.a_scale = 0.5f;
  m8.out.scale = 1.0f;
  REQUIRE(validate(m8).ok());
  m8.out.mode = static_cast<requant_mode>(2);
  CHECK(std::string(validate(m8).message()).find("requantization mode = 2") != std::string::npos);

  conv2d_desc c;
  c.in_h = c.in_w = 4;
  c.in_c = c.out_c = 2;
  c.kernel_h = c.kernel_w = 1;
  REQUIRE(validate(c).ok());
  c.padding = static_cast<padding_mode>(3);
  CHECK(std::string(validate(c).message()).find("padding = 3") != std::string::npos);

  attention_desc a;
  REQUIRE(validate(a).ok());
  a.mask = static_cast<mask_kind>(9);
  CHECK(std::string(validate(a).message()).find("mask = 9") != std::string::npos);
  a.mask = mask_kind::none;
  a.kv_scale = static_cast<scale_granularity>(3);
  CHECK(std::string(validate(a).message()).find("kv_scale granularity = 3") != std::string::npos);
}
