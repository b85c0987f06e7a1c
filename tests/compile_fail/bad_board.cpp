// Compile-fail cases of keel::boards::check_profile: each KEEL_CASE breaks one rule of a valid
// profile (the RK3588's, which has every section) and must be rejected with that rule's
// message; the instantiation note names the board, bad_board. KEEL_CASE 0 changes nothing and
// compiles: the control. tests/meson.build lists the cases with the text each must print.
#include "keel/boards/rk3588.hpp"

namespace {
using namespace keel;
using namespace keel::boards;

constexpr board_profile broken(board_profile p) {
  // clang-format off
#if KEEL_CASE == 1
  p.name = "";
#elif KEEL_CASE == 2
  p.cpu.cores = 0;
#elif KEEL_CASE == 3
  p.cpu.freq_ghz = 0;
#elif KEEL_CASE == 4
  p.cpu.l2_kib = 0;
#elif KEEL_CASE == 5
  p.cpu.l3_kib = -1;
#elif KEEL_CASE == 6
  p.cpu.mem_bandwidth_gbs = 0;
#elif KEEL_CASE == 7
  p.cpu.peak_f32_gflops = 0;
#elif KEEL_CASE == 8
  p.cpu.peak_int8_gops = 844000;  // TOPS written as GOPS x 1000
#elif KEEL_CASE == 9
  p.cpu.launch_us = -1;
#elif KEEL_CASE == 10
  p.cpu.arch = cpu_arch::x86_64;  // with the RK3588's Arm features
#elif KEEL_CASE == 11
  p.cpu.isa |= isa::avx2;
#elif KEEL_CASE == 12
  p.cpu.isa = isa::dotprod;  // no NEON
#elif KEEL_CASE == 13
  p.cpu.arch = cpu_arch::x86_64; p.cpu.isa = isa::avx2 | isa::avx512_vnni;
#elif KEEL_CASE == 14
  p.cpu.arch = cpu_arch::x86_64; p.cpu.isa = isa::sse4_2 | isa::avx512f;
#elif KEEL_CASE == 15
  p.cpu.isa = isa::neon | isa::i8mm;
#elif KEEL_CASE == 16
  p.cpu.isa = isa::neon | isa::sve2;
#elif KEEL_CASE == 17
  p.gpu.name = "";
#elif KEEL_CASE == 18
  p.gpu.vulkan_minor = 0;  // Vulkan 1.0
#elif KEEL_CASE == 19
  p.gpu.shared_memory_kib = 0;
#elif KEEL_CASE == 20
  p.gpu.peak_int8_gops = 0;
#elif KEEL_CASE == 21
  p.gpu.mem_bandwidth_gbs = 0;
#elif KEEL_CASE == 22
  p.gpu.launch_us = -5;
#elif KEEL_CASE == 23
  p.power.gpu_w = 0;
#elif KEEL_CASE == 24
  p.gpu.present = false;  // numbers left behind
#elif KEEL_CASE == 25
  p.npu.name = "";
#elif KEEL_CASE == 26
  p.npu.ops = 0;
#elif KEEL_CASE == 27
  p.npu.ops |= op_bit(op_kind::quantize_linear);
#elif KEEL_CASE == 28
  p.npu.dtypes = 0;
#elif KEEL_CASE == 29
  p.npu.peak_int8_gops = 0;
#elif KEEL_CASE == 30
  p.npu.peak_f16_gflops = -1;
#elif KEEL_CASE == 31
  p.npu.max_dim = 0;
#elif KEEL_CASE == 32
  p.npu.sram_kib = -1;
#elif KEEL_CASE == 33
  p.npu.mem_bandwidth_gbs = 0;
#elif KEEL_CASE == 34
  p.npu.launch_us = -1;
#elif KEEL_CASE == 35
  p.power.npu_w = 0;
#elif KEEL_CASE == 36
  p.npu.present = false;  // numbers left behind
#elif KEEL_CASE == 37
  p.power.idle_w = 0;
#elif KEEL_CASE == 38
  p.power.budget_w = 5;  // below idle 3 W + CPU 7 W
#endif
  // clang-format on
  return p;
}

struct bad_board {
  static constexpr board_profile profile = broken(rk3588::profile);
};
}  // namespace

static_assert(check_profile<bad_board>());
