// Shared by the router suites: a board with round numbers (so that every prediction a test
// checks is computed by hand in its comments), stand-in backends for the units a board has, and
// random matmul_i8 problems whose expected output comes from the reference kernel directly.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "keel/backends/reference.hpp"
#include "keel/boards/profile.hpp"
#include "keel/kernels/reference/matmul_i8.hpp"
#include "keel/router/fault_injection.hpp"
#include "keel/router/router.hpp"
#include "support/testing.hpp"

namespace keel::router_testing {

// Round numbers. In the units the cost model computes in:
//   cpu: 1e5 int8 ops/us, 2.5e4 f32 ops/us, 1e4 bytes/us, launch 1 us, 2 W
//   gpu: 1e6 int8 ops/us, 2.5e5 f32 ops/us, 1e4 bytes/us, launch 10 us, 10 W
//   npu: 5e6 int8 ops/us, no float, 1e4 bytes/us, launch 20 us, 1 W, dims up to 4096
//   reference: 1 GHz x 2 = 2e3 ops/us, 1e4 bytes/us, no launch, 2 W / 1 core = 2 W
struct lab_board {
  static constexpr boards::board_profile profile{
      .name = "lab board",
      .soc = "round numbers",
      .cpu = {.arch = boards::cpu_arch::x86_64,
              .isa = boards::isa::sse4_2 | boards::isa::avx2 | boards::isa::fma,
              .cores = 1,
              .freq_ghz = 1.0,
              .l1d_kib = 32,
              .l2_kib = 256,
              .l3_kib = 0,
              .mem_bandwidth_gbs = 10,
              .peak_int8_gops = 100,
              .peak_f32_gflops = 25,
              .launch_us = 1},
      .gpu = {.present = true,
              .name = "lab gpu",
              .vulkan_major = 1,
              .vulkan_minor = 2,
              .int8_dot = true,
              .shared_memory_kib = 32,
              .peak_int8_gops = 1000,
              .peak_f32_gflops = 250,
              .mem_bandwidth_gbs = 10,
              .launch_us = 10},
      .npu = {.present = true,
              .name = "lab npu",
              .ops = op_bit(op_kind::matmul_i8) | op_bit(op_kind::conv2d_i8),
              .dtypes = dtype_bit(dtype::s8) | dtype_bit(dtype::u8),
              .sram_kib = 256,
              .peak_int8_gops = 5000,
              .peak_f16_gflops = 0,
              .max_dim = 4096,
              .mem_bandwidth_gbs = 10,
              .launch_us = 20},
      .power = {.idle_w = 1, .cpu_w = 2, .gpu_w = 10, .npu_w = 1, .budget_w = 20},
  };
};
static_assert(boards::check_profile<lab_board>());

// Stand-ins: the reference behind a cpu, gpu or npu persona, with a fault plan to arm.
struct as_cpu {
  static constexpr std::string_view name = "cpu-sim";
  static constexpr backend_kind kind = backend_kind::cpu;
};
struct as_gpu {
  static constexpr std::string_view name = "gpu-sim";
  static constexpr backend_kind kind = backend_kind::gpu;
};
struct as_npu {  // an int8 MAC array: matmul and conv with 8-bit weights only
  static constexpr std::string_view name = "npu-sim";
  static constexpr backend_kind kind = backend_kind::npu;
  static constexpr std::uint32_t ops = op_bit(op_kind::matmul_i8) | op_bit(op_kind::conv2d_i8);
  static constexpr std::uint32_t weight_types = dtype_bit(dtype::s8) | dtype_bit(dtype::u8);
};
using cpu_sim = faulty_backend<backends::reference_backend, as_cpu>;
using gpu_sim = faulty_backend<backends::reference_backend, as_gpu>;
using npu_sim = faulty_backend<backends::reference_backend, as_npu>;

// A random matmul_i8 with its own output buffer (guarded) and the reference's answer.
struct mm_problem {
  matmul_i8_desc desc;
  std::vector<std::uint8_t> a;
  std::vector<std::int8_t> b;
  std::vector<float> b_scale;
  std::vector<std::int32_t> bias;
  testing::guarded<std::uint8_t> out;  // raw bytes; typed views over them
  std::vector<std::uint8_t> expected;  // the reference kernel's bytes

  mm_problem(testing::rng& g, std::int64_t m, std::int64_t n, std::int64_t k, dtype out_type)
      : out(static_cast<std::size_t>(m * n * 4)) {
    desc.m = m;
    desc.n = n;
    desc.k = k;
    desc.a_type = dtype::u8;
    desc.b_type = dtype::s8;
    desc.a_zero_point = static_cast<std::int32_t>(g.uniform_int(0, 255));
    desc.a_scale = 0.02f;
    desc.out.type = out_type;
    if (out_type == dtype::s8) {
      desc.out.scale = 0.5f + g.uniform_float(0.0f, 4.0f);
      desc.out.zero_point = static_cast<std::int32_t>(g.uniform_int(-20, 20));
    }
    a.resize(static_cast<std::size_t>(m * k));
    b.resize(static_cast<std::size_t>(k * n));
    b_scale.resize(static_cast<std::size_t>(n));
    bias.resize(static_cast<std::size_t>(n));
    g.fill(a, 0, 255);
    g.fill(b, -128, 127);
    g.fill(b_scale, 0.001f, 0.05f);
    g.fill(bias, -1000, 1000);
    // ---- the expected bytes, straight from the oracle ----
    expected.assign(static_cast<std::size_t>(m * n * bits_of(out_type) / 8), 0);
    const Status s = reference::matmul_i8(desc, args(expected.data()));
    REQUIRE(s.ok());
  }

  matmul_i8_args args(void* out_bytes) const {
    matmul_i8_args r;
    r.a = view(a.data(), {desc.m, desc.k});
    r.b = view(b.data(), {desc.k, desc.n});
    r.b_scale = b_scale;
    r.bias = bias;
    r.out = tensor_view(out_bytes, desc.out.type, {desc.m, desc.n});
    return r;
  }
  matmul_i8_args args() { return args(out.data()); }

  // The routed output equals the reference's, byte for byte, and nothing outside it was written.
  bool matches() const {
    return out.guards_intact() && std::memcmp(out.data(), expected.data(), expected.size()) == 0;
  }
};

}  // namespace keel::router_testing
