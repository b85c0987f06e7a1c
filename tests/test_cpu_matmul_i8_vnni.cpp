// The AVX-512 VNNI kernels of keel/kernels/gemm_i8/avx512vnni.hpp, forced one at a time through
// the cpu backend, against keel::reference::matmul_i8 bit for bit, on the shapes that reach their
// own edges (which the registry-wide suite, cpu_matmul_i8, sized for 4- to 6-row tiles, does not):
// the gemm's 32-row tile in one or two halves of 16, its 8-column panels, long K, the gemv's
// 4-group steps and its 128-column calls, K up to the documented limit. Also: the kernels run only
// where the CPU and the OS support them, and the backend prefers them there.
//
// Independence: expected values come from the reference kernel (scalar, int64 sums) or are
// computed by hand here; CPU support is read back through the compiler runtime's
// __builtin_cpu_supports, not through the kernels' own CPUID probe.
#include <doctest/doctest.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "keel/backends/cpu.hpp"
#include "keel/keel.hpp"
#include "support/testing.hpp"

using namespace keel;
using backends::cpu_backend;
using backends::cpu_options;
namespace gk = keel::kernels::gemm_i8;

namespace {

constexpr std::string_view kGemmName = "gemm_u8s8_s32_p8k4_32x16_avx512vnni_dp4";
constexpr std::string_view kGemvName = "gemv_u8s8_s32_p8k4_4x128_avx512vnni_dp4";
// The AMX gemm (amx.hpp) shares the VNNI gemm's tests: its 32 rows, its padded 64-byte K blocks
// and its 16-panel calls meet the same edges.
constexpr std::string_view kAmxName = "gemm_u8s8_s32_p8k4_32x128_amx_dp4";
const std::string_view kGemmNames[] = {kGemmName, kAmxName};

const int kThreadSettings[] = {1, 0};
const dtype kTypes8[] = {dtype::u8, dtype::s8};

// Why the VNNI kernels cannot run here, or nullptr.
const char* vnni_missing() {
#if defined(KEEL_GEMM_I8_HAVE_AVX512VNNI)
  return gk::avx512vnni::missing_feature();
#else
  return "not built for x86-64 with GCC or Clang";
#endif
}
std::string vnni_missing_text() {
  const char* why = vnni_missing();
  return why != nullptr ? why : "nothing missing";
}

// The registry index of a VNNI kernel, or -1 after printing why it is skipped.
int vnni_kernel_or_skip(std::string_view name) {
  const int i = gk::find_kernel(name);
  if (i < 0 || !gk::available(gk::kRegistry[i].v)) {
    MESSAGE(
        "skipping " << std::string(name) << ": "
                    << (i < 0 ? std::string("not registered in this build") : vnni_missing_text()));
    return -1;
  }
  return i;
}

// ---- problems -------------------------------------------------------------------------------

struct problem {
  matmul_i8_desc d;
  std::vector<std::uint8_t> a, b;  // raw bytes (u8 or s8)
  std::vector<float> b_scale;
  std::vector<std::int32_t> b_zp, bias;

  std::int64_t out_elems() const { return d.batch * d.m * d.n; }
  std::size_t out_bytes() const {
    const std::size_t e = d.out.type == dtype::s8 || d.out.type == dtype::u8 ? 1 : 4;
    return static_cast<std::size_t>(out_elems()) * e;
  }
};

// Full-range operands; zero points anywhere in their type's range; per-column or per-tensor
// parameters, bias and clamps chosen at random.
problem random_problem(testing::rng& r, std::int64_t m, std::int64_t n, std::int64_t k, dtype at,
                       dtype bt, dtype ot, std::int64_t batch = 1, bool b_batched = false) {
  problem p;
  p.d.batch = batch;
  p.d.m = m;
  p.d.n = n;
  p.d.k = k;
  p.d.a_type = at;
  p.d.b_type = bt;
  p.d.b_batched = b_batched;
  p.d.out.type = ot;
  p.d.a_zero_point = static_cast<std::int32_t>(r.uniform_int(min_of(at), max_of(at)));
  p.d.a_scale = r.uniform_float(0.001f, 0.05f);
  p.a.resize(static_cast<std::size_t>(batch * m * k));
  p.b.resize(static_cast<std::size_t>((b_batched ? batch : 1) * k * n));
  r.fill(p.a, 0, 255);
  r.fill(p.b, 0, 255);
  p.b_scale.resize(r.uniform_int(0, 1) ? static_cast<std::size_t>(n) : 1);
  r.fill(p.b_scale, 0.001f, 0.05f);
  const int zp_kind = static_cast<int>(r.uniform_int(0, 2));  // none, per tensor, per column
  p.b_zp.resize(zp_kind == 0 ? 0 : zp_kind == 1 ? 1 : static_cast<std::size_t>(n));
  for (auto& z : p.b_zp) z = static_cast<std::int32_t>(r.uniform_int(min_of(bt), max_of(bt)));
  if (r.uniform_int(0, 1)) {
    p.bias.resize(static_cast<std::size_t>(n));
    r.fill(p.bias, -200000, 200000);
  }
  if (ot == dtype::s8 || ot == dtype::u8) {
    p.d.out.mode = r.uniform_int(0, 1) ? requant_mode::fixed_point : requant_mode::float_scale;
    p.d.out.scale = r.uniform_float(0.05f, 4.0f);
    p.d.out.zero_point = static_cast<std::int32_t>(r.uniform_int(min_of(ot), max_of(ot)));
    if (r.uniform_int(0, 2) == 0) {
      p.d.out.clamp_min = static_cast<std::int32_t>(r.uniform_int(min_of(ot), p.d.out.zero_point));
      p.d.out.clamp_max = static_cast<std::int32_t>(r.uniform_int(p.d.out.zero_point, max_of(ot)));
    }
  }
  return p;
}

std::string shape_text(const matmul_i8_desc& d) {
  std::ostringstream s;
  s << "batch=" << d.batch << " M=" << d.m << " N=" << d.n << " K=" << d.k
    << " A=" << to_string(d.a_type) << " B=" << to_string(d.b_type)
    << " out=" << to_string(d.out.type) << (d.b_batched ? " b_batched" : "")
    << " za=" << d.a_zero_point;
  if (d.out.type == dtype::s8 || d.out.type == dtype::u8) s << " " << to_string(d.out.mode);
  return s.str();
}

// Views of A and B, each copied to an address `offset` bytes past an aligned one.
struct bound_args {
  testing::misaligned_copy<std::uint8_t> a_store, b_store;
  matmul_i8_args args;
  bound_args(const problem& p, std::size_t a_off, std::size_t b_off)
      : a_store(p.a, a_off), b_store(p.b, b_off) {
    const matmul_i8_desc& d = p.d;
    args.a = d.batch == 1 ? const_tensor_view(a_store.data(), d.a_type, {d.m, d.k})
                          : const_tensor_view(a_store.data(), d.a_type, {d.batch, d.m, d.k});
    args.b = d.b_batched ? const_tensor_view(b_store.data(), d.b_type, {d.batch, d.k, d.n})
                         : const_tensor_view(b_store.data(), d.b_type, {d.k, d.n});
    args.b_scale = p.b_scale;
    args.b_zero_point = p.b_zp;
    args.bias = p.bias;
  }
};

tensor_view out_view(void* data, const matmul_i8_desc& d) {
  return d.batch == 1 ? tensor_view(data, d.out.type, {d.m, d.n})
                      : tensor_view(data, d.out.type, {d.batch, d.m, d.n});
}

std::vector<std::uint8_t> reference_bytes(const problem& p) {
  bound_args ba(p, 0, 0);
  std::vector<std::uint32_t> out(p.out_bytes() / 4 + 1);  // 4-byte aligned for s32 and f32
  ba.args.out = out_view(out.data(), p.d);
  const Status s = reference::matmul_i8(p.d, ba.args);
  REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
  std::vector<std::uint8_t> bytes(p.out_bytes());
  std::memcpy(bytes.data(), out.data(), bytes.size());
  return bytes;
}

// Runs kernel `kernel` (forced) with `threads` into a guarded buffer whose payload starts
// `out_off` bytes in; the bits must equal `expected` and nothing outside the payload may change.
void check_kernel(const problem& p, const std::vector<std::uint8_t>& expected, int kernel,
                  int threads, std::size_t a_off = 0, std::size_t b_off = 0,
                  std::size_t out_off = 0) {
  INFO("kernel " << std::string(gk::kRegistry[kernel].name.view()) << ", threads " << threads
                 << ", offsets " << a_off << "/" << b_off << "/" << out_off);
  cpu_backend cpu(cpu_options{threads, kernel});
  bound_args ba(p, a_off, b_off);
  Result<cpu_backend::packed_matmul_i8> packed = cpu.pack(p.d, ba.args);
  REQUIRE_MESSAGE(packed.ok(), std::string(packed.status().message()));
  const std::size_t n = p.out_bytes();
  testing::guarded<std::uint8_t> out(n + 8);
  ba.args.out = out_view(out.data() + out_off, p.d);
  const Status s = cpu.run(p.d, packed.value(), ba.args);
  REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
  CHECK(out.guards_intact());
  const std::uint8_t* got = out.data() + out_off;
  const auto diff = std::mismatch(got, got + n, expected.begin());
  if (diff.first != got + n) {
    MESSAGE("first differing byte " << (diff.first - got) << " of " << n);
  }
  CHECK(diff.first == got + n);
  for (std::size_t i = 0; i < out_off; ++i) CHECK(out.data()[i] == 0xA5);
  for (std::size_t i = out_off + n; i < n + 8; ++i) CHECK(out.data()[i] == 0xA5);
}

void check_kernel_all_threads(const problem& p, int kernel) {
  const std::vector<std::uint8_t> expected = reference_bytes(p);
  for (int threads : kThreadSettings) check_kernel(p, expected, kernel, threads);
}

#if defined(KEEL_GEMM_I8_HAVE_AVX512VNNI)
// The flags Linux reports for this CPU (those the kernel has enabled), or empty.
std::vector<std::string> proc_cpuinfo_flags() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line.substr(line.find(':') + 1));
    std::vector<std::string> flags;
    for (std::string w; words >> w;) flags.push_back(w);
    return flags;
  }
  return {};
}
#endif

}  // namespace

TEST_CASE("vnni: registered by name, run only where the CPU and OS support them, preferred") {
#if !defined(KEEL_GEMM_I8_HAVE_AVX512VNNI)
  CHECK(gk::find_kernel(kGemmName) == -1);
  MESSAGE("skipping: the AVX-512 VNNI kernels are not built here (" << vnni_missing_text() << ")");
#else
  const int gemm = gk::find_kernel(kGemmName);
  const int gemv = gk::find_kernel(kGemvName);
  REQUIRE(gemm >= 0);
  REQUIRE(gemv >= 0);
  CHECK(gk::kRegistry[gemm].v.mr == 32);
  CHECK(gk::kRegistry[gemm].v.exact_for_all_inputs());
  CHECK(gk::kRegistry[gemv].v.op == gk::kernel_op::gemv);
  CHECK(gk::kRegistry[gemm].v.a_layout() == gk::a_format::u8);

  // Availability agrees with the compiler runtime's own reading of CPUID and XCR0 (libgcc's or
  // compiler-rt's __builtin_cpu_supports, which reports AVX-512 features only when the OS saves
  // the ZMM state), an implementation independent of the kernels' probe.
  const bool here = gk::available(gk::kRegistry[gemm].v);
  CHECK(here == gk::available(gk::kRegistry[gemv].v));
  CHECK(here == (vnni_missing() == nullptr));
  const bool runtime_says = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
                            __builtin_cpu_supports("avx512bw") &&
                            __builtin_cpu_supports("avx512vl") &&
                            __builtin_cpu_supports("avx512vnni");
  CHECK(here == runtime_says);
  // And, for a person reading the log, what Linux says (the flags the kernel has enabled). Not a
  // check: under an emulator such as qemu-user, /proc/cpuinfo describes the host, not the CPU
  // the program sees.
  const std::vector<std::string> flags = proc_cpuinfo_flags();
  const auto has = [&](const char* f) {
    return std::find(flags.begin(), flags.end(), f) != flags.end();
  };
  const bool linux_says =
      has("avx2") && has("avx512f") && has("avx512bw") && has("avx512vl") && has("avx512_vnni");
  if (flags.empty() || linux_says != here) {
    MESSAGE("/proc/cpuinfo " << (flags.empty() ? std::string("has no flags line")
                                               : std::string("disagrees"))
                             << " (avx512_vnni there: " << linux_says << ", here: " << here
                             << "): an emulated or masked CPU?");
  }
  if (!here) {
    MESSAGE("skipping the VNNI kernels: " << vnni_missing_text());
    return;
  }

  // The backend's own choice: the VNNI gemv for M <= 4, above it the AMX gemm where the CPU and
  // OS offer AMX, else the VNNI gemm, for every dtype pair
  // and on full-range data (they are exact for all input, so nothing can refuse them).
  const int amx = gk::find_kernel(kAmxName);
  const bool amx_here = amx >= 0 && gk::available(gk::kRegistry[amx].v);
  testing::rng r(201);
  INFO("seed " << r.seed());
  for (std::int64_t m : {1, 4, 5, 33}) {
    for (dtype at : kTypes8) {
      for (dtype bt : kTypes8) {
        problem p = random_problem(r, m, 20, 37, at, bt, dtype::s32);
        bound_args ba(p, 0, 0);
        cpu_backend cpu;
        auto packed = cpu.pack(p.d, ba.args);
        REQUIRE(packed.ok());
        std::vector<std::int32_t> out(static_cast<std::size_t>(m * 20));
        ba.args.out = view(out.data(), {m, 20});
        const Result<int> chosen =
            backends::cpu_detail::choose_kernel(p.d, packed.value(), ba.args, -1);
        REQUIRE(chosen.ok());
        INFO(shape_text(p.d));
        CHECK(chosen.value() == (m <= 4 ? gemv : amx_here ? amx : gemm));
      }
    }
  }
#endif
}

TEST_CASE("amx: registered on Linux x86-64, run only where CPUID, XCR0 and the OS allow it") {
#if !defined(KEEL_GEMM_I8_HAVE_AMX)
  CHECK(gk::find_kernel(kAmxName) == -1);
  MESSAGE("skipping: the AMX kernel is not built here");
#else
  const int amx = gk::find_kernel(kAmxName);
  REQUIRE(amx >= 0);
  const gk::variant& v = gk::kRegistry[amx].v;
  CHECK(v.mr == 32);
  CHECK(v.nr() == 128);
  CHECK(v.exact_for_all_inputs());
  CHECK(gk::a_panel_groups(v, 1) == 16);
  CHECK(gk::a_panel_groups(v, 16) == 16);
  CHECK(gk::a_panel_groups(v, 17) == 32);
  // Its availability needs the VNNI kernels' (its epilogue and packer are theirs) and CPUID's
  // AMX-TILE and AMX-INT8 bits, read here with the compiler's own cpuid.h, apart from the probe.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const bool cpuid_amx = (edx & (3u << 24)) == (3u << 24);
  const bool here = gk::available(v);
  if (here) {
    CHECK(vnni_missing() == nullptr);
    CHECK(cpuid_amx);
  } else if (vnni_missing() == nullptr && cpuid_amx) {
    MESSAGE("the CPU reports AMX-INT8 but the kernel cannot run: " << gk::amx::missing_feature());
  }
  if (here) {
    // Another user of AMX on this thread left its own tile configuration (8-column tiles, 8 rows):
    // the kernel must notice and load its own, or every result is wrong.
    testing::rng r(208);
    INFO("seed " << r.seed());
    problem p = random_problem(r, 40, 70, 300, dtype::u8, dtype::s8, dtype::s32);
    const std::vector<std::uint8_t> expected = reference_bytes(p);
    gk::amx::detail::tile_config other;
    for (int t = 0; t < 8; ++t) {
      other.colsb[t] = 32;
      other.rows[t] = 8;
    }
    gk::amx::detail::load_tile_config(other);
    check_kernel(p, expected, amx, 1);  // one thread: this one
  }
  const std::vector<std::string> flags = proc_cpuinfo_flags();
  const bool linux_says = std::find(flags.begin(), flags.end(), "amx_int8") != flags.end();
  MESSAGE("AMX kernel " << std::string(here ? "runs" : "skipped") << " (/proc/cpuinfo amx_int8: " << linux_says
                        << ")");
#endif
}

TEST_CASE("vnni/amx gemm: K stepped through primes, all dtype pairs, both halves of the tile") {
  for (const std::string_view name : kGemmNames) {
    const int kernel = vnni_kernel_or_skip(name);
    if (kernel < 0) continue;
    testing::rng r(202);
    INFO("seed " << r.seed());
    const std::int64_t ks[] = {1,  2,  3,  4,  5,   7,   8,   11,  13,  17,  29,  31,   37,
                               61, 64, 67, 97, 101, 127, 131, 257, 263, 509, 521, 1021, 2003};
    const std::int64_t ms[] = {1, 7, 16, 17, 31, 32, 33, 50};
    for (std::int64_t k : ks) {
      for (dtype at : kTypes8) {
        for (dtype bt : kTypes8) {
          const std::int64_t m = ms[r.uniform_int(0, std::size(ms) - 1)];
          const std::int64_t n = r.uniform_int(1, 41);
          problem p = random_problem(r, m, n, k, at, bt, dtype::s32);
          INFO(shape_text(p.d));
          check_kernel_all_threads(p, kernel);
        }
      }
    }
  }
}

TEST_CASE("vnni/amx gemm: M and N remainders around the 32x8 and 32x128 tiles") {
  for (const std::string_view name : kGemmNames) {
    const int kernel = vnni_kernel_or_skip(name);
    if (kernel < 0) continue;
    testing::rng r(203);
    INFO("seed " << r.seed());
    const std::int64_t ms[] = {1, 2, 5, 15, 16, 17, 18, 30, 31, 32, 33, 47, 48, 63, 64, 65, 97};
    const std::int64_t ns[] = {1, 3, 7, 8, 9, 16, 17, 24, 31, 32, 33, 40, 64, 97, 128, 130, 257};
    for (std::int64_t m : ms) {
      for (std::int64_t n : ns) {
        problem p = random_problem(r, m, n, r.uniform_int(1, 90), kTypes8[r.uniform_int(0, 1)],
                                   kTypes8[r.uniform_int(0, 1)], dtype::s32);
        INFO(shape_text(p.d));
        check_kernel_all_threads(p, kernel);
      }
    }
  }
}

TEST_CASE("vnni/amx gemm: long K around multiples of 512, the A prefetch running past panel ends") {
  for (const std::string_view name : kGemmNames) {
    const int kernel = vnni_kernel_or_skip(name);
    if (kernel < 0) continue;
    testing::rng r(207);
    INFO("seed " << r.seed());
    for (std::int64_t k :
         {509, 511, 512, 513, 516, 517, 1023, 1024, 1025, 1029, 1531, 1536, 1537}) {
      problem p =
          random_problem(r, r.uniform_int(1, 40), r.uniform_int(1, 70), k,
                         kTypes8[r.uniform_int(0, 1)], kTypes8[r.uniform_int(0, 1)], dtype::s32);
      INFO(shape_text(p.d));
      check_kernel_all_threads(p, kernel);
    }
  }
}

TEST_CASE("vnni gemv: every K remainder of its 4-group step, N across its 128-column calls") {
  const int kernel = vnni_kernel_or_skip(kGemvName);
  if (kernel < 0) return;
  testing::rng r(204);
  INFO("seed " << r.seed());
  // K = 1..40 covers K mod 4 (a partial last group) times kq mod 4 (the main loop's 4 groups, a
  // leftover pair, a leftover single group); then primes and a long K.
  std::vector<std::int64_t> ks;
  for (std::int64_t k = 1; k <= 40; ++k) ks.push_back(k);
  for (std::int64_t k : {61, 67, 127, 257, 509, 1021, 4099}) ks.push_back(k);
  for (std::int64_t k : ks) {
    const std::int64_t m = r.uniform_int(1, 4);
    const std::int64_t n = k % 5 == 0 ? r.uniform_int(120, 300) : r.uniform_int(1, 41);
    problem p = random_problem(r, m, n, k, kTypes8[r.uniform_int(0, 1)],
                               kTypes8[r.uniform_int(0, 1)], dtype::s32);
    INFO(shape_text(p.d));
    check_kernel_all_threads(p, kernel);
  }
}

TEST_CASE("vnni: every output mode, bias, clamps, zero points, batches") {
  for (const std::string_view name : kGemmNames) {
    const int gemm = vnni_kernel_or_skip(name);
    const int gemv = vnni_kernel_or_skip(kGemvName);
    if (gemm < 0 || gemv < 0) continue;
    testing::rng r(205);
    INFO("seed " << r.seed());
    for (dtype ot : {dtype::s32, dtype::f32, dtype::s8, dtype::u8}) {
      for (dtype at : kTypes8) {
        for (dtype bt : kTypes8) {
          for (int rep = 0; rep < 2; ++rep) {
            const bool small = rep == 0;
            problem p = random_problem(r, small ? r.uniform_int(1, 4) : r.uniform_int(5, 70),
                                       r.uniform_int(1, 60), r.uniform_int(1, 400), at, bt, ot);
            if (ot == dtype::s8 || ot == dtype::u8) {
              p.d.out.mode =
                  r.uniform_int(0, 1) ? requant_mode::fixed_point : requant_mode::float_scale;
            }
            INFO(shape_text(p.d));
            check_kernel_all_threads(p, small ? gemv : gemm);
          }
        }
      }
    }
    for (bool b_batched : {false, true}) {
      for (std::int64_t m : {3, 40}) {
        problem p = random_problem(r, m, r.uniform_int(1, 30), r.uniform_int(1, 100), dtype::s8,
                                   dtype::u8, dtype::u8, r.uniform_int(2, 4), b_batched);
        INFO(shape_text(p.d));
        check_kernel_all_threads(p, m <= 4 ? gemv : gemm);
      }
    }
  }
}

TEST_CASE("vnni: misaligned A, B and 8-bit outputs") {
  for (const std::string_view name : kGemmNames) {
    const int gemm = vnni_kernel_or_skip(name);
    const int gemv = vnni_kernel_or_skip(kGemvName);
    if (gemm < 0 || gemv < 0) continue;
    testing::rng r(206);
    INFO("seed " << r.seed());
    for (std::size_t off : {1u, 3u, 7u}) {
      for (int kernel : {gemm, gemv}) {
        const std::int64_t m = kernel == gemv ? r.uniform_int(1, 4) : r.uniform_int(17, 40);
        problem p = random_problem(r, m, r.uniform_int(1, 35), r.uniform_int(1, 200), dtype::s8,
                                   dtype::s8, dtype::s8);
        INFO(shape_text(p.d));
        const std::vector<std::uint8_t> expected = reference_bytes(p);
        for (int threads : kThreadSettings)
          check_kernel(p, expected, kernel, threads, off, off + 2, off);
      }
    }
  }
}

TEST_CASE("vnni: full-range extremes up to the documented K limit, by hand") {
  for (const std::string_view name : kGemmNames) {
    const int gemm = vnni_kernel_or_skip(name);
    const int gemv = vnni_kernel_or_skip(kGemvName);
    if (gemm < 0 || gemv < 0) continue;

    // u8 A = 255 against s8 B = -128 (even columns) and 127 (odd columns), zero points 0, over the
    // largest K validation admits: sums of -32640 K and 32385 K, K = 65793 giving -2147483520 and
    // 2130706305, inside int32 by less than a product. vpmaddubsw would saturate at the first pair.
    struct kernel_rows {
      int kernel;
      std::int64_t m;
    };
    const std::int64_t k_limit = max_exact_k(255, 128);
    REQUIRE(k_limit == 65793);
    for (std::int64_t k : {k_limit, std::int64_t{65791}, std::int64_t{4099}}) {
      for (const kernel_rows kr : {kernel_rows{gemm, 33}, kernel_rows{gemv, 4}}) {
        const int kernel = kr.kernel;
        const std::int64_t m = kr.m;
        matmul_i8_desc d;
        d.m = m;
        d.n = 11;
        d.k = k;
        std::vector<std::uint8_t> a(static_cast<std::size_t>(m * k), 255);
        std::vector<std::int8_t> b(static_cast<std::size_t>(k * d.n));
        for (std::int64_t j = 0; j < k; ++j) {
          for (std::int64_t c = 0; c < d.n; ++c)
            b[static_cast<std::size_t>(j * d.n + c)] = c % 2 ? 127 : -128;
        }
        matmul_i8_args args;
        args.a = view(a.data(), {m, k});
        args.b = view(b.data(), {k, d.n});
        const std::int64_t neg = -32640 * k, pos = 32385 * k;
        REQUIRE(neg >= INT32_MIN);
        REQUIRE(pos <= INT32_MAX);
        for (int threads : kThreadSettings) {
          INFO("kernel " << std::string(gk::kRegistry[kernel].name.view()) << " K=" << k
                         << " threads " << threads);
          testing::guarded<std::int32_t> out(static_cast<std::size_t>(m * d.n));
          args.out = view(out.data(), {m, d.n});
          const Status s = cpu_backend(cpu_options{threads, kernel}).run(d, args);
          REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
          CHECK(out.guards_intact());
          std::int64_t wrong = 0;
          for (std::int64_t i = 0; i < m * d.n; ++i) {
            wrong += out[static_cast<std::size_t>(i)] != (i % d.n % 2 ? pos : neg);
          }
          CHECK(wrong == 0);
        }
      }
    }

    // Zero points at the ends of their ranges, where each term is (-255) * 255 and K may reach
    // 33025: s8 A = -128 with za = 127 against u8 B = 255 with zb = 0, and the other pairs. The
    // s8 A and u8 B cases go through the kernels' mappings (A ^ 0x80 with za + 128; B ^ 0x80 with
    // zb - 128) at their extremes.
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
      for (const kernel_rows kr : {kernel_rows{gemm, 20}, kernel_rows{gemv, 3}}) {
        const int kernel = kr.kernel;
        const std::int64_t m = kr.m;
        matmul_i8_desc d;
        d.m = m;
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
                    << " kernel " << std::string(gk::kRegistry[kernel].name.view()) << " threads "
                    << threads);
          testing::guarded<std::int32_t> out(static_cast<std::size_t>(d.m * d.n));
          args.out = view(out.data(), {d.m, d.n});
          const Status s = cpu_backend(cpu_options{threads, kernel}).run(d, args);
          REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
          CHECK(out.guards_intact());
          std::int64_t wrong = 0;
          for (std::size_t j = 0; j < out.size(); ++j) wrong += out[j] != expected;
          CHECK(wrong == 0);
        }
      }
    }
  }
}

TEST_CASE("vnni: the bias saturates at the int32 limits, by hand, in every 16-column lane") {
  for (const std::string_view name : kGemmNames) {
    const int gemm = vnni_kernel_or_skip(name);
    const int gemv = vnni_kernel_or_skip(kGemvName);
    if (gemm < 0 || gemv < 0) continue;
    // u8 A = 255, K = 1000; column c of B is 127 or -128 (c % 4 < 2 or not), so the sums are
    // +32385000 and -32640000. Biases by column (c % 4): past INT32_MAX, past INT32_MIN, exactly
    // at each limit, so that each of the 20 columns (two 16-column chunks) has a hand-known value.
    const std::int64_t k = 1000, n = 20;
    std::vector<std::int8_t> b(static_cast<std::size_t>(k * n));
    std::vector<std::int32_t> bias(static_cast<std::size_t>(n)),
        expected(static_cast<std::size_t>(n));
    for (std::int64_t c = 0; c < n; ++c) {
      const bool positive = c % 4 < 2;
      for (std::int64_t j = 0; j < k; ++j)
        b[static_cast<std::size_t>(j * n + c)] = positive ? 127 : -128;
      const bool saturate = c % 2 == 0;
      const std::int64_t sum = positive ? 32385000 : -32640000;
      bias[static_cast<std::size_t>(c)] =
          positive ? (saturate ? INT32_MAX - 1000 : static_cast<std::int32_t>(INT32_MAX - sum))
                   : (saturate ? INT32_MIN + 5 : static_cast<std::int32_t>(INT32_MIN - sum));
      expected[static_cast<std::size_t>(c)] = positive ? INT32_MAX : INT32_MIN;
    }
    for (const int kernel : {gemm, gemv}) {
      const std::int64_t m = kernel == gemm ? 33 : 4;
      std::vector<std::uint8_t> a(static_cast<std::size_t>(m * k), 255);
      matmul_i8_desc d;
      d.m = m;
      d.n = n;
      d.k = k;
      matmul_i8_args args;
      args.a = view(a.data(), {m, k});
      args.b = view(b.data(), {k, n});
      args.bias = bias;
      for (int threads : kThreadSettings) {
        INFO("kernel " << std::string(gk::kRegistry[kernel].name.view()) << " threads " << threads);
        testing::guarded<std::int32_t> out(static_cast<std::size_t>(m * n));
        args.out = view(out.data(), {m, n});
        const Status s = cpu_backend(cpu_options{threads, kernel}).run(d, args);
        REQUIRE_MESSAGE(s.ok(), std::string(s.message()));
        CHECK(out.guards_intact());
        std::int64_t wrong = 0;
        for (std::int64_t i = 0; i < m * n; ++i) {
          wrong += out[static_cast<std::size_t>(i)] != expected[static_cast<std::size_t>(i % n)];
        }
        CHECK(wrong == 0);
      }
    }
  }
}
