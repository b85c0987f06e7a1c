// keel/backends/npu/vnpu_config.hpp — the knobs of the virtual NPU: MAC array, SRAM, DMA,
// requantization unit, what it supports, and the faults it injects.
//
// The virtual NPU is a functional and timing model of a generic int8 NPU:
//
//   DRAM (registered host buffers)
//     | DMA engine: one descriptor queue, `dma_bytes_per_cycle`, `dma_setup_cycles` each
//   on-chip SRAM (`sram_bytes`): input, weight, parameter, accumulator and output tiles,
//     |                          each double-buffered when `double_buffer` is set
//   MAC array (`mac_rows` x `mac_cols` int8 MACs): rows take output pixels (matmul rows), columns
//     |                                            take output channels (matmul columns)
//   requantization unit (`requant_lanes` outputs a cycle): bias, then s32 / f32 / s8 / u8
//
// The three engines run concurrently; a command waits for its engine and for the SRAM regions it
// reads or writes (timing.hpp). Nothing here is specific to a vendor; profiles.hpp sets the
// numbers to mimic real NPUs.
#pragma once

#include <array>
#include <cstdint>

#include "keel/backends/npu/driver.hpp"

namespace keel::npu {

// ---- fault injection -------------------------------------------------------------------------

enum class fault_kind : std::uint8_t {
  none,
  timeout,      // the job hangs part-way: wait() reports status_code::timeout
  dma_error,    // a DMA descriptor fails part-way: the job aborts with status_code::device_lost;
                // the device itself survives and the next job runs
  device_lost,  // the device goes away part-way: this job and later ones report device_lost
};

constexpr const char* to_string(fault_kind k) noexcept {
  switch (k) {
    case fault_kind::none: return "none";
    case fault_kind::timeout: return "timeout";
    case fault_kind::dma_error: return "dma_error";
    case fault_kind::device_lost: return "device_lost";
  }
  return "?";
}

// When a fault strikes. Both triggers are deterministic: `every_nth` counts submissions (the
// first is 1), and `per_million` draws from a hash of (`seed`, submission number), so a run
// replays exactly. The command it strikes at is derived from the same hash.
struct fault_rule {
  fault_kind kind = fault_kind::none;
  std::uint64_t every_nth = 0;    // submissions n, 2n, 3n, ... fault; 0: never
  std::uint32_t per_million = 0;  // each submission faults with this probability; 0: never
  std::uint64_t seed = 0;
};

// ---- the configuration -----------------------------------------------------------------------

struct vnpu_config {
  // MAC array: a `mac_rows` x `mac_cols` grid of int8 multiply-accumulators. Each cycle it adds
  // one reduction step to a rows x cols block of outputs; a tile pays `rows + cols` cycles to
  // fill and drain the array.
  std::int64_t mac_rows = 16;
  std::int64_t mac_cols = 16;
  std::int64_t sram_bytes = 256 * 1024;  // on-chip SRAM: every tile of every op fits in it
  std::int64_t alignment = 64;           // SRAM regions and registered buffers (power of two)
  double dma_bytes_per_cycle = 16.0;     // sustained DRAM <-> SRAM bandwidth
  std::int64_t dma_setup_cycles = 64;    // fixed cost of one DMA descriptor
  std::int64_t requant_lanes = 16;       // outputs the requantization unit finishes per cycle
  std::int64_t requant_setup_cycles = 8;
  double clock_hz = 1.0e9;
  // Fixed cost of one job outside its commands: command fetch, start, completion interrupt.
  std::int64_t launch_cycles = 0;
  bool double_buffer = true;  // two slots per operand: loads overlap compute

  // What it supports (anything else is status_code::unsupported).
  std::uint32_t input_types = dtype_bit(dtype::s8) | dtype_bit(dtype::u8);
  std::uint32_t weight_types = dtype_bit(dtype::s8) | dtype_bit(dtype::u8);
  std::uint32_t output_types =
      dtype_bit(dtype::s32) | dtype_bit(dtype::f32) | dtype_bit(dtype::s8) | dtype_bit(dtype::u8);
  std::uint32_t requant_modes =
      requant_bit(requant_mode::fixed_point) | requant_bit(requant_mode::float_scale);
  weight_scales scales = weight_scales::per_channel;
  bool weight_zero_points = true;
  bool grouped_conv = true;
  bool depthwise_conv = true;
  bool dilation = true;
  std::int64_t max_dim = 65536;
  std::int64_t max_kernel = 16;
  std::int64_t max_stride = 16;

  // Faults, checked in order at every submission; the first that triggers wins.
  std::array<fault_rule, 3> faults{};
  // After a device_lost fault: how many submissions are refused before the device is back
  // (a driver reload, say). 0: it stays lost until virtual_npu::reset().
  std::uint64_t device_lost_for = 0;
};

// Rejects configurations no hardware could have; a virtual NPU built from one reports this
// Status from every call.
inline Status validate(const vnpu_config& c) {
  constexpr std::string_view op = "virtual_npu";
  auto positive = [&](const char* name, std::int64_t v, std::int64_t hi) -> Status {
    if (v < 1 || v > hi) {
      return Status::make(status_code::invalid_argument, op, "%s = %lld (must be in [1, %lld])",
                          name, static_cast<long long>(v), static_cast<long long>(hi));
    }
    return Status::Ok();
  };
  KEEL_RETURN_IF_ERROR(positive("mac_rows", c.mac_rows, 4096));
  KEEL_RETURN_IF_ERROR(positive("mac_cols", c.mac_cols, 4096));
  KEEL_RETURN_IF_ERROR(positive("sram_bytes", c.sram_bytes, std::int64_t{1} << 36));
  KEEL_RETURN_IF_ERROR(positive("alignment", c.alignment, 4096));
  KEEL_RETURN_IF_ERROR(positive("requant_lanes", c.requant_lanes, 1 << 16));
  KEEL_RETURN_IF_ERROR(positive("max_dim", c.max_dim, std::int64_t{1} << 31));
  KEEL_RETURN_IF_ERROR(positive("max_kernel", c.max_kernel, 1 << 16));
  KEEL_RETURN_IF_ERROR(positive("max_stride", c.max_stride, 1 << 16));
  if ((c.alignment & (c.alignment - 1)) != 0 || c.alignment < 4) {
    return Status::make(status_code::invalid_argument, op,
                        "alignment = %lld (must be a power of two >= 4: accumulators are int32)",
                        static_cast<long long>(c.alignment));
  }
  if (c.dma_setup_cycles < 0 || c.requant_setup_cycles < 0 || c.launch_cycles < 0) {
    return Status::make(status_code::invalid_argument, op, "setup cycles must be >= 0");
  }
  if (!(c.dma_bytes_per_cycle > 0 && c.dma_bytes_per_cycle < 1e6)) {
    return Status::make(status_code::invalid_argument, op,
                        "dma_bytes_per_cycle = %g (must be in (0, 1e6))", c.dma_bytes_per_cycle);
  }
  if (!(c.clock_hz > 0 && c.clock_hz < 1e12)) {
    return Status::make(status_code::invalid_argument, op, "clock_hz = %g (must be in (0, 1e12))",
                        c.clock_hz);
  }
  const std::uint32_t eight_bit = dtype_bit(dtype::s8) | dtype_bit(dtype::u8);
  if ((c.input_types & ~eight_bit) != 0 || (c.weight_types & ~eight_bit) != 0) {
    return Status::make(status_code::invalid_argument, op,
                        "input and weight dtypes must be among s8 and u8 (the virtual NPU's MAC "
                        "array is int8)");
  }
  for (const fault_rule& f : c.faults) {
    if (f.per_million > 1000000) {
      return Status::make(status_code::invalid_argument, op, "fault per_million = %u (> 1e6)",
                          f.per_million);
    }
  }
  return Status::Ok();
}

// The capabilities the adapter reads, derived from the configuration.
constexpr npu_capabilities capabilities_of(const vnpu_config& c) noexcept {
  npu_capabilities caps;
  caps.ops = op_bit(op_kind::matmul_i8) | op_bit(op_kind::conv2d_i8);
  caps.input_types = c.input_types;
  caps.weight_types = c.weight_types;
  caps.output_types = c.output_types;
  caps.requant_modes = c.requant_modes;
  caps.scales = c.scales;
  caps.weight_zero_points = c.weight_zero_points;
  caps.grouped_conv = c.grouped_conv;
  caps.depthwise_conv = c.depthwise_conv;
  caps.dilation = c.dilation;
  caps.max_dim = c.max_dim;
  caps.max_kernel = c.max_kernel;
  caps.max_stride = c.max_stride;
  caps.sram_bytes = c.sram_bytes;
  caps.alignment = c.alignment;
  caps.clock_hz = c.clock_hz;
  caps.macs_per_cycle = c.mac_rows * c.mac_cols;
  caps.dram_bytes_per_cycle = c.dma_bytes_per_cycle;
  return caps;
}

}  // namespace keel::npu
