// bench_router — what a routing decision costs.
//
// The router's work per call is: the op's work from its desc, one prediction per candidate
// (roofline, or the backend's own model), a ranking under the request's budgets and the policy's
// score, the health pass, the trace entry and, when timing, two clock reads around the backend.
// To time only that, the backends here do nothing (null backends posing as cpu, gpu and npu), so
// a routed call minus a direct call to the same null backend is the router's overhead. Target:
// under 100 ns per decision with the trace enabled (issue 4).
//
// Rows (names op/impl/shape, as every keel benchmark):
//   router/direct_call/<op>          the null backend called directly: the baseline
//   router/plan/<op>                 the decision alone: filter, predict, rank, health
//   router/run_trace_on/<op>         a routed call with a 256-entry trace (clock reads included)
//   router/run_trace_off/<op>        the same with trace_capacity = 0 (no clock reads, no entry)
//   router/trace_record              one entry into the ring
// Cache state: warm (the same desc every iteration); the decision reads no tensor data.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "keel/backends/reference.hpp"
#include "keel/boards/rk3588.hpp"
#include "keel/router/fault_injection.hpp"
#include "keel/router/router.hpp"

namespace {

using namespace keel;

// A backend that accepts everything and does nothing.
class null_backend {
 public:
  static constexpr backend_caps caps = backends::reference_backend::caps;
  using packed_matmul_i8 = backends::reference_backend::packed_matmul_i8;
  using packed_matmul_i4 = backends::reference_backend::packed_matmul_i4;
  using packed_conv2d = backends::reference_backend::packed_conv2d;
  template <class Desc>
  Status supports(const Desc&) const {
    return Status::Ok();
  }
  template <class Desc, class Args>
  Status run(const Desc&, const Args&) {
    return Status::Ok();
  }
  template <class Desc, class Args>
  Result<backends::reference_backend::packed_views<Desc, Args>> pack(const Desc& d, const Args&) {
    return backends::reference_backend::packed_views<Desc, Args>{d, {}};
  }
  template <class Desc, class Packed, class Args>
  Status run(const Desc&, const Packed&, const Args&) {
    return Status::Ok();
  }
};
static_assert(backend<null_backend>);

struct as_cpu {
  static constexpr std::string_view name = "cpu";
  static constexpr backend_kind kind = backend_kind::cpu;
};
struct as_gpu {
  static constexpr std::string_view name = "gpu";
  static constexpr backend_kind kind = backend_kind::gpu;
};
struct as_npu {
  static constexpr std::string_view name = "npu";
  static constexpr backend_kind kind = backend_kind::npu;
};
using cpu = faulty_backend<null_backend, as_cpu>;
using gpu = faulty_backend<null_backend, as_gpu>;
using npu = faulty_backend<null_backend, as_npu>;

// Four candidates for matmul_i8 and conv2d on the RK3588 (cpu, gpu, npu, reference).
using traced = router<boards::rk3588, latency_first<cpu, gpu, npu>>;
struct quiet_policy : latency_first<cpu, gpu, npu> {
  static constexpr std::size_t trace_capacity = 0;
};
using quiet = router<boards::rk3588, quiet_policy>;

matmul_i8_desc matmul_desc() {
  matmul_i8_desc d;
  d.m = 128;
  d.n = 4096;
  d.k = 4096;
  return d;
}
conv2d_desc conv_desc() {
  conv2d_desc d;
  d.in_h = d.in_w = 56;
  d.in_c = 64;
  d.out_c = 128;
  d.kernel_h = d.kernel_w = 3;
  d.padding = padding_mode::same_upper;
  return d;
}

template <class Desc, class Args>
void direct_call(benchmark::State& state, Desc d) {
  cpu b;
  const Args a{};
  for (auto _ : state) {
    benchmark::DoNotOptimize(d);
    Status s = b.run(d, a);
    benchmark::DoNotOptimize(s);
  }
}

template <class R, class Desc, class Args>
void plan(benchmark::State& state, Desc d) {
  R r;
  const Args a{};
  for (auto _ : state) {
    benchmark::DoNotOptimize(d);
    route_plan p = r.plan(d, a);
    benchmark::DoNotOptimize(p);
  }
}

template <class R, class Desc, class Args>
void run(benchmark::State& state, Desc d) {
  static R r;  // the traced router holds a 256-entry ring: keep it off the stack
  const Args a{};
  for (auto _ : state) {
    benchmark::DoNotOptimize(d);
    Status s = r.run(d, a);
    benchmark::DoNotOptimize(s);
  }
  if (r.requests() == 0) state.SkipWithError("nothing was routed");
}

void trace_record(benchmark::State& state) {
  static decision_trace<256> t;
  trace_entry e;
  e.backend = "cpu";
  for (auto _ : state) {
    benchmark::DoNotOptimize(e);
    t.record(e);
    benchmark::ClobberMemory();
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::RegisterBenchmark("router/direct_call/matmul_i8",
                               direct_call<matmul_i8_desc, matmul_i8_args>, matmul_desc());
  benchmark::RegisterBenchmark("router/plan/matmul_i8",
                               plan<traced, matmul_i8_desc, matmul_i8_args>, matmul_desc());
  benchmark::RegisterBenchmark("router/run_trace_on/matmul_i8",
                               run<traced, matmul_i8_desc, matmul_i8_args>, matmul_desc());
  benchmark::RegisterBenchmark("router/run_trace_off/matmul_i8",
                               run<quiet, matmul_i8_desc, matmul_i8_args>, matmul_desc());
  benchmark::RegisterBenchmark("router/direct_call/conv2d_i8",
                               direct_call<conv2d_desc, conv2d_args>, conv_desc());
  benchmark::RegisterBenchmark("router/plan/conv2d_i8", plan<traced, conv2d_desc, conv2d_args>,
                               conv_desc());
  benchmark::RegisterBenchmark("router/run_trace_on/conv2d_i8",
                               run<traced, conv2d_desc, conv2d_args>, conv_desc());
  benchmark::RegisterBenchmark("router/run_trace_off/conv2d_i8",
                               run<quiet, conv2d_desc, conv2d_args>, conv_desc());
  benchmark::RegisterBenchmark("router/trace_record", trace_record);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
