// bench/bench_vnpu.cpp — the virtual NPU: how fast it simulates, and what it predicts.
//
//   gemm_u8s8_s8/keel_vnpu/M128_N1152_K384_rk3588     one op run through npu_backend on the
//   conv_u8s8_s8/keel_vnpu/N1_H56_W56_C64_O64_K3_S1_imx8mp   virtual NPU in a profile's
//                                                     configuration: functional model, timing
//                                                     model, staging; host time per op
//   predict_gemm_u8s8_s8/keel_vnpu/...                the same op's prediction alone (tiling,
//                                                     command stream, schedule; not memoised):
//                                                     what a cold estimate() costs the router
//
// Counters of every row:
//   sim_macs     simulated MACs per host second (the simulator's own throughput)
//   pred_cycles  predicted device cycles of one op (launch included)
//   pred_us      the same in microseconds at the profile's clock
//   array_util   useful MACs / (predicted cycles without the launch x MACs per cycle): how
//                much of its peak the profile's NPU reaches on the shape once the job runs
//   dram_bytes   bytes the DMA moves for one op
// Shapes are model-shaped: MiniLM-L6 (hidden 384, 128 tokens: QKV projection, FFN up and down),
// an LLM decode GEMV (4096 x 4096), ResNet-50's and MobileNetV2's convolutions. Operands are
// random and stay warm (the simulator reads them from host memory; its cost does not depend on
// where they sit in the host's caches as much as on the MAC count).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "keel/backends/npu.hpp"
#include "keel/keel.hpp"

namespace {

using namespace keel;
using namespace keel::npu;

struct mm_shape {
  std::int64_t m, n, k;
};

struct conv_shape {
  std::int64_t h, w, c, o, k, stride, groups;
};

const mm_shape kMatmuls[] = {
    {128, 1152, 384},  // MiniLM-L6: fused QKV projection
    {128, 1536, 384},  // MiniLM-L6: FFN up
    {128, 384, 1536},  // MiniLM-L6: FFN down
    {1, 4096, 4096},   // LLM decode: one token through a 4096 x 4096 projection
};

const conv_shape kConvs[] = {
    {224, 224, 3, 32, 3, 2, 1},    // MobileNetV2: the stem
    {112, 112, 32, 32, 3, 1, 32},  // MobileNetV2: depthwise 3x3
    {56, 56, 24, 144, 1, 1, 1},    // MobileNetV2: pointwise expansion
    {56, 56, 64, 64, 3, 1, 1},     // ResNet-50: a 3x3 of stage 2
};

// Names are built by appending: GCC 12 at -O3 warns (-Wrestrict, a false positive) on
// "literal" + std::string chains.
std::string join(std::initializer_list<std::string_view> parts) {
  std::string n;
  for (std::string_view p : parts) n.append(p.data(), p.size());
  return n;
}

std::string mm_name(const mm_shape& s) {
  return join({"M", std::to_string(s.m), "_N", std::to_string(s.n), "_K", std::to_string(s.k)});
}

std::string conv_name(const conv_shape& s) {
  std::string n =
      join({"N1_H", std::to_string(s.h), "_W", std::to_string(s.w), "_C", std::to_string(s.c), "_O",
            std::to_string(s.o), "_K", std::to_string(s.k), "_S", std::to_string(s.stride)});
  if (s.groups > 1) n = join({n, "_G", std::to_string(s.groups)});
  return n;
}

template <class T>
std::vector<T> random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> d(-128, 127);
  std::vector<T> v(n);
  for (T& x : v) x = static_cast<T>(d(gen));
  return v;
}

matmul_i8_desc mm_desc(const mm_shape& s) {
  matmul_i8_desc d;
  d.m = s.m;
  d.n = s.n;
  d.k = s.k;
  d.a_type = dtype::u8;
  d.b_type = dtype::s8;
  d.a_zero_point = 128;
  d.a_scale = 0.02f;
  d.out.type = dtype::s8;
  d.out.scale = 0.5f;
  return d;
}

conv2d_desc conv_desc(const conv_shape& s) {
  conv2d_desc d;
  d.in_h = s.h;
  d.in_w = s.w;
  d.in_c = s.c;
  d.out_c = s.o;
  d.kernel_h = d.kernel_w = s.k;
  d.stride_h = d.stride_w = s.stride;
  d.groups = s.groups;
  d.padding = padding_mode::same_upper;
  d.in_type = dtype::u8;
  d.w_type = dtype::s8;
  d.in_zero_point = 128;
  d.in_scale = 0.02f;
  d.out.type = dtype::s8;
  d.out.scale = 0.5f;
  return d;
}

void set_counters(benchmark::State& state, const cycle_estimate& e, const vnpu_config& c) {
  using benchmark::Counter;
  const double macs_per_cycle = static_cast<double>(c.mac_rows * c.mac_cols);
  const double op_cycles = static_cast<double>(e.cycles - c.launch_cycles);
  state.counters["sim_macs"] =
      Counter(static_cast<double>(e.macs), Counter::kIsIterationInvariantRate);
  state.counters["pred_cycles"] = Counter(static_cast<double>(e.cycles));
  state.counters["pred_us"] = Counter(e.seconds * 1e6);
  state.counters["array_util"] =
      Counter(static_cast<double>(e.macs) / (op_cycles * macs_per_cycle));
  state.counters["dram_bytes"] = Counter(static_cast<double>(e.dram_bytes));
}

// One op through the adapter on the virtual NPU: staging, functional and timing model.
template <class Backend>
void bm_matmul(benchmark::State& state, mm_shape s) {
  Backend npu;
  const matmul_i8_desc d = mm_desc(s);
  const auto a = random_bytes<std::uint8_t>(static_cast<std::size_t>(s.m * s.k), 1);
  const auto b = random_bytes<std::int8_t>(static_cast<std::size_t>(s.k * s.n), 2);
  std::vector<std::int8_t> out(static_cast<std::size_t>(s.m * s.n));
  const std::vector<float> scale(static_cast<std::size_t>(s.n), 0.01f);
  matmul_i8_args args;
  args.a = view(a.data(), {s.m, s.k});
  args.b = view(b.data(), {s.k, s.n});
  args.b_scale = scale;
  args.out = view(out.data(), {s.m, s.n});
  Result<typename Backend::packed_matmul_i8> packed = npu.pack(d, args);
  const Result<cycle_estimate> e = npu.estimate(d);
  if (!packed.ok() || !e.ok()) {
    state.SkipWithError(packed.ok() ? e.status().message() : packed.status().message());
    return;
  }
  for (auto _ : state) {
    const Status st = npu.run(d, packed.value(), args);
    if (!st.ok()) {
      state.SkipWithError(st.message());
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  set_counters(state, e.value(), npu.driver().config());
}

template <class Backend>
void bm_conv(benchmark::State& state, conv_shape s) {
  Backend npu;
  const conv2d_desc d = conv_desc(s);
  const conv2d_geometry g = conv2d_output_geometry(d).value();
  const auto x = random_bytes<std::uint8_t>(static_cast<std::size_t>(s.h * s.w * s.c), 3);
  const auto w =
      random_bytes<std::int8_t>(static_cast<std::size_t>(s.o * s.k * s.k * (s.c / s.groups)), 4);
  std::vector<std::int8_t> out(static_cast<std::size_t>(g.out_h * g.out_w * s.o));
  const std::vector<float> scale(static_cast<std::size_t>(s.o), 0.01f);
  conv2d_args args;
  args.input = view(x.data(), {1, s.h, s.w, s.c});
  args.weights = view(w.data(), {s.o, s.k, s.k, s.c / s.groups});
  args.w_scale = scale;
  args.out = view(out.data(), {1, g.out_h, g.out_w, s.o});
  Result<typename Backend::packed_conv2d> packed = npu.pack(d, args);
  const Result<cycle_estimate> e = npu.estimate(d);
  if (!packed.ok() || !e.ok()) {
    state.SkipWithError(packed.ok() ? e.status().message() : packed.status().message());
    return;
  }
  for (auto _ : state) {
    const Status st = npu.run(d, packed.value(), args);
    if (!st.ok()) {
      state.SkipWithError(st.message());
      break;
    }
    benchmark::DoNotOptimize(out.data());
  }
  set_counters(state, e.value(), npu.driver().config());
}

// A cold prediction: tile, write the stream, schedule it (what estimate() does on a miss).
void bm_predict(benchmark::State& state, npu_op op, vnpu_config cfg) {
  cycle_estimate last;
  for (auto _ : state) {
    vnpu::command_stream s;
    const Status st = vnpu::build_stream(op, cfg, s);
    if (!st.ok()) {
      state.SkipWithError(st.message());
      break;
    }
    const vnpu::timing_report t = vnpu::simulate_timing(s, cfg);
    benchmark::DoNotOptimize(t.cycles);
    last = {t.cycles, t.seconds, t.macs, t.dram_bytes, t.commands};
  }
  state.counters["pred_cycles"] = benchmark::Counter(static_cast<double>(last.cycles));
  state.counters["commands"] = benchmark::Counter(static_cast<double>(last.commands));
}

template <class Profile>
void register_profile() {
  using B = npu_backend<profiled_virtual_npu<Profile>>;
  const std::string_view profile = Profile::name.substr(0, Profile::name.find('_'));
  for (const mm_shape& s : kMatmuls) {
    const std::string_view op = s.m == 1 ? "gemv_u8s8_s8" : "gemm_u8s8_s8";
    const std::string shape = join({mm_name(s), "_", profile});
    benchmark::RegisterBenchmark(join({op, "/keel_vnpu/", shape}).c_str(), bm_matmul<B>, s)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    npu_op o;
    o.matmul = mm_desc(s);
    benchmark::RegisterBenchmark(join({"predict_", op, "/keel_vnpu/", shape}).c_str(), bm_predict,
                                 o, Profile::config)
        ->Unit(benchmark::kMicrosecond);
  }
  for (const conv_shape& s : kConvs) {
    const std::string shape = join({conv_name(s), "_", profile});
    benchmark::RegisterBenchmark(join({"conv_u8s8_s8/keel_vnpu/", shape}).c_str(), bm_conv<B>, s)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
    npu_op o;
    o.kind = op_kind::conv2d_i8;
    o.conv = conv_desc(s);
    benchmark::RegisterBenchmark(join({"predict_conv_u8s8_s8/keel_vnpu/", shape}).c_str(),
                                 bm_predict, o, Profile::config)
        ->Unit(benchmark::kMicrosecond);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_profile<profiles::rk3588>();
  register_profile<profiles::imx8mp>();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
