// Importers of GGUF Q4_0 / Q8_0 blocks and ONNX MatMulNBits (bits = 4) weights: hand-built blocks
// decode to the expected keel nibbles and scales, import -> export gives back the same bytes, and
// imported weights run through keel::reference::matmul_i4 agree with this file's own direct
// dequantization of the source bytes.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "keel/import/gguf.hpp"
#include "keel/import/matmul_nbits.hpp"
#include "keel/keel.hpp"
#include "support/testing.hpp"

using namespace keel;

namespace {

constexpr double kU = 1.0 / 16777216.0;  // 2^-24
double gamma_f32(double j) {
  return j * kU / (1.0 - j * kU);
}

// Nibble e of a keel row (element e at byte e/2, low nibble for even e), read without keel.
int nibble(const std::uint8_t* row, std::int64_t e) {
  return (row[e / 2] >> (4 * (e % 2))) & 0x0F;
}

template <class T>
std::vector<T> random_bytes(testing::rng& r, std::int64_t count) {
  std::vector<T> v(static_cast<std::size_t>(count));
  r.fill(v, std::numeric_limits<T>::min(), std::numeric_limits<T>::max());
  return v;
}

// The Status checks of every bad-input case: failed, the code, the function and a key phrase.
void check_failure(const Status& st, status_code code, const char* fn, const char* words) {
  INFO(st.message());
  CHECK_FALSE(st.ok());
  CHECK(st.code() == code);
  CHECK(std::string(st.message()).find(fn) != std::string::npos);
  CHECK(std::string(st.message()).find(words) != std::string::npos);
}

// Runs matmul_i4 (f32 activations) over A [M, K] and checks it against out = A * X^T for the
// dequantized weights X [N, K] given in double, within the rigorous f32 bound
// gamma(G + groups + 1) * sum |a * x| (see test_matmul_i4.cpp for the derivation).
void check_matmul_against(const matmul_i4_desc& d, const matmul_i4_args& args_without_out,
                          const std::vector<float>& a, const std::vector<double>& x) {
  testing::guarded<float> out(static_cast<std::size_t>(d.m * d.n));
  matmul_i4_args args = args_without_out;
  args.a = view(a.data(), {d.m, d.k});
  args.out = view(out.data(), {d.m, d.n});
  const Status st = reference::matmul_i4(d, args);
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK(out.guards_intact());
  const double j = static_cast<double>(d.group_size + d.groups() + 1);
  for (std::int64_t m = 0; m < d.m; ++m) {
    for (std::int64_t n = 0; n < d.n; ++n) {
      double expect = 0.0, magnitude = 0.0;
      for (std::int64_t k = 0; k < d.k; ++k) {
        const double t = static_cast<double>(a[static_cast<std::size_t>(m * d.k + k)]) *
                         x[static_cast<std::size_t>(n * d.k + k)];
        expect += t;
        magnitude += std::fabs(t);
      }
      const double tol = gamma_f32(j) * magnitude + static_cast<double>(d.k) * 0x1p-53 * magnitude;
      const float got = out[static_cast<std::size_t>(m * d.n + n)];
      INFO("m=" << m << " n=" << n << " got=" << got << " expect=" << expect << " tol=" << tol);
      CHECK(std::fabs(static_cast<double>(got) - expect) <= tol);
    }
  }
}

}  // namespace

// ============================================================================================
// GGUF Q4_0
// ============================================================================================

TEST_CASE("GGUF Q4_0: a hand-built block decodes to keel's nibble order") {
  // d = 1.0 (binary16 0x3C00, stored little-endian: 00 3C); qs[j] = j | (15 - j) << 4, so
  // element j (< 16) is j and element j + 16 is 15 - j.
  std::vector<std::uint8_t> block(18);
  block[0] = 0x00;
  block[1] = 0x3C;
  for (int j = 0; j < 16; ++j)
    block[static_cast<std::size_t>(2 + j)] = static_cast<std::uint8_t>(j | ((15 - j) << 4));

  testing::guarded<std::uint8_t> w(16);
  testing::guarded<f16> s(1);
  const Status st = import::import_gguf_q4_0(block, 1, 32, {w.data(), 16}, {s.data(), 1});
  REQUIRE_MESSAGE(st.ok(), st.message());
  CHECK(w.guards_intact());
  CHECK(s.guards_intact());
  CHECK(s[0].bits == 0x3C00);
  for (int e = 0; e < 32; ++e) {
    INFO("element " << e);
    CHECK(nibble(w.data(), e) == (e < 16 ? e : 31 - e));
  }
  CHECK(w[0] == 0x10);   // elements 0, 1
  CHECK(w[7] == 0xFE);   // elements 14, 15
  CHECK(w[8] == 0xEF);   // elements 16, 17 = 15, 14
  CHECK(w[15] == 0x01);  // elements 30, 31 = 1, 0

  // And back: the same 18 bytes.
  std::vector<std::uint8_t> again(18, 0xA5);
  REQUIRE(import::export_gguf_q4_0({w.data(), 16}, {s.data(), 1}, 1, 32, again).ok());
  CHECK(again == block);
}

TEST_CASE("GGUF Q4_0: blocks and scales keep their row order") {
  // N = 2, K = 64: blocks (row 0: b0, b1), (row 1: b2, b3) with d bits 0x0101 * (i + 1) and every
  // nibble of block i equal to i + 4.
  std::vector<std::uint8_t> blocks(4 * 18);
  for (int i = 0; i < 4; ++i) {
    const std::uint16_t bits = static_cast<std::uint16_t>(0x0101 * (i + 1));
    blocks[static_cast<std::size_t>(i * 18)] = static_cast<std::uint8_t>(bits & 0xFF);
    blocks[static_cast<std::size_t>(i * 18 + 1)] = static_cast<std::uint8_t>(bits >> 8);
    for (int j = 0; j < 16; ++j)
      blocks[static_cast<std::size_t>(i * 18 + 2 + j)] = static_cast<std::uint8_t>((i + 4) * 0x11);
  }
  std::vector<std::uint8_t> w(64);
  std::vector<f16> s(4);
  REQUIRE(import::import_gguf_q4_0(blocks, 2, 64, w, s).ok());
  for (int i = 0; i < 4; ++i) {
    CHECK(s[static_cast<std::size_t>(i)].bits == 0x0101 * (i + 1));
    const int row = i / 2, blk = i % 2;
    for (int e = 0; e < 32; ++e) CHECK(nibble(w.data() + row * 32, blk * 32 + e) == i + 4);
  }
}

TEST_CASE("GGUF Q4_0 and Q8_0: import -> export is bit-identical, and export -> import") {
  testing::rng r(501);
  for (int rep = 0; rep < 20; ++rep) {
    const std::int64_t n = r.uniform_int(1, 7);
    const std::int64_t k = 32 * r.uniform_int(1, 9);
    INFO("seed=" << r.seed() << " N=" << n << " K=" << k);
    {
      const auto src = random_bytes<std::uint8_t>(r, n * k / 32 * 18);
      std::vector<std::uint8_t> w(static_cast<std::size_t>(n * k / 2));
      std::vector<f16> s(static_cast<std::size_t>(n * k / 32));
      REQUIRE(import::import_gguf_q4_0(src, n, k, w, s).ok());
      std::vector<std::uint8_t> back(src.size(), 0);
      REQUIRE(import::export_gguf_q4_0(w, s, n, k, back).ok());
      CHECK(back == src);
      // The other direction: arbitrary keel bytes and scale bits survive export -> import.
      const auto w2 = random_bytes<std::uint8_t>(r, n * k / 2);
      std::vector<f16> s2(s.size());
      for (f16& h : s2) h.bits = static_cast<std::uint16_t>(r.uniform_int(0, 0xFFFF));
      REQUIRE(import::export_gguf_q4_0(w2, s2, n, k, back).ok());
      REQUIRE(import::import_gguf_q4_0(back, n, k, w, s).ok());
      CHECK(w == w2);
      for (std::size_t i = 0; i < s.size(); ++i) CHECK(s[i].bits == s2[i].bits);
    }
    {
      const auto src = random_bytes<std::uint8_t>(r, n * k / 32 * 34);
      std::vector<std::int8_t> w(static_cast<std::size_t>(n * k));
      std::vector<f16> s(static_cast<std::size_t>(n * k / 32));
      REQUIRE(import::import_gguf_q8_0(src, n, k, w, s).ok());
      std::vector<std::uint8_t> back(src.size(), 0);
      REQUIRE(import::export_gguf_q8_0(w, s, n, k, back).ok());
      CHECK(back == src);
    }
  }
}

TEST_CASE("GGUF Q4_0 through matmul_i4 equals this file's direct dequantization") {
  testing::rng r(502);
  for (const std::int64_t k : {32, 96, 256}) {
    const std::int64_t n = 5, m = 3;
    INFO("seed=" << r.seed() << " N=" << n << " K=" << k);
    // Random blocks: a finite d of either sign (ggml's quantizer makes d negative whenever the
    // block's largest-magnitude value is positive), and random nibbles.
    std::vector<std::uint8_t> blocks(static_cast<std::size_t>(n * k / 32 * 18));
    for (std::size_t b = 0; b < blocks.size() / 18; ++b) {
      const f16 d = f32_to_f16(r.uniform_float(-0.2f, 0.2f));
      blocks[b * 18] = static_cast<std::uint8_t>(d.bits & 0xFF);
      blocks[b * 18 + 1] = static_cast<std::uint8_t>(d.bits >> 8);
      for (int j = 0; j < 16; ++j)
        blocks[b * 18 + 2 + static_cast<std::size_t>(j)] =
            static_cast<std::uint8_t>(r.uniform_int(0, 255));
    }
    // This file's dequantization, straight from the block bytes: byte j's low nibble is element
    // j, its high nibble element j + 16, value (q - 8) * d.
    std::vector<double> x(static_cast<std::size_t>(n * k));
    for (std::size_t b = 0; b < blocks.size() / 18; ++b) {
      const std::uint16_t bits =
          static_cast<std::uint16_t>(blocks[b * 18] | (blocks[b * 18 + 1] << 8));
      const double d = f16_to_f32(f16{bits});
      for (std::size_t j = 0; j < 16; ++j) {
        const std::uint8_t q = blocks[b * 18 + 2 + j];
        x[b * 32 + j] = ((q & 0x0F) - 8) * d;
        x[b * 32 + j + 16] = ((q >> 4) - 8) * d;
      }
    }
    std::vector<std::uint8_t> w(static_cast<std::size_t>(n * k / 2));
    std::vector<f16> s(static_cast<std::size_t>(n * k / 32));
    REQUIRE(import::import_gguf_q4_0(blocks, n, k, w, s).ok());

    matmul_i4_desc d;
    d.m = m;
    d.n = n;
    d.k = k;
    d.b_type = dtype::u4;  // no zero-point view: zero point 8, Q4_0's offset
    d.group_size = 32;
    d.scale_type = dtype::f16;
    matmul_i4_args args;
    args.b = view_int4(w.data(), dtype::u4, {n, k});
    args.scale = view(static_cast<const f16*>(s.data()), {n, k / 32});
    std::vector<float> a(static_cast<std::size_t>(m * k));
    r.fill(a, -2.0f, 2.0f);
    check_matmul_against(d, args, a, x);
  }
}

TEST_CASE("GGUF Q8_0: a hand-built block, exact dequantization") {
  // d = 2.0 (0x4000, little-endian 00 40); qs = -128, -1, 0, 1, 127, then 5 repeated.
  std::vector<std::uint8_t> block(34, 5);
  block[0] = 0x00;
  block[1] = 0x40;
  const std::int8_t head[] = {-128, -1, 0, 1, 127};
  for (int j = 0; j < 5; ++j)
    block[static_cast<std::size_t>(2 + j)] = static_cast<std::uint8_t>(head[j]);
  std::vector<std::int8_t> w(32);
  std::vector<f16> s(1);
  REQUIRE(import::import_gguf_q8_0(block, 1, 32, w, s).ok());
  CHECK(s[0].bits == 0x4000);
  CHECK(w[0] == -128);
  CHECK(w[1] == -1);
  CHECK(w[2] == 0);
  CHECK(w[3] == 1);
  CHECK(w[4] == 127);
  CHECK(w[31] == 5);
  testing::guarded<float> f(32);
  REQUIRE(import::dequantize_gguf_q8_0(w, s, 1, 32, {f.data(), 32}).ok());
  CHECK(f.guards_intact());
  CHECK(f[0] == -256.0f);
  CHECK(f[1] == -2.0f);
  CHECK(f[4] == 254.0f);
  CHECK(f[31] == 10.0f);

  // Random blocks: every dequantized value equals d * q computed in double (the f32 product is
  // exact: an 11-bit d times an 8-bit q).
  testing::rng r(503);
  const std::int64_t n = 3, k = 96;
  INFO("seed=" << r.seed());
  const auto src = random_bytes<std::uint8_t>(r, n * k / 32 * 34);
  std::vector<std::int8_t> w2(static_cast<std::size_t>(n * k));
  std::vector<f16> s2(static_cast<std::size_t>(n * k / 32));
  REQUIRE(import::import_gguf_q8_0(src, n, k, w2, s2).ok());
  std::vector<float> f2(static_cast<std::size_t>(n * k));
  REQUIRE(import::dequantize_gguf_q8_0(w2, s2, n, k, f2).ok());
  for (std::size_t i = 0; i < f2.size(); ++i) {
    const std::size_t b = i / 32;
    const double d =
        f16_to_f32(f16{static_cast<std::uint16_t>(src[b * 34] | (src[b * 34 + 1] << 8))});
    const double want = d * static_cast<std::int8_t>(src[b * 34 + 2 + i % 32]);
    if (std::isnan(want)) {
      CHECK(std::isnan(f2[i]));
    } else {
      CHECK(static_cast<double>(f2[i]) == want);
    }
  }
}

TEST_CASE("GGUF bad input: a Status that names it, nothing written") {
  std::vector<std::uint8_t> blocks(2 * 18, 0x11);
  testing::guarded<std::uint8_t> w(32);
  testing::guarded<f16> s(2);
  testing::guarded<std::int8_t> w8(64);
  auto untouched = [&] { return w.untouched() && s.untouched() && w8.untouched(); };

  check_failure(import::import_gguf_q4_0(blocks, 1, 48, {w.data(), 24}, {s.data(), 1}),
                status_code::invalid_argument, "import_gguf_q4_0", "not a multiple of 32");
  check_failure(import::import_gguf_q4_0(blocks, 0, 64, {w.data(), 32}, {s.data(), 2}),
                status_code::invalid_argument, "import_gguf_q4_0", "N = 0");
  check_failure(import::import_gguf_q4_0({blocks.data(), 35}, 1, 64, {w.data(), 32}, {s.data(), 2}),
                status_code::shape_mismatch, "import_gguf_q4_0", "blocks has 35 elements");
  check_failure(import::import_gguf_q4_0(blocks, 1, 64, {w.data(), 31}, {s.data(), 2}),
                status_code::shape_mismatch, "import_gguf_q4_0", "weights has 31");
  check_failure(import::import_gguf_q4_0(blocks, 1, 64, {w.data(), 32}, {s.data(), 1}),
                status_code::shape_mismatch, "import_gguf_q4_0", "scales has 1");
  check_failure(import::import_gguf_q4_0({static_cast<const std::uint8_t*>(nullptr), 36}, 1, 64,
                                         {w.data(), 32}, {s.data(), 2}),
                status_code::invalid_argument, "import_gguf_q4_0", "blocks is null");
  check_failure(import::import_gguf_q4_0(blocks, 1, 64, {static_cast<std::uint8_t*>(nullptr), 32},
                                         {s.data(), 2}),
                status_code::invalid_argument, "import_gguf_q4_0", "weights is null");
  check_failure(
      import::import_gguf_q4_0(blocks, std::int64_t{1} << 60, 64, {w.data(), 32}, {s.data(), 2}),
      status_code::overflow, "import_gguf_q4_0", "overflows");
  check_failure(import::export_gguf_q4_0({w.data(), 32}, {s.data(), 2}, 1, 64, {blocks.data(), 30}),
                status_code::shape_mismatch, "export_gguf_q4_0", "blocks has 30");
  check_failure(import::import_gguf_q8_0(blocks, 1, 64, {w8.data(), 64}, {s.data(), 2}),
                status_code::shape_mismatch, "import_gguf_q8_0",
                "blocks has 36 elements (must be 68");
  check_failure(
      import::export_gguf_q8_0({w8.data(), 64}, {s.data(), 2}, 1, 33, {blocks.data(), 36}),
      status_code::invalid_argument, "export_gguf_q8_0", "K = 33");
  check_failure(import::dequantize_gguf_q8_0({w8.data(), 64}, {s.data(), 2}, 1, 64,
                                             {static_cast<float*>(nullptr), 64}),
                status_code::invalid_argument, "dequantize_gguf_q8_0", "out is null");
  CHECK(untouched());
  CHECK(std::all_of(blocks.begin(), blocks.end(), [](std::uint8_t b) { return b == 0x11; }));
  CHECK(import::gguf_q4_0_bytes(4, 64) == 4 * 2 * 18);
  CHECK(import::gguf_q8_0_bytes(4, 64) == 4 * 2 * 34);
  CHECK(import::gguf_q4_0_bytes(4, 40) == -1);
}

// ============================================================================================
// ONNX MatMulNBits (bits = 4)
// ============================================================================================

namespace {

// A MatMulNBits source built by this file: element values q[n][k] (0..15), zero points z[n][b]
// (0..15) or none, packed the way the ONNX Runtime contrib-op document describes, padding 0.
struct nbits_source {
  import::matmul_nbits_attrs attrs;
  std::vector<int> q, z;
  std::vector<std::uint8_t> b, zp;
  std::vector<float> s32;
  std::vector<f16> s16;
};

nbits_source make_nbits(testing::rng& r, std::int64_t n, std::int64_t k, std::int64_t bs,
                        bool zero_points, bool f16_scales) {
  nbits_source x;
  x.attrs = {n, k, 4, bs};
  const std::int64_t nb = (k + bs - 1) / bs;
  x.q.resize(static_cast<std::size_t>(n * k));
  r.fill(x.q, 0, 15);
  x.b.assign(static_cast<std::size_t>(n * nb * bs / 2), 0);
  for (std::int64_t i = 0; i < n; ++i) {
    for (std::int64_t kk = 0; kk < k; ++kk) {
      const std::int64_t blk = kk / bs, within = kk % bs;
      const std::size_t byte =
          static_cast<std::size_t>(i * nb * bs / 2 + blk * bs / 2 + within / 2);
      x.b[byte] = static_cast<std::uint8_t>(
          x.b[byte] | (x.q[static_cast<std::size_t>(i * k + kk)] << (4 * (within % 2))));
    }
  }
  if (zero_points) {
    x.z.resize(static_cast<std::size_t>(n * nb));
    r.fill(x.z, 0, 15);
    const std::int64_t zrow = (nb + 1) / 2;
    x.zp.assign(static_cast<std::size_t>(n * zrow), 0);
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t blk = 0; blk < nb; ++blk) {
        const std::size_t byte = static_cast<std::size_t>(i * zrow + blk / 2);
        x.zp[byte] = static_cast<std::uint8_t>(
            x.zp[byte] | (x.z[static_cast<std::size_t>(i * nb + blk)] << (4 * (blk % 2))));
      }
    }
  }
  std::vector<float> s(static_cast<std::size_t>(n * nb));
  r.fill(s, -0.3f, 0.3f);
  if (f16_scales) {
    for (float v : s) x.s16.push_back(f32_to_f16(v));
  } else {
    x.s32 = s;
  }
  return x;
}

}  // namespace

TEST_CASE("MatMulNBits: a hand-built tensor decodes to keel's layout, padding ignored") {
  SUBCASE("K = 20, block_size 16: a partial second block") {
    // Row: block 0 holds elements 0..15 = 0..15 (bytes 0x10, 0x32, ..., 0xFE); block 1 holds
    // elements 16..19 = 9, 10, 11, 12 (bytes 0xA9, 0xCB) and six bytes of padding, set to 0xFF
    // here to show they are ignored. Zero points: block 0 -> 3, block 1 -> 5: one byte, 0x53.
    std::vector<std::uint8_t> b = {0x10, 0x32, 0x54, 0x76, 0x98, 0xBA, 0xDC, 0xFE,
                                   0xA9, 0xCB, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF};
    const std::vector<float> scales = {0.5f, 2.0f};
    const std::vector<std::uint8_t> zp = {0x53};
    const import::matmul_nbits_attrs attrs{1, 20, 4, 16};
    testing::guarded<std::uint8_t> w(10), kz(2);
    testing::guarded<float> ks(2);
    const Status st = import::import_matmul_nbits(attrs, b, scales, zp, {w.data(), 10},
                                                  {ks.data(), 2}, {kz.data(), 2});
    REQUIRE_MESSAGE(st.ok(), st.message());
    CHECK((w.guards_intact() && kz.guards_intact() && ks.guards_intact()));
    for (int e = 0; e < 16; ++e) CHECK(nibble(w.data(), e) == e);
    CHECK(nibble(w.data(), 16) == 9);
    CHECK(nibble(w.data(), 19) == 12);
    CHECK(w[9] == 0xCB);
    CHECK(kz[0] == 3);
    CHECK(kz[1] == 5);
    CHECK(ks[0] == 0.5f);
    CHECK(ks[1] == 2.0f);

    // Export writes the padding as 0.
    std::vector<std::uint8_t> b2(16, 0xA5), zp2(1, 0xA5);
    std::vector<float> s2(2);
    REQUIRE(import::export_matmul_nbits(attrs, {w.data(), 10}, {ks.data(), 2}, {kz.data(), 2}, b2,
                                        s2, zp2)
                .ok());
    std::fill(b.begin() + 10, b.end(), 0);
    CHECK(b2 == b);
    CHECK(zp2 == zp);
    CHECK(s2 == scales);

    // matmul_i4 with group_size 16 and these operands: a = all 1 gives
    // 0.5 * sum(0..15 - 3) + 2 * ((9 + 10 + 11 + 12) - 4 * 5) = 0.5 * 72 + 2 * 22 = 80.
    matmul_i4_desc d;
    d.m = 1;
    d.n = 1;
    d.k = 20;
    d.b_type = dtype::u4;
    d.group_size = import::matmul_nbits_group_size(attrs);
    std::vector<float> a(20, 1.0f);
    float out = 0.0f;
    matmul_i4_args args;
    args.a = view(a.data(), {1, 20});
    args.b = view_int4(w.data(), dtype::u4, {1, 20});
    args.scale = view(static_cast<const float*>(ks.data()), {1, 2});
    args.zero_point = view(static_cast<const std::uint8_t*>(kz.data()), {1, 2});
    args.out = view(&out, {1, 1});
    REQUIRE(reference::matmul_i4(d, args).ok());
    CHECK(out == 80.0f);
  }
  SUBCASE("odd K = 19: keel's padding nibble is 0; three blocks: a zero-point pad nibble") {
    // K = 19, block 16: B byte 9 holds element 18 (low) and padding (high).
    std::vector<std::uint8_t> b(16, 0x77);
    b[9] = 0xF4;
    const std::vector<f16> scales = {f16{0x3C00}, f16{0x4000}};
    const import::matmul_nbits_attrs attrs{1, 19, 4, 16};
    std::vector<std::uint8_t> w(10);
    std::vector<f16> ks(2);
    REQUIRE(import::import_matmul_nbits(attrs, b, scales, {}, w, ks, {}).ok());
    CHECK(w[9] == 0x04);  // element 18 = 4, nibble 19 = 0
    CHECK(w[8] == 0x77);
    CHECK(ks[1].bits == 0x4000);

    // K = 40, block 16: three blocks; zero-point row = 2 bytes, the last high nibble padding.
    const import::matmul_nbits_attrs a3{1, 40, 4, 16};
    const std::vector<std::uint8_t> b3(24, 0x21);
    const std::vector<float> s3 = {1.0f, 1.0f, 1.0f};
    const std::vector<std::uint8_t> zp3 = {0x21, 0xF3};
    std::vector<std::uint8_t> w3(20), kz3(3);
    std::vector<float> ks3(3);
    REQUIRE(import::import_matmul_nbits(a3, b3, s3, zp3, w3, ks3, kz3).ok());
    CHECK(kz3 == std::vector<std::uint8_t>{1, 2, 3});
    std::vector<std::uint8_t> b3b(24), zp3b(2, 0xA5);
    std::vector<float> s3b(3);
    REQUIRE(import::export_matmul_nbits(a3, w3, ks3, kz3, b3b, s3b, zp3b).ok());
    CHECK(zp3b == std::vector<std::uint8_t>{0x21, 0x03});
    std::vector<std::uint8_t> b3_padding_zeroed = b3;  // elements 40..47 (bytes 20..23) pad
    std::fill(b3_padding_zeroed.begin() + 20, b3_padding_zeroed.end(), 0);
    CHECK(b3b == b3_padding_zeroed);
  }
}

TEST_CASE("MatMulNBits: random round trips are bit-identical") {
  testing::rng r(504);
  for (int rep = 0; rep < 40; ++rep) {
    const std::int64_t bs = std::int64_t{16} << r.uniform_int(0, 4);
    const std::int64_t n = r.uniform_int(1, 6);
    const std::int64_t k = r.uniform_int(1, 3 * bs);
    const bool zp = r.uniform_int(0, 1);
    const bool half = r.uniform_int(0, 1);
    INFO("seed=" << r.seed() << " N=" << n << " K=" << k << " block=" << bs << " zp=" << zp
                 << " f16=" << half);
    const nbits_source x = make_nbits(r, n, k, bs, zp, half);
    const std::int64_t nb = x.attrs.k_blocks();
    std::vector<std::uint8_t> w(static_cast<std::size_t>(n * ((k + 1) / 2)));
    std::vector<std::uint8_t> kz(zp ? static_cast<std::size_t>(n * nb) : 0);
    std::vector<std::uint8_t> b2(x.b.size(), 0xA5), zp2(x.zp.size(), 0xA5);
    if (half) {
      std::vector<f16> ks(x.s16.size()), s2(x.s16.size());
      REQUIRE(import::import_matmul_nbits(x.attrs, x.b, x.s16, x.zp, w, ks, kz).ok());
      REQUIRE(import::export_matmul_nbits(x.attrs, w, ks, kz, b2, s2, zp2).ok());
      for (std::size_t i = 0; i < ks.size(); ++i) CHECK(s2[i].bits == x.s16[i].bits);
    } else {
      std::vector<float> ks(x.s32.size()), s2(x.s32.size());
      REQUIRE(import::import_matmul_nbits(x.attrs, x.b, x.s32, x.zp, w, ks, kz).ok());
      REQUIRE(import::export_matmul_nbits(x.attrs, w, ks, kz, b2, s2, zp2).ok());
      CHECK(std::memcmp(s2.data(), x.s32.data(), s2.size() * sizeof(float)) == 0);
    }
    CHECK(b2 == x.b);
    CHECK(zp2 == x.zp);
    // keel's side holds exactly this file's element values and zero points.
    bool same = true;
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t kk = 0; kk < k; ++kk) {
        same = same && nibble(w.data() + i * ((k + 1) / 2), kk) ==
                           x.q[static_cast<std::size_t>(i * k + kk)];
      }
      if (k % 2) same = same && (w[static_cast<std::size_t>(i * ((k + 1) / 2) + k / 2)] >> 4) == 0;
    }
    CHECK(same);
    for (std::size_t i = 0; i < kz.size(); ++i) CHECK(kz[i] == x.z[i]);
  }
}

TEST_CASE("MatMulNBits through matmul_i4 equals this file's direct dequantization") {
  testing::rng r(505);
  struct shape {
    std::int64_t k, bs;
    bool zp;
  };
  for (const shape sh :
       {shape{100, 32, true}, shape{64, 64, false}, shape{300, 128, true}, shape{50, 256, true}}) {
    const std::int64_t n = 4, m = 2;
    INFO("seed=" << r.seed() << " K=" << sh.k << " block=" << sh.bs << " zp=" << sh.zp);
    const nbits_source x = make_nbits(r, n, sh.k, sh.bs, sh.zp, /*f16_scales=*/true);
    const std::int64_t nb = x.attrs.k_blocks();
    // (q - zero_point) * scale, per block, with 8 when zero points are absent.
    std::vector<double> deq(static_cast<std::size_t>(n * sh.k));
    for (std::int64_t i = 0; i < n; ++i) {
      for (std::int64_t kk = 0; kk < sh.k; ++kk) {
        const std::size_t g = static_cast<std::size_t>(i * nb + kk / sh.bs);
        const int z = sh.zp ? x.z[g] : 8;
        deq[static_cast<std::size_t>(i * sh.k + kk)] =
            (x.q[static_cast<std::size_t>(i * sh.k + kk)] - z) *
            static_cast<double>(f16_to_f32(x.s16[g]));
      }
    }
    std::vector<std::uint8_t> w(static_cast<std::size_t>(n * ((sh.k + 1) / 2)));
    std::vector<std::uint8_t> kz(sh.zp ? static_cast<std::size_t>(n * nb) : 0);
    std::vector<f16> ks(x.s16.size());
    REQUIRE(import::import_matmul_nbits(x.attrs, x.b, x.s16, x.zp, w, ks, kz).ok());

    matmul_i4_desc d;
    d.m = m;
    d.n = n;
    d.k = sh.k;
    d.b_type = dtype::u4;
    d.group_size = import::matmul_nbits_group_size(x.attrs);
    d.scale_type = dtype::f16;
    matmul_i4_args args;
    args.b = view_int4(w.data(), dtype::u4, {n, sh.k});
    args.scale = view(static_cast<const f16*>(ks.data()), {n, nb});
    if (sh.zp) args.zero_point = view(static_cast<const std::uint8_t*>(kz.data()), {n, nb});
    std::vector<float> a(static_cast<std::size_t>(m * sh.k));
    r.fill(a, -2.0f, 2.0f);
    check_matmul_against(d, args, a, deq);
  }
}

TEST_CASE("MatMulNBits bad input: a Status that names it, nothing written") {
  const import::matmul_nbits_attrs ok{2, 40, 4, 16};  // 3 blocks, blob 8, zp row 2 bytes
  const std::vector<std::uint8_t> b(48, 0x11), zp(4, 0x11);
  const std::vector<float> s(6, 1.0f);
  testing::guarded<std::uint8_t> w(40), kz(6);
  testing::guarded<float> ks(6);
  auto untouched = [&] { return w.untouched() && kz.untouched() && ks.untouched(); };
  auto imp = [&](const import::matmul_nbits_attrs& at, std::span<const std::uint8_t> bb,
                 std::span<const std::uint8_t> z, std::size_t w_n, std::size_t kz_n) {
    return import::import_matmul_nbits(at, bb, std::span<const float>(s), z, {w.data(), w_n},
                                       {ks.data(), 6}, {kz.data(), kz_n});
  };

  check_failure(imp({2, 40, 8, 16}, b, zp, 40, 6), status_code::unsupported, "import_matmul_nbits",
                "bits = 8");
  check_failure(imp({2, 40, 4, 24}, b, zp, 40, 6), status_code::invalid_argument,
                "import_matmul_nbits", "block_size = 24");
  check_failure(imp({2, 40, 4, 8}, b, zp, 40, 6), status_code::invalid_argument,
                "import_matmul_nbits", "power of two >= 16");
  check_failure(imp({0, 40, 4, 16}, b, zp, 40, 6), status_code::invalid_argument,
                "import_matmul_nbits", "N = 0");
  check_failure(imp({std::int64_t{1} << 62, 40, 4, 16}, b, zp, 40, 6), status_code::overflow,
                "import_matmul_nbits", "overflows");
  check_failure(imp(ok, {b.data(), 47}, zp, 40, 6), status_code::shape_mismatch,
                "import_matmul_nbits", "B has 47 elements (must be 48");
  check_failure(imp(ok, {static_cast<const std::uint8_t*>(nullptr), 48}, zp, 40, 6),
                status_code::invalid_argument, "import_matmul_nbits", "B is null");
  check_failure(imp(ok, b, zp, 39, 6), status_code::shape_mismatch, "import_matmul_nbits",
                "weights has 39");
  check_failure(imp(ok, b, {zp.data(), 3}, 40, 6), status_code::shape_mismatch,
                "import_matmul_nbits", "zero_points has 3");
  check_failure(imp(ok, b, zp, 40, 0), status_code::invalid_argument, "import_matmul_nbits",
                "absent on both sides");
  check_failure(imp(ok, b, {}, 40, 6), status_code::invalid_argument, "import_matmul_nbits",
                "absent on both sides");
  CHECK(untouched());

  // Export: a keel zero point that is not a u4 value.
  std::vector<std::uint8_t> kw(40, 0x11), kzb(6, 3), bout(48, 0xA5), zout(4, 0xA5);
  std::vector<float> sout(6, -1.0f);
  kzb[5] = 16;
  check_failure(
      import::export_matmul_nbits(ok, kw, std::span<const float>(s), kzb, bout, sout, zout),
      status_code::invalid_argument, "export_matmul_nbits", "keel zero point 5 = 16");
  CHECK(std::all_of(bout.begin(), bout.end(), [](std::uint8_t v) { return v == 0xA5; }));
  CHECK(std::all_of(zout.begin(), zout.end(), [](std::uint8_t v) { return v == 0xA5; }));
  CHECK(std::all_of(sout.begin(), sout.end(), [](float v) { return v == -1.0f; }));
}
