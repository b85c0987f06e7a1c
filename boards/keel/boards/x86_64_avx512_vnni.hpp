// keel/boards/x86_64_avx512_vnni.hpp — an x86-64 edge box with AVX-512 VNNI: Intel Core
// i7-1185G7 (Tiger Lake-U, 4 cores, Iris Xe graphics), as in industrial PCs and NUC-class
// gateways.
//
// Sources: Intel ARK, "Intel Core i7-1185G7 Processor" (cores, clocks, cache, TDP, memory types,
// graphics); Intel 64 and IA-32 Architectures Optimization Reference Manual (per-cycle rates).
// Numbers not in those are marked estimate.
#pragma once

#include "keel/boards/profile.hpp"

namespace keel::boards {

struct x86_64_avx512_vnni {
  static constexpr board_profile profile{
      .name = "x86-64 AVX-512 VNNI (Core i7-1185G7)",
      .soc = "Intel Core i7-1185G7 (Tiger Lake-U)",
      .cpu =
          {
              .arch = cpu_arch::x86_64,
              .isa = isa::sse4_2 | isa::avx2 | isa::fma | isa::avx512f | isa::avx512bw |
                     isa::avx512_vnni,
              .cores = 4,       // ARK: 4 cores, 8 threads
              .freq_ghz = 3.0,  // ARK: base 3.0 GHz at 28 W (turbo to 4.8 GHz on one core)
              .l1d_kib = 48,    // Willow Cove: 48 KiB L1d per core (optimization manual)
              .l2_kib = 1280,   // Willow Cove: 1.25 MiB L2 per core
              .l3_kib = 12288,  // ARK: 12 MB Intel Smart Cache
              // ARK: LPDDR4x-4266; 128 bits x 4266 MT/s = 68.3 GB/s.
              .mem_bandwidth_gbs = 68.3,
              // One 512-bit VPDPBUSD per cycle (ports 0+1 fused on client cores): 64 MACs = 128
              // ops per core per cycle; 4 x 3.0 GHz x 128.
              .peak_int8_gops = 1536,
              // 32 f32 FLOPs per core per cycle (one 512-bit FMA or two 256-bit); 4 x 3.0 x 32.
              .peak_f32_gflops = 384,
              .launch_us = 4,  // estimate: futex wake-up and join of three worker threads
          },
      .gpu =
          {
              .present = true,
              .name = "Intel Iris Xe (96 EU)",  // ARK: Iris Xe Graphics, 96 EUs, up to 1.35 GHz
              .vulkan_major = 1,                // Mesa ANV exposes Vulkan 1.3 on Xe-LP
              .vulkan_minor = 3,
              .int8_dot = true,  // Xe-LP has DP4A (VK_KHR_shader_integer_dot_product accelerated)
              .shared_memory_kib = 64,  // estimate: ANV's maxComputeSharedMemorySize on Gen12
              // 96 EU x 8 lanes x 2 x 1.35 GHz = 2074 GFLOPS; DP4A at 4 int8 MACs per lane
              // (estimate of the sustained rate): 8294 GOPS.
              .peak_int8_gops = 8294,
              .peak_f32_gflops = 2074,
              .mem_bandwidth_gbs = 68.3,  // shares the CPU's LPDDR4x
              .launch_us = 30,            // estimate: submit + fence wait through the i915 driver
          },
      .npu = {},
      .power =
          {
              .idle_w = 3,     // estimate: package and DRAM idle in a fanless box
              .cpu_w = 20,     // estimate: four cores with AVX-512 inside the 28 W TDP
              .gpu_w = 12,     // estimate: Iris Xe at full clock
              .budget_w = 28,  // ARK: configurable TDP-up 28 W
          },
  };
};
static_assert(check_profile<x86_64_avx512_vnni>());

}  // namespace keel::boards
