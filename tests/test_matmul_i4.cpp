// matmul_i4, the reference kernel: f32 and dynamic_s8 activations times s4/u4 weights with
// per-group f32/f16 scales, against an independent formulation written here (the weights
// dequantized fully first, then a plain matmul in double), hand-computed cases, and bad input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "keel/keel.hpp"
#include "support/testing.hpp"

using namespace keel;

namespace {

constexpr double kU = 1.0 / 16777216.0;  // 2^-24, the unit roundoff of f32

// gamma(j) = j*u / (1 - j*u): the relative bound of j successive f32 roundings (Higham).
double gamma_f32(double j) {
  return j * kU / (1.0 - j * kU);
}

// One test problem: integer weights, zero points and scales kept unpacked, so the expected result
// is computed from them directly; the packed operands are built from them by this file's own code.
struct problem {
  std::int64_t batch = 1, m = 1, n = 1, k = 1, g = 32;
  bool batched = false;  // rank-3 A and out
  dtype b_type = dtype::s4;
  dtype scale_type = dtype::f32;
  bool zero_points = false;  // u4 only: a zero-point view
  bool bias = false;
  i4_activation act = i4_activation::f32;

  std::vector<float> a;  // [batch, M, K]
  std::vector<int> w;    // [N, K] values: -8..7 (s4) or 0..15 (u4)
  std::vector<int> z;    // [N, groups], the zero point each group uses
  std::vector<float> s;  // [N, groups], the scales as f32 (f16 ones widened)
  std::vector<std::uint8_t> w_bytes, zp_bytes;
  std::vector<float> s32;
  std::vector<f16> s16;
  std::vector<float> bias_v;

  std::int64_t groups() const { return (k + g - 1) / g; }
  std::int64_t group_of(std::int64_t kk) const { return kk / g; }

  matmul_i4_desc desc() const {
    matmul_i4_desc d;
    d.batch = batch;
    d.m = m;
    d.n = n;
    d.k = k;
    d.b_type = b_type;
    d.group_size = g;
    d.scale_type = scale_type;
    d.activation = act;
    return d;
  }

  matmul_i4_args args(float* out) const {
    matmul_i4_args x;
    x.a = batched ? view(static_cast<const float*>(a.data()), {batch, m, k})
                  : view(static_cast<const float*>(a.data()), {m, k});
    x.b = view_int4(w_bytes.data(), b_type, {n, k});
    x.scale = scale_type == dtype::f16 ? view(s16.data(), {n, groups()})
                                       : view(s32.data(), {n, groups()});
    if (zero_points) x.zero_point = view(zp_bytes.data(), {n, groups()});
    x.bias = std::span<const float>(bias_v);
    x.out = batched ? view(out, {batch, m, n}) : view(out, {m, n});
    return x;
  }
};

// Packs [rows, cols] 4-bit values the way keel documents it (element i of a row at byte i/2, low
// nibble first; rows start on a byte), written here without keel's helpers.
std::vector<std::uint8_t> pack_nibbles(const std::vector<int>& v, std::int64_t rows,
                                       std::int64_t cols) {
  const std::int64_t rb = (cols + 1) / 2;
  std::vector<std::uint8_t> out(static_cast<std::size_t>(rows * rb), 0);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < cols; ++c) {
      const unsigned nib = static_cast<unsigned>(v[static_cast<std::size_t>(r * cols + c)]) & 0xFu;
      out[static_cast<std::size_t>(r * rb + c / 2)] |=
          static_cast<std::uint8_t>(c % 2 ? nib << 4 : nib);
    }
  }
  return out;
}

// Fills the problem with random operands and builds its packed form.
void fill(problem& p, testing::rng& r) {
  const std::int64_t G = p.groups();
  p.a.resize(static_cast<std::size_t>(p.batch * p.m * p.k));
  r.fill(p.a, -3.0f, 3.0f);
  p.w.resize(static_cast<std::size_t>(p.n * p.k));
  if (p.b_type == dtype::s4) {
    r.fill(p.w, -8, 7);
  } else {
    r.fill(p.w, 0, 15);
  }
  p.z.assign(static_cast<std::size_t>(p.n * G), p.b_type == dtype::s4 ? 0 : 8);
  if (p.zero_points) {
    r.fill(p.z, 0, 15);
    p.z[0] = 0;  // the extremes always appear
    p.z[p.z.size() - 1] = 15;
    p.zp_bytes.assign(p.z.begin(), p.z.end());
  }
  p.s.resize(static_cast<std::size_t>(p.n * G));
  r.fill(p.s, -0.5f, 0.5f);  // negative scales too: GGUF stores them
  if (p.scale_type == dtype::f16) {
    p.s16.resize(p.s.size());
    for (std::size_t i = 0; i < p.s.size(); ++i) {
      p.s16[i] = f32_to_f16(p.s[i]);
      p.s[i] = f16_to_f32(p.s16[i]);  // the exact value the kernel will see
    }
  } else {
    p.s32 = p.s;
  }
  if (p.bias) {
    p.bias_v.resize(static_cast<std::size_t>(p.n));
    r.fill(p.bias_v, -1.0f, 1.0f);
  }
  p.w_bytes = pack_nibbles(p.w, p.n, p.k);
}

float a_at(const problem& p, std::int64_t b, std::int64_t m, std::int64_t k) {
  return p.a[static_cast<std::size_t>((b * p.m + m) * p.k + k)];
}
int w_at(const problem& p, std::int64_t n, std::int64_t k) {
  return p.w[static_cast<std::size_t>(n * p.k + k)];
}
int z_at(const problem& p, std::int64_t n, std::int64_t g) {
  return p.z[static_cast<std::size_t>(n * p.groups() + g)];
}
float s_at(const problem& p, std::int64_t n, std::int64_t g) {
  return p.s[static_cast<std::size_t>(n * p.groups() + g)];
}

// The test's own row quantizer, written from the definition (std::nearbyint in the default
// round-to-nearest-even mode, not keel's round_half_even).
struct qrow {
  float scale = 0.0f;
  std::vector<int> q;
};
qrow quantize_row(const problem& p, std::int64_t b, std::int64_t m) {
  qrow r;
  float amax = 0.0f;
  for (std::int64_t k = 0; k < p.k; ++k) amax = std::fmax(amax, std::fabs(a_at(p, b, m, k)));
  r.scale = amax / 127.0f;
  r.q.assign(static_cast<std::size_t>(p.k), 0);
  if (r.scale == 0.0f) return r;
  for (std::int64_t k = 0; k < p.k; ++k) {
    double v = std::nearbyint(static_cast<double>(a_at(p, b, m, k) / r.scale));
    v = std::fmin(127.0, std::fmax(-127.0, v));
    r.q[static_cast<std::size_t>(k)] = static_cast<int>(v);
  }
  return r;
}

// Checks every output of the problem against the independent formulation:
//  f32: the weights dequantized in double (s * (w - z), exact), a plain double matmul; the
//       kernel's f32 result lies within gamma(G + groups + 1) * (sum |a * w_deq| + |bias|) of it:
//       one rounding per product, G - 1 per group sum, one for the scale, groups - 1 for the outer
//       sum, one for the bias (plus the double evaluation's own K * 2^-53, added explicitly).
//  dynamic_s8: the int32 group sums from this file's own quantizer and integer loop, then
//       sum_g isum_g * c_g in double with c_g = f32(a_scale * s) as defined; float(isum) is exact
//       (|isum| < 2^24), so the kernel lies within gamma(groups + 1) * (sum |isum * c| + |bias|).
void check_against_formulation(const problem& p, const testing::guarded<float>& out) {
  const std::int64_t G = p.groups();
  for (std::int64_t b = 0; b < p.batch; ++b) {
    for (std::int64_t m = 0; m < p.m; ++m) {
      const qrow qr = p.act == i4_activation::dynamic_s8 ? quantize_row(p, b, m) : qrow{};
      for (std::int64_t n = 0; n < p.n; ++n) {
        double expect = 0.0, magnitude = 0.0;
        if (p.act == i4_activation::f32) {
          for (std::int64_t k = 0; k < p.k; ++k) {
            const std::int64_t g = p.group_of(k);
            const double wd = static_cast<double>(s_at(p, n, g)) * (w_at(p, n, k) - z_at(p, n, g));
            const double t = static_cast<double>(a_at(p, b, m, k)) * wd;  // exact in double
            expect += t;
            magnitude += std::fabs(t);
          }
        } else {
          for (std::int64_t g = 0; g < G; ++g) {
            std::int64_t isum = 0;
            for (std::int64_t k = g * p.g; k < std::min((g + 1) * p.g, p.k); ++k) {
              isum += static_cast<std::int64_t>(qr.q[static_cast<std::size_t>(k)]) *
                      (w_at(p, n, k) - z_at(p, n, g));
            }
            const float c = qr.scale * s_at(p, n, g);
            expect += static_cast<double>(isum) * c;
            magnitude += std::fabs(static_cast<double>(isum) * c);
          }
        }
        if (p.bias) {
          expect += p.bias_v[static_cast<std::size_t>(n)];
          magnitude += std::fabs(p.bias_v[static_cast<std::size_t>(n)]);
        }
        const double j = p.act == i4_activation::f32 ? static_cast<double>(p.g + G + 1)
                                                     : static_cast<double>(G + 1);
        const double tol =
            gamma_f32(j) * magnitude + static_cast<double>(p.k) * 0x1p-53 * magnitude;
        const std::size_t o = static_cast<std::size_t>((b * p.m + m) * p.n + n);
        INFO("b=" << b << " m=" << m << " n=" << n << " got=" << out[o] << " expect=" << expect
                  << " tol=" << tol);
        CHECK(std::fabs(static_cast<double>(out[o]) - expect) <= tol);
      }
    }
  }
}

Status run(const problem& p, testing::guarded<float>& out) {
  return reference::matmul_i4(p.desc(), p.args(out.data()));
}

std::string shape_of(const problem& p) {
  return "batch=" + std::to_string(p.batch) + " M=" + std::to_string(p.m) +
         " N=" + std::to_string(p.n) + " K=" + std::to_string(p.k) + " G=" + std::to_string(p.g) +
         " w=" + std::string(to_string(p.b_type)) +
         " scale=" + std::string(to_string(p.scale_type)) + " zp=" + std::to_string(p.zero_points) +
         " bias=" + std::to_string(p.bias) +
         " act=" + (p.act == i4_activation::f32 ? "f32" : "dynamic_s8");
}

// A one-call problem with hand-set operands: a [1, K] row, W [N, K], f32 scales.
problem hand_problem(std::int64_t n, std::int64_t k, std::int64_t g, dtype bt) {
  problem p;
  p.m = 1;
  p.n = n;
  p.k = k;
  p.g = g;
  p.b_type = bt;
  return p;
}

}  // namespace

TEST_CASE("matmul_i4 matches the dequantize-then-matmul formulation") {
  testing::rng r(401);
  const std::int64_t group_sizes[] = {16, 32, 64, 128, 256};
  int cases = 0;
  for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
    for (const std::int64_t g : group_sizes) {
      // K: whole groups, a partial last group (a prime remainder), and K = G exactly.
      for (const std::int64_t k : {g * 3, g * 2 + 7, g}) {
        problem p;
        p.act = act;
        p.g = g;
        p.k = k;
        p.m = r.uniform_int(1, 4);
        p.n = r.uniform_int(1, 9);
        p.b_type = r.uniform_int(0, 1) ? dtype::u4 : dtype::s4;
        p.zero_points = p.b_type == dtype::u4 && r.uniform_int(0, 1);
        p.scale_type = r.uniform_int(0, 1) ? dtype::f16 : dtype::f32;
        p.bias = r.uniform_int(0, 1);
        fill(p, r);
        INFO("seed=" << r.seed() << " " << shape_of(p));
        testing::guarded<float> out(static_cast<std::size_t>(p.m * p.n));
        const Status st = run(p, out);
        REQUIRE_MESSAGE(st.ok(), st.message());
        CHECK(out.guards_intact());
        check_against_formulation(p, out);
        ++cases;
      }
    }
  }
  CHECK(cases == 30);
}

TEST_CASE("matmul_i4 edge shapes: K = 100 with G = 32, one group of K, GEMV, batches") {
  testing::rng r(402);
  for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
    SUBCASE("K = 100, G = 32: groups of 32, 32, 32 and 4") {
      problem p;
      p.act = act;
      p.k = 100;
      p.g = 32;
      p.m = 3;
      p.n = 5;
      p.b_type = dtype::u4;
      p.zero_points = true;
      p.bias = true;
      fill(p, r);
      INFO("seed=" << r.seed() << " " << shape_of(p));
      testing::guarded<float> out(15);
      REQUIRE(run(p, out).ok());
      CHECK(out.guards_intact());
      check_against_formulation(p, out);
    }
    SUBCASE("group = K, K not a power of two") {
      for (const std::int64_t k : {1, 7, 31, 100, 300, 1000}) {
        problem p;
        p.act = act;
        p.k = k;
        p.g = k;
        p.m = 2;
        p.n = 3;
        p.scale_type = dtype::f16;
        fill(p, r);
        INFO("seed=" << r.seed() << " " << shape_of(p));
        testing::guarded<float> out(6);
        REQUIRE(run(p, out).ok());
        CHECK(out.guards_intact());
        check_against_formulation(p, out);
      }
    }
    SUBCASE("M = 1 (GEMV), odd K so rows end in a half-used byte") {
      problem p;
      p.act = act;
      p.k = 129;
      p.g = 64;
      p.m = 1;
      p.n = 17;
      p.b_type = dtype::u4;
      p.zero_points = true;
      fill(p, r);
      INFO("seed=" << r.seed() << " " << shape_of(p));
      testing::guarded<float> out(17);
      REQUIRE(run(p, out).ok());
      CHECK(out.guards_intact());
      check_against_formulation(p, out);
    }
    SUBCASE("batched A [3, M, K] shares W") {
      problem p;
      p.act = act;
      p.batch = 3;
      p.batched = true;
      p.k = 80;
      p.g = 32;
      p.m = 2;
      p.n = 4;
      p.bias = true;
      fill(p, r);
      INFO("seed=" << r.seed() << " " << shape_of(p));
      testing::guarded<float> out(24);
      REQUIRE(run(p, out).ok());
      CHECK(out.guards_intact());
      check_against_formulation(p, out);
    }
    SUBCASE("batch 0 writes nothing") {
      problem p;
      p.act = act;
      p.batched = true;
      p.k = 64;
      p.g = 32;
      p.m = 2;
      p.n = 3;
      fill(p, r);  // operands for one batch; the call says 0
      p.batch = 0;
      testing::guarded<float> out(6);
      const Status st = run(p, out);
      CHECK_MESSAGE(st.ok(), st.message());
      CHECK(out.untouched());
    }
  }
}

TEST_CASE("matmul_i4 dynamic_s8: int32 group sums bit for bit") {
  // Integer activations whose row maximum is 127 make a_scale = 127/127 = 1 exactly and q = a.
  // With scale 1 on one group and 0 on the others, out = float(isum_g), exact below 2^24: the
  // kernel's group sum is read back whole and compared with this file's own integer loop.
  testing::rng r(403);
  for (const std::int64_t k : {100, 64, 77}) {
    for (const dtype bt : {dtype::s4, dtype::u4}) {
      problem p;
      p.act = i4_activation::dynamic_s8;
      p.k = k;
      p.g = 32;
      p.m = 3;
      p.n = 4;
      p.b_type = bt;
      p.zero_points = bt == dtype::u4;
      fill(p, r);
      for (float& x : p.a) x = static_cast<float>(r.uniform_int(-127, 127));
      for (std::int64_t m = 0; m < p.m; ++m) {
        p.a[static_cast<std::size_t>(m * p.k + r.uniform_int(0, p.k - 1))] =
            m % 2 ? 127.0f : -127.0f;
      }
      for (std::int64_t g0 = 0; g0 < p.groups(); ++g0) {
        for (std::int64_t n = 0; n < p.n; ++n) {
          for (std::int64_t g = 0; g < p.groups(); ++g) {
            p.s32[static_cast<std::size_t>(n * p.groups() + g)] = g == g0 ? 1.0f : 0.0f;
          }
        }
        testing::guarded<float> out(static_cast<std::size_t>(p.m * p.n));
        REQUIRE(run(p, out).ok());
        for (std::int64_t m = 0; m < p.m; ++m) {
          for (std::int64_t n = 0; n < p.n; ++n) {
            std::int32_t isum = 0;
            for (std::int64_t kk = g0 * p.g; kk < std::min((g0 + 1) * p.g, p.k); ++kk) {
              isum +=
                  static_cast<std::int32_t>(a_at(p, 0, m, kk)) * (w_at(p, n, kk) - z_at(p, n, g0));
            }
            const float got = out[static_cast<std::size_t>(m * p.n + n)];
            INFO("seed=" << r.seed() << " " << shape_of(p) << " g0=" << g0 << " m=" << m
                         << " n=" << n);
            CHECK(static_cast<std::int64_t>(got) == isum);
            CHECK(static_cast<float>(isum) == got);
          }
        }
      }
    }
  }
}

TEST_CASE("quantize_row_s8_symmetric: the public row quantizer") {
  SUBCASE("hand row: scale 254/127 = 2, ties to even") {
    const std::vector<float> x = {254.0f, 1.0f, 3.0f, -1.0f, -3.0f, 5.0f, -254.0f, 7.0f};
    std::vector<std::int8_t> q(x.size(), 99);
    const float s = reference::quantize_row_s8_symmetric(x, q);
    CHECK(s == 2.0f);
    // 254/2 = 127, 0.5 -> 0, 1.5 -> 2, -0.5 -> 0, -1.5 -> -2, 2.5 -> 2, -127, 3.5 -> 4.
    const std::vector<std::int8_t> want = {127, 0, 2, 0, -2, 2, -127, 4};
    CHECK(q == want);
  }
  SUBCASE("all zeros: scale 0, q 0, no NaN") {
    const std::vector<float> x(9, 0.0f);
    std::vector<std::int8_t> q(x.size(), 99);
    CHECK(reference::quantize_row_s8_symmetric(x, q) == 0.0f);
    CHECK(q == std::vector<std::int8_t>(9, 0));
  }
  SUBCASE("amax so small that amax / 127 underflows to 0: treated as a zero row") {
    const float tiny = std::numeric_limits<float>::denorm_min() * 60.0f;
    REQUIRE(tiny / 127.0f == 0.0f);
    const std::vector<float> x = {tiny, -tiny, 0.0f};
    std::vector<std::int8_t> q(x.size(), 99);
    CHECK(reference::quantize_row_s8_symmetric(x, q) == 0.0f);
    CHECK(q == std::vector<std::int8_t>(3, 0));
  }
  SUBCASE("a subnormal scale: the clamp to 127 is what keeps q in range") {
    // amax = 190 * 2^-149; 190/127 = 1.496 rounds to a scale of 1 * 2^-149, so 190 * 2^-149
    // divides to 190, clamped to 127.
    const float unit = std::numeric_limits<float>::denorm_min();
    const std::vector<float> x = {190.0f * unit, -3.0f * unit, 0.0f};
    std::vector<std::int8_t> q(x.size(), 99);
    CHECK(reference::quantize_row_s8_symmetric(x, q) == unit);
    CHECK(q == std::vector<std::int8_t>{127, -3, 0});
  }
  SUBCASE("random rows agree with this file's quantizer, bit for bit") {
    testing::rng r(404);
    for (int rep = 0; rep < 20; ++rep) {
      problem p;
      p.k = r.uniform_int(1, 300);
      p.a.resize(static_cast<std::size_t>(p.k));
      const float range = std::ldexp(1.0f, static_cast<int>(r.uniform_int(-20, 20)));
      r.fill(p.a, -range, range);
      const qrow want = quantize_row(p, 0, 0);
      std::vector<std::int8_t> q(p.a.size());
      const float s = reference::quantize_row_s8_symmetric(p.a, q);
      INFO("seed=" << r.seed() << " K=" << p.k << " range=" << range);
      CHECK(std::memcmp(&s, &want.scale, sizeof s) == 0);
      for (std::size_t i = 0; i < q.size(); ++i) CHECK(q[i] == want.q[i]);
    }
  }
}

TEST_CASE("matmul_i4 hand cases") {
  SUBCASE("nibble order: element 0 is the low nibble") {
    // W row = 1, 2, 3, 4 packed as 0x21 0x43; a = 1, 10, 100, 1000; z = 0, s = 0.9.
    problem p = hand_problem(1, 4, 4, dtype::u4);
    p.a = {1.0f, 10.0f, 100.0f, 1000.0f};
    p.w_bytes = {0x21, 0x43};
    p.zero_points = true;
    p.zp_bytes = {0};
    p.s32 = {0.9f};
    testing::guarded<float> out(1);
    REQUIRE(run(p, out).ok());
    CHECK(out[0] == 0.9f * 4321.0f);  // the group sum 4321 is exact; swapped nibbles give 3412

    // dynamic_s8: a_scale = 1000/127; q = 0, 1, 13, 127 (0.127, 1.27, 12.7, 127 rounded);
    // isum = 0*1 + 1*2 + 13*3 + 127*4 = 549; out = 549 * f32(a_scale * 0.9). With s = 0.9 the
    // rounding of the product matters: 549 * (a_scale * 0.9) evaluated in double and rounded
    // once gives 3890.55103, one ulp away from the defined 3890.55127.
    p.act = i4_activation::dynamic_s8;
    testing::guarded<float> out2(1);
    REQUIRE(run(p, out2).ok());
    const float c = (1000.0f / 127.0f) * 0.9f;
    CHECK(out2[0] == 549.0f * c);
  }
  SUBCASE("s4 sign extension: nibbles 8 and 7 are -8 and 7") {
    problem p = hand_problem(2, 2, 2, dtype::s4);
    p.a = {1.0f, 10.0f};
    p.w_bytes = {0x78, 0x87};  // row 0: -8, 7; row 1: 7, -8
    p.s32 = {1.0f, 1.0f};
    testing::guarded<float> out(2);
    REQUIRE(run(p, out).ok());
    CHECK(out[0] == 62.0f);   // -8 + 70
    CHECK(out[1] == -73.0f);  // 7 - 80
  }
  SUBCASE("u4 zero points 0 and 15, and the default 8") {
    problem p = hand_problem(2, 2, 2, dtype::u4);
    p.a = {1.0f, 10.0f};
    p.w_bytes = {0xF0, 0xF0};  // each row: 0, 15
    p.s32 = {1.0f, 1.0f};
    p.zero_points = true;
    p.zp_bytes = {0, 15};
    testing::guarded<float> out(2);
    REQUIRE(run(p, out).ok());
    CHECK(out[0] == 150.0f);  // (0 - 0) + 10 * (15 - 0)
    CHECK(out[1] == -15.0f);  // (0 - 15) + 10 * (15 - 15)
    p.zero_points = false;    // no view: zero point 8
    testing::guarded<float> out2(2);
    REQUIRE(run(p, out2).ok());
    CHECK(out2[0] == 62.0f);  // -8 + 10 * 7
    CHECK(out2[1] == 62.0f);
  }
  SUBCASE("f16 scales 0.5 and -2, bias") {
    problem p = hand_problem(1, 64, 32, dtype::s4);
    p.a.assign(64, 1.0f);
    p.w_bytes.assign(32, 0x11);  // every weight 1
    p.scale_type = dtype::f16;
    p.s16 = {f16{0x3800}, f16{0xC000}};  // 0.5, -2.0
    p.bias = true;
    p.bias_v = {0.25f};
    testing::guarded<float> out(1);
    REQUIRE(run(p, out).ok());
    CHECK(out[0] == -47.75f);  // 0.5 * 32 - 2 * 32 + 0.25
  }
  SUBCASE("a zero row gives zeros (plus bias), never NaN") {
    for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
      problem p = hand_problem(2, 40, 32, dtype::s4);
      p.act = act;
      p.m = 2;
      p.a.assign(80, 0.0f);
      for (int k = 0; k < 40; ++k) p.a[static_cast<std::size_t>(40 + k)] = 0.5f * (k % 5) - 1.0f;
      p.w_bytes.assign(40, 0x3D);  // -3, 3
      p.s32 = {1.0f, 2.0f, 0.5f, 4.0f};
      p.bias = true;
      p.bias_v = {0.0f, 1.5f};
      testing::guarded<float> out(4);
      REQUIRE(run(p, out).ok());
      CHECK(out[0] == 0.0f);
      CHECK(out[1] == 1.5f);
      CHECK_FALSE(std::isnan(out[2]));
      CHECK_FALSE(std::isnan(out[3]));
    }
  }
  SUBCASE("strided A, misaligned weight bytes, and the reference backend agree") {
    testing::rng r(405);
    problem p;
    p.k = 70;
    p.g = 32;
    p.m = 3;
    p.n = 5;
    p.b_type = dtype::u4;
    p.zero_points = true;
    fill(p, r);
    // A with rows 80 floats apart (10 of padding, set to NaN: they must not be read).
    std::vector<float> wide(static_cast<std::size_t>(p.m * 80), std::nanf(""));
    for (std::int64_t m = 0; m < p.m; ++m) {
      for (std::int64_t k = 0; k < p.k; ++k) {
        wide[static_cast<std::size_t>(m * 80 + k)] = a_at(p, 0, m, k);
      }
    }
    const testing::misaligned_copy<std::uint8_t> wmis(p.w_bytes);
    for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
      p.act = act;
      testing::guarded<float> plain(15), strided(15), backend(15);
      REQUIRE(run(p, plain).ok());
      matmul_i4_args x = p.args(strided.data());
      x.a = view(static_cast<const float*>(wide.data()), {p.m, p.k});
      x.a.strides[0] = 80;
      x.b = view_int4(wmis.data(), p.b_type, {p.n, p.k});
      const Status st = reference::matmul_i4(p.desc(), x);
      REQUIRE_MESSAGE(st.ok(), st.message());
      backends::reference_backend be;
      REQUIRE(be.run(p.desc(), p.args(backend.data())).ok());
      for (std::size_t i = 0; i < 15; ++i) {
        CHECK(std::memcmp(&plain[i], &strided[i], sizeof(float)) == 0);
        CHECK(std::memcmp(&plain[i], &backend[i], sizeof(float)) == 0);
      }
      CHECK(strided.guards_intact());
    }
  }
}

TEST_CASE("matmul_i4 bad input: a Status that names it, nothing written") {
  testing::rng r(406);
  problem base;
  base.k = 64;
  base.g = 32;
  base.m = 2;
  base.n = 3;
  base.b_type = dtype::u4;
  base.zero_points = true;
  base.act = i4_activation::dynamic_s8;
  fill(base, r);

  auto expect_fail = [](const matmul_i4_desc& d, const matmul_i4_args& a, status_code code,
                        const char* words, testing::guarded<float>& out) {
    const Status st = reference::matmul_i4(d, a);
    INFO(st.message());
    CHECK_FALSE(st.ok());
    CHECK(st.code() == code);
    CHECK(std::string(st.message()).find("matmul_i4") != std::string::npos);
    CHECK(std::string(st.message()).find(words) != std::string::npos);
    CHECK(out.untouched());
  };

  testing::guarded<float> out(6);
  SUBCASE("group size 0 and 24") {
    for (const std::int64_t g : {0, 24, 512}) {
      matmul_i4_desc d = base.desc();
      d.group_size = g;
      expect_fail(d, base.args(out.data()), status_code::invalid_argument, "group size", out);
    }
  }
  SUBCASE("s4 with zero points") {
    matmul_i4_desc d = base.desc();
    d.b_type = dtype::s4;
    matmul_i4_args a = base.args(out.data());
    a.b = view_int4(base.w_bytes.data(), dtype::s4, {base.n, base.k});
    expect_fail(d, a, status_code::invalid_argument, "zero points given for s4", out);
  }
  SUBCASE("wrong scale shapes and dtypes") {
    matmul_i4_args a = base.args(out.data());
    a.scale = view(base.s32.data(), {base.n, 1});
    expect_fail(base.desc(), a, status_code::shape_mismatch, "scale", out);
    a.scale = view(base.s32.data(), {base.n * 2});
    expect_fail(base.desc(), a, status_code::shape_mismatch, "scale has rank 1", out);
    matmul_i4_desc d = base.desc();
    d.scale_type = dtype::f16;  // the view holds f32
    expect_fail(d, base.args(out.data()), status_code::invalid_argument, "scale has dtype f32",
                out);
  }
  SUBCASE("null operands") {
    matmul_i4_args a = base.args(out.data());
    a.a.data = nullptr;
    expect_fail(base.desc(), a, status_code::invalid_argument, "A is null", out);
    a = base.args(out.data());
    a.b.data = nullptr;
    expect_fail(base.desc(), a, status_code::invalid_argument, "B is null", out);
  }
  SUBCASE("sizes whose product overflows") {
    matmul_i4_desc d = base.desc();
    d.m = std::int64_t{1} << 40;
    d.k = std::int64_t{1} << 40;
    d.group_size = d.k;
    d.activation = i4_activation::f32;
    expect_fail(d, base.args(out.data()), status_code::overflow, "overflows", out);
  }
  SUBCASE("dynamic_s8 with one group so long its int32 sum could overflow") {
    matmul_i4_desc d = base.desc();
    d.k = 2000000;
    d.group_size = d.k;
    expect_fail(d, base.args(out.data()), status_code::overflow, "group size 2000000", out);
  }
  SUBCASE("non-finite activation under dynamic_s8") {
    for (const float bad : {std::nanf(""), std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity()}) {
      problem p = base;
      p.a[static_cast<std::size_t>(p.k + 5)] = bad;  // row 1: row 0 would be fine on its own
      expect_fail(p.desc(), p.args(out.data()), status_code::invalid_argument, "A[0, 1, 5]", out);
    }
  }
  SUBCASE("non-finite scale, zero point past 15") {
    problem p = base;
    p.s32[4] = std::numeric_limits<float>::infinity();
    expect_fail(p.desc(), p.args(out.data()), status_code::invalid_argument, "scale[2, 0]", out);
    p = base;
    p.zp_bytes[3] = 16;
    expect_fail(p.desc(), p.args(out.data()), status_code::invalid_argument,
                "zero point[1, 1] = 16", out);
  }
  SUBCASE("bias of the wrong length, batch without a rank-3 A") {
    problem p = base;
    p.bias = true;
    p.bias_v = {1.0f, 2.0f};
    expect_fail(p.desc(), p.args(out.data()), status_code::shape_mismatch, "bias", out);
    matmul_i4_desc d = base.desc();
    d.batch = 2;
    expect_fail(d, base.args(out.data()), status_code::shape_mismatch, "rank-3", out);
  }
}
