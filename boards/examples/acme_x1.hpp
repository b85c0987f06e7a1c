// acme_x1.hpp — the BSP's board header for Acme's X1: its profile and its routing policy.
#pragma once
#include <keel/backends/cpu.hpp>
#include <keel/backends/npu/profiles.hpp>
#include <keel/router/router.hpp>

namespace kb = keel::boards;
// clang-format off
struct acme_x1 {  // numbers from the (fictional) Acme A1 datasheet, rev. C
  static constexpr kb::board_profile profile{
      .name = "Acme X1", .soc = "Acme A1",
      .cpu = {.arch = kb::cpu_arch::aarch64, .isa = kb::isa::neon | kb::isa::dotprod,
              .cores = 4, .freq_ghz = 2.0, .l1d_kib = 64, .l2_kib = 512, .l3_kib = 2048,
              .mem_bandwidth_gbs = 25.6, .peak_int8_gops = 512, .peak_f32_gflops = 128,
              .launch_us = 5},
      .gpu = {},
      .npu = {.present = true, .name = "A1 NPU", .ops = keel::op_bit(keel::op_kind::matmul_i8),
              .dtypes = keel::dtype_bit(keel::dtype::s8), .sram_kib = 256,
              .peak_int8_gops = 512, .peak_f16_gflops = 0, .max_dim = 65536,
              .mem_bandwidth_gbs = 16, .launch_us = 50},
      .power = {.idle_w = 1.5, .cpu_w = 4, .gpu_w = 0, .npu_w = 0.5, .budget_w = 10}};
};
// clang-format on

// The one line of policy: least energy first, over keel's CPU backend and the NPU's driver.
using acme_router =
    keel::router<acme_x1,
                 keel::energy_first<keel::backends::cpu_backend, keel::npu::generic_vnpu_backend>>;
