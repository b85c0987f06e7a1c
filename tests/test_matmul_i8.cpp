// Reference int8 matmul: hand-computed cases, the traps of fast kernels pinned down, the
// accumulator range, both requantization modes, and every kind of bad input.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
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

// An independent formulation for the cross-check: the zero points expanded algebraically,
// sum(a*b) - zb*sum(a) - za*sum(b) + K*za*zb, in int64 with row and column sums — a different
// code path from the reference's (a - za) * (b - zb) loop.
template <class TA, class TB>
std::vector<std::int64_t> expanded_matmul(const std::vector<TA>& a, const std::vector<TB>& b,
                                          std::int64_t m, std::int64_t n, std::int64_t k,
                                          std::int32_t za, const std::vector<std::int32_t>& zb) {
  std::vector<std::int64_t> out(static_cast<std::size_t>(m * n));
  for (std::int64_t i = 0; i < m; ++i) {
    std::int64_t row_sum = 0;
    for (std::int64_t p = 0; p < k; ++p) row_sum += a[static_cast<std::size_t>(i * k + p)];
    for (std::int64_t j = 0; j < n; ++j) {
      std::int64_t dot = 0, col_sum = 0;
      for (std::int64_t p = 0; p < k; ++p) {
        const std::int64_t bv = b[static_cast<std::size_t>(p * n + j)];
        dot += a[static_cast<std::size_t>(i * k + p)] * bv;
        col_sum += bv;
      }
      const std::int64_t z = zb.empty() ? 0 : zb[zb.size() == 1 ? 0 : static_cast<std::size_t>(j)];
      out[static_cast<std::size_t>(i * n + j)] = dot - z * row_sum - za * col_sum + k * za * z;
    }
  }
  return out;
}

matmul_i8_desc desc_of(std::int64_t m, std::int64_t n, std::int64_t k, dtype at, dtype bt,
                       dtype out) {
  matmul_i8_desc d;
  d.m = m;
  d.n = n;
  d.k = k;
  d.a_type = at;
  d.b_type = bt;
  d.out.type = out;
  return d;
}

}  // namespace

TEST_CASE("matmul_i8: a hand-computed 2x3x2 case with zero points and bias") {
  // A (u8, za = 3) = [[4, 5, 6], [1, 3, 9]]; B (s8, zb = [1, -2]) = [[1, 2], [3, 4], [5, 6]].
  // (A - 3) = [[1, 2, 3], [-2, 0, 6]]; (B - zb) = [[0, 4], [2, 6], [4, 8]].
  // Row 0: [0 + 4 + 12, 4 + 12 + 24] = [16, 40]; row 1: [0 + 0 + 24, -8 + 0 + 48] = [24, 40].
  // Bias [100, -50]: [[116, -10], [124, -10]].
  const std::vector<std::uint8_t> a = {4, 5, 6, 1, 3, 9};
  const std::vector<std::int8_t> b = {1, 2, 3, 4, 5, 6};
  const std::vector<std::int32_t> zb = {1, -2}, bias = {100, -50};
  guarded<std::int32_t> out(4);
  matmul_i8_desc d = desc_of(2, 2, 3, dtype::u8, dtype::s8, dtype::s32);
  d.a_zero_point = 3;
  matmul_i8_args args{view(a.data(), {2, 3}), view(b.data(), {3, 2}), {}, zb, bias,
                      view(out.data(), {2, 2})};
  REQUIRE(reference::matmul_i8(d, args).ok());
  CHECK(out[0] == 116);
  CHECK(out[1] == -10);
  CHECK(out[2] == 124);
  CHECK(out[3] == -10);
  CHECK(out.guards_intact());
}

TEST_CASE("matmul_i8: the pairwise int16 saturation trap (255 * -128) across the longest K") {
  // A u8 = 255 and B s8 = -128 everywhere, no zero points: every product is -32640 and a
  // pairwise int16 add would saturate at -32768. The exact sum is -32640 * K; the longest K the
  // docs allow for u8 x s8 without zero points is floor((2^31 - 1) / 32640) = 65793.
  const std::int64_t k = max_exact_k(255, 128);
  REQUIRE(k == 65793);
  const std::vector<std::uint8_t> a(static_cast<std::size_t>(k), 255);
  const std::vector<std::int8_t> b(static_cast<std::size_t>(k), -128);
  guarded<std::int32_t> out(1);
  const matmul_i8_desc d = desc_of(1, 1, k, dtype::u8, dtype::s8, dtype::s32);
  REQUIRE(reference::matmul_i8(d, {view(a.data(), {1, k}), view(b.data(), {k, 1}), {}, {}, {},
                                   view(out.data(), {1, 1})})
              .ok());
  CHECK(out[0] == -32640 * k);
  CHECK(out.guards_intact());

  // One more K and the sum can leave int32: rejected, nothing written.
  guarded<std::int32_t> out2(1);
  const std::vector<std::uint8_t> a2(static_cast<std::size_t>(k + 1), 255);
  const std::vector<std::int8_t> b2(static_cast<std::size_t>(k + 1), -128);
  const Status s = reference::matmul_i8(desc_of(1, 1, k + 1, dtype::u8, dtype::s8, dtype::s32),
                                        {view(a2.data(), {1, k + 1}), view(b2.data(), {k + 1, 1}),
                                         {}, {}, {}, view(out2.data(), {1, 1})});
  CHECK(s.code() == status_code::overflow);
  CHECK(contains(s, "reduction length 65794"));
  CHECK(out2.untouched());
}

TEST_CASE("matmul_i8: -128 under sign tricks, s8 x s8 and s8 x u8 extremes") {
  // s8 A = -128 against s8 B = -128: product +16384 (a sign trick that negates -128 in 8 bits
  // gets -128 back and the wrong sign). K = 1000: 16384000.
  const std::int64_t k = 1000;
  SUBCASE("s8 x s8") {
    const std::vector<std::int8_t> a(k, -128), b(k, -128);
    std::int32_t out = 0;
    REQUIRE(reference::matmul_i8(desc_of(1, 1, k, dtype::s8, dtype::s8, dtype::s32),
                                 {view(a.data(), {1, k}), view(b.data(), {k, 1}), {}, {}, {},
                                  view(&out, {1, 1})})
                .ok());
    CHECK(out == 16384 * k);
  }
  SUBCASE("s8 x u8 with zero points at the ends of their ranges") {
    // A s8 = -128, za = 127: A - za = -255. B u8 = 0, zb = 255: B - zb = -255. Product 65025.
    const std::vector<std::int8_t> a(k, -128);
    const std::vector<std::uint8_t> b(k, 0);
    const std::vector<std::int32_t> zb = {255};
    matmul_i8_desc d = desc_of(1, 1, k, dtype::s8, dtype::u8, dtype::s32);
    d.a_zero_point = 127;
    std::int32_t out = 0;
    REQUIRE(reference::matmul_i8(d, {view(a.data(), {1, k}), view(b.data(), {k, 1}), {}, zb, {},
                                     view(&out, {1, 1})})
                .ok());
    CHECK(out == 65025 * k);
    // The worst case of all type pairs: 2^31-1 / 65025 = 33025.
    CHECK(max_exact_k(max_abs_offset(dtype::s8, 127), max_abs_offset(dtype::u8, 255)) == 33025);
  }
}

TEST_CASE("matmul_i8: zero points enter with the right sign") {
  // One element: (a - za) * (b - zb). a = 10, za = 4, b = 3, zb = -5: 6 * 8 = 48. A kernel that
  // adds a zero point instead of subtracting gets 14 * -2 = -28 or similar.
  const std::uint8_t a = 10;
  const std::int8_t b = 3;
  const std::vector<std::int32_t> zb = {-5};
  matmul_i8_desc d = desc_of(1, 1, 1, dtype::u8, dtype::s8, dtype::s32);
  d.a_zero_point = 4;
  std::int32_t out = 0;
  REQUIRE(reference::matmul_i8(d, {view(&a, {1, 1}), view(&b, {1, 1}), {}, zb, {}, view(&out, {1, 1})}).ok());
  CHECK(out == 48);
}

TEST_CASE("matmul_i8: bias saturates instead of wrapping") {
  const std::vector<std::uint8_t> a(4, 255);
  const std::vector<std::int8_t> b(4, 127);
  const std::vector<std::int32_t> bias = {std::numeric_limits<std::int32_t>::max() - 10};
  std::int32_t out = 0;
  REQUIRE(reference::matmul_i8(desc_of(1, 1, 4, dtype::u8, dtype::s8, dtype::s32),
                               {view(a.data(), {1, 4}), view(b.data(), {4, 1}), {}, {}, bias,
                                view(&out, {1, 1})})
              .ok());
  CHECK(out == std::numeric_limits<std::int32_t>::max());
}

TEST_CASE("matmul_i8: requantized outputs saturate and round ties as documented") {
  // K = 1, A = a, B = 1: acc = a - za. Output scale chosen so that the real multiplier is 0.5:
  // a_scale 1, b_scale 1, out_scale 2.
  const std::vector<float> one = {1.0f};
  auto run = [&](std::int32_t acc_value, requant_mode mode, dtype out_type, std::int32_t zp) {
    // acc = (a - za) * (1 - 0) with a s8 and za chosen so a - za == acc_value.
    const std::int8_t a = static_cast<std::int8_t>(acc_value < 0 ? -100 : 100);
    matmul_i8_desc d = desc_of(1, 1, 1, dtype::s8, dtype::s8, out_type);
    d.a_zero_point = a - acc_value;
    d.out.mode = mode;
    d.out.scale = 2.0f;
    d.out.zero_point = zp;
    const std::int8_t b = 1;
    std::int32_t result = 0;
    if (out_type == dtype::s8) {
      std::int8_t o = 0;
      REQUIRE(reference::matmul_i8(d, {view(&a, {1, 1}), view(&b, {1, 1}), one, {}, {}, view(&o, {1, 1})}).ok());
      result = o;
    } else {
      std::uint8_t o = 0;
      REQUIRE(reference::matmul_i8(d, {view(&a, {1, 1}), view(&b, {1, 1}), one, {}, {}, view(&o, {1, 1})}).ok());
      result = o;
    }
    return result;
  };
  // Ties: acc * 0.5 = +-2.5 and +-1.5.
  SUBCASE("fixed point: ties toward +inf") {
    CHECK(run(5, requant_mode::fixed_point, dtype::s8, 0) == 3);
    CHECK(run(-5, requant_mode::fixed_point, dtype::s8, 0) == -2);
    CHECK(run(3, requant_mode::fixed_point, dtype::s8, 0) == 2);
    CHECK(run(-3, requant_mode::fixed_point, dtype::s8, 0) == -1);
  }
  SUBCASE("float scale: ties to even") {
    CHECK(run(5, requant_mode::float_scale, dtype::s8, 0) == 2);
    CHECK(run(-5, requant_mode::float_scale, dtype::s8, 0) == -2);
    CHECK(run(3, requant_mode::float_scale, dtype::s8, 0) == 2);
    CHECK(run(-3, requant_mode::float_scale, dtype::s8, 0) == -2);
  }
  SUBCASE("outputs saturate, never wrap") {
    for (requant_mode mode : {requant_mode::fixed_point, requant_mode::float_scale}) {
      CHECK(run(90, mode, dtype::s8, 100) == 127);     // 45 + 100 = 145 -> 127
      CHECK(run(-90, mode, dtype::s8, -100) == -128);  // -45 - 100 -> -128
      CHECK(run(90, mode, dtype::u8, 250) == 255);
      CHECK(run(-90, mode, dtype::u8, 10) == 0);
    }
  }
}

TEST_CASE("matmul_i8: a zero weight scale gives zeros and the zero point, never NaN") {
  const std::vector<std::uint8_t> a = {200, 3};
  const std::vector<std::int8_t> b = {100, -7};
  const std::vector<float> zero_scale = {0.0f};
  SUBCASE("f32 output") {
    float out = -1.0f;
    matmul_i8_desc d = desc_of(1, 1, 2, dtype::u8, dtype::s8, dtype::f32);
    d.a_scale = 0.5f;
    REQUIRE(reference::matmul_i8(d, {view(a.data(), {1, 2}), view(b.data(), {2, 1}), zero_scale,
                                     {}, {}, view(&out, {1, 1})})
                .ok());
    CHECK(out == 0.0f);
  }
  SUBCASE("requantized output") {
    for (requant_mode mode : {requant_mode::fixed_point, requant_mode::float_scale}) {
      std::uint8_t out = 0;
      matmul_i8_desc d = desc_of(1, 1, 2, dtype::u8, dtype::s8, dtype::u8);
      d.out.mode = mode;
      d.out.zero_point = 77;
      REQUIRE(reference::matmul_i8(d, {view(a.data(), {1, 2}), view(b.data(), {2, 1}), zero_scale,
                                       {}, {}, view(&out, {1, 1})})
                  .ok());
      CHECK(out == 77);
    }
  }
}

TEST_CASE("matmul_i8: fused clamp (ReLU6-style) through the output range") {
  const std::vector<std::int8_t> a = {10, -10, 100};
  const std::vector<std::int8_t> b = {1, 1, 1};  // N = 3 columns, K = 1
  const std::vector<float> scale = {1.0f};
  matmul_i8_desc d = desc_of(3, 3, 1, dtype::s8, dtype::s8, dtype::s8);
  d.out.zero_point = -5;
  d.out.clamp_min = -5;   // ReLU: real 0 is the zero point
  d.out.clamp_max = 20;   // "6" in this scale
  std::vector<std::int8_t> out(9);
  REQUIRE(reference::matmul_i8(d, {view(a.data(), {3, 1}), view(b.data(), {1, 3}), scale, {}, {},
                                   view(out.data(), {3, 3})})
              .ok());
  CHECK(out[0] == 5);    // 10 - 5
  CHECK(out[3] == -5);   // -10 - 5 = -15 clamped to -5
  CHECK(out[6] == 20);   // 100 - 5 = 95 clamped to 20
}

TEST_CASE("matmul_i8: random cross-check against the expanded formulation") {
  rng r(1);
  const std::int64_t primes[] = {1, 2, 3, 5, 7, 13, 31, 67, 127, 257};
  for (std::int64_t k : primes) {
    const std::int64_t m = r.uniform_int(1, 9), n = r.uniform_int(1, 37);
    INFO("seed " << r.seed() << " M=" << m << " N=" << n << " K=" << k);
    std::vector<std::uint8_t> a(static_cast<std::size_t>(m * k));
    std::vector<std::int8_t> b(static_cast<std::size_t>(k * n));
    r.fill(a, 0, 255);
    r.fill(b, -128, 127);
    std::vector<std::int32_t> zb(static_cast<std::size_t>(n));
    r.fill(zb, -128, 127);
    const auto za = static_cast<std::int32_t>(r.uniform_int(0, 255));
    matmul_i8_desc d = desc_of(m, n, k, dtype::u8, dtype::s8, dtype::s32);
    d.a_zero_point = za;
    guarded<std::int32_t> out(static_cast<std::size_t>(m * n));
    REQUIRE(reference::matmul_i8(d, {view(a.data(), {m, k}), view(b.data(), {k, n}), {}, zb, {},
                                     view(out.data(), {m, n})})
                .ok());
    const auto expect = expanded_matmul(a, b, m, n, k, za, zb);
    for (std::size_t i = 0; i < expect.size(); ++i) {
      REQUIRE(out[i] == expect[i]);
    }
    CHECK(out.guards_intact());
  }
}

TEST_CASE("matmul_i8: batched 3-D, shared and per-batch B, strided and misaligned views") {
  rng r(2);
  const std::int64_t batch = 3, m = 4, n = 5, k = 11;
  INFO("seed " << r.seed());
  std::vector<std::int8_t> a(static_cast<std::size_t>(batch * m * k));
  std::vector<std::uint8_t> b(static_cast<std::size_t>(batch * k * n));
  r.fill(a, -128, 127);
  r.fill(b, 0, 255);
  const keel::testing::misaligned_copy<std::int8_t> a_odd(a);
  for (bool b_batched : {false, true}) {
    matmul_i8_desc d = desc_of(m, n, k, dtype::s8, dtype::u8, dtype::s32);
    d.batch = batch;
    d.b_batched = b_batched;
    d.a_zero_point = -3;
    std::vector<std::int32_t> out(static_cast<std::size_t>(batch * m * n));
    const_tensor_view bv = b_batched ? view(b.data(), {batch, k, n}) : view(b.data(), {k, n});
    REQUIRE(reference::matmul_i8(d, {view(a_odd.data(), {batch, m, k}), bv, {}, {}, {},
                                     view(out.data(), {batch, m, n})})
                .ok());
    for (std::int64_t bi = 0; bi < batch; ++bi) {
      std::vector<std::int8_t> a2(a.begin() + bi * m * k, a.begin() + (bi + 1) * m * k);
      const std::size_t boff = b_batched ? static_cast<std::size_t>(bi * k * n) : 0;
      std::vector<std::uint8_t> b2(b.begin() + static_cast<std::ptrdiff_t>(boff),
                                   b.begin() + static_cast<std::ptrdiff_t>(boff + k * n));
      const auto expect = expanded_matmul(a2, b2, m, n, k, -3, {});
      for (std::int64_t i = 0; i < m * n; ++i) {
        REQUIRE(out[static_cast<std::size_t>(bi * m * n + i)] == expect[static_cast<std::size_t>(i)]);
      }
    }
  }
  SUBCASE("a transposed B through strides equals the dense B") {
    std::vector<std::int8_t> bt(static_cast<std::size_t>(k * n));  // stored [N, K]
    std::vector<std::int8_t> bd(static_cast<std::size_t>(k * n));  // stored [K, N]
    r.fill(bd, -128, 127);
    for (std::int64_t p = 0; p < k; ++p)
      for (std::int64_t j = 0; j < n; ++j) bt[static_cast<std::size_t>(j * k + p)] = bd[static_cast<std::size_t>(p * n + j)];
    const_tensor_view tv = view(bt.data(), {k, n});
    tv.strides = {1, k, 0, 0};
    std::vector<std::int32_t> o1(static_cast<std::size_t>(m * n)), o2(o1.size());
    const matmul_i8_desc d = desc_of(m, n, k, dtype::s8, dtype::s8, dtype::s32);
    REQUIRE(reference::matmul_i8(d, {view(a.data(), {m, k}), tv, {}, {}, {}, view(o1.data(), {m, n})}).ok());
    REQUIRE(reference::matmul_i8(d, {view(a.data(), {m, k}), view(bd.data(), {k, n}), {}, {}, {}, view(o2.data(), {m, n})}).ok());
    CHECK(o1 == o2);
  }
}

TEST_CASE("matmul_i8: an empty batch is valid and writes nothing") {
  matmul_i8_desc d = desc_of(2, 2, 2, dtype::u8, dtype::s8, dtype::s32);
  d.batch = 0;
  guarded<std::int32_t> out(4);
  const std::uint8_t a[4] = {1, 2, 3, 4};
  const std::int8_t b[4] = {1, 2, 3, 4};
  CHECK(reference::matmul_i8(d, {view(a, {0, 2, 2}), view(b, {2, 2}), {}, {}, {},
                                 view(out.data(), {0, 2, 2})})
            .ok());
  CHECK(out.untouched());
}

TEST_CASE("matmul_i8: bad input is rejected with a clear Status and writes nothing") {
  const std::int64_t m = 2, n = 3, k = 4;
  std::vector<std::uint8_t> a(static_cast<std::size_t>(m * k), 1);
  std::vector<std::int8_t> b(static_cast<std::size_t>(k * n), 1);
  std::vector<float> scales(static_cast<std::size_t>(n), 0.5f);
  guarded<std::int8_t> out(static_cast<std::size_t>(m * n));
  auto good_desc = [&] {
    matmul_i8_desc d = desc_of(m, n, k, dtype::u8, dtype::s8, dtype::s8);
    d.out.scale = 0.25f;
    return d;
  };
  auto good_args = [&] {
    return matmul_i8_args{view(a.data(), {m, k}), view(b.data(), {k, n}), scales, {}, {},
                          view(out.data(), {m, n})};
  };
  REQUIRE(validate(good_desc(), good_args()).ok());
  auto expect_reject = [&](const matmul_i8_desc& d, const matmul_i8_args& args, status_code code,
                           const char* word) {
    const Status s = reference::matmul_i8(d, args);
    INFO(std::string(s.message()));
    CHECK(s.code() == code);
    CHECK(contains(s, word));
    CHECK(contains(s, "matmul_i8"));
    CHECK(out.untouched());
  };
  SUBCASE("mismatched shapes") {
    matmul_i8_args args = good_args();
    args.b = view(b.data(), {k - 1, n});
    expect_reject(good_desc(), args, status_code::shape_mismatch, "B dim 0");
  }
  SUBCASE("zero and negative sizes") {
    matmul_i8_desc d = good_desc();
    d.k = 0;
    expect_reject(d, good_args(), status_code::invalid_argument, "K = 0");
    d = good_desc();
    d.m = -2;
    expect_reject(d, good_args(), status_code::invalid_argument, "M = -2");
  }
  SUBCASE("size product overflows") {
    matmul_i8_desc d = good_desc();
    d.m = std::int64_t{1} << 40;
    d.k = std::int64_t{1} << 40;
    expect_reject(d, good_args(), status_code::overflow, "overflows");
  }
  SUBCASE("null buffers") {
    matmul_i8_args args = good_args();
    args.a.data = nullptr;
    expect_reject(good_desc(), args, status_code::invalid_argument, "A is null");
  }
  SUBCASE("an output that broadcasts (stride 0 over more than one element)") {
    matmul_i8_args args = good_args();
    args.out.strides = {0, 1, 0, 0};
    expect_reject(good_desc(), args, status_code::invalid_argument, "cannot broadcast");
    args = good_args();
    args.out.strides = {n, 0, 0, 0};
    expect_reject(good_desc(), args, status_code::invalid_argument, "out stride 1 is 0");
  }
  SUBCASE("an output that overlaps an input") {
    // One byte buffer holds A (u8, m x k) and, overlapping its last row, the s8 output.
    std::vector<std::uint8_t> shared(static_cast<std::size_t>(m * k + m * n), 7);
    const std::vector<std::uint8_t> before = shared;
    matmul_i8_args args = good_args();
    args.a = view(shared.data(), {m, k});
    args.out = tensor_view(shared.data() + k, dtype::s8, {m, n});
    const Status s = reference::matmul_i8(good_desc(), args);
    INFO(std::string(s.message()));
    CHECK(s.code() == status_code::invalid_argument);
    CHECK(contains(s, "overlaps A"));
    CHECK(shared == before);
    // B beside the output, not overlapping it: accepted.
    args = good_args();
    args.out = tensor_view(shared.data() + m * k, dtype::s8, {m, n});
    args.a = view(shared.data(), {m, k});
    CHECK(reference::matmul_i8(good_desc(), args).ok());
  }
  SUBCASE("misaligned f32 or s32 output") {
    guarded<std::int32_t> out32(static_cast<std::size_t>(m * n + 1));
    matmul_i8_desc d = good_desc();
    d.out.type = dtype::s32;
    matmul_i8_args args = good_args();
    args.out = tensor_view(reinterpret_cast<char*>(out32.data()) + 1, dtype::s32, {m, n});
    const Status s = reference::matmul_i8(d, args);
    CHECK(contains(s, "misaligned"));
    CHECK(out32.untouched());
  }
  SUBCASE("wrong dtypes and counts") {
    matmul_i8_desc d = good_desc();
    d.a_type = dtype::f32;
    expect_reject(d, good_args(), status_code::unsupported, "s8 or u8");
    matmul_i8_args args = good_args();
    args.b_scale = std::span<const float>(scales.data(), 2);
    expect_reject(good_desc(), args, status_code::shape_mismatch, "weight scale has 2 entries");
  }
  SUBCASE("out-of-range zero points and bad scales") {
    matmul_i8_desc d = good_desc();
    d.a_zero_point = 256;
    expect_reject(d, good_args(), status_code::invalid_argument, "A zero point = 256");
    d = good_desc();
    d.out.scale = 0.0f;
    expect_reject(d, good_args(), status_code::invalid_argument, "output scale");
    d = good_desc();
    d.out.scale = std::numeric_limits<float>::quiet_NaN();
    expect_reject(d, good_args(), status_code::invalid_argument, "output scale");
    std::vector<float> neg(static_cast<std::size_t>(n), -1.0f);
    matmul_i8_args args = good_args();
    args.b_scale = neg;
    expect_reject(good_desc(), args, status_code::invalid_argument, "weight scale = -1");
    const std::vector<std::int32_t> bad_zb = {200};
    args = good_args();
    args.b_zero_point = bad_zb;
    expect_reject(good_desc(), args, status_code::invalid_argument, "weight zero point = 200");
  }
  SUBCASE("an empty clamp range") {
    matmul_i8_desc d = good_desc();
    d.out.clamp_min = 50;
    d.out.clamp_max = 10;
    expect_reject(d, good_args(), status_code::invalid_argument, "clamp");
  }
}
