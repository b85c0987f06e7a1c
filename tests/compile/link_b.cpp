// Two-translation-unit link test, unit B (see link_a.cpp). It runs the reference backend and the
// quantize op from this unit and compares with unit A's copy of the matmul kernel and with an
// independent formulation of the product.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "keel/keel.hpp"
#include "support/testing.hpp"

keel::Status run_matmul_in_unit_a(const keel::matmul_i8_desc& d, const keel::matmul_i8_args& a);

TEST_CASE("link unit B: both units compute the same random matmul, bit for bit") {
  keel::testing::rng rng(0x11B);
  const std::int64_t M = 5, K = 37, N = 7;  // primes: no dimension is a multiple of a tile
  keel::matmul_i8_desc d;
  d.m = M;
  d.k = K;
  d.n = N;
  d.a_zero_point = static_cast<std::int32_t>(rng.uniform_int(0, 255));
  INFO("seed " << rng.seed() << ", M=" << M << " K=" << K << " N=" << N);

  std::vector<std::uint8_t> a(static_cast<std::size_t>(M * K));
  std::vector<std::int8_t> b(static_cast<std::size_t>(K * N));
  std::vector<std::int32_t> b_zp(static_cast<std::size_t>(N));
  std::vector<std::int32_t> bias(static_cast<std::size_t>(N));
  rng.fill(a, 0, 255);
  rng.fill(b, -128, 127);
  rng.fill(b_zp, -128, 127);
  rng.fill(bias, -100000, 100000);

  // Independent formulation: the definition, summed in int64 row by row.
  std::vector<std::int64_t> expected(static_cast<std::size_t>(M * N));
  for (std::int64_t m = 0; m < M; ++m) {
    for (std::int64_t n = 0; n < N; ++n) {
      std::int64_t acc = bias[static_cast<std::size_t>(n)];
      for (std::int64_t k = 0; k < K; ++k) {
        acc += (std::int64_t{a[static_cast<std::size_t>(m * K + k)]} - d.a_zero_point) *
               (std::int64_t{b[static_cast<std::size_t>(k * N + n)]} -
                b_zp[static_cast<std::size_t>(n)]);
      }
      expected[static_cast<std::size_t>(m * N + n)] = acc;
    }
  }

  keel::testing::guarded<std::int32_t> out_b(static_cast<std::size_t>(M * N));
  keel::testing::guarded<std::int32_t> out_a(static_cast<std::size_t>(M * N));
  keel::matmul_i8_args args;
  args.a = keel::view(a.data(), {M, K});
  args.b = keel::view(b.data(), {K, N});
  args.b_zero_point = b_zp;
  args.bias = bias;

  keel::backends::reference_backend backend;
  args.out = keel::view(out_b.data(), {M, N});
  const keel::Status sb = backend.run(d, args);
  args.out = keel::view(out_a.data(), {M, N});
  const keel::Status sa = run_matmul_in_unit_a(d, args);
  REQUIRE_MESSAGE(sb.ok(), sb.message());
  REQUIRE_MESSAGE(sa.ok(), sa.message());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("element " << i);
    CHECK(out_b[i] == expected[i]);
    CHECK(out_a[i] == out_b[i]);
  }
  CHECK(out_a.guards_intact());
  CHECK(out_b.guards_intact());
}

TEST_CASE("link unit B: quantize_linear rounds half to even and saturates") {
  // x / 0.5 = 1, -2.5, 5.2, 200; round half to even: 1, -2, 5, 200; + 1: 2, -1, 6, 201 -> 127.
  const std::vector<float> x = {0.5f, -1.25f, 2.6f, 100.0f};
  const float scale[] = {0.5f};
  const std::int32_t zp[] = {1};
  keel::testing::guarded<std::int8_t> y(4);
  keel::quantize_args a;
  a.x = keel::view(x.data(), {4});
  a.scale = scale;
  a.zero_point = zp;
  a.y = keel::view(y.data(), {4});
  const keel::Status s = keel::reference::quantize_linear(keel::quantize_desc{}, a);
  REQUIRE_MESSAGE(s.ok(), s.message());
  CHECK(y[0] == 2);
  CHECK(y[1] == -1);
  CHECK(y[2] == 6);
  CHECK(y[3] == 127);
  CHECK(y.guards_intact());
}
