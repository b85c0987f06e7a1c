// Two-translation-unit link test, unit A (unit B is link_b.cpp). Both include keel.hpp and call
// the same reference ops, so every inline function and template of keel is emitted in both object
// files; the executable links only if no header defines a non-inline entity (no ODR or
// multiple-definition error). Unit B also calls run_matmul_in_unit_a() to compare the two copies.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "keel/keel.hpp"
#include "support/testing.hpp"

// Runs the reference matmul from this unit's copy of the inline kernel.
keel::Status run_matmul_in_unit_a(const keel::matmul_i8_desc& d, const keel::matmul_i8_args& a) {
  return keel::reference::matmul_i8(d, a);
}

TEST_CASE("link unit A: a hand-computed int8 matmul with bias") {
  // A - 128 = [[2, 0, -3], [0, 12, -28]], B = [[1, -2], [3, 4], [-5, 6]], bias = [10, -1]:
  //   [0,0] = 2*1 + 0*3 + (-3)(-5) + 10 = 27      [0,1] = 2*(-2) + 0*4 + (-3)*6 - 1 = -23
  //   [1,0] = 0*1 + 12*3 + (-28)(-5) + 10 = 186   [1,1] = 0*(-2) + 12*4 + (-28)*6 - 1 = -121
  const std::vector<std::uint8_t> a = {130, 128, 125, 128, 140, 100};
  const std::vector<std::int8_t> b = {1, -2, 3, 4, -5, 6};
  const std::vector<std::int32_t> bias = {10, -1};
  keel::testing::guarded<std::int32_t> out(4);

  keel::matmul_i8_desc d;
  d.m = 2;
  d.k = 3;
  d.n = 2;
  d.a_zero_point = 128;
  keel::matmul_i8_args args;
  args.a = keel::view(a.data(), {2, 3});
  args.b = keel::view(b.data(), {3, 2});
  args.bias = bias;
  args.out = keel::view(out.data(), {2, 2});

  const keel::Status s = run_matmul_in_unit_a(d, args);
  REQUIRE_MESSAGE(s.ok(), s.message());
  CHECK(out[0] == 27);
  CHECK(out[1] == -23);
  CHECK(out[2] == 186);
  CHECK(out[3] == -121);
  CHECK(out.guards_intact());
}
