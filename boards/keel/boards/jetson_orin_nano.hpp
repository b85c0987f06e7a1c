// keel/boards/jetson_orin_nano.hpp — NVIDIA Jetson Orin Nano 8GB module, 15 W mode.
//
// Sources: NVIDIA "Jetson Orin Nano Series" module data sheet (6x Cortex-A78AE, 1.5 GHz, 256 KB
// L2 per core, 2 MB L3 per cluster, 128-bit LPDDR5 at 68 GB/s; Ampere GPU with 1024 CUDA cores
// and 32 tensor cores at 625 MHz, Vulkan 1.1; 40 sparse / 20 dense INT8 TOPS; 7 W and 15 W
// modes). No DLA on the Nano, so no NPU. Numbers not in those are marked estimate.
#pragma once

#include "keel/boards/profile.hpp"

namespace keel::boards {

struct jetson_orin_nano {
  static constexpr board_profile profile{
      .name = "NVIDIA Jetson Orin Nano 8GB",
      .soc = "NVIDIA Orin (T234), Orin Nano configuration",
      .cpu =
          {
              .arch = cpu_arch::aarch64,
              .isa = isa::neon | isa::dotprod | isa::fp16,  // A78AE: Armv8.2-A + DotProd
              .cores = 6,                                   // data sheet: six-core Cortex-A78AE
              .freq_ghz = 1.5,                              // data sheet: 1.5 GHz
              .l1d_kib = 64,            // data sheet: 128 KB L1 per core (64 KB I + 64 KB D)
              .l2_kib = 256,            // data sheet: 256 KB L2 per core
              .l3_kib = 4096,           // data sheet: 2 MB L3 per cluster, two clusters
              .mem_bandwidth_gbs = 68,  // data sheet: 128-bit LPDDR5, 68 GB/s
              .peak_int8_gops = 576,    // 2 x 128-bit SDOT = 64 ops/cycle; 6 x 1.5 GHz x 64
              .peak_f32_gflops = 144,   // 16 FLOPs/cycle; 6 x 1.5 x 16
              .launch_us = 6,           // estimate
          },
      .gpu =
          {
              .present = true,
              .name = "NVIDIA Ampere (1024 CUDA cores)",
              .vulkan_major = 1,  // data sheet: Vulkan 1.1
              .vulkan_minor = 1,
              .int8_dot = true,         // Ampere has DP4A
              .shared_memory_kib = 48,  // estimate: NVIDIA's maxComputeSharedMemorySize
              // From Vulkan compute the int8 path is DP4A, not the tensor cores (20 dense TOPS
              // per the data sheet): 1024 lanes x 4 MACs x 2 x 0.625 GHz = 5120 GOPS (estimate).
              .peak_int8_gops = 5120,
              .peak_f32_gflops = 1280,  // 1024 x 2 x 0.625 GHz
              .mem_bandwidth_gbs = 68,
              .launch_us = 20,  // estimate
          },
      .npu = {},
      .power =
          {
              .idle_w = 3,     // estimate: module idle
              .cpu_w = 4,      // estimate: six A78AE cores in the 15 W mode
              .gpu_w = 7,      // estimate
              .budget_w = 15,  // data sheet: 15 W power mode
          },
  };
};
static_assert(check_profile<jetson_orin_nano>());

}  // namespace keel::boards
