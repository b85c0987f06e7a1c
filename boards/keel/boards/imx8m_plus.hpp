// keel/boards/imx8m_plus.hpp — NXP i.MX 8M Plus (quad Cortex-A53, 2.3 TOPS NPU).
//
// Sources: NXP "i.MX 8M Plus" fact sheet (4x Cortex-A53 up to 1.8 GHz, 2.3 TOPS NPU, GC7000UL
// GPU with Vulkan 1.1, 32-bit LPDDR4 at up to 4000 MT/s); NXP AN13854 (the NPU computes in 8-
// or 16-bit integers); Arm Cortex-A53 TRM (caches). Numbers not in those are marked estimate.
#pragma once

#include "keel/boards/profile.hpp"

namespace keel::boards {

struct imx8m_plus {
  static constexpr board_profile profile{
      .name = "NXP i.MX 8M Plus",
      .soc = "NXP i.MX 8M Plus Quad",
      .cpu =
          {
              .arch = cpu_arch::aarch64,
              .isa = isa::neon,  // Cortex-A53 is Armv8.0-A: no SDOT
              .cores = 4,        // fact sheet: quad Cortex-A53
              .freq_ghz = 1.8,   // fact sheet: up to 1.8 GHz
              .l1d_kib = 32,     // A53 TRM: 32 KiB L1 data (as NXP configures it)
              .l2_kib = 128,     // 512 KiB L2 shared by the cluster, divided by 4 cores
              .l3_kib = 0,
              // fact sheet: 32-bit LPDDR4 at 4000 MT/s = 16 GB/s.
              .mem_bandwidth_gbs = 16,
              // estimate: SMLAL/SMLAL2 on a 64-bit NEON datapath, ~8 MACs = 16 ops per cycle;
              // 4 x 1.8 GHz x 16.
              .peak_int8_gops = 115,
              .peak_f32_gflops = 29,  // estimate: 4 FLOPs per cycle (64-bit FMA path); 4 x 1.8
              .launch_us = 10,        // estimate
          },
      .gpu =
          {
              .present = true,
              .name = "Vivante GC7000UL",
              .vulkan_major = 1,  // fact sheet: Vulkan 1.1
              .vulkan_minor = 1,
              .int8_dot = false,        // estimate
              .shared_memory_kib = 32,  // estimate
              .peak_int8_gops = 32,     // estimate
              .peak_f32_gflops = 32,    // estimate
              .mem_bandwidth_gbs = 16,
              .launch_us = 80,  // estimate
          },
      .npu =
          {
              .present = true,
              .name = "VeriSilicon VIP8000 NPU",
              // AN13854: convolution MACs in 8- or 16-bit integers; fully connected layers
              // run there too. No int4 and no attention.
              .ops = op_bit(op_kind::matmul_i8) | op_bit(op_kind::conv2d_i8),
              .dtypes = dtype_bit(dtype::s8) | dtype_bit(dtype::u8),
              .sram_kib = 256,         // estimate
              .peak_int8_gops = 2300,  // fact sheet: 2.3 TOPS
              .peak_f16_gflops = 0,    // AN13854: integer only
              .max_dim = 65535,        // estimate
              .mem_bandwidth_gbs = 16,
              .launch_us = 200,  // estimate: OpenVX graph submit through the galcore driver
          },
      .power =
          {
              .idle_w = 2,    // estimate: EVK idle
              .cpu_w = 2,     // estimate: four A53 cores busy
              .gpu_w = 1,     // estimate
              .npu_w = 1,     // estimate
              .budget_w = 8,  // estimate
          },
  };
};
static_assert(check_profile<imx8m_plus>());

}  // namespace keel::boards
