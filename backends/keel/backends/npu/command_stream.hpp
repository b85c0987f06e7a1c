// keel/backends/npu/command_stream.hpp — the virtual NPU's command descriptors.
//
// A command stream is what the tiler (tiler.hpp) writes and the virtual NPU executes: a table of
// SRAM regions and a list of descriptors in program order. Executed one after another, the
// descriptors compute the op exactly; the timing model (timing.hpp) lets each engine run ahead
// as far as the regions it touches allow, which is where double buffering pays.
//
//   load         DMA   DRAM buffer -> SRAM region       (3-D strided: planes x rows x bytes)
//   matmul_tile  MAC   acc[m][n] (+)= sum_k (A[m][k] - za) * (B[k][n] - zb[n])
//   conv_tile    MAC   acc[pixel][c] (+)= the taps of a conv window over one input-channel chunk
//   requantize   RQ    acc + bias -> s32 / f32 / s8 / u8 output tile (keel/quant.hpp)
//   store        DMA   SRAM region -> DRAM buffer
//
// Every tile starts at the first byte of its region; only DMA descriptors carry an offset inside
// a region (a conv window whose first rows fall in the padding is loaded part-way in).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "keel/backends/npu/driver.hpp"

namespace keel::npu::vnpu {

enum class opcode : std::uint8_t { load, store, matmul_tile, conv_tile, requantize };

constexpr std::string_view to_string(opcode o) noexcept {
  switch (o) {
    case opcode::load: return "load";
    case opcode::store: return "store";
    case opcode::matmul_tile: return "matmul_tile";
    case opcode::conv_tile: return "conv_tile";
    case opcode::requantize: return "requantize";
  }
  return "?";
}

// The three engines of the virtual NPU; each runs its commands in program order.
enum class engine : std::uint8_t { dma, mac, requant };
inline constexpr int kEngineCount = 3;

constexpr engine engine_of(opcode o) noexcept {
  switch (o) {
    case opcode::load:
    case opcode::store: return engine::dma;
    case opcode::matmul_tile:
    case opcode::conv_tile: return engine::mac;
    case opcode::requantize: return engine::requant;
  }
  return engine::dma;
}

// What a region holds; one region per operand and buffer slot.
enum class region_role : std::uint8_t { input, weights, params, acc, output };

struct sram_region {
  region_role role = region_role::input;
  std::int64_t offset = 0;  // bytes from the start of SRAM, a multiple of the alignment
  std::int64_t bytes = 0;
};

// A strided copy between a registered DRAM buffer and an SRAM region. The innermost dimension
// is `row_bytes` contiguous bytes on both sides.
struct dma_desc {
  buffer_id buffer = kNoBuffer;
  std::int64_t dram_offset = 0;  // bytes from the buffer's start
  std::int32_t region = -1;
  std::int64_t region_offset = 0;  // bytes from the region's start
  std::int64_t planes = 1, rows = 1, row_bytes = 0;
  std::int64_t dram_plane_stride = 0, dram_row_stride = 0;  // bytes
  std::int64_t sram_plane_stride = 0, sram_row_stride = 0;  // bytes

  constexpr std::int64_t bytes() const noexcept { return planes * rows * row_bytes; }
};

// acc[m][n] (+)= sum_k (A[m][k] - a_zero_point) * (B[k][n] - params[n].w_zero_point).
// A tile [m][k], B tile [k][n], acc [m][n] int32, params [n]: all dense in their regions.
struct matmul_tile_desc {
  std::int64_t m = 0, n = 0, k = 0;
  std::int32_t a_region = -1, b_region = -1, params_region = -1, acc_region = -1;
  dtype a_type = dtype::u8, b_type = dtype::s8;
  std::int32_t a_zero_point = 0;
  bool accumulate = false;  // add to acc (a later K chunk) instead of overwriting it
};

// One output tile of a conv2d over one chunk of its input channels (implicit GEMM).
//   window  [win_rows][win_cols][win_chans] in SRAM; element (0, 0) is input coordinate
//           (ih0, iw0), which may lie in the padding; taps outside [0, in_h) x [0, in_w) read
//           the input zero point and so add exactly 0: they are skipped, never loaded.
//   weights [channels][kernel_h][kernel_w][w_chans]
//   acc     [out_rows * out_cols][channels] int32; params [channels]
// Output pixel (r, c), tap (i, j) reads window row r*stride_h + i*dilation_h and column
// c*stride_w + j*dilation_w. Regular and grouped: every output channel reduces over all
// w_chans (== win_chans) window channels. Depthwise: output channel c reads the one window
// channel (first_oc + c) / multiplier - first_oc / multiplier.
struct conv_tile_desc {
  std::int64_t out_rows = 0, out_cols = 0, channels = 0;
  std::int64_t win_rows = 0, win_cols = 0, win_chans = 0;
  std::int64_t ih0 = 0, iw0 = 0, in_h = 0, in_w = 0;
  std::int64_t kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1;
  std::int64_t dilation_h = 1, dilation_w = 1;
  std::int64_t w_chans = 0;
  bool depthwise = false;
  std::int64_t first_oc = 0, multiplier = 1;
  std::int32_t in_region = -1, w_region = -1, params_region = -1, acc_region = -1;
  dtype in_type = dtype::u8, w_type = dtype::s8;
  std::int32_t in_zero_point = 0;
  bool accumulate = false;
};

// out[r][c] = stage(acc[r][c] + params[c].bias) for r < rows, c < cols; out has out.type's size.
struct requant_desc {
  std::int64_t rows = 0, cols = 0;
  std::int32_t acc_region = -1, params_region = -1, out_region = -1;
  output_quant out{};
};

// One descriptor; the field that matches `op` is meaningful.
struct command {
  opcode op = opcode::load;
  dma_desc dma{};         // load, store
  matmul_tile_desc mm{};  // matmul_tile
  conv_tile_desc conv{};  // conv_tile
  requant_desc rq{};      // requantize
};

// How the tiler cut the op: tile extents and loop order, for tests and traces.
struct tiling_summary {
  std::int64_t tile[4] = {0, 0, 0, 0};  // matmul: M, N, K, -; conv: rows, cols, channels, chans
  bool weights_stationary = true;       // weight tile outer (reused), else input tile outer
  std::int64_t footprint = 0;           // SRAM bytes of every region together
};

struct command_stream {
  op_kind kind = op_kind::matmul_i8;
  std::int64_t sram_bytes = 0;  // the SRAM size it was built for
  std::vector<sram_region> regions;
  std::vector<command> commands;
  std::int64_t macs = 0;  // useful multiply-accumulates of the op
  tiling_summary tiling{};
};

}  // namespace keel::npu::vnpu
