// keel/backends/npu/profiles.hpp — virtual NPU configurations that mimic real NPUs, and the
// ready-made backends built from them (used by the matching board profiles).
//
// Each number is either cited to a public source or marked "estimate" with its reasoning. The
// virtual NPU models one MAC array; an NPU with several cores is modelled as one array with all
// of their MACs, which is what a perfectly split op would see (a real multi-core split loses
// some of it).
#pragma once

#include <string_view>

#include "keel/backends/npu/adapter.hpp"
#include "keel/backends/npu/virtual_npu.hpp"
#include "keel/backends/npu/vnpu_config.hpp"

namespace keel::npu {

namespace profiles {

// A generic 16 x 16 int8 NPU with 256 KiB of SRAM at 1 GHz (0.5 TOPS): the defaults of
// vnpu_config, for tests and for boards without a better description.
struct generic_16x16 {
  static constexpr std::string_view name = "keel_vnpu_16x16";
  static constexpr vnpu_config config{};
};

// Rockchip RK3588: "6 TOPS" int8 NPU of three cores.
//   MACs and clock: the RK3588 TRM, as quoted in https://jas-hacks.blogspot.com/2023 ("RK3588
//   reverse engineering"): 1024 x 3 int8 MACs per cycle, NPU clock 1 GHz; 2 x 3072 x 1e9 =
//   6.1e12 ops/s, the advertised 6 TOPS. Modelled as one 32 x 96 array (3 x 32 x 32).
//   SRAM: estimate. The per-core convolution buffer's size is not in our sources; 1 MiB in all
//   is assumed, as in boards/keel/boards/rk3588.hpp.
//   DMA: estimate. The NPU shares the SoC's LPDDR4x/LPDDR5 (tens of GB/s peak); 24 B/cycle
//   (24 GB/s at 1 GHz) sustained is assumed.
//   Features: int8 with per-channel weights and either requantization mode (estimate); int32
//   and float outputs of int8 matmuls, as the reverse-engineered driver documents ("INT8 input,
//   INT32/FP32 output": https://deepwiki.com/mtx512/rk3588-npu/1-overview).
struct rk3588 {
  static constexpr std::string_view name = "rk3588_npu";
  static constexpr vnpu_config config = [] {
    vnpu_config c;
    c.mac_rows = 32;
    c.mac_cols = 96;
    c.sram_bytes = 1024 * 1024;
    c.dma_bytes_per_cycle = 24.0;
    c.dma_setup_cycles = 100;  // estimate: descriptor fetch and DRAM page open
    c.requant_lanes = 96;      // estimate: one output channel per array column per cycle
    c.clock_hz = 1.0e9;
    c.launch_cycles = 100000;  // estimate: 100 us per job, as boards/keel/boards/rk3588.hpp
    c.max_dim = 8192;          // estimate: RKNN's documented tensor limits are of this order
    c.max_kernel = 15;         // estimate
    c.max_stride = 8;          // estimate
    return c;
  }();
};

// NXP i.MX 8M Plus: "2.3 TOPS" VeriSilicon NPU (NXP's i.MX 8M Plus fact sheet, as cited in
// boards/keel/boards/imx8m_plus.hpp; AN13854: the NPU computes in 8- or 16-bit integers).
//   MACs and clock: estimate. 2.3e12 / 2 = 1.15e12 MAC/s; at an assumed 1 GHz that is 1152 int8
//   MACs per cycle, modelled as a 36 x 32 array (2 x 1152 x 1e9 = 2.30e12).
//   SRAM: estimate, 256 KiB.
//   DMA: estimate. 32-bit LPDDR4 shared with the SoC; 8 B/cycle (8 GB/s) sustained assumed.
//   Features: estimate. Vendors' toolchains for this class of NPU (VeriSilicon VIP, driven
//   through TFLite's integer pipeline) favour per-tensor quantization; we model TFLite's
//   fixed-point requantization only (no ONNX float mode), 8-bit outputs only (no s32 or f32),
//   and symmetric weights (weight zero point 0), as TFLite's int8 scheme prescribes.
struct imx8mp {
  static constexpr std::string_view name = "imx8mp_npu";
  static constexpr vnpu_config config = [] {
    vnpu_config c;
    c.mac_rows = 36;
    c.mac_cols = 32;
    c.sram_bytes = 256 * 1024;
    c.dma_bytes_per_cycle = 8.0;
    c.dma_setup_cycles = 100;  // estimate
    c.requant_lanes = 32;      // estimate
    c.clock_hz = 1.0e9;
    c.launch_cycles = 200000;  // estimate: 200 us per job, as boards/keel/boards/imx8m_plus.hpp
    c.output_types = dtype_bit(dtype::s8) | dtype_bit(dtype::u8);
    c.requant_modes = requant_bit(requant_mode::fixed_point);
    c.weight_zero_points = false;
    c.max_dim = 65535;  // estimate, as in boards/keel/boards/imx8m_plus.hpp
    c.max_kernel = 11;  // estimate
    c.max_stride = 4;   // estimate
    return c;
  }();
};

}  // namespace profiles

// A virtual NPU that starts in a profile's configuration and carries its name (in traces,
// reports and benchmark names).
template <class Profile>
class profiled_virtual_npu : public virtual_npu {
 public:
  static constexpr backend_caps caps = [] {
    backend_caps c = virtual_npu::caps;
    c.name = Profile::name;
    return c;
  }();
  profiled_virtual_npu() : virtual_npu(Profile::config) {}
};

// Ready-made backends, default-constructible, for board profiles and the router.
using generic_vnpu_backend = npu_backend<profiled_virtual_npu<profiles::generic_16x16>>;
using rk3588_vnpu_backend = npu_backend<profiled_virtual_npu<profiles::rk3588>>;
using imx8mp_vnpu_backend = npu_backend<profiled_virtual_npu<profiles::imx8mp>>;

}  // namespace keel::npu
