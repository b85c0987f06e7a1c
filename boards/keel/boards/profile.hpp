// keel/boards/profile.hpp — what a board is, as the router sees it: a constexpr board_profile.
//
// A board is a type with a `static constexpr keel::boards::board_profile profile`. The router
// reads it at compile time to decide which backends can exist on the board (a GPU section with
// present = false removes every GPU backend from every candidate list) and at run time to feed
// its cost model (peak rates, bandwidth, launch costs, power). One header per board in this
// folder; a vendor writes one more for a new board, and check_profile<Board>() (below) rejects a
// profile that is incomplete or inconsistent at compile time, with a message that says which
// field breaks which rule.
//
// Units, everywhere: rates in GOPS (1e9 int8 operations per second, one multiply-add = 2 ops) or
// GFLOPS, bandwidth in GB/s (1e9 bytes per second), memory sizes in KiB, times in microseconds,
// power in watts. Shipped profiles cite a public source for each number or mark it "estimate".
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>

#include "keel/backend.hpp"
#include "keel/dtype.hpp"
#include "keel/ops.hpp"

namespace keel::boards {

enum class cpu_arch : std::uint8_t { x86_64, aarch64 };

constexpr std::string_view to_string(cpu_arch a) noexcept {
  return a == cpu_arch::x86_64 ? "x86-64" : "aarch64";
}

// ISA features a cpu kernel may dispatch on. x86 features live in the low 16 bits, Arm features
// in the high 16, so that validation can tell a profile that mixes the two.
namespace isa {
inline constexpr std::uint32_t sse4_2 = 1u << 0;
inline constexpr std::uint32_t avx2 = 1u << 1;
inline constexpr std::uint32_t fma = 1u << 2;
inline constexpr std::uint32_t avx_vnni = 1u << 3;  // VEX-encoded VPDPBUSD (Alder Lake on)
inline constexpr std::uint32_t avx512f = 1u << 4;
inline constexpr std::uint32_t avx512bw = 1u << 5;
inline constexpr std::uint32_t avx512_vnni = 1u << 6;  // EVEX VPDPBUSD, 64 u8*s8 MACs a lane set
inline constexpr std::uint32_t amx_int8 = 1u << 7;
inline constexpr std::uint32_t neon = 1u << 16;
inline constexpr std::uint32_t dotprod = 1u << 17;  // SDOT/UDOT (Armv8.2 optional, 8.4 mandatory)
inline constexpr std::uint32_t i8mm = 1u << 18;     // SMMLA/USMMLA (Armv8.6)
inline constexpr std::uint32_t fp16 = 1u << 19;     // half-precision arithmetic
inline constexpr std::uint32_t sve = 1u << 20;
inline constexpr std::uint32_t sve2 = 1u << 21;

inline constexpr std::uint32_t x86_features = 0x0000FFFFu;
inline constexpr std::uint32_t arm_features = 0xFFFF0000u;
}  // namespace isa

struct cpu_profile {
  cpu_arch arch = cpu_arch::x86_64;
  std::uint32_t isa = 0;         // isa:: bits
  int cores = 0;                 // cores the cpu backend may use (all clusters)
  double freq_ghz = 0;           // sustained all-core clock of the fastest cluster
  int l1d_kib = 0;               // per core
  int l2_kib = 0;                // per core (a per-cluster L2 is divided by the cluster's cores)
  int l3_kib = 0;                // shared last level; 0 when there is none
  double mem_bandwidth_gbs = 0;  // DRAM peak: bus width x transfer rate
  double peak_int8_gops = 0;     // all cores, int8 multiply-adds x 2
  double peak_f32_gflops = 0;    // all cores, f32 FMAs x 2
  double launch_us = 0;          // fixed cost of one parallel op (waking and joining threads)
};

struct gpu_profile {
  bool present = false;
  std::string_view name;
  int vulkan_major = 0;  // highest Vulkan version the board's driver exposes
  int vulkan_minor = 0;
  bool int8_dot = false;      // VK_KHR_shader_integer_dot_product, accelerated in hardware
  int shared_memory_kib = 0;  // maxComputeSharedMemorySize
  double peak_int8_gops = 0;  // reachable from Vulkan compute (dot products), not from
                              // vendor-only paths such as tensor cores
  double peak_f32_gflops = 0;
  double mem_bandwidth_gbs = 0;  // what the GPU reads at: the shared DRAM on an SoC
  double launch_us = 0;          // one dispatch: record, submit, wait for the fence
};

struct npu_profile {
  bool present = false;
  std::string_view name;
  std::uint32_t ops = 0;     // keel::op_bit() of each op kind the silicon runs
  std::uint32_t dtypes = 0;  // keel::dtype_bit() of each weight / KV dtype it computes in
  int sram_kib = 0;          // on-chip buffer for tiles
  double peak_int8_gops = 0;
  double peak_f16_gflops = 0;    // 0 when it has no float path
  std::int64_t max_dim = 0;      // largest single tensor dimension it accepts
  double mem_bandwidth_gbs = 0;  // DMA from DRAM
  double launch_us = 0;          // one job: command stream submit and completion interrupt
};

struct power_profile {
  double idle_w = 0;    // the board idle
  double cpu_w = 0;     // added by the CPU cluster at full load
  double gpu_w = 0;     // added by the GPU at full load (0 without one)
  double npu_w = 0;     // added by the NPU at full load (0 without one)
  double budget_w = 0;  // what the board may draw in total: its supply or module power mode
};

struct board_profile {
  std::string_view name;  // as it appears in traces, routing tables and reports
  std::string_view soc;
  cpu_profile cpu;
  gpu_profile gpu;
  npu_profile npu;
  power_profile power;
};

// A type that names a board.
template <class B>
concept board = requires {
  { B::profile } -> std::convertible_to<const board_profile&>;
};

// A list of boards, for code that iterates over them (routing tables, the envelope profiler).
template <class... Boards>
struct board_list {};

// The op kinds a backend can be asked to run (backend.hpp's concept), as op_bit()s.
inline constexpr std::uint32_t kRoutableOps =
    op_bit(op_kind::matmul_i8) | op_bit(op_kind::matmul_i4) | op_bit(op_kind::conv2d_i8) |
    op_bit(op_kind::attention);

// Largest plausible int8 rate per core per cycle: 2048 ops is AMX-INT8's 1024 MACs; a profile
// above twice that almost certainly wrote TOPS where GOPS was meant.
inline constexpr double kMaxCpuOpsPerCoreCycle = 4096;

// Compile-time validation of Board::profile. Each rule is one static_assert whose message names
// the field and the rule; the compiler's "in instantiation of ... [with Board = ...]" line names
// the board. Boards in this folder end with static_assert(check_profile<their_type>()).
template <board Board>
consteval bool check_profile() {
  constexpr const board_profile& p = Board::profile;

  // ---- identity ----
  static_assert(!p.name.empty(),
                "keel board profile: `name` is empty (it names the board in "
                "traces and routing tables)");

  // ---- cpu ----
  static_assert(p.cpu.cores >= 1, "keel board profile: cpu.cores must be >= 1");
  static_assert(p.cpu.freq_ghz > 0, "keel board profile: cpu.freq_ghz must be > 0");
  static_assert(p.cpu.l1d_kib > 0 && p.cpu.l2_kib > 0,
                "keel board profile: cpu.l1d_kib and cpu.l2_kib must be > 0");
  static_assert(p.cpu.l3_kib >= 0, "keel board profile: cpu.l3_kib must be >= 0 (0: no L3)");
  static_assert(p.cpu.mem_bandwidth_gbs > 0,
                "keel board profile: cpu.mem_bandwidth_gbs must be > 0");
  static_assert(p.cpu.peak_int8_gops > 0 && p.cpu.peak_f32_gflops > 0,
                "keel board profile: cpu.peak_int8_gops and cpu.peak_f32_gflops must be > 0");
  static_assert(p.cpu.cores < 1 || p.cpu.freq_ghz <= 0 ||
                    p.cpu.peak_int8_gops <= kMaxCpuOpsPerCoreCycle * p.cpu.cores * p.cpu.freq_ghz,
                "keel board profile: cpu.peak_int8_gops exceeds 4096 ops per core per cycle; "
                "rates are in GOPS (1e9 ops/s), not TOPS");
  static_assert(p.cpu.launch_us >= 0, "keel board profile: cpu.launch_us must be >= 0");
  static_assert(p.cpu.arch != cpu_arch::x86_64 || (p.cpu.isa & isa::arm_features) == 0,
                "keel board profile: cpu.isa lists Arm features on an x86-64 CPU");
  static_assert(p.cpu.arch != cpu_arch::aarch64 || (p.cpu.isa & isa::x86_features) == 0,
                "keel board profile: cpu.isa lists x86 features on an aarch64 CPU");
  static_assert(p.cpu.arch != cpu_arch::aarch64 || (p.cpu.isa & isa::neon) != 0,
                "keel board profile: an aarch64 CPU has NEON (Advanced SIMD): add isa::neon");
  static_assert((p.cpu.isa & isa::avx512_vnni) == 0 ||
                    (p.cpu.isa & (isa::avx512f | isa::avx512bw)) == (isa::avx512f | isa::avx512bw),
                "keel board profile: isa::avx512_vnni needs isa::avx512f and isa::avx512bw");
  static_assert((p.cpu.isa & (isa::avx512f | isa::avx_vnni)) == 0 || (p.cpu.isa & isa::avx2) != 0,
                "keel board profile: AVX-512 or AVX-VNNI without isa::avx2");
  static_assert((p.cpu.isa & isa::i8mm) == 0 || (p.cpu.isa & isa::dotprod) != 0,
                "keel board profile: isa::i8mm without isa::dotprod (every core with I8MM has "
                "the dot product instructions)");
  static_assert((p.cpu.isa & isa::sve2) == 0 || (p.cpu.isa & isa::sve) != 0,
                "keel board profile: isa::sve2 without isa::sve");

  // ---- gpu ----
  if constexpr (p.gpu.present) {
    static_assert(!p.gpu.name.empty(), "keel board profile: gpu.name is empty");
    static_assert(p.gpu.vulkan_major > 1 || (p.gpu.vulkan_major == 1 && p.gpu.vulkan_minor >= 1),
                  "keel board profile: gpu.present needs Vulkan 1.1 or newer (keel's Vulkan "
                  "backend needs 1.1); set present = false for an older GPU");
    static_assert(p.gpu.shared_memory_kib > 0,
                  "keel board profile: gpu.shared_memory_kib must be > 0");
    static_assert(p.gpu.peak_int8_gops > 0 && p.gpu.peak_f32_gflops > 0,
                  "keel board profile: gpu.peak_int8_gops and gpu.peak_f32_gflops must be > 0");
    static_assert(p.gpu.mem_bandwidth_gbs > 0,
                  "keel board profile: gpu.mem_bandwidth_gbs must be > 0");
    static_assert(p.gpu.launch_us >= 0, "keel board profile: gpu.launch_us must be >= 0");
    static_assert(p.power.gpu_w > 0, "keel board profile: a present GPU needs power.gpu_w > 0");
  } else {
    static_assert(p.gpu.peak_int8_gops == 0 && p.gpu.peak_f32_gflops == 0 &&
                      p.gpu.shared_memory_kib == 0 && p.power.gpu_w == 0,
                  "keel board profile: gpu.present is false but GPU numbers are set (set "
                  "present = true, or leave the section at its defaults)");
  }

  // ---- npu ----
  if constexpr (p.npu.present) {
    static_assert(!p.npu.name.empty(), "keel board profile: npu.name is empty");
    static_assert(p.npu.ops != 0,
                  "keel board profile: npu.ops is empty (list op_bit() of each "
                  "op kind the NPU runs)");
    static_assert((p.npu.ops & ~kRoutableOps) == 0,
                  "keel board profile: npu.ops has a bit that is not a routable op kind "
                  "(matmul_i8, matmul_i4, conv2d_i8, attention)");
    static_assert(p.npu.dtypes != 0,
                  "keel board profile: npu.dtypes is empty (list dtype_bit() "
                  "of each weight dtype the NPU computes in)");
    static_assert(p.npu.peak_int8_gops > 0, "keel board profile: npu.peak_int8_gops must be > 0");
    static_assert(p.npu.peak_f16_gflops >= 0,
                  "keel board profile: npu.peak_f16_gflops must be >= 0 (0: no float path)");
    static_assert(p.npu.max_dim >= 1, "keel board profile: npu.max_dim must be >= 1");
    static_assert(p.npu.sram_kib >= 0, "keel board profile: npu.sram_kib must be >= 0");
    static_assert(p.npu.mem_bandwidth_gbs > 0,
                  "keel board profile: npu.mem_bandwidth_gbs must be > 0");
    static_assert(p.npu.launch_us >= 0, "keel board profile: npu.launch_us must be >= 0");
    static_assert(p.power.npu_w > 0, "keel board profile: a present NPU needs power.npu_w > 0");
  } else {
    static_assert(
        p.npu.ops == 0 && p.npu.dtypes == 0 && p.npu.peak_int8_gops == 0 && p.power.npu_w == 0,
        "keel board profile: npu.present is false but NPU numbers are set (set "
        "present = true, or leave the section at its defaults)");
  }

  // ---- power ----
  static_assert(p.power.idle_w > 0 && p.power.cpu_w > 0,
                "keel board profile: power.idle_w and power.cpu_w must be > 0");
  static_assert(p.power.budget_w >= p.power.idle_w + p.power.cpu_w,
                "keel board profile: power.budget_w is below idle + full CPU load");
  return true;
}

}  // namespace keel::boards
