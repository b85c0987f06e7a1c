// The cpu backend's int8 matmul against keel::reference::matmul_i8, bit for bit, for every kernel
// of keel/kernels/gemm_i8/registry.hpp (and every Highway target this CPU has), plus the cpu
// backend's other routes (1x1 conv2d through the GEMM, conv2d/attention/matmul_i4 through the
// split reference) against the reference.
//
// Independence: expected values come from the reference kernel (an independent scalar
// formulation with int64 sums) or, for the extreme cases, are computed by hand in the test.
#include <doctest/doctest.h>

#include <hwy/targets.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "keel/backends/cpu.hpp"
#include "keel/keel.hpp"
#include "support/testing.hpp"

using namespace keel;
using backends::cpu_backend;
using backends::cpu_options;
namespace gk = keel::kernels::gemm_i8;

namespace {

// K values: every prime below 100, then a prime about every 40 up to ~600, plus 1 and the
// multiples of 4 around the K-group size.
const std::vector<std::int64_t> kPrimeKs = {1,   2,   3,   4,   5,   7,   8,   11,  13,  16,  17,
                                            19,  23,  29,  31,  37,  41,  43,  47,  53,  59,  61,
                                            67,  71,  73,  79,  83,  89,  97,  101, 139, 181, 223,
                                            263, 307, 347, 389, 431, 467, 509, 547, 587, 601};

// Thread settings every exactness test runs under: serial, and everything TBB offers.
const int kThreadSettings[] = {1, 0};

struct problem {
  matmul_i8_desc d;
  std::vector<std::uint8_t> a;  // raw bytes of A (u8 or s8)
  std::vector<std::uint8_t> b;  // raw bytes of B
  std::vector<float> b_scale;
  std::vector<std::int32_t> b_zp;
  std::vector<std::int32_t> bias;

  std::int64_t a_elems() const { return d.batch * d.m * d.k; }
  std::int64_t b_elems() const { return (d.b_batched ? d.batch : 1) * d.k * d.n; }
  std::int64_t out_elems() const { return d.batch * d.m * d.n; }
};

std::int32_t lo_of(dtype t) {
  return min_of(t);
}
std::int32_t hi_of(dtype t) {
  return max_of(t);
}

// Random operands over the full range of each dtype (never all zeros: testing::rng guarantees
// it), per-column or per-tensor parameters chosen at random.
problem random_problem(testing::rng& r, std::int64_t batch, std::int64_t m, std::int64_t n,
                       std::int64_t k, dtype a_type, dtype b_type, dtype out_type,
                       bool b_batched = false) {
  problem p;
  p.d.batch = batch;
  p.d.m = m;
  p.d.n = n;
  p.d.k = k;
  p.d.a_type = a_type;
  p.d.b_type = b_type;
  p.d.b_batched = b_batched;
  p.d.out.type = out_type;
  p.d.a_zero_point = static_cast<std::int32_t>(r.uniform_int(lo_of(a_type), hi_of(a_type)));
  p.d.a_scale = r.uniform_float(0.001f, 0.05f);
  p.a.resize(static_cast<std::size_t>(p.a_elems()));
  p.b.resize(static_cast<std::size_t>(p.b_elems()));
  r.fill(p.a, 0, 255);
  r.fill(p.b, 0, 255);
  const bool per_column = r.uniform_int(0, 1) == 1;
  p.b_scale.resize(per_column ? static_cast<std::size_t>(n) : 1);
  r.fill(p.b_scale, 0.001f, 0.05f);
  const int zp_kind = static_cast<int>(r.uniform_int(0, 2));  // none, one, per column
  p.b_zp.resize(zp_kind == 0 ? 0 : zp_kind == 1 ? 1 : static_cast<std::size_t>(n));
  for (auto& z : p.b_zp) z = static_cast<std::int32_t>(r.uniform_int(lo_of(b_type), hi_of(b_type)));
  if (r.uniform_int(0, 1) == 1) {
    p.bias.resize(static_cast<std::size_t>(n));
    r.fill(p.bias, -100000, 100000);
  }
  if (out_type == dtype::s8 || out_type == dtype::u8) {
    p.d.out.mode = r.uniform_int(0, 1) ? requant_mode::fixed_point : requant_mode::float_scale;
    p.d.out.scale = r.uniform_float(0.05f, 2.0f);
    p.d.out.zero_point = static_cast<std::int32_t>(r.uniform_int(lo_of(out_type), hi_of(out_type)));
    if (r.uniform_int(0, 2) == 0) {  // a fused activation range now and then
      p.d.out.clamp_min =
          static_cast<std::int32_t>(r.uniform_int(lo_of(out_type), p.d.out.zero_point));
      p.d.out.clamp_max =
          static_cast<std::int32_t>(r.uniform_int(p.d.out.zero_point, hi_of(out_type)));
    }
  }
  return p;
}

// Views of a problem's operands; A and B may be placed at an odd address (8-bit data may sit
// anywhere).
struct bound_args {
  testing::misaligned_copy<std::uint8_t> a_store;
  testing::misaligned_copy<std::uint8_t> b_store;
  matmul_i8_args args;

  bound_args(const problem& p, std::size_t a_offset, std::size_t b_offset)
      : a_store(p.a, a_offset), b_store(p.b, b_offset) {
    const matmul_i8_desc& d = p.d;
    if (d.batch == 1) {
      args.a = const_tensor_view(a_store.data(), d.a_type, {d.m, d.k});
    } else {
      args.a = const_tensor_view(a_store.data(), d.a_type, {d.batch, d.m, d.k});
    }
    if (d.b_batched) {
      args.b = const_tensor_view(b_store.data(), d.b_type, {d.batch, d.k, d.n});
    } else {
      args.b = const_tensor_view(b_store.data(), d.b_type, {d.k, d.n});
    }
    args.b_scale = p.b_scale;
    args.b_zero_point = p.b_zp;
    args.bias = p.bias;
  }
};

std::size_t out_bytes(dtype t) {
  return t == dtype::s8 || t == dtype::u8 ? 1 : 4;
}

tensor_view out_view(void* data, const matmul_i8_desc& d) {
  if (d.batch == 1) return tensor_view(data, d.out.type, {d.m, d.n});
  return tensor_view(data, d.out.type, {d.batch, d.m, d.n});
}

// The reference's output bytes for a problem.
std::vector<std::uint8_t> reference_bytes(const problem& p) {
  bound_args ba(p, 0, 0);
  std::vector<std::uint8_t> out(static_cast<std::size_t>(p.out_elems()) * out_bytes(p.d.out.type) +
                                4);
  // 4-byte alignment for s32/f32: a vector<uint32_t> would do; a fresh vector's data is aligned.
  ba.args.out = out_view(out.data(), p.d);
  const Status s = reference::matmul_i8(p.d, ba.args);
  REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
  out.resize(out.size() - 4);
  return out;
}

std::string shape_text(const matmul_i8_desc& d) {
  return "batch=" + std::to_string(d.batch) + " M=" + std::to_string(d.m) +
         " N=" + std::to_string(d.n) + " K=" + std::to_string(d.k) +
         " A=" + std::string(to_string(d.a_type)) + " B=" + std::string(to_string(d.b_type)) +
         " out=" + std::string(to_string(d.out.type)) +
         (d.out.type == dtype::s8 || d.out.type == dtype::u8
              ? std::string(" ") + to_string(d.out.mode)
              : std::string()) +
         (d.b_batched ? " b_batched" : "") + " za=" + std::to_string(d.a_zero_point);
}

// Runs the cpu backend with kernel `kernel` and `threads`, packing once, into a guarded buffer
// whose payload starts `out_offset` bytes into it; checks bits, guards, and returns the status.
Status run_and_compare(const problem& p, const std::vector<std::uint8_t>& expected, int kernel,
                       int threads, std::size_t a_off = 0, std::size_t b_off = 0,
                       std::size_t out_off = 0) {
  cpu_backend cpu(cpu_options{threads, kernel});
  bound_args ba(p, a_off, b_off);
  Result<cpu_backend::packed_matmul_i8> packed = cpu.pack(p.d, ba.args);
  REQUIRE_MESSAGE(packed.ok(), std::string(packed.status().message()));
  const std::size_t n_bytes = static_cast<std::size_t>(p.out_elems()) * out_bytes(p.d.out.type);
  testing::guarded<std::uint8_t> out(n_bytes + 8);
  ba.args.out = out_view(out.data() + out_off, p.d);
  const Status s = cpu.run(p.d, packed.value(), ba.args);
  CHECK(out.guards_intact());
  if (s.ok()) {
    const bool same = std::memcmp(out.data() + out_off, expected.data(), n_bytes) == 0;
    if (!same) {
      // Name the first differing element to make a failure readable.
      for (std::size_t i = 0; i < n_bytes; ++i) {
        if (out.data()[out_off + i] != expected[i]) {
          MESSAGE("first differing byte " << i << " of " << n_bytes << " (element "
                                          << i / out_bytes(p.d.out.type) << ")");
          break;
        }
      }
    }
    CHECK(same);
    // Nothing past the payload inside the buffer was written either.
    for (std::size_t i = 0; i < out_off; ++i) CHECK(out.data()[i] == 0xA5);
    for (std::size_t i = out_off + n_bytes; i < n_bytes + 8; ++i) CHECK(out.data()[i] == 0xA5);
  } else {
    CHECK(out.untouched());
  }
  return s;
}

// Whether a kernel should be able to run a problem (its ISA, gemv rows, ubs range check).
bool expect_runs(const gk::kernel& k, const problem& p) {
  if (!gk::available(k.v)) return false;
  if (k.v.op == gk::kernel_op::gemv && p.d.m > k.v.mr) return false;
  if (k.v.tech == gk::technique::ubs) {
    // The range check, recomputed here from the definition: every vpmaddubsw pair sum of
    // A' (0..255) x B' (-128..127) within int16.
    std::int32_t a_max = 0;
    for (std::uint8_t v : p.a) {
      a_max = std::max<std::int32_t>(a_max, p.d.a_type == dtype::s8 ? (v ^ 0x80) : v);
    }
    const std::int64_t mats = p.d.b_batched ? p.d.batch : 1;
    for (std::int64_t bm = 0; bm < mats; ++bm) {
      for (std::int64_t n = 0; n < p.d.n; ++n) {
        for (std::int64_t k0 = 0; k0 < p.d.k; k0 += 2) {
          const auto bv = [&](std::int64_t kk) -> std::int32_t {
            if (kk >= p.d.k) return 0;
            const std::uint8_t raw = p.b[static_cast<std::size_t>((bm * p.d.k + kk) * p.d.n + n)];
            return p.d.b_type == dtype::u8 ? raw - 128 : static_cast<std::int8_t>(raw);
          };
          const std::int32_t b0 = bv(k0), b1 = bv(k0 + 1);
          const std::int32_t hi = a_max * (std::max(b0, 0) + std::max(b1, 0));
          const std::int32_t lo = a_max * (std::min(b0, 0) + std::min(b1, 0));
          if (hi > 32767 || lo < -32768) return false;
        }
      }
    }
  }
  return true;
}

// Every registered kernel (that this CPU runs), every thread setting: same bits as the reference,
// or, when the kernel cannot run the problem, `unsupported` and nothing written.
void check_all_kernels(const problem& p, std::size_t a_off = 0, std::size_t b_off = 0,
                       std::size_t out_off = 0) {
  const std::vector<std::uint8_t> expected = reference_bytes(p);
  for (int i = 0; i < gk::kRegistrySize; ++i) {
    const gk::kernel& k = gk::kRegistry[i];
    if (!gk::available(k.v)) continue;  // reported once by the registry test case
    const bool runs = expect_runs(k, p);
    for (int threads : kThreadSettings) {
      INFO("kernel " << std::string(k.name.view()) << ", threads " << threads);
      const Status s = run_and_compare(p, expected, i, threads, a_off, b_off, out_off);
      if (runs) {
        CHECK_MESSAGE(s.ok(), std::string(s.message()));
      } else {
        CHECK(s.code() == status_code::unsupported);
      }
    }
  }
  // And the backend's own choice.
  for (int threads : kThreadSettings) {
    INFO("kernel chosen by the backend, threads " << threads);
    const Status s = run_and_compare(p, expected, -1, threads, a_off, b_off, out_off);
    CHECK_MESSAGE(s.ok(), std::string(s.message()));
  }
}

// B restricted so that every kernel, ubs included, is exact: |B'| <= 64 makes every pair sum at
// most 255 * 128 = 32640.
void restrict_b_for_ubs(problem& p) {
  for (auto& v : p.b) {
    const int s = p.d.b_type == dtype::u8 ? v - 128 : static_cast<std::int8_t>(v);
    const int clamped = std::clamp(s, -64, 64);
    v = static_cast<std::uint8_t>(p.d.b_type == dtype::u8 ? clamped + 128 : clamped);
  }
}

const dtype kTypes8[] = {dtype::u8, dtype::s8};

}  // namespace

TEST_CASE("cpu matmul_i8: the registry names follow the grammar and this CPU's kernels are known") {
  for (int i = 0; i < gk::kRegistrySize; ++i) {
    const gk::kernel& k = gk::kRegistry[i];
    INFO("kernel " << std::string(k.name.view()));
    CHECK(gk::make_name(k.v).view() == k.name.view());
    CHECK(gk::find_kernel(k.name.view()) == i);
    if (!gk::available(k.v)) {
      MESSAGE("skipping " << std::string(k.name.view()) << ": this CPU lacks "
                          << std::string(to_string(k.v.target)));
    } else {
      MESSAGE("running " << std::string(k.name.view()));  // scripts/test-arm.sh reads these
    }
  }
  CHECK(gk::find_kernel("gemm_u8s8_s32_p8k4_4x8_scalar_i32") >= 0);
  CHECK(gk::find_kernel("no_such_kernel") == -1);
}

TEST_CASE("cpu matmul_i8: every kernel equals the reference with K stepped through primes") {
  testing::rng r(101);
  INFO("seed " << r.seed());
  for (std::int64_t k : kPrimeKs) {
    for (dtype at : kTypes8) {
      for (dtype bt : kTypes8) {
        // M and N around the tiles: 1..13 rows (tiles of 4 and 6), 1..41 columns (panels of 8).
        const std::int64_t m = r.uniform_int(1, 13);
        const std::int64_t n = r.uniform_int(1, 41);
        problem p = random_problem(r, 1, m, n, k, at, bt, dtype::s32);
        INFO(shape_text(p.d));
        check_all_kernels(p);
        // Again with B inside the ubs range, so that the ubs kernels run too.
        restrict_b_for_ubs(p);
        check_all_kernels(p);
      }
    }
  }
}

TEST_CASE("cpu matmul_i8: M and N remainders of every tile") {
  testing::rng r(102);
  INFO("seed " << r.seed());
  const std::int64_t ms[] = {1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 25};
  const std::int64_t ns[] = {1, 7, 8, 9, 16, 23, 24, 25, 47, 129};
  for (std::int64_t m : ms) {
    for (std::int64_t n : ns) {
      problem p =
          random_problem(r, 1, m, n, r.uniform_int(1, 70), dtype::u8, dtype::s8, dtype::s32);
      if (r.uniform_int(0, 1)) restrict_b_for_ubs(p);
      INFO(shape_text(p.d));
      check_all_kernels(p);
    }
  }
}

TEST_CASE("cpu matmul_i8: every output mode, with bias, clamps and zero points") {
  testing::rng r(103);
  INFO("seed " << r.seed());
  const dtype outs[] = {dtype::s32, dtype::f32, dtype::s8, dtype::u8};
  for (dtype ot : outs) {
    for (dtype at : kTypes8) {
      for (dtype bt : kTypes8) {
        for (int rep = 0; rep < 3; ++rep) {
          problem p = random_problem(r, 1, r.uniform_int(1, 20), r.uniform_int(1, 40),
                                     r.uniform_int(1, 300), at, bt, ot);
          if (ot == dtype::s8 || ot == dtype::u8)
            p.d.out.mode = rep == 0 ? requant_mode::fixed_point : requant_mode::float_scale;
          if (rep == 2 && !p.b_scale.empty()) p.b_scale[0] = 0.0f;  // an all-zero channel scale
          INFO(shape_text(p.d) << " rep " << rep);
          check_all_kernels(p);
        }
      }
    }
  }
}

TEST_CASE("cpu matmul_i8: batched A and B") {
  testing::rng r(104);
  INFO("seed " << r.seed());
  for (bool b_batched : {false, true}) {
    for (dtype ot : {dtype::s32, dtype::u8}) {
      problem p = random_problem(r, r.uniform_int(2, 5), r.uniform_int(1, 9), r.uniform_int(1, 30),
                                 r.uniform_int(1, 100), dtype::s8, dtype::u8, ot, b_batched);
      INFO(shape_text(p.d));
      check_all_kernels(p);
    }
  }
  // batch = 0: nothing to do, nothing written.
  problem p = random_problem(r, 1, 3, 5, 7, dtype::u8, dtype::s8, dtype::s32);
  p.d.batch = 0;
  bound_args ba(p, 0, 0);
  ba.args.a = const_tensor_view(ba.a_store.data(), dtype::u8, {0, 3, 7});
  testing::guarded<std::int32_t> out(15);
  ba.args.out = tensor_view(out.data(), dtype::s32, {0, 3, 5});
  cpu_backend cpu;
  CHECK(cpu.run(p.d, ba.args).ok());
  CHECK(out.untouched());
}

TEST_CASE("cpu matmul_i8: misaligned A, B and 8-bit outputs") {
  testing::rng r(105);
  INFO("seed " << r.seed());
  for (std::size_t off : {1u, 3u, 7u}) {
    problem p = random_problem(r, 1, r.uniform_int(1, 15), r.uniform_int(1, 35),
                               r.uniform_int(1, 200), dtype::u8, dtype::s8, dtype::s8);
    INFO(shape_text(p.d) << " offset " << off);
    check_all_kernels(p, off, off + 2, off);
  }
  // s32 output at an odd address: rejected, nothing written.
  problem p = random_problem(r, 1, 4, 9, 17, dtype::u8, dtype::s8, dtype::s32);
  bound_args ba(p, 0, 0);
  testing::guarded<std::uint8_t> out(4 * 36 + 8);
  ba.args.out = tensor_view(out.data() + 1, dtype::s32, {4, 9});
  const Status s = cpu_backend().run(p.d, ba.args);
  CHECK(s.code() == status_code::invalid_argument);
  CHECK(out.untouched());
}

TEST_CASE("cpu matmul_i8: strided and transposed views") {
  testing::rng r(106);
  INFO("seed " << r.seed());
  const std::int64_t m = 7, n = 19, k = 37;
  problem p = random_problem(r, 1, m, n, k, dtype::u8, dtype::u8, dtype::s32);
  const std::vector<std::uint8_t> expected = reference_bytes(p);
  // A with a row pitch of k + 5, B stored transposed ([N, K] memory read as [K, N]), out with a
  // row pitch of n + 3: the same math, other strides.
  std::vector<std::uint8_t> a2(static_cast<std::size_t>(m * (k + 5)), 0);
  std::vector<std::uint8_t> bt(static_cast<std::size_t>(n * k), 0);
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < k; ++j) a2[i * (k + 5) + j] = p.a[i * k + j];
  }
  for (std::int64_t j = 0; j < k; ++j) {
    for (std::int64_t c = 0; c < n; ++c) bt[c * k + j] = p.b[j * n + c];
  }
  matmul_i8_args args;
  args.a = const_tensor_view(a2.data(), dtype::u8, {m, k});
  args.a.strides = {k + 5, 1, 0, 0};
  args.b = const_tensor_view(bt.data(), dtype::u8, {k, n});
  args.b.strides = {1, k, 0, 0};
  args.b_scale = p.b_scale;
  args.b_zero_point = p.b_zp;
  args.bias = p.bias;
  for (int threads : kThreadSettings) {
    testing::guarded<std::int32_t> out(static_cast<std::size_t>(m * (n + 3)));
    args.out = tensor_view(out.data(), dtype::s32, {m, n});
    args.out.strides = {n + 3, 1, 0, 0};
    const Status s = cpu_backend(cpu_options{threads, -1}).run(p.d, args);
    REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
    CHECK(out.guards_intact());
    for (std::int64_t i = 0; i < m; ++i) {
      CHECK(std::memcmp(&out[static_cast<std::size_t>(i * (n + 3))], expected.data() + 4 * i * n,
                        static_cast<std::size_t>(4 * n)) == 0);
      for (std::int64_t c = n; c < n + 3; ++c) {  // the gaps between rows stay untouched
        std::uint32_t word;
        std::memcpy(&word, &out[static_cast<std::size_t>(i * (n + 3) + c)], 4);
        CHECK(word == 0xA5A5A5A5u);
      }
    }
  }
}

TEST_CASE("cpu matmul_i8: full-range extremes, by hand, up to the documented K limit") {
  // A = 255 (u8) against B = -128 (s8), zero points 0: every product is -32640 and the sum over
  // the largest K validation allows, 65793, is -2147483520 (just inside int32). Computed here by
  // hand, not by the reference. This is where a vpmaddubsw path without the range check would
  // saturate: 255 * -128 * 2 = -65280 < -32768.
  const std::int64_t k_limit = max_exact_k(255, 128);
  REQUIRE(k_limit == 65793);
  for (std::int64_t k : {k_limit, std::int64_t{40009}, std::int64_t{4099}}) {
    matmul_i8_desc d;
    d.m = 3;
    d.n = 10;
    d.k = k;
    std::vector<std::uint8_t> a(static_cast<std::size_t>(d.m * k), 255);
    std::vector<std::int8_t> b(static_cast<std::size_t>(k * d.n), -128);
    matmul_i8_args args;
    args.a = view(a.data(), {d.m, k});
    args.b = view(b.data(), {k, d.n});
    const std::int64_t expected = -32640 * k;
    REQUIRE(expected >= INT32_MIN);
    for (int i = 0; i < gk::kRegistrySize; ++i) {
      if (!gk::available(gk::kRegistry[i].v)) continue;
      for (int threads : kThreadSettings) {
        INFO("kernel " << std::string(gk::kRegistry[i].name.view()) << " K=" << k << " threads "
                       << threads);
        testing::guarded<std::int32_t> out(static_cast<std::size_t>(d.m * d.n));
        args.out = view(out.data(), {d.m, d.n});
        const Status s = cpu_backend(cpu_options{threads, i}).run(d, args);
        if (gk::kRegistry[i].v.tech == gk::technique::ubs ||
            (gk::kRegistry[i].v.op == gk::kernel_op::gemv && d.m > gk::kRegistry[i].v.mr)) {
          CHECK(s.code() == status_code::unsupported);  // the range check refuses, no write
          CHECK(out.untouched());
          continue;
        }
        REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
        CHECK(out.guards_intact());
        for (std::size_t j = 0; j < out.size(); ++j) CHECK(out[j] == expected);
      }
    }
  }

  // Zero points at the ends of their ranges: s8 A = -128 with za = 127 and u8 B = 255 with
  // zb = 0 give (−255) * 255 per product; u8 A = 0 with za = 255 against s8 B = 127 with
  // zb = -128 give (−255) * 255 as well. The limit is then 33025.
  const std::int64_t k_zp = max_exact_k(255, 255);
  REQUIRE(k_zp == 33025);
  struct ends {
    dtype at, bt;
    std::uint8_t a_raw, b_raw;
    std::int32_t za, zb;
  };
  const ends cases[] = {{dtype::s8, dtype::u8, 0x80, 255, 127, 0},
                        {dtype::u8, dtype::s8, 0, 127, 255, -128},
                        {dtype::s8, dtype::s8, 0x80, 127, 127, -128},
                        {dtype::u8, dtype::u8, 255, 0, 0, 255}};
  for (const ends& c : cases) {
    matmul_i8_desc d;
    d.m = 5;
    d.n = 9;
    d.k = k_zp;
    d.a_type = c.at;
    d.b_type = c.bt;
    d.a_zero_point = c.za;
    std::vector<std::uint8_t> a(static_cast<std::size_t>(d.m * d.k), c.a_raw);
    std::vector<std::uint8_t> b(static_cast<std::size_t>(d.k * d.n), c.b_raw);
    const std::int32_t zb[1] = {c.zb};
    matmul_i8_args args;
    args.a = const_tensor_view(a.data(), c.at, {d.m, d.k});
    args.b = const_tensor_view(b.data(), c.bt, {d.k, d.n});
    args.b_zero_point = zb;
    const std::int64_t av = c.at == dtype::s8 ? static_cast<std::int8_t>(c.a_raw) : c.a_raw;
    const std::int64_t bv = c.bt == dtype::s8 ? static_cast<std::int8_t>(c.b_raw) : c.b_raw;
    const std::int64_t expected = (av - c.za) * (bv - c.zb) * d.k;
    REQUIRE(expected >= INT32_MIN);
    REQUIRE(expected <= INT32_MAX);
    for (int threads : kThreadSettings) {
      INFO("A=" << std::string(to_string(c.at)) << " B=" << std::string(to_string(c.bt))
                << " threads " << threads);
      testing::guarded<std::int32_t> out(static_cast<std::size_t>(d.m * d.n));
      args.out = view(out.data(), {d.m, d.n});
      const Status s = cpu_backend(cpu_options{threads, -1}).run(d, args);
      REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
      for (std::size_t j = 0; j < out.size(); ++j) CHECK(out[j] == expected);
      // One more K overflows: rejected, nothing written.
      matmul_i8_desc d2 = d;
      d2.k = k_zp + 1;
      std::vector<std::uint8_t> a2(static_cast<std::size_t>(d2.m * d2.k), c.a_raw);
      std::vector<std::uint8_t> b2(static_cast<std::size_t>(d2.k * d2.n), c.b_raw);
      matmul_i8_args args2 = args;
      args2.a = const_tensor_view(a2.data(), c.at, {d2.m, d2.k});
      args2.b = const_tensor_view(b2.data(), c.bt, {d2.k, d2.n});
      testing::guarded<std::int32_t> out2(static_cast<std::size_t>(d.m * d.n));
      args2.out = view(out2.data(), {d2.m, d2.n});
      CHECK(cpu_backend(cpu_options{threads, -1}).run(d2, args2).code() == status_code::overflow);
      CHECK(out2.untouched());
    }
  }
}

TEST_CASE("cpu matmul_i8: the bias saturates at the int32 limits, by hand") {
  // Columns: sum + bias above INT32_MAX, below INT32_MIN, and just inside each limit.
  const std::int64_t m = 2, n = 4, k = 1000;
  std::vector<std::uint8_t> a(static_cast<std::size_t>(m * k), 255);
  std::vector<std::int8_t> b(static_cast<std::size_t>(k * n));
  for (std::int64_t j = 0; j < k; ++j) {
    b[static_cast<std::size_t>(j * n + 0)] = 127;   // sum = 255 * 127 * 1000 = 32385000
    b[static_cast<std::size_t>(j * n + 1)] = -128;  // sum = -32640000
    b[static_cast<std::size_t>(j * n + 2)] = 127;
    b[static_cast<std::size_t>(j * n + 3)] = -128;
  }
  const std::int32_t bias[4] = {INT32_MAX - 1000, INT32_MIN + 5, INT32_MAX - 32385000,
                                INT32_MIN + 32640000};
  const std::int32_t expected[4] = {INT32_MAX, INT32_MIN, INT32_MAX, INT32_MIN};
  matmul_i8_desc d;
  d.m = m;
  d.n = n;
  d.k = k;
  matmul_i8_args args;
  args.a = view(a.data(), {m, k});
  args.b = view(b.data(), {k, n});
  args.bias = bias;
  for (int i = 0; i < gk::kRegistrySize; ++i) {
    const gk::kernel& kern = gk::kRegistry[i];
    if (!gk::available(kern.v) || kern.v.tech == gk::technique::ubs) continue;
    for (int threads : kThreadSettings) {
      INFO("kernel " << std::string(kern.name.view()) << " threads " << threads);
      testing::guarded<std::int32_t> out(static_cast<std::size_t>(m * n));
      args.out = view(out.data(), {m, n});
      const Status s = cpu_backend(cpu_options{threads, i}).run(d, args);
      REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
      for (std::int64_t r = 0; r < m; ++r) {
        for (std::int64_t c = 0; c < n; ++c) {
          CHECK(out[static_cast<std::size_t>(r * n + c)] == expected[c]);
        }
      }
      CHECK(out.guards_intact());
    }
  }
}

TEST_CASE("cpu matmul_i8: large K and several cache blocks, against the reference") {
  testing::rng r(107);
  INFO("seed " << r.seed());
  // K = 8191 makes an A panel of 6 rows 96 KiB, so M = 130 spans several m-blocks.
  problem p = random_problem(r, 1, 130, 45, 8191, dtype::u8, dtype::s8, dtype::s32);
  p.b_zp.clear();  // zero points 0: K = 8191 is far inside the limit either way
  INFO(shape_text(p.d));
  check_all_kernels(p);
  problem q = random_problem(r, 1, 3, 300, 30011, dtype::s8, dtype::s8, dtype::f32);
  q.b_zp.clear();
  INFO(shape_text(q.d));
  check_all_kernels(q);
}

TEST_CASE("cpu matmul_i8: pack once, run many") {
  testing::rng r(108);
  INFO("seed " << r.seed());
  problem p = random_problem(r, 1, 9, 33, 95, dtype::u8, dtype::s8, dtype::s32);
  p.b_scale.assign(static_cast<std::size_t>(p.d.n), 0.0f);
  r.fill(p.b_scale, 0.001f, 0.05f);
  bound_args ba(p, 0, 0);
  for (int threads : kThreadSettings) {
    cpu_backend cpu(cpu_options{threads, -1});
    Result<cpu_backend::packed_matmul_i8> packed = cpu.pack(p.d, ba.args);
    REQUIRE(packed.ok());
    CHECK(packed->bytes() >= p.d.k * p.d.n);
    for (int round = 0; round < 4; ++round) {
      // A new A each round, and other output stages: the packed B serves them all.
      problem q = p;
      r.fill(q.a, 0, 255);
      const dtype outs[] = {dtype::s32, dtype::f32, dtype::u8, dtype::s8};
      q.d.out.type = outs[round];
      q.d.a_scale = r.uniform_float(0.001f, 0.05f);  // differs from the packed desc's
      q.d.out.scale = r.uniform_float(0.05f, 2.0f);
      q.d.out.zero_point = q.d.out.type == dtype::u8 ? 128 : 0;
      const std::vector<std::uint8_t> expected = reference_bytes(q);
      bound_args qa(q, 0, 0);
      const std::size_t n_bytes = static_cast<std::size_t>(q.out_elems()) * out_bytes(q.d.out.type);
      testing::guarded<std::uint8_t> out(n_bytes);
      qa.args.out = out_view(out.data(), q.d);
      qa.args.b = const_tensor_view();  // ignored: the packed weights are used
      INFO("round " << round << " " << shape_text(q.d));
      const Status s = cpu.run(q.d, packed.value(), qa.args);
      REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
      CHECK(std::memcmp(out.data(), expected.data(), n_bytes) == 0);
      CHECK(out.guards_intact());
    }
  }
}

TEST_CASE("cpu matmul_i8: a run with other per-column arrays than the packed ones is refused") {
  testing::rng r(110);
  INFO("seed " << r.seed());
  problem p = random_problem(r, 1, 7, 10, 40, dtype::u8, dtype::u8, dtype::f32);
  p.b_scale.assign(static_cast<std::size_t>(p.d.n), 0.0f);
  r.fill(p.b_scale, 0.001f, 0.05f);
  p.b_zp.assign(static_cast<std::size_t>(p.d.n), 0);
  r.fill(p.b_zp, 0, 255);
  p.bias.assign(static_cast<std::size_t>(p.d.n), 0);
  r.fill(p.bias, -1000, 1000);
  bound_args ba(p, 0, 0);
  cpu_backend cpu;
  Result<cpu_backend::packed_matmul_i8> packed = cpu.pack(p.d, ba.args);
  REQUIRE(packed.ok());
  const std::size_t n_bytes = static_cast<std::size_t>(p.out_elems()) * out_bytes(p.d.out.type);
  const auto run = [&](const matmul_i8_args& args) {
    testing::guarded<std::uint8_t> out(n_bytes);
    matmul_i8_args with_out = args;
    with_out.out = out_view(out.data(), p.d);
    const Status s = cpu.run(p.d, packed.value(), with_out);
    CHECK(out.guards_intact());
    return std::make_pair(s, out.untouched());
  };
  // The same arrays, or none: accepted.
  CHECK(run(ba.args).first.ok());
  matmul_i8_args none = ba.args;
  none.b_scale = {};
  none.b_zero_point = {};
  none.bias = {};
  CHECK(run(none).first.ok());
  // One value changed in each: refused by name, nothing written.
  std::vector<std::int32_t> bias2 = p.bias, zp2 = p.b_zp;
  std::vector<float> scale2 = p.b_scale;
  bias2[3] += 1;
  zp2[5] = (zp2[5] + 1) % 256;
  scale2[0] *= 2.0f;
  for (int which = 0; which < 3; ++which) {
    matmul_i8_args other = ba.args;
    if (which == 0) other.bias = bias2;
    if (which == 1) other.b_zero_point = zp2;
    if (which == 2) other.b_scale = scale2;
    const auto [s, untouched] = run(other);
    INFO("changed array " << which << ": " << std::string(s.message()));
    CHECK(s.code() == status_code::invalid_argument);
    CHECK(std::string(s.message()).find("differs from the one the weights were packed with") !=
          std::string::npos);
    CHECK(untouched);
  }
}

TEST_CASE("cpu matmul_i8: bad input to pack and run returns a Status and writes nothing") {
  testing::rng r(109);
  INFO("seed " << r.seed());
  problem p = random_problem(r, 1, 4, 12, 20, dtype::u8, dtype::s8, dtype::u8);
  p.b_scale.assign(1, 0.01f);
  p.b_zp.clear();
  cpu_backend cpu;
  bound_args good(p, 0, 0);
  testing::guarded<std::uint8_t> out(48);
  good.args.out = tensor_view(out.data(), dtype::u8, {4, 12});

  SUBCASE("pack: B of the wrong shape") {
    matmul_i8_args a = good.args;
    a.b = const_tensor_view(good.b_store.data(), dtype::s8, {20, 11});
    const auto s = cpu.pack(p.d, a);
    CHECK(s.status().code() == status_code::shape_mismatch);
  }
  SUBCASE("pack: B of the wrong dtype") {
    matmul_i8_args a = good.args;
    a.b.type = dtype::u8;
    CHECK(cpu.pack(p.d, a).status().code() == status_code::invalid_argument);
  }
  SUBCASE("pack: null B") {
    matmul_i8_args a = good.args;
    a.b.data = nullptr;
    CHECK(cpu.pack(p.d, a).status().code() == status_code::invalid_argument);
  }
  SUBCASE("pack: a NaN or negative weight scale") {
    for (float bad : {std::numeric_limits<float>::quiet_NaN(), -1.0f}) {
      const float scales[1] = {bad};
      matmul_i8_args a = good.args;
      a.b_scale = scales;
      CHECK(cpu.pack(p.d, a).status().code() == status_code::invalid_argument);
    }
  }
  SUBCASE("pack: a weight zero point out of range, a bias of the wrong length") {
    const std::int32_t zp[1] = {128};
    matmul_i8_args a = good.args;
    a.b_zero_point = zp;
    CHECK(cpu.pack(p.d, a).status().code() == status_code::invalid_argument);
    const std::int32_t bias[3] = {1, 2, 3};
    matmul_i8_args c = good.args;
    c.bias = bias;
    CHECK(cpu.pack(p.d, c).status().code() == status_code::shape_mismatch);
  }
  SUBCASE("pack: a bad desc (K = 0, an s32 A)") {
    matmul_i8_desc d = p.d;
    d.k = 0;
    CHECK(cpu.pack(d, good.args).status().code() == status_code::invalid_argument);
    d = p.d;
    d.a_type = dtype::s32;
    CHECK(cpu.pack(d, good.args).status().code() == status_code::unsupported);
  }
  SUBCASE("run: packed for another N") {
    auto packed = cpu.pack(p.d, good.args);
    REQUIRE(packed.ok());
    matmul_i8_desc d = p.d;
    d.n = 11;
    matmul_i8_args a = good.args;
    a.out = tensor_view(out.data(), dtype::u8, {4, 11});
    CHECK(cpu.run(d, packed.value(), a).code() == status_code::shape_mismatch);
  }
  SUBCASE("run: A of the wrong shape, out of the wrong dtype") {
    auto packed = cpu.pack(p.d, good.args);
    REQUIRE(packed.ok());
    matmul_i8_args a = good.args;
    a.a = const_tensor_view(good.a_store.data(), dtype::u8, {4, 19});
    CHECK(cpu.run(p.d, packed.value(), a).code() == status_code::shape_mismatch);
    matmul_i8_args c = good.args;
    c.out.type = dtype::s8;
    CHECK(cpu.run(p.d, packed.value(), c).code() == status_code::invalid_argument);
  }
  SUBCASE("run: an output that overlaps A, or broadcasts") {
    auto packed = cpu.pack(p.d, good.args);
    REQUIRE(packed.ok());
    // A (4 x 20 u8) and a u8 output over its bytes 8 .. 55.
    std::vector<std::uint8_t> shared(80);
    for (std::size_t i = 0; i < shared.size(); ++i) shared[i] = static_cast<std::uint8_t>(i * 37);
    const std::vector<std::uint8_t> before = shared;
    matmul_i8_args a = good.args;
    a.a = const_tensor_view(shared.data(), dtype::u8, {4, 20});
    a.out = tensor_view(shared.data() + 8, dtype::u8, {4, 12});
    const Status s = cpu.run(p.d, packed.value(), a);
    INFO(std::string(s.message()));
    CHECK(s.code() == status_code::invalid_argument);
    CHECK(std::string(s.message()).find("overlaps A") != std::string::npos);
    CHECK(shared == before);
    matmul_i8_args c = good.args;
    c.out.strides = {0, 1, 0, 0};
    CHECK(cpu.run(p.d, packed.value(), c).code() == status_code::invalid_argument);
    CHECK(out.untouched());
  }
  SUBCASE("run: an f32 output from weights packed without scales") {
    matmul_i8_desc d = p.d;
    d.out.type = dtype::s32;
    matmul_i8_args a = good.args;
    a.b_scale = {};
    auto packed = cpu.pack(d, a);
    REQUIRE(packed.ok());
    d.out.type = dtype::f32;
    testing::guarded<float> fout(48);
    a.out = view(fout.data(), {4, 12});
    CHECK(cpu.run(d, packed.value(), a).code() == status_code::invalid_argument);
    CHECK(fout.untouched());
  }
  SUBCASE("run: an empty (moved-from) packed object") {
    auto packed = cpu.pack(p.d, good.args);
    REQUIRE(packed.ok());
    cpu_backend::packed_matmul_i8 moved = std::move(packed).value();
    CHECK(cpu.run(p.d, packed.value(), good.args).code() == status_code::invalid_argument);
    CHECK(cpu.run(p.d, moved, good.args).ok());
    out = testing::guarded<std::uint8_t>(48);  // fresh sentinels for the check below
    good.args.out = tensor_view(out.data(), dtype::u8, {4, 12});
  }
  SUBCASE("run: a forced kernel index out of range") {
    cpu_backend forced(cpu_options{0, gk::kRegistrySize});
    CHECK(forced.run(p.d, good.args).code() == status_code::invalid_argument);
    cpu_backend negative(cpu_options{0, -2});  // only -1 means "choose"
    CHECK(negative.run(p.d, good.args).code() == status_code::invalid_argument);
  }
  SUBCASE("run: a forced ubs kernel on full-range data") {
    for (int i = 0; i < gk::kRegistrySize; ++i) {
      if (gk::kRegistry[i].v.tech != gk::technique::ubs || !gk::available(gk::kRegistry[i].v)) {
        continue;
      }
      problem q = p;
      std::fill(q.a.begin(), q.a.end(), 255);
      std::fill(q.b.begin(), q.b.end(), 127);  // 255*127*2 = 64770 would saturate
      bound_args qa(q, 0, 0);
      qa.args.out = good.args.out;
      const Status s = cpu_backend(cpu_options{0, i}).run(q.d, qa.args);
      CHECK(s.code() == status_code::unsupported);
      MESSAGE(std::string(s.message()));
    }
  }
  CHECK(out.untouched());
}

TEST_CASE("cpu matmul_i8: the Highway kernels on every Highway target of this CPU") {
#if defined(HWY_COMPILE_ONLY_STATIC)
  // The aarch64 cross build compiles Highway for its static target only, with no libhwy to switch
  // targets (cross/pkgconfig/libhwy.pc); that one target runs in every other test case.
  MESSAGE("skipping the Highway target sweep: one target compiled (HWY_COMPILE_ONLY_STATIC)");
#else
  testing::rng r(110);
  INFO("seed " << r.seed());
  std::vector<problem> problems;
  for (std::int64_t k : {1, 3, 17, 64, 131, 509}) {
    problems.push_back(random_problem(r, 1, r.uniform_int(1, 9), r.uniform_int(1, 30), k, dtype::s8,
                                      dtype::u8, dtype::s32));
  }
  std::vector<std::vector<std::uint8_t>> expected;
  for (const problem& p : problems) expected.push_back(reference_bytes(p));
  for (std::int64_t target : hwy::SupportedAndGeneratedTargets()) {
    hwy::SetSupportedTargetsForTest(target);
    hwy::GetChosenTarget().Update(hwy::SupportedTargets());
    for (int i = 0; i < gk::kRegistrySize; ++i) {
      if (gk::kRegistry[i].v.target != gk::isa::hwy) continue;
      for (std::size_t j = 0; j < problems.size(); ++j) {
        INFO("Highway target " << std::string(hwy::TargetName(target)) << ", kernel "
                               << std::string(gk::kRegistry[i].name.view()) << ", "
                               << shape_text(problems[j].d));
        const Status s = run_and_compare(problems[j], expected[j], i, 1);
        if (expect_runs(gk::kRegistry[i], problems[j]))
          CHECK_MESSAGE(s.ok(), std::string(s.message()));
      }
    }
  }
  hwy::SetSupportedTargetsForTest(0);
  hwy::GetChosenTarget().Update(hwy::SupportedTargets());
#endif
}

// ---- the cpu backend's other routes ----------------------------------------------------------

TEST_CASE("cpu conv2d: a 1x1 conv through the GEMM kernels equals the reference conv") {
  testing::rng r(111);
  INFO("seed " << r.seed());
  for (int rep = 0; rep < 4; ++rep) {
    conv2d_desc d;
    d.batch = r.uniform_int(1, 3);
    d.in_h = r.uniform_int(1, 9);
    d.in_w = r.uniform_int(1, 9);
    d.in_c = r.uniform_int(1, 40);
    d.out_c = r.uniform_int(1, 30);
    d.in_type = rep % 2 ? dtype::s8 : dtype::u8;
    d.w_type = rep % 2 ? dtype::s8 : dtype::u8;
    d.in_zero_point =
        static_cast<std::int32_t>(r.uniform_int(min_of(d.in_type), max_of(d.in_type)));
    d.in_scale = 0.02f;
    d.out.type = rep < 2 ? dtype::s32 : dtype::u8;
    d.out.scale = 0.7f;
    d.out.zero_point = rep < 2 ? 0 : 100;
    std::vector<std::uint8_t> x(static_cast<std::size_t>(d.batch * d.in_h * d.in_w * d.in_c));
    std::vector<std::uint8_t> w(static_cast<std::size_t>(d.out_c * d.in_c));
    std::vector<float> ws(static_cast<std::size_t>(d.out_c));
    std::vector<std::int32_t> bias(static_cast<std::size_t>(d.out_c));
    r.fill(x, 0, 255);
    r.fill(w, 0, 255);
    r.fill(ws, 0.001f, 0.05f);
    r.fill(bias, -5000, 5000);
    conv2d_args a;
    a.input = const_tensor_view(x.data(), d.in_type, {d.batch, d.in_h, d.in_w, d.in_c});
    a.weights = const_tensor_view(w.data(), d.w_type, {d.out_c, 1, 1, d.in_c});
    a.w_scale = ws;
    a.bias = bias;
    const std::size_t n_out = static_cast<std::size_t>(d.batch * d.in_h * d.in_w * d.out_c);
    const std::size_t eb = d.out.type == dtype::s32 ? 4 : 1;
    std::vector<std::uint32_t> ref_store(n_out + 1);
    a.out = tensor_view(ref_store.data(), d.out.type, {d.batch, d.in_h, d.in_w, d.out_c});
    const Status rs = reference::conv2d_i8(d, a);
    if (rs.code() == status_code::unsupported) {
      MESSAGE("skipping: the reference conv2d is not written yet (" << std::string(rs.message())
                                                                    << ")");
      return;
    }
    REQUIRE_MESSAGE(rs.ok(), std::string(rs.message()));
    for (int threads : kThreadSettings) {
      cpu_backend cpu(cpu_options{threads, -1});
      testing::guarded<std::uint8_t> out(n_out * eb);
      a.out = tensor_view(out.data(), d.out.type, {d.batch, d.in_h, d.in_w, d.out_c});
      INFO("rep " << rep << " threads " << threads);
      const Status s = cpu.run(d, a);
      REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
      CHECK(std::memcmp(out.data(), ref_store.data(), n_out * eb) == 0);
      CHECK(out.guards_intact());
      // Packed once, run again: the packed path is the GEMM one.
      auto packed = cpu.pack(d, a);
      REQUIRE(packed.ok());
      CHECK(packed->as_gemm);
      testing::guarded<std::uint8_t> out2(n_out * eb);
      a.out = tensor_view(out2.data(), d.out.type, {d.batch, d.in_h, d.in_w, d.out_c});
      REQUIRE(cpu.run(d, packed.value(), a).ok());
      CHECK(std::memcmp(out2.data(), ref_store.data(), n_out * eb) == 0);

      // Input rows with a gap after each image row (pixels not one strided matrix): the GEMM
      // runs one image row at a time; same bits.
      if (d.in_h > 1) {
        const std::int64_t pitch = d.in_w * d.in_c + 5;
        std::vector<std::uint8_t> xg(static_cast<std::size_t>(d.batch * d.in_h * pitch), 0x5A);
        for (std::int64_t i = 0; i < d.batch * d.in_h; ++i) {
          std::memcpy(&xg[static_cast<std::size_t>(i * pitch)],
                      &x[static_cast<std::size_t>(i * d.in_w * d.in_c)],
                      static_cast<std::size_t>(d.in_w * d.in_c));
        }
        conv2d_args g = a;
        g.input.data = xg.data();
        g.input.strides = {d.in_h * pitch, pitch, d.in_c, 1};
        testing::guarded<std::uint8_t> out3(n_out * eb);
        g.out = tensor_view(out3.data(), d.out.type, {d.batch, d.in_h, d.in_w, d.out_c});
        const Status gs = cpu.run(d, packed.value(), g);
        REQUIRE_MESSAGE(gs.ok(), std::string(gs.message()));
        CHECK(std::memcmp(out3.data(), ref_store.data(), n_out * eb) == 0);
        CHECK(out3.guards_intact());
      }
    }
  }
}

TEST_CASE("cpu conv2d: other convs through the split reference equal the reference") {
  testing::rng r(112);
  INFO("seed " << r.seed());
  for (std::int64_t groups : {1, 2, 6}) {
    conv2d_desc d;
    d.batch = 2;
    d.in_h = 6;
    d.in_w = 5;
    d.in_c = 6;
    d.out_c = groups == 6 ? 12 : 8;  // depthwise with a channel multiplier of 2
    d.groups = groups;
    d.kernel_h = 3;
    d.kernel_w = 2;
    d.stride_h = 2;
    d.padding = padding_mode::same_upper;
    d.in_zero_point = 7;
    std::vector<std::uint8_t> x(static_cast<std::size_t>(d.batch * d.in_h * d.in_w * d.in_c));
    std::vector<std::int8_t> w(static_cast<std::size_t>(d.out_c * 3 * 2 * (d.in_c / groups)));
    r.fill(x, 0, 255);
    r.fill(w, -128, 127);
    conv2d_args a;
    a.input = view(x.data(), {d.batch, d.in_h, d.in_w, d.in_c});
    a.weights = view(w.data(), {d.out_c, 3, 2, d.in_c / groups});
    const Result<conv2d_geometry> g = conv2d_output_geometry(d);
    REQUIRE(g.ok());
    const std::size_t n_out = static_cast<std::size_t>(d.batch * g->out_h * g->out_w * d.out_c);
    std::vector<std::int32_t> ref(n_out);
    a.out = view(ref.data(), {d.batch, g->out_h, g->out_w, d.out_c});
    const Status rs = reference::conv2d_i8(d, a);
    if (rs.code() == status_code::unsupported) {
      MESSAGE("skipping: the reference conv2d is not written yet");
      return;
    }
    REQUIRE(rs.ok());
    for (int threads : kThreadSettings) {
      testing::guarded<std::int32_t> out(n_out);
      a.out = view(out.data(), {d.batch, g->out_h, g->out_w, d.out_c});
      INFO("groups " << groups << " threads " << threads);
      const Status s = cpu_backend(cpu_options{threads, -1}).run(d, a);
      REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
      CHECK(std::memcmp(out.data(), ref.data(), n_out * 4) == 0);
      CHECK(out.guards_intact());
    }
  }
}

TEST_CASE("cpu attention and matmul_i4: the split reference equals the reference") {
  testing::rng r(113);
  INFO("seed " << r.seed());
  {
    attention_desc d;
    d.batch = 2;
    d.q_heads = 4;
    d.kv_heads = 2;
    d.q_len = 3;
    d.kv_len = 7;
    d.head_dim = 8;
    d.q_type = dtype::f32;
    d.kv_type = dtype::s8;
    d.kv_scale = scale_granularity::per_token;
    d.mask = mask_kind::causal;
    std::vector<float> q(static_cast<std::size_t>(2 * 4 * 3 * 8));
    std::vector<std::int8_t> k(static_cast<std::size_t>(2 * 2 * 7 * 8)), v(k.size());
    std::vector<float> ks(2 * 2 * 7), vs(2 * 2 * 7);
    r.fill(q, -1.0f, 1.0f);
    r.fill(k, -128, 127);
    r.fill(v, -128, 127);
    r.fill(ks, 0.001f, 0.02f);
    r.fill(vs, 0.001f, 0.02f);
    attention_args a;
    a.q = view(q.data(), {2, 4, 3, 8});
    a.k = view(k.data(), {2, 2, 7, 8});
    a.v = view(v.data(), {2, 2, 7, 8});
    a.k_scale = ks;
    a.v_scale = vs;
    std::vector<float> ref(q.size());
    a.out = view(ref.data(), {2, 4, 3, 8});
    const Status rs = reference::attention(d, a);
    if (rs.code() == status_code::unsupported) {
      MESSAGE("skipping attention: the reference is not written yet");
    } else {
      REQUIRE_MESSAGE(rs.ok(), std::string(rs.message()));
      for (int threads : kThreadSettings) {
        testing::guarded<float> out(ref.size());
        a.out = view(out.data(), {2, 4, 3, 8});
        const Status s = cpu_backend(cpu_options{threads, -1}).run(d, a);
        REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
        // Each (batch, head) piece runs the reference's own code on the same data: same bits.
        CHECK(std::memcmp(out.data(), ref.data(), ref.size() * 4) == 0);
        CHECK(out.guards_intact());
      }
    }
  }
  {
    matmul_i4_desc d;
    d.m = 3;
    d.n = 300;
    d.k = 64;
    d.group_size = 32;
    std::vector<float> x(static_cast<std::size_t>(d.m * d.k));
    std::vector<std::uint8_t> w(static_cast<std::size_t>(d.n * d.k / 2));
    std::vector<float> s(static_cast<std::size_t>(d.n * 2));
    r.fill(x, -1.0f, 1.0f);
    r.fill(w, 0, 255);
    r.fill(s, 0.01f, 0.1f);
    matmul_i4_args a;
    a.a = view(x.data(), {d.m, d.k});
    a.b = view_int4(w.data(), dtype::s4, {d.n, d.k});
    a.scale = view(s.data(), {d.n, 2});
    std::vector<float> ref(static_cast<std::size_t>(d.m * d.n));
    a.out = view(ref.data(), {d.m, d.n});
    const Status rs = reference::matmul_i4(d, a);
    if (rs.code() == status_code::unsupported) {
      MESSAGE("skipping matmul_i4: the reference is not written yet");
    } else {
      REQUIRE_MESSAGE(rs.ok(), std::string(rs.message()));
      for (int threads : kThreadSettings) {
        testing::guarded<float> out(ref.size());
        a.out = view(out.data(), {d.m, d.n});
        const Status st = cpu_backend(cpu_options{threads, -1}).run(d, a);
        REQUIRE_MESSAGE(st.ok(), std::string(st.message()));
        CHECK(std::memcmp(out.data(), ref.data(), ref.size() * 4) == 0);
        CHECK(out.guards_intact());
      }
      // A NaN scale in the last column: the whole call is rejected before any piece writes.
      s.back() = std::numeric_limits<float>::quiet_NaN();
      for (int threads : kThreadSettings) {
        testing::guarded<float> out(ref.size());
        a.out = view(out.data(), {d.m, d.n});
        const Status st = cpu_backend(cpu_options{threads, -1}).run(d, a);
        CHECK(st.code() == status_code::invalid_argument);
        CHECK(out.untouched());
      }
    }
  }
}
