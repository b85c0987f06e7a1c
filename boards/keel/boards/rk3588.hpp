// keel/boards/rk3588.hpp — Rockchip RK3588 (Radxa ROCK 5B, Orange Pi 5 Plus and similar boards).
//
// Sources: Rockchip "RK3588 Brief Datasheet" (2022): 4x Cortex-A76 + 4x Cortex-A55, L1/L2/L3
// sizes, quad-channel x16 LPDDR4/4X/5 interface, Mali-G610 MP4 with Vulkan 1.2, 6 TOPS NPU with
// INT4/INT8/INT16/FP16; Arm Software Optimization Guides for per-cycle NEON rates. Numbers not
// in those are marked estimate.
#pragma once

#include "keel/boards/profile.hpp"

namespace keel::boards {

struct rk3588 {
  static constexpr board_profile profile{
      .name = "Rockchip RK3588",
      .soc = "Rockchip RK3588",
      .cpu =
          {
              .arch = cpu_arch::aarch64,
              .isa = isa::neon | isa::dotprod | isa::fp16,  // A76 and A55: Armv8.2-A + DotProd
              .cores = 8,                                   // brief datasheet: quad A76 + quad A55
              .freq_ghz = 2.4,  // brief datasheet: A76 up to 2.4 GHz (A55 up to 1.8 GHz)
              .l1d_kib = 64,    // brief datasheet: A76 64K/64K L1 I/D (A55: 32K/32K)
              .l2_kib = 512,    // brief datasheet: 512 KB L2 per A76 (A55: 128 KB)
              .l3_kib = 3072,   // brief datasheet: 3 MB L3
              // Quad-channel x16 = 64 bits; at LPDDR4X-4224, the speed most boards ship
              // (estimate): 64 bits x 4224 MT/s = 33.8 GB/s.
              .mem_bandwidth_gbs = 33.8,
              // A76: 64 ops/cycle (2 x 128-bit SDOT) x 4 x 2.4 GHz = 614; A55: estimate 32
              // ops/cycle (one 128-bit SDOT every cycle) x 4 x 1.8 GHz = 230; sum 844.
              .peak_int8_gops = 844,
              .peak_f32_gflops = 211,  // A76 16 FLOPs/cycle x 4 x 2.4 + A55 8 x 4 x 1.8
              .launch_us = 8,          // estimate: eight threads across two clusters
          },
      .gpu =
          {
              .present = true,
              .name = "Arm Mali-G610 MP4",
              .vulkan_major = 1,  // brief datasheet: Vulkan 1.2
              .vulkan_minor = 2,
              .int8_dot = true,  // estimate: Valhall has packed int8 dot product instructions
              .shared_memory_kib = 32,  // estimate: Arm driver's maxComputeSharedMemorySize
              // estimate: 4 cores x 2 engines x 16 lanes x 2 x 1.0 GHz = 256 GFLOPS; int8 dot
              // at 4 MACs per lane.
              .peak_int8_gops = 1024,
              .peak_f32_gflops = 256,
              .mem_bandwidth_gbs = 33.8,
              .launch_us = 40,  // estimate
          },
      .npu =
          {
              .present = true,
              .name = "RKNPU (3 cores)",
              // estimate: the NPU runs convolutions and matrix products; attention's softmax
              // goes back to the CPU in Rockchip's toolkit, so attention is not listed.
              .ops = op_bit(op_kind::matmul_i8) | op_bit(op_kind::matmul_i4) |
                     op_bit(op_kind::conv2d_i8),
              // brief datasheet: INT4/INT8/INT16/FP16 mixed operation.
              .dtypes = dtype_bit(dtype::s8) | dtype_bit(dtype::u8) | dtype_bit(dtype::s4) |
                        dtype_bit(dtype::u4) | dtype_bit(dtype::f16),
              .sram_kib = 1024,         // estimate
              .peak_int8_gops = 6000,   // brief datasheet: 6 TOPS
              .peak_f16_gflops = 1500,  // estimate: a quarter of the int8 rate
              .max_dim = 8192,          // estimate
              .mem_bandwidth_gbs = 33.8,
              .launch_us = 100,  // estimate: job submit and completion through the rknpu driver
          },
      .power =
          {
              .idle_w = 3,     // estimate: board idle
              .cpu_w = 7,      // estimate: all eight cores busy
              .gpu_w = 3,      // estimate
              .npu_w = 2.5,    // estimate
              .budget_w = 24,  // estimate: a 12 V / 2 A supply
          },
  };
};
static_assert(check_profile<rk3588>());

}  // namespace keel::boards
