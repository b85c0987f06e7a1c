// keel/backends/npu/timing.hpp — cycles per command and per op on the virtual NPU.
//
// Cost of one command, from the configuration:
//   load / store   dma_setup_cycles + ceil(bytes / dma_bytes_per_cycle)
//   matmul_tile    ceil(m / mac_rows) * ceil(n / mac_cols) * k          + (mac_rows + mac_cols)
//   conv_tile      ceil(pixels / mac_rows) * ceil(channels / mac_cols) * taps * reduction
//                                                                       + (mac_rows + mac_cols)
//                  (reduction = w_chans; 1 for depthwise, whose channels take the columns)
//   requantize     requant_setup_cycles + ceil(rows * cols / requant_lanes)
// The array term is the outer-product schedule of an output-stationary array: each pass keeps a
// rows x cols block of accumulators and feeds one reduction step a cycle; the constant is the
// fill and drain of the array's pipeline.
//
// A job also pays `launch_cycles` once (command fetch, start, completion interrupt).
//
// Schedule of an op: the DMA, MAC and requantization engines each run their commands in program
// order, concurrently; a command also waits until every command before it that wrote a region
// it reads has finished (read after write), and every earlier reader and writer of a region it
// writes (write after read / write). With double buffering the tiler alternates two slots per
// operand, so the load of tile i+1 overlaps the compute of tile i and the op's time tends to
// max(MAC time, DMA time): the roofline of the configured array and bandwidth.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "keel/backends/npu/command_stream.hpp"
#include "keel/backends/npu/vnpu_config.hpp"

namespace keel::npu::vnpu {

constexpr std::int64_t ceil_div(std::int64_t a, std::int64_t b) noexcept {
  return (a + b - 1) / b;
}

inline std::int64_t dma_cycles(std::int64_t bytes, const vnpu_config& c) noexcept {
  return c.dma_setup_cycles +
         static_cast<std::int64_t>(std::ceil(static_cast<double>(bytes) / c.dma_bytes_per_cycle));
}

// Cycles one command occupies its engine.
inline std::int64_t cycles_of(const command& cmd, const vnpu_config& c) noexcept {
  const std::int64_t fill = c.mac_rows + c.mac_cols;
  switch (cmd.op) {
    case opcode::load:
    case opcode::store: return dma_cycles(cmd.dma.bytes(), c);
    case opcode::matmul_tile:
      return ceil_div(cmd.mm.m, c.mac_rows) * ceil_div(cmd.mm.n, c.mac_cols) * cmd.mm.k + fill;
    case opcode::conv_tile: {
      const conv_tile_desc& t = cmd.conv;
      const std::int64_t reduction = t.depthwise ? 1 : t.w_chans;
      return ceil_div(t.out_rows * t.out_cols, c.mac_rows) * ceil_div(t.channels, c.mac_cols) *
                 t.kernel_h * t.kernel_w * reduction +
             fill;
    }
    case opcode::requantize:
      return c.requant_setup_cycles + ceil_div(cmd.rq.rows * cmd.rq.cols, c.requant_lanes);
  }
  return 0;
}

// Where one command ran in the schedule.
struct command_time {
  std::int64_t start = 0, end = 0;
};

struct timing_report {
  std::int64_t cycles = 0;               // launch_cycles + the commands' schedule
  std::int64_t busy[kEngineCount] = {};  // cycles each engine was occupied
  std::int64_t macs = 0;                 // useful MACs of the op
  std::int64_t dram_bytes = 0;           // loaded + stored
  std::int64_t commands = 0;
  double seconds = 0;  // cycles / clock

  std::int64_t busy_of(engine e) const noexcept { return busy[static_cast<int>(e)]; }
};

namespace detail {
// Regions a command reads (up to 4) and writes (at most 1); -1 marks an unused entry.
struct region_use {
  std::int32_t reads[4] = {-1, -1, -1, -1};
  std::int32_t write = -1;
};

inline region_use uses_of(const command& cmd) noexcept {
  region_use u;
  switch (cmd.op) {
    case opcode::load: u.write = cmd.dma.region; break;
    case opcode::store: u.reads[0] = cmd.dma.region; break;
    case opcode::matmul_tile:
      u.reads[0] = cmd.mm.a_region;
      u.reads[1] = cmd.mm.b_region;
      u.reads[2] = cmd.mm.params_region;
      if (cmd.mm.accumulate) u.reads[3] = cmd.mm.acc_region;
      u.write = cmd.mm.acc_region;
      break;
    case opcode::conv_tile:
      u.reads[0] = cmd.conv.in_region;
      u.reads[1] = cmd.conv.w_region;
      u.reads[2] = cmd.conv.params_region;
      if (cmd.conv.accumulate) u.reads[3] = cmd.conv.acc_region;
      u.write = cmd.conv.acc_region;
      break;
    case opcode::requantize:
      u.reads[0] = cmd.rq.acc_region;
      u.reads[1] = cmd.rq.params_region;
      u.write = cmd.rq.out_region;
      break;
  }
  return u;
}
}  // namespace detail

// Schedules `s` on the engines of `c`; `per_command`, when given, receives each command's slot.
// The stream must have passed the driver's validation (region indices in range).
inline timing_report simulate_timing(const command_stream& s, const vnpu_config& c,
                                     std::vector<command_time>* per_command = nullptr) {
  timing_report r;
  r.macs = s.macs;
  r.commands = static_cast<std::int64_t>(s.commands.size());
  std::int64_t engine_free[kEngineCount] = {};
  std::vector<std::int64_t> last_write(s.regions.size(), 0), last_read(s.regions.size(), 0);
  if (per_command) per_command->resize(s.commands.size());

  for (std::size_t i = 0; i < s.commands.size(); ++i) {
    const command& cmd = s.commands[i];
    const int e = static_cast<int>(engine_of(cmd.op));
    const detail::region_use u = detail::uses_of(cmd);

    // ---- earliest start: own engine, then every hazard on the regions it touches ----------
    std::int64_t start = engine_free[e];
    for (std::int32_t rd : u.reads) {
      if (rd >= 0) start = std::max(start, last_write[static_cast<std::size_t>(rd)]);
    }
    if (u.write >= 0) {
      const auto w = static_cast<std::size_t>(u.write);
      start = std::max({start, last_write[w], last_read[w]});
    }

    // ---- occupy the engine, record the region accesses -------------------------------------
    const std::int64_t cost = cycles_of(cmd, c);
    const std::int64_t end = start + cost;
    engine_free[e] = end;
    r.busy[e] += cost;
    for (std::int32_t rd : u.reads) {
      if (rd >= 0) {
        auto& lr = last_read[static_cast<std::size_t>(rd)];
        lr = std::max(lr, end);
      }
    }
    if (u.write >= 0) last_write[static_cast<std::size_t>(u.write)] = end;
    if (cmd.op == opcode::load || cmd.op == opcode::store) r.dram_bytes += cmd.dma.bytes();
    r.cycles = std::max(r.cycles, end);
    if (per_command) (*per_command)[i] = {start, end};
  }
  r.cycles += c.launch_cycles;
  r.seconds = static_cast<double>(r.cycles) / c.clock_hz;
  return r;
}

}  // namespace keel::npu::vnpu
