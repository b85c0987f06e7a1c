// keel/boards/snapdragon_8_gen_2.hpp — Qualcomm Snapdragon 8 Gen 2 (SM8550), a phone-class SoC.
//
// Sources: Qualcomm's Snapdragon 8 Gen 2 announcement and product brief (1x Cortex-X3 at
// 3.2 GHz, 2x A715 + 2x A710 at 2.8 GHz, 3x A510 at 2.0 GHz; Adreno 740 with Vulkan 1.3;
// LPDDR5X at up to 4200 MHz; Hexagon NPU with INT4 support). Qualcomm publishes no TOPS figure
// for this part, so the NPU and GPU rates are estimates; so is everything else not listed.
#pragma once

#include "keel/boards/profile.hpp"

namespace keel::boards {

struct snapdragon_8_gen_2 {
  static constexpr board_profile profile{
      .name = "Qualcomm Snapdragon 8 Gen 2",
      .soc = "Qualcomm SM8550",
      .cpu =
          {
              .arch = cpu_arch::aarch64,
              // The Armv9 cores implement SVE2 too, but it is not enabled for user space on
              // this SoC (estimate: as shipped phones report), so it is not listed.
              .isa = isa::neon | isa::dotprod | isa::i8mm | isa::fp16,
              .cores = 8,       // product brief: 1 + 4 + 3
              .freq_ghz = 3.2,  // product brief: prime core at 3.2 GHz
              .l1d_kib = 64,    // Cortex-X3/A715 TRMs: 64 KiB L1 data
              .l2_kib = 512,    // estimate: A715/A710 512 KiB (X3: 1 MiB, A510: shared)
              .l3_kib = 8192,   // estimate
              // product brief: LPDDR5X at 4200 MHz (8400 MT/s) on 64 bits = 67.2 GB/s.
              .mem_bandwidth_gbs = 67.2,
              // estimate (SDOT rates): X3 128 ops/cycle x 3.2 + 4 x 64 x 2.8 + 3 x 32 x 2.0.
              .peak_int8_gops = 1318,
              .peak_f32_gflops = 330,  // estimate: X3 32 + 4 x 16 + 3 x 8 FLOPs/cycle
              .launch_us = 10,         // estimate: three clusters, big.LITTLE scheduling
          },
      .gpu =
          {
              .present = true,
              .name = "Qualcomm Adreno 740",
              .vulkan_major = 1,  // product brief: first GPU with Vulkan 1.3
              .vulkan_minor = 3,
              .int8_dot = true,         // estimate
              .shared_memory_kib = 32,  // estimate
              .peak_int8_gops = 4180,   // estimate: twice the f32 rate
              .peak_f32_gflops = 2090,  // estimate: 1536 lanes x 2 x 0.68 GHz
              .mem_bandwidth_gbs = 67.2,
              .launch_us = 60,  // estimate: the Android Vulkan driver's submit path
          },
      .npu =
          {
              .present = true,
              .name = "Qualcomm Hexagon NPU",
              // product brief: transformer acceleration and INT4 support.
              .ops = op_bit(op_kind::matmul_i8) | op_bit(op_kind::matmul_i4) |
                     op_bit(op_kind::conv2d_i8) | op_bit(op_kind::attention),
              .dtypes = dtype_bit(dtype::s8) | dtype_bit(dtype::u8) | dtype_bit(dtype::s4) |
                        dtype_bit(dtype::u4) | dtype_bit(dtype::f16),
              .sram_kib = 8192,          // estimate
              .peak_int8_gops = 26000,   // estimate
              .peak_f16_gflops = 13000,  // estimate
              .max_dim = 65536,          // estimate
              .mem_bandwidth_gbs = 67.2,
              .launch_us = 150,  // estimate: FastRPC round trip to the DSP
          },
      .power =
          {
              .idle_w = 0.5,   // estimate: screen-off SoC idle
              .cpu_w = 6,      // estimate: all cores busy, before throttling
              .gpu_w = 5,      // estimate
              .npu_w = 2,      // estimate
              .budget_w = 12,  // estimate: peak a phone sustains for seconds
          },
  };
};
static_assert(check_profile<snapdragon_8_gen_2>());

}  // namespace keel::boards
