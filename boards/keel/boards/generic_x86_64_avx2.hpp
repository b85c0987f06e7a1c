// keel/boards/generic_x86_64_avx2.hpp — a generic x86-64 host with AVX2 and FMA, no AVX-512.
//
// The profile keel's CI and development hosts route with: a 2-core slice of a server (a VM), no
// GPU, no NPU. "Generic" means these are the numbers of a typical such slice, not of one part;
// caches are what `lscpu` reports on the development host (a KVM guest on a Xeon), the rest are
// estimates marked as such. The envelope profiler writes a measured profile for a real machine.
#pragma once

#include "keel/boards/profile.hpp"

namespace keel::boards {

struct generic_x86_64_avx2 {
  static constexpr board_profile profile{
      .name = "generic x86-64 AVX2",
      .soc = "x86-64-v3 host (2 cores)",
      .cpu =
          {
              .arch = cpu_arch::x86_64,
              .isa = isa::sse4_2 | isa::avx2 | isa::fma,
              .cores = 2,
              .freq_ghz = 2.3,  // lscpu: BogoMIPS 4600 (= 2 x TSC GHz) on the development host
              .l1d_kib = 48,    // lscpu: "L1d: 96 KiB (2 instances)"
              .l2_kib = 2048,   // lscpu: "L2: 4 MiB (2 instances)"
              .l3_kib = 32768,  // estimate: a fair share of a server L3 for a 2-core slice
              .mem_bandwidth_gbs = 20,  // estimate: a 2-core slice of a shared DDR5 system
              // estimate: VPMADDUBSW + VPMADDWD + VPADDD take 3 uops per 32 u8*s8 MACs on two
              // 256-bit ports: ~32 MACs = 64 ops per core per cycle; 2 x 2.3 GHz x 64.
              .peak_int8_gops = 294,
              // 2 FMA ports x 8 f32 lanes x 2 ops (Intel optimization manual, Haswell on).
              .peak_f32_gflops = 147,
              .launch_us = 5,  // estimate: futex wake-up and join of one worker thread
          },
      .gpu = {},
      .npu = {},
      .power =
          {
              .idle_w = 10,    // estimate: a 2-core share of an idle server
              .cpu_w = 20,     // estimate: two busy cores with AVX2 at ~10 W each
              .budget_w = 60,  // estimate
          },
  };
};
static_assert(check_profile<generic_x86_64_avx2>());

}  // namespace keel::boards
