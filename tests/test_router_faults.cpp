// keel::router under injected faults: a backend that fails every Nth call, one that times out,
// one whose device is lost and comes back. Every request completes with the reference's bits,
// the circuit breaker holds failed backends out until a probe passes, and the trace says what
// happened, attempt by attempt.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "keel/backends/cpu.hpp"
#include "keel/backends/npu/profiles.hpp"
#include "keel/boards/rk3588.hpp"
#include "keel/kernels/reference/matmul_i4.hpp"
#include "test_router_common.hpp"

using namespace keel;
using namespace keel::router_testing;

namespace {

// A vendor's fixed preference, GPU over NPU over CPU, whatever the shape: the fault tests then
// know the fallback order without computing predictions. Probes come after 4 passes.
struct gpu_npu_cpu : policy_defaults {
  using backends = backend_list<cpu_sim, gpu_sim, npu_sim>;
  static constexpr std::uint32_t probe_interval = 4;
  static constexpr std::uint32_t probe_interval_max = 16;
  static constexpr std::size_t trace_capacity = 1024;
  static constexpr double score(const estimate& e) {
    switch (e.kind) {
      case backend_kind::gpu: return 1;
      case backend_kind::npu: return 2;
      case backend_kind::cpu: return 3;
      default: return 4;
    }
  }
};
using R = router<lab_board, gpu_npu_cpu>;
constexpr std::size_t kCpu = 0, kGpu = 1, kNpu = 2, kRef = 3;

// Runs one random matmul_i8 through r and checks it against the reference, byte for byte.
route_report run_one(R& r, testing::rng& g, Status* status = nullptr) {
  const std::int64_t m = g.uniform_int(1, 24), n = g.uniform_int(1, 24);
  const std::int64_t k = g.uniform_int(1, 40);
  const dtype out = g.uniform_int(0, 1) ? dtype::s8 : dtype::s32;
  mm_problem p(g, m, n, k, out);
  INFO("seed " << g.seed() << " M " << m << " N " << n << " K " << k);
  route_report rep;
  const Status s = r.run(p.desc, p.args(), {}, &rep);
  CHECK(s.ok());
  CHECK(p.matches());
  if (status) *status = s;
  return rep;
}

// The trace entries of one request, oldest first.
std::vector<trace_entry> attempts_of(const R& r, std::uint64_t request) {
  std::vector<trace_entry> v;
  for (std::size_t i = 0; i < r.trace().size(); ++i) {
    if (r.trace()[i].request == request) v.push_back(r.trace()[i]);
  }
  return v;
}

}  // namespace

TEST_CASE("fail every 3rd call: retried on the next candidate, held out, probed back") {
  testing::rng g(51);
  R r;
  r.backend<gpu_sim>().set_plan({.fail_every = 3, .code = status_code::device_lost});
  // By hand: gpu calls 1, 2 pass (requests 1, 2); call 3 fails (request 3, served by the npu)
  // and opens the breaker; requests 4-7 pass the gpu over (4 passes = probe_interval); request
  // 8 probes it (call 4 passes: back in service); 9 is call 5; 10 is call 6 and fails again.
  for (int i = 0; i < 10; ++i) run_one(r, g);
  const auto on = [&](std::uint64_t req) { return attempts_of(r, req); };
  for (std::uint64_t req : {1u, 2u, 9u}) {
    INFO("request " << req);
    REQUIRE(on(req).size() == 1);
    CHECK(on(req)[0].backend == "gpu-sim");
    CHECK(on(req)[0].flags == 0);
  }
  for (std::uint64_t req : {3u, 10u}) {
    INFO("request " << req);
    const auto a = on(req);
    REQUIRE(a.size() == 2);
    CHECK(a[0].backend == "gpu-sim");
    CHECK(a[0].result == status_code::device_lost);
    CHECK((a[0].flags & trace_flag::breaker_opened) != 0);
    CHECK(a[1].backend == "npu-sim");
    CHECK(a[1].attempt == 2);
    CHECK(a[1].reason == trace_reason::retry_after_fault);
    CHECK(a[1].result == status_code::ok);
  }
  for (std::uint64_t req : {4u, 5u, 6u, 7u}) {
    INFO("request " << req);
    REQUIRE(on(req).size() == 1);
    CHECK(on(req)[0].backend == "npu-sim");
    CHECK((on(req)[0].flags & trace_flag::held_out) != 0);
  }
  REQUIRE(on(8).size() == 1);
  CHECK(on(8)[0].backend == "gpu-sim");
  CHECK(on(8)[0].reason == trace_reason::probe);
  CHECK((on(8)[0].flags & trace_flag::breaker_closed) != 0);
  CHECK(r.backend<gpu_sim>().calls() == 6);
  CHECK(r.backend<gpu_sim>().faults() == 2);
  CHECK(r.health(kGpu).held_out);
  CHECK(r.health(kGpu).faults == 2);
  CHECK(r.health(kGpu).probes == 1);

  // Many more: every request still gets the reference's bits (run_one checks), whichever
  // backend served it.
  for (int i = 0; i < 150; ++i) run_one(r, g);
  std::uint64_t ok = 0;
  for (std::size_t i = 0; i < r.trace().size(); ++i) ok += r.trace()[i].result == status_code::ok;
  CHECK(ok == 160);  // exactly one success per request
}

TEST_CASE("a backend that times out: the request waits for it, then runs elsewhere") {
  testing::rng g(52);
  R r;
  r.backend<gpu_sim>().set_plan({.fail_every = 1, .code = status_code::timeout, .delay_us = 2000});
  route_report rep = run_one(r, g);
  CHECK(rep.backend == "npu-sim");
  CHECK(rep.attempts == 2);
  CHECK(rep.fell_back);
  CHECK(rep.first_failure == status_code::timeout);
  const auto a = attempts_of(r, 1);
  REQUIRE(a.size() == 2);
  CHECK(a[0].result == status_code::timeout);
  CHECK(a[0].measured_us >= 2000.0f);  // the trace shows the time the timeout cost
  CHECK(a[1].reason == trace_reason::retry_after_fault);
  // Held out now: the next request does not wait for it.
  rep = run_one(r, g);
  CHECK(rep.backend == "npu-sim");
  CHECK(rep.attempts == 1);
  CHECK(rep.held_out);
  CHECK(r.backend<gpu_sim>().calls() == 1);
}

TEST_CASE("a lost device: held out, probes back off, a revived device is put back in service") {
  testing::rng g(53);
  R r;
  r.backend<gpu_sim>().set_plan({.lose_device_after = 5});
  for (int i = 0; i < 5; ++i) CHECK(run_one(r, g).backend == "gpu-sim");
  CHECK_FALSE(r.health(kGpu).held_out);

  // Call 6 finds the device gone.
  route_report rep = run_one(r, g);
  CHECK(rep.backend == "npu-sim");
  CHECK(rep.first_failure == status_code::device_lost);
  CHECK(r.health(kGpu).held_out);
  CHECK(r.health(kGpu).probe_interval == 4);

  // 4 passes, then a probe that fails: the wait doubles to 8, then 16 (the policy's maximum).
  auto count_gpu_calls = [&](int requests) {
    const std::uint64_t before = r.backend<gpu_sim>().calls();
    for (int i = 0; i < requests; ++i) run_one(r, g);
    return r.backend<gpu_sim>().calls() - before;
  };
  CHECK(count_gpu_calls(4) == 0);
  CHECK(count_gpu_calls(1) == 1);  // the probe
  CHECK(r.health(kGpu).probe_interval == 8);
  CHECK(count_gpu_calls(8) == 0);
  CHECK(count_gpu_calls(1) == 1);
  CHECK(r.health(kGpu).probe_interval == 16);
  CHECK(count_gpu_calls(16) == 0);
  CHECK(count_gpu_calls(1) == 1);
  CHECK(r.health(kGpu).probe_interval == 16);  // capped
  CHECK(r.health(kGpu).probes == 3);

  // The device comes back; the next probe passes and the GPU serves again.
  r.backend<gpu_sim>().revive();
  CHECK(count_gpu_calls(16) == 0);
  rep = run_one(r, g);
  CHECK(rep.backend == "gpu-sim");
  CHECK(rep.attempts == 1);
  CHECK_FALSE(r.health(kGpu).held_out);
  CHECK(r.health(kGpu).probe_interval == 4);
  const trace_entry& e = r.trace().back();
  CHECK(e.reason == trace_reason::probe);
  CHECK((e.flags & trace_flag::breaker_closed) != 0);
  char line[512];
  format_trace_entry(e, line, sizeof line);
  CHECK(std::string(line).find("probe passed, backend back in service") != std::string::npos);
  CHECK(run_one(r, g).backend == "gpu-sim");
}

TEST_CASE("every accelerator lost: the reference serves, and then alone") {
  testing::rng g(54);
  R r;
  r.backend<gpu_sim>().lose_device();
  r.backend<npu_sim>().set_plan({.fail_every = 1, .code = status_code::out_of_memory});
  r.backend<cpu_sim>().lose_device();
  route_report rep = run_one(r, g);
  CHECK(rep.backend == "reference");
  CHECK(rep.attempts == 4);
  CHECK(rep.first_failure == status_code::device_lost);
  const auto a = attempts_of(r, 1);
  REQUIRE(a.size() == 4);
  CHECK(a[0].backend == "gpu-sim");
  CHECK(a[1].backend == "npu-sim");
  CHECK(a[1].result == status_code::out_of_memory);
  CHECK(a[2].backend == "cpu-sim");
  CHECK(a[3].backend == "reference");
  CHECK(a[3].reason == trace_reason::retry_after_fault);
  for (std::size_t i : {kGpu, kNpu, kCpu}) CHECK(r.health(i).held_out);
  CHECK_FALSE(r.health(kRef).held_out);
  // Held out, they cost nothing until their probes are due.
  rep = run_one(r, g);
  CHECK(rep.backend == "reference");
  CHECK(rep.attempts == 1);
  CHECK(rep.held_out);
  for (int i = 0; i < 40; ++i) run_one(r, g);  // probes come and fail; requests still complete
  // An operator who knows the devices are back can put every backend in service at once.
  r.backend<gpu_sim>().revive();
  r.backend<npu_sim>().set_plan({});
  r.backend<cpu_sim>().revive();
  r.reset_health();
  for (std::size_t i : {kGpu, kNpu, kCpu}) CHECK_FALSE(r.health(i).held_out);
  CHECK(run_one(r, g).backend == "gpu-sim");
}

TEST_CASE("a failed backend's garbage never reaches the caller") {
  testing::rng g(55);
  R r;
  // scribble: each failing call fills the output with 0xEE before it reports the fault.
  r.backend<gpu_sim>().set_plan({.fail_every = 2, .scribble = true});
  r.backend<npu_sim>().set_plan({.fail_every = 3, .scribble = true});
  for (int i = 0; i < 60; ++i) run_one(r, g);
  CHECK(r.backend<gpu_sim>().faults() > 0);
  CHECK(r.backend<npu_sim>().faults() > 0);
}

TEST_CASE("unsupported is not a fault: next candidate, no breaker") {
  testing::rng g(56);
  R r;
  r.backend<gpu_sim>().set_plan({.fail_every = 1, .code = status_code::unsupported});
  for (int i = 0; i < 3; ++i) {
    const route_report rep = run_one(r, g);
    CHECK(rep.backend == "npu-sim");
    CHECK(rep.attempts == 2);
  }
  CHECK_FALSE(r.health(kGpu).held_out);
  CHECK(r.backend<gpu_sim>().calls() == 3);  // asked every time: it may take other shapes
  CHECK(r.trace().back().reason == trace_reason::retry_after_unsupported);
}

TEST_CASE("matmul_i4 under faults: the reference's f32 bits, every time") {
  testing::rng g(57);
  R r;
  r.backend<gpu_sim>().set_plan({.fail_every = 2, .code = status_code::timeout});
  for (int trial = 0; trial < 20; ++trial) {
    matmul_i4_desc d;
    d.m = g.uniform_int(1, 4);
    d.n = g.uniform_int(1, 16);
    d.k = 32 * g.uniform_int(1, 3);
    d.group_size = 32;
    d.b_type = dtype::s4;
    std::vector<float> a(static_cast<std::size_t>(d.m * d.k));
    std::vector<std::uint8_t> w(static_cast<std::size_t>(d.n * d.k / 2));
    std::vector<float> scale(static_cast<std::size_t>(d.n * d.groups()));
    g.fill(a, -2.0f, 2.0f);
    g.fill(w, 0, 255);
    g.fill(scale, 0.01f, 0.1f);
    matmul_i4_args args;
    args.a = view(a.data(), {d.m, d.k});
    args.b = view_int4(w.data(), dtype::s4, {d.n, d.k});
    args.scale = view(static_cast<const float*>(scale.data()), {d.n, d.groups()});
    std::vector<float> expected(static_cast<std::size_t>(d.m * d.n));
    args.out = view(expected.data(), {d.m, d.n});
    REQUIRE(reference::matmul_i4(d, args).ok());
    testing::guarded<float> out(expected.size());
    args.out = view(out.data(), {d.m, d.n});
    INFO("seed " << g.seed() << " M " << d.m << " N " << d.n << " K " << d.k);
    REQUIRE(r.run(d, args).ok());
    CHECK(out.guards_intact());
    CHECK(std::memcmp(out.data(), expected.data(), expected.size() * sizeof(float)) == 0);
  }
  CHECK(r.backend<gpu_sim>().faults() > 0);
}

TEST_CASE("packed weights: each backend packs a layer once, a fallback packs its own") {
  testing::rng g(58);
  R r;
  mm_problem p(g, 12, 20, 36, dtype::s8);
  Result<R::weights<matmul_i8_desc>> w = R::pack(p.desc, p.args());
  REQUIRE(w.ok());
  CHECK_FALSE(w->packed_by(kGpu));
  for (int i = 0; i < 5; ++i) {
    INFO("call " << i);
    REQUIRE(r.run(p.desc, w.value(), p.args()).ok());
    CHECK(p.matches());
  }
  CHECK(r.backend<gpu_sim>().packs() == 1);  // packed on the first call, reused after
  CHECK(w->packed_by(kGpu));
  CHECK_FALSE(w->packed_by(kNpu));

  // The GPU's device goes: the NPU takes over and packs the layer once for itself.
  r.backend<gpu_sim>().lose_device();
  for (int i = 0; i < 3; ++i) {
    route_report rep;
    REQUIRE(r.run(p.desc, w.value(), p.args(), {}, &rep).ok());
    CHECK(rep.backend == "npu-sim");
    CHECK(p.matches());
  }
  CHECK(r.backend<npu_sim>().packs() == 1);
  CHECK(w->packed_by(kNpu));
  // A layer whose desc no backend could run is refused at pack time.
  matmul_i8_desc bad = p.desc;
  bad.k = 0;
  CHECK(R::pack(bad, p.args()).status().code() == status_code::invalid_argument);
}

namespace {
// keel's real backends on the RK3588, with a vendor's preference for its NPU whatever the shape.
struct rk3588_npu_first : policy_defaults {
  using backends = backend_list<backends::cpu_backend, npu::rk3588_vnpu_backend>;
  static constexpr std::uint32_t probe_interval = 4;
  static constexpr double score(const estimate& e) {
    return e.kind == backend_kind::npu ? 0.0 : e.time_us;
  }
};
using rk_router = router<boards::rk3588, rk3588_npu_first>;
}  // namespace

TEST_CASE("real backends: the virtual NPU loses its device, the cpu backend serves, bit for bit") {
  testing::rng g(59);
  rk_router r;
  auto& vnpu = r.backend<npu::rk3588_vnpu_backend>().driver();
  vnpu.set_fault(0, npu::fault_rule{.kind = npu::fault_kind::device_lost, .every_nth = 3});
  auto run_real = [&] {
    // Big enough that the cpu backend (8 us launch) beats the reference (4800 ops/us): at
    // least 2 x 16 x 32 x 64 = 65536 ops, 13.7 us on the reference.
    mm_problem p(g, g.uniform_int(16, 32), g.uniform_int(32, 48), g.uniform_int(64, 80), dtype::s8);
    INFO("seed " << g.seed() << " M " << p.desc.m << " N " << p.desc.n << " K " << p.desc.k);
    route_report rep;
    REQUIRE(r.run(p.desc, p.args(), {}, &rep).ok());
    CHECK(p.matches());
    return rep;
  };
  // Submissions 1 and 2 pass; the 3rd loses the device (and it stays lost until reset()).
  CHECK(run_real().backend == "rk3588_npu");
  CHECK(run_real().backend == "rk3588_npu");
  route_report rep = run_real();
  CHECK(rep.backend == "cpu");
  CHECK(rep.first_failure == status_code::device_lost);
  CHECK(r.health(1).held_out);
  // Held out for 4 calls, then probed: still lost, so the cpu serves that one too.
  for (int i = 0; i < 5; ++i) CHECK(run_real().backend == "cpu");
  CHECK(r.health(1).probes == 1);
  vnpu.clear_faults();
  vnpu.reset();  // the driver reloads
  int npu_calls = 0;
  for (int i = 0; i < 10; ++i) npu_calls += run_real().backend == "rk3588_npu";
  CHECK_FALSE(r.health(1).held_out);
  // The failed probe doubled the wait to 8: 8 passes, the probe (it passes), one more.
  CHECK(npu_calls == 2);
}
