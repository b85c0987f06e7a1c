// keel/boards/raspberry_pi_5.hpp — Raspberry Pi 5 (Broadcom BCM2712).
//
// Sources: Raspberry Pi 5 product brief (CPU, caches, GPU APIs, memory type, power supply);
// Arm Cortex-A76 Software Optimization Guide (per-cycle NEON rates). No NPU. Numbers not in
// those are marked estimate.
#pragma once

#include "keel/boards/profile.hpp"

namespace keel::boards {

struct raspberry_pi_5 {
  static constexpr board_profile profile{
      .name = "Raspberry Pi 5",
      .soc = "Broadcom BCM2712",
      .cpu =
          {
              .arch = cpu_arch::aarch64,
              // Cortex-A76 is Armv8.2-A with the dot product and half-precision extensions.
              .isa = isa::neon | isa::dotprod | isa::fp16,
              .cores = 4,       // product brief: quad-core Cortex-A76
              .freq_ghz = 2.4,  // product brief: 2.4 GHz
              .l1d_kib = 64,    // Cortex-A76 TRM: 64 KiB L1 data cache
              .l2_kib = 512,    // product brief: 512 KB per-core L2
              .l3_kib = 2048,   // product brief: 2 MB shared L3
              // product brief: LPDDR4X-4267 on a 32-bit bus: 32 bits x 4267 MT/s = 17.1 GB/s.
              .mem_bandwidth_gbs = 17.1,
              // Two 128-bit NEON pipes, SDOT = 16 MACs each: 64 ops per core per cycle;
              // 4 x 2.4 GHz x 64.
              .peak_int8_gops = 614,
              .peak_f32_gflops = 154,  // two 128-bit FMA pipes: 16 FLOPs/cycle; 4 x 2.4 x 16
              .launch_us = 6,          // estimate
          },
      .gpu =
          {
              .present = true,
              .name = "VideoCore VII",
              .vulkan_major = 1,  // product brief: Vulkan 1.2
              .vulkan_minor = 2,
              .int8_dot = false,        // estimate: V3D 7.1 has no packed int8 dot instruction
              .shared_memory_kib = 16,  // estimate: v3dv's maxComputeSharedMemorySize
              // estimate: 16 QPUs (twice the Pi 4's 8, per early BCM2712 write-ups) x 4 lanes x
              // 2 (add + mul ALU) x 0.8 GHz = 102 GFLOPS; int8 runs on the same ALUs at about
              // the f32 rate.
              .peak_int8_gops = 102,
              .peak_f32_gflops = 102,
              .mem_bandwidth_gbs = 17.1,  // shares the CPU's LPDDR4X
              .launch_us = 50,            // estimate
          },
      .npu = {},
      .power =
          {
              .idle_w = 2.7,   // estimate: commonly measured idle with no peripherals
              .cpu_w = 5.5,    // estimate: four A76 cores at 2.4 GHz with NEON
              .gpu_w = 2,      // estimate
              .budget_w = 25,  // product brief: 5 V / 5 A USB-C supply
          },
  };
};
static_assert(check_profile<raspberry_pi_5>());

}  // namespace keel::boards
