// keel::router: compile-time candidate lists, run-time choice by shape and by request, results
// equal to the reference's bits, the trace. Faults are in test_router_faults.cpp, the shipped
// boards' routing tables in test_router_golden.cpp.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "keel/boards/all.hpp"
#include "test_router_common.hpp"

using namespace keel;
using namespace keel::router_testing;

namespace {

using lab_latency = router<lab_board, latency_first<cpu_sim, gpu_sim, npu_sim>>;
using lab_energy = router<lab_board, energy_first<cpu_sim, gpu_sim, npu_sim>>;

constexpr std::size_t kCpu = 0, kGpu = 1, kNpu = 2, kRef = 3;

template <class R>
std::vector<std::string> names(const candidate_list& c) {
  std::vector<std::string> v;
  for (std::size_t i = 0; i < c.count; ++i) v.emplace_back(R::caps[c.index[i]].name);
  return v;
}
template <class R>
std::vector<std::string> names(const route_plan& p) {
  std::vector<std::string> v;
  for (std::size_t i = 0; i < p.count; ++i) v.emplace_back(R::caps[p.order[i]].name);
  return v;
}
using strings = std::vector<std::string>;

matmul_i8_desc mm_desc(std::int64_t m, std::int64_t n, std::int64_t k) {
  matmul_i8_desc d;
  d.m = m;
  d.n = n;
  d.k = k;
  return d;  // u8 x s8 -> s32
}

}  // namespace

namespace {
struct as_fast_gpu {  // fast but not bit-exact
  static constexpr std::string_view name = "fast-gpu";
  static constexpr backend_kind kind = backend_kind::gpu;
  static constexpr bool bit_exact = false;
};
using fast_gpu = faulty_backend<backends::reference_backend, as_fast_gpu>;
struct as_picky_cpu {
  static constexpr std::string_view name = "picky-cpu";
  static constexpr backend_kind kind = backend_kind::cpu;
  static constexpr std::int64_t alignment = 64;
};
using picky = faulty_backend<backends::reference_backend, as_picky_cpu>;
struct small_trace : latency_first<cpu_sim, gpu_sim> {
  static constexpr std::size_t trace_capacity = 4;
};
struct no_trace : latency_first<cpu_sim> {
  static constexpr std::size_t trace_capacity = 0;
};
// A vendor who wants its NPU unless it is more than twice as slow as the best.
struct npu_unless_twice_as_slow : latency_first<cpu_sim, gpu_sim, npu_sim> {
  static constexpr double score(const estimate& x) {
    return x.kind == backend_kind::npu ? x.time_us / 2 : x.time_us;
  }
};
struct modelled : faulty_backend<backends::reference_backend, as_npu> {
  double estimate_us(const matmul_i8_desc&) const { return 0.5; }
};
}  // namespace

TEST_CASE("the router's backends: the policy's, then the reference") {
  static_assert(lab_latency::backend_count == 4);
  static_assert(lab_latency::reference_index == kRef);
  CHECK(lab_latency::caps[kCpu].name == "cpu-sim");
  CHECK(lab_latency::caps[kGpu].name == "gpu-sim");
  CHECK(lab_latency::caps[kNpu].name == "npu-sim");
  CHECK(lab_latency::caps[kRef].name == "reference");
  // A policy that lists the reference itself does not get it twice.
  using twice = router<lab_board, latency_first<backends::reference_backend, cpu_sim>>;
  static_assert(twice::backend_count == 2);
  CHECK(twice::caps[0].name == "cpu-sim");
  CHECK(twice::caps[1].name == "reference");
  // A policy with no backends routes everything to the reference.
  using bare = router<lab_board, latency_first<>>;
  static_assert(bare::backend_count == 1);
  CHECK(names<bare>(bare::candidates(op_kind::attention, dtype::s8)) == strings{"reference"});
}

TEST_CASE("compile-time candidates: caps, the board's units, the nominal ranking") {
  // matmul_i8 at the nominal 256x256x256 (u8 x s8 -> s32): ops = 2 * 256^3 = 33554432,
  // bytes = 65536 (A) + 65536 (B) + 262144 (s32 out) = 393216 -> 39.3216 us at 1e4 B/us.
  //   cpu: 1 + max(335.54, 39.32) = 336.54    gpu: 10 + max(33.55, 39.32) = 49.32
  //   npu: 20 + max(6.71, 39.32) = 59.32
  // latency: gpu, npu, cpu. energy (x W): gpu 493.2, npu 59.3, cpu 673.1 -> npu, gpu, cpu.
  CHECK(names<lab_latency>(lab_latency::candidates(op_kind::matmul_i8, dtype::s8)) ==
        strings{"gpu-sim", "npu-sim", "cpu-sim", "reference"});
  CHECK(names<lab_energy>(lab_energy::candidates(op_kind::matmul_i8, dtype::u8)) ==
        strings{"npu-sim", "gpu-sim", "cpu-sim", "reference"});

  // matmul_i4 (the nominal 1x4096x4096 GEMV, f32 activations): the NPU takes no 4-bit
  // weights (neither its caps nor the board's NPU). Float math: cpu 2.5e4, gpu 2.5e5 ops/us;
  // bytes = 16384 + 8388608 + 2097152 (f32 scales, 128 groups) + 16384 -> 1051.85 us.
  //   cpu: 1 + max(1342.2, 1051.9) = 1343.2   gpu: 10 + max(134.2, 1051.9) = 1061.9
  CHECK(names<lab_latency>(lab_latency::candidates(op_kind::matmul_i4, dtype::s4)) ==
        strings{"gpu-sim", "cpu-sim", "reference"});
  // attention: the lab NPU does not list it (and npu-sim's caps do not either).
  CHECK(names<lab_latency>(lab_latency::candidates(op_kind::attention, dtype::s8)) ==
        strings{"gpu-sim", "cpu-sim", "reference"});
  CHECK(names<lab_latency>(lab_latency::candidates(op_kind::attention, dtype::f32)) ==
        strings{"gpu-sim", "cpu-sim", "reference"});
  // A dtype the op does not take, or an op that is not routed: the reference alone, which
  // rejects it with a Status at run time.
  CHECK(names<lab_latency>(lab_latency::candidates(op_kind::matmul_i8, dtype::s4)) ==
        strings{"reference"});
  CHECK(names<lab_latency>(lab_latency::candidates(op_kind::quantize_linear, dtype::s8)) ==
        strings{"reference"});

  // Boards without a unit drop its backends from every list.
  using pi5 = router<boards::raspberry_pi_5, latency_first<cpu_sim, gpu_sim, npu_sim>>;
  using x86 = router<boards::generic_x86_64_avx2, latency_first<cpu_sim, gpu_sim, npu_sim>>;
  for (int k = 0; k < kOpKindCount; ++k) {
    for (dtype t : {dtype::s8, dtype::u8, dtype::s4, dtype::u4, dtype::f32}) {
      INFO("op " << to_string(static_cast<op_kind>(k)) << " dtype " << to_string(t));
      for (const std::string& n : names<pi5>(pi5::candidates(static_cast<op_kind>(k), t))) {
        CHECK(n != "npu-sim");
      }
      for (const std::string& n : names<x86>(x86::candidates(static_cast<op_kind>(k), t))) {
        CHECK(n != "gpu-sim");
        CHECK(n != "npu-sim");
      }
    }
  }
  // The i.MX 8M Plus NPU runs conv2d with 8-bit weights, not attention and not int4.
  using imx = router<boards::imx8m_plus, latency_first<cpu_sim, npu_sim>>;
  const strings conv = names<imx>(imx::candidates(op_kind::conv2d_i8, dtype::s8));
  CHECK(std::find(conv.begin(), conv.end(), "npu-sim") != conv.end());
  CHECK(names<imx>(imx::candidates(op_kind::attention, dtype::s8)) ==
        strings{"cpu-sim", "reference"});
}

namespace {
// A vendor's veto: never the GPU for attention.
struct no_gpu_attention : latency_first<cpu_sim, gpu_sim, npu_sim> {
  static constexpr bool allows(const backend_caps& c, op_kind k, dtype) {
    return !(c.kind == backend_kind::gpu && k == op_kind::attention);
  }
};
}  // namespace

TEST_CASE("a policy's veto removes a backend from one op's list") {
  using R = router<lab_board, no_gpu_attention>;
  CHECK(names<R>(R::candidates(op_kind::attention, dtype::s8)) == strings{"cpu-sim", "reference"});
  CHECK(names<R>(R::candidates(op_kind::matmul_i8, dtype::s8)) ==
        strings{"gpu-sim", "npu-sim", "cpu-sim", "reference"});
}

TEST_CASE("every list of every shipped board ends with the reference, once, without repeats") {
  using all = latency_first<cpu_sim, gpu_sim, npu_sim>;
  auto check_board = []<class B>(B*) {
    using R = router<B, all>;
    for (int k = 0; k < kOpKindCount; ++k) {
      for (int t = 0; t < 7; ++t) {
        const candidate_list& c = R::candidates(static_cast<op_kind>(k), static_cast<dtype>(t));
        INFO(B::profile.name << " op " << k << " dtype " << t);
        REQUIRE(c.count >= 1);
        CHECK(c.index[c.count - 1] == R::reference_index);
        for (std::size_t i = 0; i < c.count; ++i) {
          for (std::size_t j = i + 1; j < c.count; ++j) CHECK(c.index[i] != c.index[j]);
        }
      }
    }
  };
  check_board(static_cast<boards::generic_x86_64_avx2*>(nullptr));
  check_board(static_cast<boards::x86_64_avx512_vnni*>(nullptr));
  check_board(static_cast<boards::raspberry_pi_5*>(nullptr));
  check_board(static_cast<boards::rk3588*>(nullptr));
  check_board(static_cast<boards::imx8m_plus*>(nullptr));
  check_board(static_cast<boards::jetson_orin_nano*>(nullptr));
  check_board(static_cast<boards::snapdragon_8_gen_2*>(nullptr));
}

TEST_CASE("require<>() accepts what the board can run") {
  // (Every rejection is a compile-fail test in tests/compile_fail/.)
  static_assert(
      lab_latency::require<op_need{op_kind::conv2d_i8, dtype::s8, placement::npu},
                           op_need{op_kind::attention, dtype::s8, placement::gpu},
                           op_need{op_kind::matmul_i4, dtype::u4, placement::any, true},
                           op_need{op_kind::matmul_i8, dtype::u8, placement::cpu, true, true}>());
  using rk = router<boards::rk3588, latency_first<cpu_sim, npu_sim>>;
  static_assert(rk::require<op_need{op_kind::matmul_i8, dtype::s8, placement::npu}>());
  // The verdicts behind the messages.
  using routing_detail::need_verdict;
  using pi5 = router<boards::raspberry_pi_5, latency_first<cpu_sim, npu_sim>>;
  CHECK(pi5::judge({op_kind::attention, dtype::s8, placement::npu}) == need_verdict::unit_absent);
  CHECK(pi5::judge({op_kind::attention, dtype::s4}) == need_verdict::illegal_dtype);
  CHECK(rk::judge({op_kind::matmul_i4, dtype::s4, placement::npu}) ==
        need_verdict::no_backend_on_unit);
  using bare = router<lab_board, latency_first<>>;
  CHECK(bare::judge({op_kind::matmul_i8, dtype::s8, placement::any, true}) ==
        need_verdict::only_reference);
  CHECK(bare::judge({op_kind::matmul_i8, dtype::s8, placement::any, false, true}) ==
        need_verdict::ok);
}

TEST_CASE("by shape: the roofline picks a different backend for a small and a large matmul") {
  lab_latency r;
  matmul_i8_args none;  // plan() reads only pointers, for alignment
  SUBCASE("16x16x16: launch costs dominate") {
    // ops 8192, bytes 256 + 256 + 1024 = 1536 -> 0.1536 us of memory everywhere.
    //   cpu 1 + 0.1536 = 1.1536   reference max(8192 / 2000, 0.1536) = 4.096
    //   gpu 10.1536               npu 20.1536
    const route_plan p = r.plan(mm_desc(16, 16, 16), none);
    CHECK(names<lab_latency>(p) == strings{"cpu-sim", "reference", "gpu-sim", "npu-sim"});
    CHECK(p.predicted_us[0] == doctest::Approx(1.1536).epsilon(1e-6));
    CHECK(p.predicted_us[1] == doctest::Approx(4.096).epsilon(1e-6));
    CHECK(p.predicted_us[2] == doctest::Approx(10.1536).epsilon(1e-6));
    CHECK(p.predicted_us[3] == doctest::Approx(20.1536).epsilon(1e-6));
  }
  SUBCASE("128x128x128: compute dominates the CPU, memory the rest") {
    // ops 4194304, bytes 16384 + 16384 + 65536 = 98304 -> 9.8304 us.
    //   gpu 10 + max(4.194, 9.830) = 19.8304   npu 20 + 9.8304 = 29.8304
    //   cpu 1 + 41.943 = 42.9430               reference 4194304 / 2000 = 2097.152
    const route_plan p = r.plan(mm_desc(128, 128, 128), none);
    CHECK(names<lab_latency>(p) == strings{"gpu-sim", "npu-sim", "cpu-sim", "reference"});
    CHECK(p.predicted_us[0] == doctest::Approx(19.8304).epsilon(1e-6));
    CHECK(p.predicted_us[1] == doctest::Approx(29.8304).epsilon(1e-6));
    CHECK(p.predicted_us[2] == doctest::Approx(42.94304).epsilon(1e-6));
    CHECK(p.predicted_us[3] == doctest::Approx(2097.152).epsilon(1e-6));
  }
  SUBCASE("a dimension past the board NPU's max_dim drops the NPU") {
    const route_plan p = r.plan(mm_desc(1, 16, 5000), none);
    for (const std::string& n : names<lab_latency>(p)) CHECK(n != "npu-sim");
    const route_plan q = r.plan(mm_desc(1, 16, 4096), none);
    CHECK(names<lab_latency>(q).size() == 4);
  }
}

TEST_CASE("energy-first and a vendor's own score rank the same shape differently") {
  // 128^3 (above): energy = time x W: gpu 19.83 x 10 = 198.3, npu 29.83 x 1 = 29.83,
  // cpu 42.94 x 2 = 85.89, reference 2097 x 2 = 4194.
  lab_energy e;
  matmul_i8_args none;
  CHECK(names<lab_energy>(e.plan(mm_desc(128, 128, 128), none)) ==
        strings{"npu-sim", "cpu-sim", "gpu-sim", "reference"});
  router<lab_board, npu_unless_twice_as_slow> v;
  // npu 29.83 / 2 = 14.9 < gpu 19.83.
  CHECK(names<decltype(v)>(v.plan(mm_desc(128, 128, 128), none))[0] == "npu-sim");
  // 16^3: npu 20.15 / 2 = 10.08 > cpu 1.15: the CPU still wins a tiny op.
  CHECK(names<decltype(v)>(v.plan(mm_desc(16, 16, 16), none))[0] == "cpu-sim");
}

TEST_CASE("by request: budgets, envelopes, risk class") {
  matmul_i8_args none;
  const matmul_i8_desc d = mm_desc(128, 128, 128);
  SUBCASE("a latency budget re-ranks energy-first: only the GPU meets 25 us") {
    lab_energy r;
    const route_plan p = r.plan(d, none, request{.latency_budget_us = 25});
    CHECK(names<lab_energy>(p) == strings{"gpu-sim", "npu-sim", "cpu-sim", "reference"});
    CHECK_FALSE(p.over_budget);
  }
  SUBCASE("an energy envelope re-ranks latency-first: only the NPU stays under 50 uJ") {
    lab_latency r;
    const route_plan p = r.plan(d, none, request{.energy_budget_uj = 50});
    CHECK(names<lab_latency>(p)[0] == "npu-sim");
  }
  SUBCASE("a budget nobody meets: soft runs the best anyway, hard runs nothing") {
    lab_latency r;
    const route_plan soft = r.plan(d, none, request{.latency_budget_us = 5});
    CHECK(soft.over_budget);
    CHECK(names<lab_latency>(soft)[0] == "gpu-sim");
    const route_plan hard = r.plan(d, none, request{.latency_budget_us = 5, .hard_budget = true});
    CHECK(hard.count == 0);
  }
  SUBCASE("safety-critical goes to bit-exact backends only") {
    router<lab_board, latency_first<cpu_sim, fast_gpu>> r;
    using R = decltype(r);
    CHECK(names<R>(r.plan(d, none))[0] == "fast-gpu");
    const route_plan p = r.plan(d, none, request{.risk = risk_class::safety_critical});
    CHECK(p.safety_critical);
    CHECK(names<R>(p) == strings{"cpu-sim", "reference"});
  }
}

TEST_CASE("run(): every choice returns the reference's bits") {
  testing::rng g(41);
  lab_latency r;
  for (int trial = 0; trial < 12; ++trial) {
    // Sizes on both sides of the CPU/GPU crossover; odd K, so no kernel gets a round one.
    const std::int64_t m = g.uniform_int(1, 96), n = g.uniform_int(1, 96);
    const std::int64_t k = std::int64_t{1} << g.uniform_int(0, 7) | 3;
    const dtype out = trial % 2 ? dtype::s8 : dtype::s32;
    mm_problem p(g, m, n, k, out);
    INFO("seed " << g.seed() << " M " << m << " N " << n << " K " << k << " out "
                 << to_string(out));
    route_report rep;
    const Status s = r.run(p.desc, p.args(), {}, &rep);
    REQUIRE(s.ok());
    CHECK(p.matches());
    CHECK(rep.attempts == 1);
    CHECK_FALSE(rep.fell_back);
    // The backend that ran it is the one plan() puts first.
    CHECK(rep.backend == lab_latency::caps[r.plan(p.desc, p.args()).order[0]].name);
  }
  // Both ends of the crossover were exercised by name.
  mm_problem small(g, 16, 16, 16, dtype::s32), large(g, 128, 128, 128, dtype::s32);
  route_report a, b;
  REQUIRE(r.run(small.desc, small.args(), {}, &a).ok());
  REQUIRE(r.run(large.desc, large.args(), {}, &b).ok());
  CHECK(a.backend == "cpu-sim");
  CHECK(b.backend == "gpu-sim");
  CHECK(small.matches());
  CHECK(large.matches());
}

TEST_CASE("run(): bad input is the caller's, not retried, and writes nothing") {
  testing::rng g(42);
  lab_latency r;
  mm_problem p(g, 8, 8, 8, dtype::s32);
  matmul_i8_args a = p.args();
  a.b_scale = {};  // s32 output ignores scales: break the bias count instead
  std::vector<std::int32_t> short_bias(3, 1);
  a.bias = short_bias;
  route_report rep;
  const Status s = r.run(p.desc, a, {}, &rep);
  CHECK(s.code() == status_code::shape_mismatch);
  CHECK(rep.attempts == 1);
  CHECK(p.out.untouched());
  CHECK(r.trace().size() == 1);
  CHECK(r.trace().back().result == status_code::shape_mismatch);
  for (std::size_t i = 0; i < lab_latency::backend_count; ++i) CHECK_FALSE(r.health(i).held_out);
  // A hard budget nobody meets runs nothing and says why.
  mm_problem q(g, 128, 128, 128, dtype::s32);
  const Status h = r.run(q.desc, q.args(), request{.latency_budget_us = 1, .hard_budget = true});
  CHECK(h.code() == status_code::unsupported);
  CHECK(std::string(h.message()).find("hard budget") != std::string::npos);
  CHECK(q.out.untouched());
}

TEST_CASE("candidates that need aligned buffers are passed over for misaligned ones") {
  router<lab_board, latency_first<picky>> r;
  testing::rng g(43);
  mm_problem p(g, 4, 4, 4, dtype::s32);
  std::vector<std::uint8_t> storage(p.a.size() + 128);
  std::uint8_t* aligned =
      storage.data() + (64 - reinterpret_cast<std::uintptr_t>(storage.data()) % 64);
  std::memcpy(aligned + 1, p.a.data(), p.a.size());
  matmul_i8_args a = p.args();
  a.a = view(static_cast<const std::uint8_t*>(aligned + 1), {4, 4});
  route_report rep;
  REQUIRE(r.run(p.desc, a, {}, &rep).ok());
  CHECK(rep.backend == "reference");
  CHECK(p.matches());
}

TEST_CASE("a backend's own cost model replaces the roofline") {
  router<lab_board, latency_first<cpu_sim, modelled>> r;
  using R = decltype(r);
  matmul_i8_args none;
  const route_plan p = r.plan(mm_desc(16, 16, 16), none);  // cpu 1.1536 without the model
  CHECK(names<R>(p)[0] == "npu-sim");
  CHECK(p.predicted_us[0] == 0.5f);
}

TEST_CASE("the trace: one entry per attempt, a ring that wraps, one line each") {
  router<lab_board, small_trace> r;
  testing::rng g(44);
  mm_problem p(g, 16, 16, 16, dtype::s32);
  for (int i = 0; i < 6; ++i) REQUIRE(r.run(p.desc, p.args()).ok());
  CHECK(r.trace().total() == 6);
  REQUIRE(r.trace().size() == 4);
  CHECK(r.trace()[0].request == 3);  // the oldest kept
  CHECK(r.trace().back().request == 6);
  const trace_entry& e = r.trace().back();
  CHECK(e.op == op_kind::matmul_i8);
  CHECK(e.backend == "cpu-sim");
  CHECK(e.reason == trace_reason::lowest_cost);
  CHECK(e.shape[1] == 16);
  CHECK(e.predicted_us == doctest::Approx(1.1536).epsilon(1e-6));
  CHECK(e.measured_us > 0);

  char line[512];
  format_trace_entry(e, line, sizeof line);
  CHECK(std::string(line) ==
        "#6 matmul_i8/s8 [B1 M16 N16 K16] -> cpu-sim (attempt 1, lowest cost): ok; predicted "
        "1.15 us, measured " +
            [&] {
              char m[32];
              std::snprintf(m, sizeof m, "%.3g", static_cast<double>(e.measured_us));
              return std::string(m);
            }() +
            " us");
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  r.trace().print(f);
  std::rewind(f);
  std::string text;
  for (int c; (c = std::fgetc(f)) != EOF;) text += static_cast<char>(c);
  std::fclose(f);
  CHECK(text.find("(2 older entries overwritten)") == 0);
  CHECK(std::count(text.begin(), text.end(), '\n') == 5);
  r.clear_trace();
  CHECK(r.trace().size() == 0);
}

TEST_CASE("a disabled trace is compiled out") {
  using off = router<lab_board, no_trace>;
  using on = router<lab_board, latency_first<cpu_sim>>;
  static_assert(std::is_empty_v<decision_trace<0>>);
  static_assert(!std::remove_cvref_t<decltype(std::declval<off&>().trace())>::enabled);
  // No ring buffer in the object: only health and counters remain.
  static_assert(sizeof(on) - sizeof(off) >= 256 * sizeof(trace_entry));
  off r;
  testing::rng g(45);
  mm_problem p(g, 8, 8, 8, dtype::s32);
  route_report rep;
  REQUIRE(r.run(p.desc, p.args(), {}, &rep).ok());
  CHECK(p.matches());
  CHECK(r.trace().size() == 0);
  CHECK(rep.measured_us > 0);  // a report asks for timing even without a trace
}
