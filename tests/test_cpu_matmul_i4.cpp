// The cpu backend's int4 matmul (keel/kernels/gemm_i4/): every registered kernel against
// keel::reference::matmul_i4, and the backend's route.
//
//   bits     kernels whose variant claims the reference's bits (s8 activations, and f32 with
//            technique ord) are compared bit for bit with the reference's output;
//   bound    the fma kernels are compared with an independent formulation written here (the
//            weights dequantized in double, a plain double matmul) within the bound of
//            docs/semantics.md, gamma(G + groups + 1) * (sum |a * w_deq| + |bias|).
//
// Independence: expected values come from the reference kernel (a scalar formulation on the
// caller's layout, sharing no code with the packed kernels), this file's own formulation, or are
// computed by hand. Every problem is random (keel::testing::rng, seed printed), over K values that
// leave partial groups, every group size, s4/u4 with and without zero points, f16/f32 scales.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "keel/backends/cpu.hpp"
#include "keel/keel.hpp"
#include "keel/kernels/gemm_i4/driver.hpp"
#include "support/testing.hpp"

using namespace keel;
using backends::cpu_backend;
using backends::cpu_options;
namespace gi = keel::kernels::gemm_i4;

namespace {

constexpr double kU = 1.0 / 16777216.0;  // 2^-24, the unit roundoff of f32
double gamma_f32(double j) {
  return j * kU / (1.0 - j * kU);
}

// Thread settings every exactness test runs under: serial, and everything TBB offers.
const int kThreadSettings[] = {1, 0};

// One problem: the integer weights and zero points kept unpacked for the formulation, and the
// operands in keel's layout built from them by this file's own code.
struct problem {
  matmul_i4_desc d;
  bool batched = false;  // rank-3 A and out
  bool zero_points = false;
  bool bias = false;
  std::vector<float> a;  // [batch, M, K]
  std::vector<int> w;    // [N, K]: -8..7 (s4) or 0..15 (u4)
  std::vector<int> z;    // [N, groups]
  std::vector<float> s;  // [N, groups] as f32 (f16 ones widened)
  std::vector<std::uint8_t> w_bytes, zp_bytes;
  std::vector<float> s32;
  std::vector<f16> s16;
  std::vector<float> bias_v;

  std::int64_t groups() const { return d.groups(); }
  std::int64_t rows() const { return d.batch * d.m; }
  std::int64_t out_elems() const { return d.batch * d.m * d.n; }
};

// [rows, cols] nibbles, low nibble first, rows starting on a byte: written here, not keel's.
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

problem make_problem(testing::rng& r, i4_activation act, std::int64_t batch, std::int64_t m,
                     std::int64_t n, std::int64_t k, std::int64_t g, dtype bt, bool zp, dtype st,
                     bool bias, bool batched = false) {
  problem p;
  p.d.batch = batch;
  p.d.m = m;
  p.d.n = n;
  p.d.k = k;
  p.d.group_size = g;
  p.d.b_type = bt;
  p.d.scale_type = st;
  p.d.activation = act;
  p.batched = batched || batch != 1;
  p.zero_points = zp;
  p.bias = bias;
  const std::int64_t groups = p.groups();
  p.a.resize(static_cast<std::size_t>(batch * m * k));
  r.fill(p.a, -3.0f, 3.0f);
  p.w.resize(static_cast<std::size_t>(n * k));
  if (bt == dtype::s4) {
    r.fill(p.w, -8, 7);
  } else {
    r.fill(p.w, 0, 15);
  }
  p.z.assign(static_cast<std::size_t>(n * groups), bt == dtype::s4 ? 0 : 8);
  if (zp) {
    r.fill(p.z, 0, 15);
    p.z[0] = 0;  // the extremes always appear
    p.z[p.z.size() - 1] = 15;
    p.zp_bytes.assign(p.z.begin(), p.z.end());
  }
  p.s.resize(static_cast<std::size_t>(n * groups));
  r.fill(p.s, -0.5f, 0.5f);  // negative scales too
  if (st == dtype::f16) {
    p.s16.resize(p.s.size());
    for (std::size_t i = 0; i < p.s.size(); ++i) {
      p.s16[i] = f32_to_f16(p.s[i]);
      p.s[i] = f16_to_f32(p.s16[i]);
    }
  } else {
    p.s32 = p.s;
  }
  if (bias) {
    p.bias_v.resize(static_cast<std::size_t>(n));
    r.fill(p.bias_v, -1.0f, 1.0f);
  }
  p.w_bytes = pack_nibbles(p.w, n, k);
  return p;
}

std::string shape_of(const problem& p) {
  const matmul_i4_desc& d = p.d;
  return "batch=" + std::to_string(d.batch) + " M=" + std::to_string(d.m) +
         " N=" + std::to_string(d.n) + " K=" + std::to_string(d.k) +
         " G=" + std::to_string(d.group_size) + " w=" + std::string(to_string(d.b_type)) +
         " scale=" + std::string(to_string(d.scale_type)) + " zp=" + std::to_string(p.zero_points) +
         " bias=" + std::to_string(p.bias) +
         " act=" + (d.activation == i4_activation::f32 ? "f32" : "dynamic_s8");
}

// Views of a problem's operands. The weights and zero points sit at an odd byte address, the
// f32/f16 data one element past an aligned one (alignment the kernels were not promised).
struct bound_args {
  testing::misaligned_copy<std::uint8_t> w_store;
  testing::misaligned_copy<std::uint8_t> zp_store;
  std::vector<float> a_store, s32_store;
  std::vector<f16> s16_store;
  matmul_i4_args args;

  bound_args(const problem& p, bool misalign)
      : w_store(p.w_bytes, misalign ? 3 : 0),
        zp_store(p.zero_points ? p.zp_bytes : std::vector<std::uint8_t>(1), misalign ? 5 : 0) {
    const matmul_i4_desc& d = p.d;
    const std::size_t off = misalign ? 1 : 0;
    a_store.assign(off, 0.0f);
    a_store.insert(a_store.end(), p.a.begin(), p.a.end());
    s32_store.assign(off, 0.0f);
    s32_store.insert(s32_store.end(), p.s32.begin(), p.s32.end());
    s16_store.assign(off, f16{});
    s16_store.insert(s16_store.end(), p.s16.begin(), p.s16.end());
    const float* a = a_store.data() + off;
    args.a = p.batched ? view(a, {d.batch, d.m, d.k}) : view(a, {d.m, d.k});
    args.b = view_int4(w_store.data(), d.b_type, {d.n, d.k});
    args.scale = d.scale_type == dtype::f16
                     ? view(static_cast<const f16*>(s16_store.data() + off), {d.n, p.groups()})
                     : view(static_cast<const float*>(s32_store.data() + off), {d.n, p.groups()});
    if (p.zero_points) args.zero_point = view(zp_store.data(), {d.n, p.groups()});
    args.bias = std::span<const float>(p.bias_v);
  }
  void set_out(const problem& p, float* out) {
    args.out = p.batched ? view(out, {p.d.batch, p.d.m, p.d.n}) : view(out, {p.d.m, p.d.n});
  }
};

std::vector<float> reference_out(const problem& p) {
  bound_args ba(p, false);
  std::vector<float> out(static_cast<std::size_t>(p.out_elems()));
  ba.set_out(p, out.data());
  const Status s = reference::matmul_i4(p.d, ba.args);
  REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
  return out;
}

// The bound check: this file's formulation in double, per output.
void check_within_bound(const problem& p, const float* out) {
  const std::int64_t G = p.groups(), gs = p.d.group_size;
  for (std::int64_t b = 0; b < p.d.batch; ++b) {
    for (std::int64_t m = 0; m < p.d.m; ++m) {
      for (std::int64_t n = 0; n < p.d.n; ++n) {
        double expect = 0.0, magnitude = 0.0;
        for (std::int64_t k = 0; k < p.d.k; ++k) {
          const std::size_t gi_ = static_cast<std::size_t>(n * G + k / gs);
          const double wd = static_cast<double>(p.s[gi_]) *
                            (p.w[static_cast<std::size_t>(n * p.d.k + k)] - p.z[gi_]);
          const double t =
              static_cast<double>(p.a[static_cast<std::size_t>((b * p.d.m + m) * p.d.k + k)]) * wd;
          expect += t;
          magnitude += std::fabs(t);
        }
        if (p.bias) {
          expect += p.bias_v[static_cast<std::size_t>(n)];
          magnitude += std::fabs(p.bias_v[static_cast<std::size_t>(n)]);
        }
        const double tol = gamma_f32(static_cast<double>(gs + G + 1)) * magnitude +
                           static_cast<double>(p.d.k) * 0x1p-53 * magnitude;
        const float got = out[(b * p.d.m + m) * p.d.n + n];
        INFO("b=" << b << " m=" << m << " n=" << n << " got=" << got << " expect=" << expect
                  << " tol=" << tol);
        CHECK(std::fabs(static_cast<double>(got) - expect) <= tol);
      }
    }
  }
}

// Bitwise comparison that names the first differing output.
void check_bits(const float* got, const std::vector<float>& want) {
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (std::memcmp(got + i, &want[i], sizeof(float)) != 0) {
      FAIL_CHECK("first differing output " << i << " of " << want.size() << ": got " << got[i]
                                           << ", reference " << want[i]);
      return;
    }
  }
}

bool kernel_runs(const gi::kernel& k, const problem& p) {
  return gi::kernel_unfit(k, p.d) == nullptr;
}

// Packs with the driver, runs kernel `kernel` (forced) with `threads`, into a guarded buffer;
// checks bits or the bound, and the guards.
void run_kernel_and_compare(const problem& p, const std::vector<float>& expected, int kernel,
                            int threads, bool misalign) {
  const gi::kernel& k = gi::kRegistry[kernel];
  INFO("kernel " << std::string(k.name.view()) << " threads=" << threads
                 << " misaligned=" << misalign);
  bound_args ba(p, misalign);
  Result<gi::packed_weights> packed = gi::pack(p.d, ba.args, threads);
  REQUIRE_MESSAGE(packed.ok(), std::string(packed.status().message()));
  const std::size_t off = misalign ? 1 : 0;
  testing::guarded<float> out(static_cast<std::size_t>(p.out_elems()) + off);
  ba.set_out(p, out.data() + off);
  const Status s = gi::run(p.d, packed.value(), ba.args, {threads, kernel});
  REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
  CHECK(out.guards_intact());
  if (off) CHECK(std::memcmp(out.data(), "\xA5\xA5\xA5\xA5", 4) == 0);
  if (k.v.reference_bits()) {
    check_bits(out.data() + off, expected);
  } else {
    check_within_bound(p, out.data() + off);
  }
}

// Every kernel of the registry that can run p, every thread setting.
int check_every_kernel(const problem& p, bool misalign = false) {
  const std::vector<float> expected = reference_out(p);
  int ran = 0;
  for (int i = 0; i < gi::kRegistrySize; ++i) {
    if (!kernel_runs(gi::kRegistry[i], p)) continue;
    for (int threads : kThreadSettings) run_kernel_and_compare(p, expected, i, threads, misalign);
    ++ran;
  }
  return ran;
}

}  // namespace

TEST_CASE("cpu matmul_i4: the registry follows the name grammar, portable kernels included") {
  for (int i = 0; i < gi::kRegistrySize; ++i) {
    const gi::kernel& k = gi::kRegistry[i];
    INFO(std::string(k.name.view()));
    CHECK(k.name.view() == gi::make_name(k.v).view());
    CHECK(gi::find_kernel(k.name.view()) == i);  // names are unique
    CHECK(k.v.mr >= 1);
    CHECK(k.v.mr <= 64);
    CHECK(k.v.np >= 1);
  }
  CHECK(gi::find_kernel("gemm_s8u4_f32_p8k8_1x8_scalar_i32") >= 0);
  CHECK(gi::find_kernel("gemm_f32u4_f32_p8k8_1x8_scalar_ord") >= 0);
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx2")) {
    CHECK(gi::available(gi::kRegistry[gi::find_kernel("gemv_s8u4_f32_p8k8_4x8_avx2_ubs")].v));
  } else {
    MESSAGE("skipping the AVX2 availability check: this CPU lacks AVX2");
  }
#endif
}

TEST_CASE("cpu matmul_i4: every kernel vs the reference, K through partial groups, every G") {
  testing::rng r(501);
  INFO("seed " << r.seed());
  int cases = 0;
  for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
    for (const std::int64_t g : {16, 32, 64, 128, 256}) {
      // K: whole groups, partial last groups of every unit phase, and a single partial group.
      for (const std::int64_t k : {g, 2 * g, g + 1, g + 7, g + 8, g + 13, 2 * g + 29, g - 3}) {
        if (k < 1) continue;
        const dtype bt = r.uniform_int(0, 1) ? dtype::u4 : dtype::s4;
        problem p =
            make_problem(r, act, 1, r.uniform_int(1, 6), r.uniform_int(1, 40), k, g, bt,
                         bt == dtype::u4 && r.uniform_int(0, 1),
                         r.uniform_int(0, 1) ? dtype::f16 : dtype::f32, r.uniform_int(0, 1) == 1);
        INFO(shape_of(p));
        CHECK(check_every_kernel(p) >= 1);
        ++cases;
      }
    }
  }
  CHECK(cases == 2 * 5 * 8);
}

TEST_CASE("cpu matmul_i4: one group of K (G = K), K stepped through primes") {
  testing::rng r(502);
  INFO("seed " << r.seed());
  for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
    for (const std::int64_t k : {1, 2, 3, 5, 7, 11, 13, 17, 31, 37, 61, 67, 97, 131, 257, 509}) {
      problem p = make_problem(r, act, 1, r.uniform_int(1, 5), r.uniform_int(1, 20), k, k,
                               dtype::u4, true, dtype::f32, true);
      INFO(shape_of(p));
      CHECK(check_every_kernel(p) >= 1);
    }
  }
}

TEST_CASE("cpu matmul_i4: every s4/u4, zero point, scale dtype and bias combination") {
  testing::rng r(503);
  INFO("seed " << r.seed());
  for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
    for (const dtype bt : {dtype::s4, dtype::u4}) {
      for (const bool zp : {false, true}) {
        if (zp && bt == dtype::s4) continue;
        for (const dtype st : {dtype::f32, dtype::f16}) {
          for (const bool bias : {false, true}) {
            problem p = make_problem(r, act, 1, 3, 27, 100, 32, bt, zp, st, bias);
            INFO(shape_of(p));
            CHECK(check_every_kernel(p) >= 1);
          }
        }
      }
    }
  }
}

TEST_CASE("cpu matmul_i4: GEMV and GEMM row counts, N remainders of every tile") {
  testing::rng r(504);
  INFO("seed " << r.seed());
  for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
    for (const std::int64_t m : {1, 2, 3, 4, 5, 7, 8, 9, 13}) {
      for (const std::int64_t n : {1, 7, 8, 9, 15, 16, 17, 31, 33, 257, 300}) {
        problem p = make_problem(r, act, 1, m, n, 72, 32, dtype::s4, false, dtype::f32,
                                 r.uniform_int(0, 1) == 1);
        INFO(shape_of(p));
        CHECK(check_every_kernel(p) >= 1);
      }
    }
  }
}

TEST_CASE("cpu matmul_i4: batched A and out [batch, M, K]") {
  testing::rng r(505);
  INFO("seed " << r.seed());
  for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
    for (const std::int64_t batch : {1, 2, 3}) {
      for (const std::int64_t m : {1, 3, 5}) {
        problem p = make_problem(r, act, batch, m, 21, 80, 16, dtype::u4, true, dtype::f16, true,
                                 /*batched=*/true);
        INFO(shape_of(p));
        CHECK(check_every_kernel(p) >= 1);
      }
    }
  }
}

TEST_CASE("cpu matmul_i4: misaligned weights, scales, zero points, activations and out") {
  testing::rng r(506);
  INFO("seed " << r.seed());
  for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
    for (const dtype st : {dtype::f32, dtype::f16}) {
      problem p = make_problem(r, act, 1, 3, 19, 77, 16, dtype::u4, true, st, true);
      INFO(shape_of(p));
      CHECK(check_every_kernel(p, /*misalign=*/true) >= 1);
    }
  }
}

TEST_CASE("cpu matmul_i4: strided A and out views") {
  // A with a K stride of 2 (every other float), out transposed (N-major): the f32 path copies the
  // rows, the s8 path quantizes them from the strided view; the store follows out's strides.
  testing::rng r(507);
  INFO("seed " << r.seed());
  for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
    problem p = make_problem(r, act, 1, 3, 20, 50, 16, dtype::s4, false, dtype::f32, true);
    const std::vector<float> expected = reference_out(p);
    std::vector<float> a_wide(p.a.size() * 2, std::numeric_limits<float>::quiet_NaN());
    for (std::size_t i = 0; i < p.a.size(); ++i) a_wide[2 * i] = p.a[i];
    for (int i = 0; i < gi::kRegistrySize; ++i) {
      if (!kernel_runs(gi::kRegistry[i], p)) continue;
      INFO("kernel " << std::string(gi::kRegistry[i].name.view()));
      bound_args ba(p, false);
      ba.args.a = const_tensor_view(a_wide.data(), dtype::f32, {p.d.m, p.d.k});
      ba.args.a.strides = {2 * p.d.k, 2, 0, 0};
      Result<gi::packed_weights> packed = gi::pack(p.d, ba.args, 1);
      REQUIRE(packed.ok());
      testing::guarded<float> out(static_cast<std::size_t>(p.out_elems()));
      ba.args.out = tensor_view(out.data(), dtype::f32, {p.d.m, p.d.n});
      ba.args.out.strides = {1, p.d.m, 0, 0};
      REQUIRE(gi::run(p.d, packed.value(), ba.args, {0, i}).ok());
      CHECK(out.guards_intact());
      std::vector<float> back(expected.size());
      for (std::int64_t m = 0; m < p.d.m; ++m) {
        for (std::int64_t n = 0; n < p.d.n; ++n) {
          back[static_cast<std::size_t>(m * p.d.n + n)] =
              out[static_cast<std::size_t>(n * p.d.m + m)];
        }
      }
      if (gi::kRegistry[i].v.reference_bits()) {
        check_bits(back.data(), expected);
      } else {
        check_within_bound(p, back.data());
      }
    }
  }
}

TEST_CASE("cpu matmul_i4: long groups and large K, int32 blocks inside a group") {
  // Groups of 64..256 take several int16 blocks (4 units each) per group in the ubs kernels;
  // one group of K = 2053 takes 65 blocks.
  testing::rng r(508);
  INFO("seed " << r.seed());
  for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
    for (const std::int64_t g : {64, 128, 256, 2053}) {
      problem p = make_problem(r, act, 1, 5, 24, 2053, g, dtype::u4, true, dtype::f32, true);
      INFO(shape_of(p));
      CHECK(check_every_kernel(p) >= 1);
    }
  }
}

TEST_CASE("cpu matmul_i4: many rows (several gemm calls per panel group), K over many chunks") {
  // The AVX-512 gemm takes 60 rows by 64 columns per call in register tiles of 6 rows, and
  // unpacks K in chunks of 256 values (whole groups, or one piece of a longer group): rows past
  // one call and past a tile, columns past a call, K across chunks, groups that fill a chunk
  // exactly (G = 16: 16 groups; G = 256: one) or span chunks (G = K).
  testing::rng r(509);
  INFO("seed " << r.seed());
  int cases = 0;
  for (const std::int64_t m : {59, 60, 61, 127}) {
    for (const std::int64_t g : {16, 32, 256, 0}) {  // 0: one group of K
      for (const std::int64_t k : {1031, 1024}) {
        const bool zp = r.uniform_int(0, 1) == 1;
        problem p = make_problem(r, i4_activation::dynamic_s8, 1, m, r.uniform_int(1, 9) * 8 + 7, k,
                                 g == 0 ? k : g, zp ? dtype::u4 : dtype::s4, zp, dtype::f32,
                                 r.uniform_int(0, 1) == 1);
        INFO(shape_of(p));
        CHECK(check_every_kernel(p, m == 61) >= 1);
        ++cases;
      }
    }
  }
  CHECK(cases == 4 * 4 * 2);
}

#if defined(KEEL_GEMM_I4_HAVE_AVX512)
TEST_CASE("cpu matmul_i4 dynamic_s8: the AVX-512 gemm is the backend's choice for M > 4") {
  const int i = gi::find_kernel("gemm_s8u4_f32_p8k8_60x64_avx512vnni_dp4");
  REQUIRE(i >= 0);
  if (!gi::available(gi::kRegistry[i].v)) {
    MESSAGE("skipping: this CPU lacks AVX-512 VNNI (" << gi::avx512::missing_feature() << ")");
    return;
  }
  matmul_i4_desc d;
  d.activation = i4_activation::dynamic_s8;
  for (const std::int64_t m : {5, 64, 512}) {
    d.m = m;
    Result<int> chosen = gi::choose_kernel(d, -1);
    REQUIRE(chosen.ok());
    CHECK(chosen.value() == i);
  }
}
#endif

TEST_CASE("cpu matmul_i4 dynamic_s8: the extremes of the int16 pairs and int32 group sums") {
  // Every |q| = 127 (a row of +-1 values: a_scale = 1/127, q = +-127) against weights at the
  // ends of their range: u = 15 with z = 0, u = 0 with z = 15. A pair of vpmaddubsw is then
  // +-2 * 15 * 127 = +-3810 and 8 pairs +-30480, the most the int16 blocks ever hold; G = 256
  // sums to +-487680. The expected value is computed here by hand: isum = G * 127 * 15 * sign,
  // out = float(isum) * (a_scale * s).
  testing::rng r(509);
  INFO("seed " << r.seed());
  for (const std::int64_t g : {16, 32, 256}) {
    for (const int sign : {1, -1}) {
      const std::int64_t k = 2 * g, n = 16;
      problem p = make_problem(r, i4_activation::dynamic_s8, 1, 2, n, k, g, dtype::u4, true,
                               dtype::f32, false);
      // Row 0 all +1, row 1 all -1 (scaled by sign).
      for (std::int64_t i = 0; i < k; ++i) {
        p.a[static_cast<std::size_t>(i)] = static_cast<float>(sign);
        p.a[static_cast<std::size_t>(k + i)] = static_cast<float>(-sign);
      }
      // Column c: u = 15, z = 0 when c is even; u = 0, z = 15 when odd. Scale 1.
      for (std::int64_t c = 0; c < n; ++c) {
        for (std::int64_t i = 0; i < k; ++i)
          p.w[static_cast<std::size_t>(c * k + i)] = c % 2 ? 0 : 15;
        for (std::int64_t gg = 0; gg < 2; ++gg) {
          p.z[static_cast<std::size_t>(c * 2 + gg)] = c % 2 ? 15 : 0;
          p.s32[static_cast<std::size_t>(c * 2 + gg)] = p.s[static_cast<std::size_t>(c * 2 + gg)] =
              1.0f;
        }
      }
      p.zp_bytes.assign(p.z.begin(), p.z.end());
      p.w_bytes = pack_nibbles(p.w, n, k);
      const float a_scale = 1.0f / 127.0f;
      std::vector<float> hand(static_cast<std::size_t>(2 * n));
      for (std::int64_t m = 0; m < 2; ++m) {
        for (std::int64_t c = 0; c < n; ++c) {
          const std::int32_t q = (m == 0 ? sign : -sign) * 127;
          const std::int32_t w = c % 2 ? -15 : 15;
          const std::int32_t isum = static_cast<std::int32_t>(g) * q * w;
          const float term = rounded_product(static_cast<float>(isum), a_scale * 1.0f);
          const float first = 0.0f + term;
          hand[static_cast<std::size_t>(m * n + c)] = first + term;  // two equal groups
        }
      }
      INFO(shape_of(p) << " sign=" << sign);
      CHECK(reference_out(p) == hand);  // the hand value is the reference's too
      CHECK(check_every_kernel(p) >= 1);
    }
  }
}

TEST_CASE("cpu matmul_i4 dynamic_s8: the row quantizer reproduces the reference's bits") {
  // Rows with ties (x / scale exactly k + 0.5), zeros, a subnormal maximum (scale rounds in the
  // subnormal range), a maximum whose scale underflows to 0, and huge values; lengths that are
  // not multiples of the vector width.
  testing::rng r(510);
  INFO("seed " << r.seed());
  std::vector<std::vector<float>> rows;
  for (const std::int64_t k : {1, 7, 8, 9, 31, 64, 100}) {
    std::vector<float> x(static_cast<std::size_t>(k));
    r.fill(x, -5.0f, 5.0f);
    rows.push_back(x);
    // Ties: amax 254 gives scale 2; odd integers are then ties.
    for (std::int64_t i = 0; i < k; ++i) {
      x[static_cast<std::size_t>(i)] = static_cast<float>(2 * r.uniform_int(-63, 63) + 1);
    }
    x[0] = 254.0f;
    rows.push_back(x);
    for (float& v : x) v = 0.0f;
    rows.push_back(x);
    for (float& v : x) v = r.uniform_float(-1.0f, 1.0f) * 1e-38f;  // subnormal scale
    rows.push_back(x);
    for (float& v : x) v = 1e-45f * static_cast<float>(r.uniform_int(0, 3));  // scale -> 0
    rows.push_back(x);
    for (float& v : x) v = r.uniform_float(-1.5e38f, 1.5e38f);  // the range fits f32
    rows.push_back(x);
  }
  for (const auto& x : rows) {
    const std::int64_t k = static_cast<std::int64_t>(x.size());
    std::vector<std::int8_t> want(x.size()), got(x.size() + 8, 99);
    const float want_scale = reference::quantize_row_s8_symmetric(std::span<const float>(x),
                                                                  std::span<std::int8_t>(want));
    std::vector<std::int32_t> qsum(1);
    for (const bool avx2 : {false, true}) {
#if defined(__x86_64__)
      if (avx2 && !__builtin_cpu_supports("avx2")) continue;
#else
      if (avx2) continue;
#endif
      const gi::row_source src{x.data(), 0, 1};
      const float scale =
          gi::quantize_row(src, k, k + 8, k, 1, avx2, nullptr, got.data(), qsum.data());
      INFO("k=" << k << " x0=" << x[0] << " avx2=" << avx2);
      CHECK(std::memcmp(&scale, &want_scale, sizeof(float)) == 0);
      CHECK(std::memcmp(got.data(), want.data(), want.size()) == 0);
      for (std::size_t i = want.size(); i < got.size(); ++i) CHECK(got[i] == 0);  // padding
      std::int32_t sum = 0;
      for (std::int8_t v : want) sum += v;
      CHECK(qsum[0] == sum);
    }
  }
}

TEST_CASE("cpu matmul_i4 f32: rows on both sides of the scaled conversion's range guard") {
  // The AVX2 f32 kernels convert weights as (u - z) * 2^24 for rows that pass
  // f32_scaled_conversion_ok (max |x| * k_padded < 2^99) and with the magic number 2^23
  // otherwise. Rows here: ordinary; subnormal values; values of 2^105 (products of 2^109 are
  // finite, but times 2^24 they would overflow: only the guard keeps these bits); values just
  // past the guard; values just inside it; tiny normal values. Each must give the reference's
  // bits (ord) or stay in the bound (fma), whichever conversion ran.
  const std::int64_t k = 96, kp = 96;  // G = 32: whole units, k_padded = K
  const float limit = std::ldexp(1.0f, 99 - std::bit_width(static_cast<std::uint64_t>(kp)));
  // The guard itself, by hand.
  std::vector<float> row(static_cast<std::size_t>(k), 1.0f);
  const gi::row_source src{row.data(), 0, 1};
  CHECK(gi::f32_scaled_conversion_ok(src, k, kp));
  row[5] = 1e-40f;  // subnormal: fine
  CHECK(gi::f32_scaled_conversion_ok(src, k, kp));
  row[7] = -limit * 0.75f;
  CHECK(gi::f32_scaled_conversion_ok(src, k, kp));
  row[7] = limit;
  CHECK_FALSE(gi::f32_scaled_conversion_ok(src, k, kp));
  row[7] = std::numeric_limits<float>::quiet_NaN();
  CHECK_FALSE(gi::f32_scaled_conversion_ok(src, k, kp));
  row[7] = -std::numeric_limits<float>::infinity();
  CHECK_FALSE(gi::f32_scaled_conversion_ok(src, k, kp));

  testing::rng r(514);
  INFO("seed " << r.seed());
  for (const dtype bt : {dtype::s4, dtype::u4}) {
    problem p =
        make_problem(r, i4_activation::f32, 1, 6, 19, k, 32, bt, bt == dtype::u4, dtype::f32, true);
    float* a = p.a.data();
    for (std::int64_t i = 0; i < k; i += 3) a[1 * k + i] = 3e-41f * a[1 * k + i];  // subnormals
    for (std::int64_t i = 0; i < k; ++i) a[2 * k + i] *= 0x1p105f;   // row 2: overflow if scaled
    for (std::int64_t i = 0; i < k; ++i) a[3 * k + i] *= limit / 2;  // row 3: past the guard
    for (std::int64_t i = 0; i < k; ++i) a[4 * k + i] *= limit / 4;  // row 4: inside it
    for (std::int64_t i = 0; i < k; ++i) a[5 * k + i] *= 0x1p-120f;  // row 5: tiny, normal
    INFO(shape_of(p));
    CHECK(check_every_kernel(p) >= 1);
  }
}

TEST_CASE("cpu matmul_i4: non-finite f32 activations propagate as the reference's do") {
  testing::rng r(511);
  INFO("seed " << r.seed());
  problem p =
      make_problem(r, i4_activation::f32, 1, 2, 9, 40, 16, dtype::s4, false, dtype::f32, false);
  p.a[3] = std::numeric_limits<float>::infinity();
  p.a[40 + 5] = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> expected = reference_out(p);
  for (int i = 0; i < gi::kRegistrySize; ++i) {
    if (!kernel_runs(gi::kRegistry[i], p)) continue;
    INFO("kernel " << std::string(gi::kRegistry[i].name.view()));
    bound_args ba(p, false);
    Result<gi::packed_weights> packed = gi::pack(p.d, ba.args, 1);
    REQUIRE(packed.ok());
    std::vector<float> out(expected.size());
    ba.set_out(p, out.data());
    REQUIRE(gi::run(p.d, packed.value(), ba.args, {1, i}).ok());
    for (std::size_t j = 0; j < out.size(); ++j) {
      // The class of each output (NaN, +-inf, finite); NaN payloads are not promised.
      CHECK(std::isnan(out[j]) == std::isnan(expected[j]));
      if (std::isinf(expected[j])) CHECK(out[j] == expected[j]);
    }
  }
}

TEST_CASE("cpu matmul_i4: the backend's route equals the reference (pack once, run many)") {
  testing::rng r(512);
  INFO("seed " << r.seed());
  for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
    for (const std::int64_t m : {1, 4, 37}) {
      problem p = make_problem(r, act, 1, m, 67, 96, 32, dtype::u4, true, dtype::f16, true);
      INFO(shape_of(p));
      const std::vector<float> expected = reference_out(p);
      for (int threads : kThreadSettings) {
        cpu_backend cpu(cpu_options{threads, -1});
        bound_args ba(p, false);
        Result<cpu_backend::packed_matmul_i4> packed = cpu.pack(p.d, ba.args);
        REQUIRE_MESSAGE(packed.ok(), std::string(packed.status().message()));
        for (int rep = 0; rep < 2; ++rep) {
          testing::guarded<float> out(static_cast<std::size_t>(p.out_elems()));
          ba.set_out(p, out.data());
          REQUIRE(cpu.run(p.d, packed.value(), ba.args).ok());
          CHECK(out.guards_intact());
          check_bits(out.data(), expected);  // the backend chooses reference-bit kernels
        }
        // Without packed weights.
        testing::guarded<float> out(static_cast<std::size_t>(p.out_elems()));
        ba.set_out(p, out.data());
        REQUIRE(cpu.run(p.d, ba.args).ok());
        CHECK(out.guards_intact());
        check_bits(out.data(), expected);
      }
    }
  }
  // One packed form serves both activation kinds.
  problem p =
      make_problem(r, i4_activation::f32, 1, 3, 30, 64, 16, dtype::s4, false, dtype::f32, false);
  cpu_backend cpu;
  bound_args ba(p, false);
  Result<cpu_backend::packed_matmul_i4> packed = cpu.pack(p.d, ba.args);
  REQUIRE(packed.ok());
  for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
    p.d.activation = act;
    const std::vector<float> expected = reference_out(p);
    std::vector<float> out(expected.size());
    ba.set_out(p, out.data());
    REQUIRE(cpu.run(p.d, packed.value(), ba.args).ok());
    check_bits(out.data(), expected);
  }
}

TEST_CASE("cpu matmul_i4: bad input returns the reference's Status and writes nothing") {
  testing::rng r(513);
  INFO("seed " << r.seed());
  const auto expect_rejected = [&](const problem& p, const bound_args& ba, status_code code) {
    // The reference's verdict on the same call, for the message.
    testing::guarded<float> ref_out(
        static_cast<std::size_t>(std::max<std::int64_t>(p.out_elems(), 1)));
    matmul_i4_args ra = ba.args;
    ra.out = p.batched ? view(ref_out.data(), {p.d.batch, p.d.m, p.d.n})
                       : view(ref_out.data(), {p.d.m, p.d.n});
    const Status want = reference::matmul_i4(p.d, ra);
    CHECK(want.code() == code);
    for (int threads : kThreadSettings) {
      cpu_backend cpu(cpu_options{threads, -1});
      testing::guarded<float> out(
          static_cast<std::size_t>(std::max<std::int64_t>(p.out_elems(), 1)));
      matmul_i4_args a = ba.args;
      a.out = ra.out;
      a.out.data = out.data();
      const Status got = cpu.run(p.d, a);
      INFO("reference: " << want.message() << " | cpu: " << got.message());
      CHECK(got.code() == code);
      CHECK(std::string(got.message()) == std::string(want.message()));
      CHECK(out.untouched());
    }
  };
  SUBCASE("a NaN, an infinite scale (f32 and f16)") {
    for (const dtype st : {dtype::f32, dtype::f16}) {
      problem p =
          make_problem(r, i4_activation::f32, 1, 2, 40, 64, 32, dtype::s4, false, st, false);
      if (st == dtype::f32) {
        p.s32[37] = std::numeric_limits<float>::quiet_NaN();
      } else {
        p.s16[37] = f32_to_f16(std::numeric_limits<float>::infinity());
      }
      bound_args ba(p, false);
      expect_rejected(p, ba, status_code::invalid_argument);
    }
  }
  SUBCASE("a zero point above 15") {
    problem p = make_problem(r, i4_activation::dynamic_s8, 1, 2, 40, 64, 32, dtype::u4, true,
                             dtype::f32, false);
    p.zp_bytes[55] = 16;
    bound_args ba(p, false);
    expect_rejected(p, ba, status_code::invalid_argument);
  }
  SUBCASE("a non-finite activation with dynamic_s8, in a later row and batch") {
    for (const float bad :
         {std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity()}) {
      problem p = make_problem(r, i4_activation::dynamic_s8, 2, 3, 40, 64, 32, dtype::s4, false,
                               dtype::f32, true);
      p.a[static_cast<std::size_t>((1 * 3 + 2) * 64 + 17)] = bad;
      p.a[static_cast<std::size_t>((1 * 3 + 2) * 64 + 40)] = bad;  // the first one is reported
      bound_args ba(p, false);
      expect_rejected(p, ba, status_code::invalid_argument);
    }
  }
  SUBCASE("shapes: B, scale and out that disagree; a group size that is not allowed") {
    problem p =
        make_problem(r, i4_activation::f32, 1, 2, 40, 64, 32, dtype::s4, false, dtype::f32, false);
    {
      bound_args ba(p, false);
      ba.args.scale.shape[1] = 3;
      expect_rejected(p, ba, status_code::shape_mismatch);
    }
    {
      bound_args ba(p, false);
      ba.args.b.shape[0] = 39;
      expect_rejected(p, ba, status_code::shape_mismatch);
    }
    {
      problem q = p;
      q.d.group_size = 48;
      bound_args ba(q, false);
      expect_rejected(q, ba, status_code::invalid_argument);
    }
  }
  SUBCASE("zero points with s4 weights") {
    problem p =
        make_problem(r, i4_activation::f32, 1, 2, 40, 64, 32, dtype::s4, false, dtype::f32, false);
    p.zp_bytes.assign(static_cast<std::size_t>(40 * 2), 8);
    p.zero_points = true;
    bound_args ba(p, false);
    expect_rejected(p, ba, status_code::invalid_argument);
  }
  SUBCASE("packed weights run with a desc they were not packed for") {
    problem p =
        make_problem(r, i4_activation::f32, 1, 2, 40, 64, 32, dtype::s4, false, dtype::f32, false);
    bound_args ba(p, false);
    cpu_backend cpu;
    Result<cpu_backend::packed_matmul_i4> packed = cpu.pack(p.d, ba.args);
    REQUIRE(packed.ok());
    matmul_i4_desc other = p.d;
    other.group_size = 16;
    testing::guarded<float> out(80);
    ba.set_out(p, out.data());
    const Status s = cpu.run(other, packed.value(), ba.args);
    CHECK(s.code() == status_code::shape_mismatch);
    CHECK(out.untouched());
    // And a forced kernel of the wrong activation kind is refused, not run.
    const int wrong = gi::find_kernel("gemm_s8u4_f32_p8k8_1x8_scalar_i32");
    Result<gi::packed_weights> pw = gi::pack(p.d, ba.args, 1);
    REQUIRE(pw.ok());
    CHECK(gi::run(p.d, pw.value(), ba.args, {1, wrong}).code() == status_code::unsupported);
    CHECK(out.untouched());
  }
  SUBCASE("batch 0 writes nothing") {
    problem p = make_problem(r, i4_activation::dynamic_s8, 1, 2, 40, 64, 32, dtype::s4, false,
                             dtype::f32, false, /*batched=*/true);
    p.d.batch = 0;
    bound_args ba(p, false);
    testing::guarded<float> out(80);
    ba.args.out = view(out.data(), {0, 2, 40});
    CHECK(cpu_backend().run(p.d, ba.args).ok());
    CHECK(out.untouched());
  }
}

TEST_CASE("cpu matmul_i4 gemv: panels side by side, groups across the f32 kernel's K chunks") {
  // The AVX-512 gemv kernels read several panels side by side (f32: 4 pairs, s8: 4 panels) with
  // the rest one at a time, and the f32 one walks K in chunks of 128 or 256 values that a group
  // may span: N from 8 to 25 panels (odd counts leave a single panel), K past several chunks.
  testing::rng r(512);
  INFO("seed " << r.seed());
  for (const auto act : {i4_activation::f32, i4_activation::dynamic_s8}) {
    for (const std::int64_t n : {64, 72, 136, 200}) {
      for (const std::int64_t g : {32, 256, 600}) {  // 600: one group of all of K
        const bool zp = r.uniform_int(0, 1) == 1;
        problem p = make_problem(r, act, 1, 1, n, 600, g, zp ? dtype::u4 : dtype::s4, zp,
                                 dtype::f32, r.uniform_int(0, 1) == 1);
        INFO(shape_of(p));
        CHECK(check_every_kernel(p) >= 1);
      }
    }
  }
}
