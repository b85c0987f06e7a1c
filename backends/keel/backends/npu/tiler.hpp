// keel/backends/npu/tiler.hpp — cuts an op into tiles that fit the virtual NPU's SRAM and writes
// the command stream that computes it.
//
// SRAM layout. Five operands, each with one region per buffer slot (two when double-buffered):
//   input    matmul: A tile [mt][kt]        conv: input window [rows][cols][chans]
//   weights  matmul: B tile [kt][nt]        conv: filters [tc][kh][kw][tci]
//   params   channel_params [nt] or [tc]    (bias, weight zero point, requantization constants)
//   acc      int32 [mt][nt] or [pixels][tc]
//   output   out.type [mt][nt] or [pixels][tc]
// footprint = slots * sum of the five regions, each rounded up to the alignment; the tiler only
// picks tilings whose footprint fits `sram_bytes` (and asserts it when it lays the regions out).
//
// Choice. The tiler enumerates tile sizes (the whole extent, powers of two, multiples of the MAC
// array's side, even splits) and both loop orders, and keeps the cheapest by a closed-form
// estimate of max(MAC cycles, DMA cycles, requantization cycles). The estimate only steers the
// choice; the timing model then schedules the real stream.
//
// Loop orders. weights-stationary: the weight tile is outer, so with the whole reduction in one
// tile it is loaded once and reused across every input tile; input-stationary: the reverse.
// A tile whose key equals one already in a slot is reused, not reloaded.
//
// Emission (double-buffered): the loads of step i+1 are written before the compute of step i,
// and the store of output tile t after the requantization of tile t+1, so that in program order
// the DMA never waits behind a compute it does not depend on.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <limits>
#include <vector>

#include "keel/backends/npu/command_stream.hpp"
#include "keel/backends/npu/timing.hpp"
#include "keel/backends/npu/vnpu_config.hpp"
#include "keel/check.hpp"

namespace keel::npu::vnpu {

inline constexpr std::int64_t kParamBytes = static_cast<std::int64_t>(sizeof(channel_params));

constexpr std::int64_t align_up(std::int64_t v, std::int64_t a) noexcept {
  return (v + a - 1) / a * a;
}

// a*b, or INT64_MAX when it overflows (a size that large never fits any SRAM).
constexpr std::int64_t sat_mul(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t r = 0;
  return checked_mul(a, b, &r) ? r : std::numeric_limits<std::int64_t>::max();
}
constexpr std::int64_t sat_add(std::int64_t a, std::int64_t b) noexcept {
  std::int64_t r = 0;
  return checked_add(a, b, &r) ? r : std::numeric_limits<std::int64_t>::max();
}

constexpr std::int64_t element_bytes(dtype t) noexcept {
  return bits_of(t) / 8;
}

enum operand : int { kInput = 0, kWeights = 1, kParams = 2, kAcc = 3, kOutput = 4 };
inline constexpr int kOperandCount = 5;

constexpr int slots_of(const vnpu_config& c) noexcept {
  return c.double_buffer ? 2 : 1;
}

// SRAM bytes of a tiling whose five operand tiles have the given sizes (saturating).
inline std::int64_t footprint_of(const std::array<std::int64_t, kOperandCount>& tile_bytes,
                                 const vnpu_config& c) noexcept {
  std::int64_t total = 0;
  for (std::int64_t b : tile_bytes) {
    if (b > (std::int64_t{1} << 56)) return std::numeric_limits<std::int64_t>::max();
    total = sat_add(total, align_up(b < 1 ? 1 : b, c.alignment));
  }
  return sat_mul(total, slots_of(c));
}

// Tile extents worth trying along a dimension of `dim` elements, for a unit of `unit` (the MAC
// array's side along it, or 1): the whole extent, powers of two, multiples of the unit by powers
// of two, and the extent split evenly into 2..8 tiles rounded up to the unit.
inline void tile_candidates(std::int64_t dim, std::int64_t unit, std::vector<std::int64_t>& out) {
  out.clear();
  out.push_back(dim);
  for (std::int64_t p = 1; p < dim && p <= (std::int64_t{1} << 40); p *= 2) out.push_back(p);
  for (std::int64_t u = unit; u < dim && u <= (std::int64_t{1} << 40); u *= 2) out.push_back(u);
  for (std::int64_t t = 2; t <= 8; ++t) {
    const std::int64_t v = align_up(ceil_div(dim, t), unit);
    if (v < dim) out.push_back(v);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
}

// The exact identity of a tile in a slot: same key, same bytes.
struct tile_key {
  std::array<std::int64_t, 6> v{};
  friend bool operator==(const tile_key&, const tile_key&) = default;
};

struct operand_load {
  tile_key key;
  dma_desc dma;  // region set by the builder; planes == 0: nothing to copy (all padding)
};

// Lays out the regions and writes the commands of a sequence of tile steps (see the top).
class stream_builder {
 public:
  stream_builder(const vnpu_config& c, command_stream& s,
                 const std::array<std::int64_t, kOperandCount>& tile_bytes)
      : s_(s), slots_(slots_of(c)) {
    constexpr region_role roles[kOperandCount] = {region_role::input, region_role::weights,
                                                  region_role::params, region_role::acc,
                                                  region_role::output};
    std::int64_t offset = 0;
    s_.regions.clear();
    for (int o = 0; o < kOperandCount; ++o) {
      const std::int64_t bytes = align_up(tile_bytes[static_cast<std::size_t>(o)], c.alignment);
      for (int slot = 0; slot < slots_; ++slot) {
        s_.regions.push_back({roles[o], offset, bytes});
        offset += bytes;
      }
    }
    // The tiler only lays out tilings it has checked against the SRAM budget.
    KEEL_DASSERT(offset <= c.sram_bytes, "tile footprint exceeds the configured SRAM");
    KEEL_DASSERT(offset == footprint_of(tile_bytes, c), "region layout matches the footprint");
    s_.sram_bytes = c.sram_bytes;
    s_.tiling.footprint = offset;
  }

  std::int32_t region(int operand, int slot) const noexcept { return operand * slots_ + slot; }

  // One reduction step of one output tile: loads for input, weights and params, the compute
  // command (its region fields are set here), and, when `last_chunk`, the requantization and
  // store that finish the tile.
  void step(const std::array<operand_load, 3>& loads, const command& compute, bool last_chunk,
            const command& requant, const command& store) {
    pending p;
    p.compute = compute;
    p.last = last_chunk;
    p.requant = requant;
    p.store = store;
    for (int o = 0; o < 3; ++o) p.slot[o] = resolve(o, loads[static_cast<std::size_t>(o)]);
    if (slots_ == 1) {
      emit(p);
      return;
    }
    if (have_prev_) emit(prev_);
    prev_ = p;
    have_prev_ = true;
  }

  void finish() {
    if (have_prev_) emit(prev_);
    have_prev_ = false;
    if (have_store_) s_.commands.push_back(deferred_store_);
    have_store_ = false;
  }

 private:
  struct pending {
    command compute, requant, store;
    bool last = false;
    int slot[3] = {0, 0, 0};
  };

  // The slot holding this tile after the step: reused when a slot already has it, otherwise the
  // slot the previous step is not using, after a load into it.
  int resolve(int o, const operand_load& l) {
    for (int slot = 0; slot < slots_; ++slot) {
      if (valid_[o][slot] && key_[o][slot] == l.key) {
        in_use_[o] = slot;
        return slot;
      }
    }
    const int slot = slots_ == 1 ? 0 : 1 - in_use_[o];
    key_[o][slot] = l.key;
    valid_[o][slot] = true;
    in_use_[o] = slot;
    if (l.dma.planes > 0 && l.dma.rows > 0 && l.dma.row_bytes > 0) {
      command c;
      c.op = opcode::load;
      c.dma = l.dma;
      c.dma.region = region(o, slot);
      s_.commands.push_back(c);
    }
    return slot;
  }

  void emit(const pending& p) {
    const int acc_slot = static_cast<int>(tile_ % slots_);
    command c = p.compute;
    if (c.op == opcode::matmul_tile) {
      c.mm.a_region = region(kInput, p.slot[kInput]);
      c.mm.b_region = region(kWeights, p.slot[kWeights]);
      c.mm.params_region = region(kParams, p.slot[kParams]);
      c.mm.acc_region = region(kAcc, acc_slot);
    } else {
      c.conv.in_region = region(kInput, p.slot[kInput]);
      c.conv.w_region = region(kWeights, p.slot[kWeights]);
      c.conv.params_region = region(kParams, p.slot[kParams]);
      c.conv.acc_region = region(kAcc, acc_slot);
    }
    s_.commands.push_back(c);
    if (!p.last) return;

    command rq = p.requant;
    rq.rq.acc_region = region(kAcc, acc_slot);
    rq.rq.params_region = region(kParams, p.slot[kParams]);
    rq.rq.out_region = region(kOutput, acc_slot);
    s_.commands.push_back(rq);
    command st = p.store;
    st.dma.region = region(kOutput, acc_slot);
    if (slots_ == 1) {
      s_.commands.push_back(st);
    } else {
      if (have_store_) s_.commands.push_back(deferred_store_);
      deferred_store_ = st;
      have_store_ = true;
    }
    ++tile_;
  }

  command_stream& s_;
  int slots_;
  tile_key key_[3][2] = {};
  bool valid_[3][2] = {};
  int in_use_[3] = {1, 1, 1};  // so the first load of each operand goes to slot 0
  pending prev_{};
  bool have_prev_ = false;
  command deferred_store_{};
  bool have_store_ = false;
  std::int64_t tile_ = 0;
};

// ============================================================================================
// matmul_i8
// ============================================================================================

struct matmul_tiling {
  std::int64_t mt = 0, nt = 0, kt = 0;
  bool weights_stationary = true;
  std::int64_t footprint = 0;
};

namespace detail {
// Sum over the tiles of `dim` (cut every `t`) of ceil(tile / unit).
constexpr std::int64_t unit_passes(std::int64_t dim, std::int64_t t, std::int64_t unit) noexcept {
  const std::int64_t rem = dim % t;
  return (dim / t) * ceil_div(t, unit) + (rem ? ceil_div(rem, unit) : 0);
}

inline std::array<std::int64_t, kOperandCount> matmul_tile_bytes(std::int64_t mt, std::int64_t nt,
                                                                 std::int64_t kt,
                                                                 std::int64_t ob) noexcept {
  return {sat_mul(mt, kt), sat_mul(kt, nt), sat_mul(nt, kParamBytes), sat_mul(sat_mul(mt, nt), 4),
          sat_mul(sat_mul(mt, nt), ob)};
}

// The closed-form cost the choice minimises (see the top of the file); `commands` out.
inline double matmul_cost(std::int64_t gemms, std::int64_t m, std::int64_t n, std::int64_t k,
                          std::int64_t ob, std::int64_t mt, std::int64_t nt, std::int64_t kt,
                          bool ws, const vnpu_config& c, double* commands) {
  const double tm = static_cast<double>(ceil_div(m, mt));
  const double tn = static_cast<double>(ceil_div(n, nt));
  const double tk = static_cast<double>(ceil_div(k, kt));
  const double M = static_cast<double>(m), N = static_cast<double>(n), K = static_cast<double>(k);
  const double mac = static_cast<double>(unit_passes(m, mt, c.mac_rows)) *
                         static_cast<double>(unit_passes(n, nt, c.mac_cols)) * K +
                     tm * tn * tk * static_cast<double>(c.mac_rows + c.mac_cols);
  const bool whole_k = tk == 1;
  double a_loads, a_bytes, b_loads, b_bytes, p_loads, p_bytes;
  if (ws) {
    a_loads = (whole_k && tm == 1) ? 1 : tm * tn * tk;
    a_bytes = (whole_k && tm == 1) ? M * K : M * K * tn;
    b_loads = whole_k ? tn : tm * tn * tk;
    b_bytes = whole_k ? K * N : K * N * tm;
    p_loads = tn;
    p_bytes = N * kParamBytes;
  } else {
    a_loads = whole_k ? tm : tm * tn * tk;
    a_bytes = whole_k ? M * K : M * K * tn;
    b_loads = (whole_k && tn == 1) ? 1 : tm * tn * tk;
    b_bytes = (whole_k && tn == 1) ? K * N : K * N * tm;
    p_loads = tn == 1 ? 1 : tm * tn;
    p_bytes = tn == 1 ? N * kParamBytes : N * kParamBytes * tm;
  }
  const double stores = tm * tn;
  const double dma_count = a_loads + b_loads + p_loads + stores;
  const double dma =
      (a_bytes + b_bytes + p_bytes + M * N * static_cast<double>(ob)) / c.dma_bytes_per_cycle +
      dma_count * static_cast<double>(c.dma_setup_cycles);
  const double rq = M * N / static_cast<double>(c.requant_lanes) +
                    stores * static_cast<double>(c.requant_setup_cycles);
  const double g = static_cast<double>(gemms);
  *commands = g * (dma_count + tm * tn * tk + stores);
  if (!c.double_buffer) return g * (mac + dma + rq);
  // Prologue and epilogue: the first tile's loads and the last tile's requantization and store
  // overlap nothing.
  const double tile_m = static_cast<double>(std::min(mt, m)),
               tile_n = static_cast<double>(std::min(nt, n));
  const double tile_k = static_cast<double>(std::min(kt, k));
  const double edges =
      (tile_m * tile_k + tile_k * tile_n + tile_m * tile_n * static_cast<double>(ob)) /
          c.dma_bytes_per_cycle +
      tile_m * tile_n / static_cast<double>(c.requant_lanes);
  return g * std::max({mac, dma, rq}) + edges;
}
}  // namespace detail

// The cheapest tiling of a (valid) matmul that fits the SRAM, or unsupported.
inline Result<matmul_tiling> choose_matmul_tiling(const matmul_i8_desc& d, const vnpu_config& c) {
  const std::int64_t gemms = d.b_batched ? d.batch : 1;
  const std::int64_t m = d.b_batched ? d.m : sat_mul(d.batch, d.m);
  const std::int64_t ob = element_bytes(d.out.type);
  std::vector<std::int64_t> ms, ns, ks;
  tile_candidates(m, c.mac_rows, ms);
  tile_candidates(d.n, c.mac_cols, ns);
  tile_candidates(d.k, 16, ks);
  matmul_tiling best;
  double best_cost = 0, best_cmds = 0;
  bool found = false;
  for (std::int64_t kt : ks) {
    for (std::int64_t mt : ms) {
      for (std::int64_t nt : ns) {
        const std::int64_t fp = footprint_of(detail::matmul_tile_bytes(mt, nt, kt, ob), c);
        if (fp > c.sram_bytes) continue;
        for (bool ws : {true, false}) {
          double cmds = 0;
          const double cost = detail::matmul_cost(gemms, m, d.n, d.k, ob, mt, nt, kt, ws, c, &cmds);
          if (!found || cost < best_cost || (cost == best_cost && cmds < best_cmds)) {
            best = {mt, nt, kt, ws, fp};
            best_cost = cost;
            best_cmds = cmds;
            found = true;
          }
        }
      }
    }
  }
  if (!found) {
    return Status::make(
        status_code::unsupported, "matmul_i8",
        "no tiling fits the NPU's %lld bytes of SRAM (the smallest tile needs "
        "%lld)",
        static_cast<long long>(c.sram_bytes),
        static_cast<long long>(footprint_of(detail::matmul_tile_bytes(1, 1, 1, ob), c)));
  }
  return best;
}

// Writes the stream of a valid matmul for a tiling choose_matmul_tiling() returned.
inline void build_matmul_stream(const npu_op& op, const matmul_tiling& T, const vnpu_config& c,
                                command_stream& s) {
  const matmul_i8_desc& d = op.matmul;

  // ---- setup: the GEMMs (batches stacked into M when B is shared), byte strides ----------
  const std::int64_t gemms = d.b_batched ? d.batch : 1;
  const std::int64_t M = d.b_batched ? d.m : d.batch * d.m;
  const std::int64_t N = d.n, K = d.k;
  const std::int64_t ob = element_bytes(d.out.type);
  s.kind = op_kind::matmul_i8;
  s.commands.clear();
  s.macs = d.batch * d.m * N * K;
  s.tiling.tile[0] = T.mt;
  s.tiling.tile[1] = T.nt;
  s.tiling.tile[2] = T.kt;
  s.tiling.tile[3] = 0;
  s.tiling.weights_stationary = T.weights_stationary;
  stream_builder sb(c, s, detail::matmul_tile_bytes(T.mt, T.nt, T.kt, ob));

  // ---- one step per (output tile, K chunk) ----------------------------------------------
  auto step = [&](std::int64_t g, std::int64_t m0, std::int64_t n0, std::int64_t k0) {
    const std::int64_t mt = std::min(T.mt, M - m0), nt = std::min(T.nt, N - n0);
    const std::int64_t kt = std::min(T.kt, K - k0);
    std::array<operand_load, 3> loads{};
    loads[kInput].key.v = {g, m0, k0, mt, kt, 0};
    dma_desc& a = loads[kInput].dma;
    a.buffer = op.input;
    a.dram_offset = (g * M + m0) * K + k0;
    a.rows = mt;
    a.row_bytes = kt;
    a.dram_row_stride = K;
    a.sram_row_stride = kt;
    loads[kWeights].key.v = {d.b_batched ? g : 0, k0, n0, kt, nt, 0};
    dma_desc& b = loads[kWeights].dma;
    b.buffer = op.weights;
    b.dram_offset = (d.b_batched ? g * K * N : 0) + k0 * N + n0;
    b.rows = kt;
    b.row_bytes = nt;
    b.dram_row_stride = N;
    b.sram_row_stride = nt;
    loads[kParams].key.v = {n0, nt, 0, 0, 0, 0};
    dma_desc& p = loads[kParams].dma;
    p.buffer = op.params;
    p.dram_offset = n0 * kParamBytes;
    p.row_bytes = nt * kParamBytes;

    command mm;
    mm.op = opcode::matmul_tile;
    mm.mm.m = mt;
    mm.mm.n = nt;
    mm.mm.k = kt;
    mm.mm.a_type = d.a_type;
    mm.mm.b_type = d.b_type;
    mm.mm.a_zero_point = d.a_zero_point;
    mm.mm.accumulate = k0 > 0;

    command rq;
    rq.op = opcode::requantize;
    rq.rq.rows = mt;
    rq.rq.cols = nt;
    rq.rq.out = d.out;

    command st;
    st.op = opcode::store;
    st.dma.buffer = op.output;
    st.dma.dram_offset = ((g * M + m0) * N + n0) * ob;
    st.dma.rows = mt;
    st.dma.row_bytes = nt * ob;
    st.dma.dram_row_stride = N * ob;
    st.dma.sram_row_stride = nt * ob;
    sb.step(loads, mm, k0 + kt >= K, rq, st);
  };

  for (std::int64_t g = 0; g < gemms; ++g) {
    if (T.weights_stationary) {
      for (std::int64_t n0 = 0; n0 < N; n0 += T.nt)
        for (std::int64_t m0 = 0; m0 < M; m0 += T.mt)
          for (std::int64_t k0 = 0; k0 < K; k0 += T.kt) step(g, m0, n0, k0);
    } else {
      for (std::int64_t m0 = 0; m0 < M; m0 += T.mt)
        for (std::int64_t n0 = 0; n0 < N; n0 += T.nt)
          for (std::int64_t k0 = 0; k0 < K; k0 += T.kt) step(g, m0, n0, k0);
    }
  }
  sb.finish();
}

// ============================================================================================
// conv2d_i8 (implicit GEMM: output pixels on the array's rows, output channels on its columns)
// ============================================================================================

struct conv_tiling {
  std::int64_t th = 0, tw = 0, tc = 0, tci = 0;  // output rows, cols, channels; input chans
  bool weights_stationary = true;
  std::int64_t footprint = 0;
};

namespace detail {
// The resolved shape of a conv2d as the tiler sees it. Depthwise mode (one input channel per
// group) puts channels of every group side by side on the array's columns; otherwise a tile's
// channels come from one group and its reduction runs over that group's input channels.
struct conv_shape {
  std::int64_t batch, in_h, in_w, in_c, out_h, out_w, out_c;
  std::int64_t kh, kw, sh, sw, dh, dw, pad_top, pad_left;
  std::int64_t groups, cg, og;  // input and output channels per group
  bool depthwise;
  std::int64_t multiplier;  // depthwise: output channels per input channel
  std::int64_t ob;
};

inline conv_shape shape_of(const conv2d_desc& d, const conv2d_geometry& g) {
  conv_shape s{};
  s.batch = d.batch;
  s.in_h = d.in_h;
  s.in_w = d.in_w;
  s.in_c = d.in_c;
  s.out_h = g.out_h;
  s.out_w = g.out_w;
  s.out_c = d.out_c;
  s.kh = d.kernel_h;
  s.kw = d.kernel_w;
  s.sh = d.stride_h;
  s.sw = d.stride_w;
  s.dh = d.dilation_h;
  s.dw = d.dilation_w;
  s.pad_top = g.pad_top;
  s.pad_left = g.pad_left;
  s.groups = d.groups;
  s.cg = d.in_c / d.groups;
  s.og = d.out_c / d.groups;
  s.depthwise = s.cg == 1;
  s.multiplier = s.depthwise ? s.og : 1;
  s.ob = element_bytes(d.out.type);
  return s;
}

constexpr std::int64_t window_extent(std::int64_t tile, std::int64_t stride, std::int64_t kernel,
                                     std::int64_t dilation) noexcept {
  return sat_add(sat_add(sat_mul(tile - 1, stride), sat_mul(kernel - 1, dilation)), 1);
}

// Input channels a depthwise tile of `tc` output channels can span (an upper bound when the tile
// does not start on a multiple of the multiplier).
constexpr std::int64_t depthwise_span(const conv_shape& s, std::int64_t tc) noexcept {
  const std::int64_t span =
      tc % s.multiplier == 0 ? tc / s.multiplier : (tc - 1) / s.multiplier + 2;
  return std::min(span, s.in_c);
}

constexpr std::int64_t taps_of(const conv_shape& s) noexcept {
  return s.kh * s.kw;
}

inline std::array<std::int64_t, kOperandCount> conv_tile_bytes(const conv_shape& s, std::int64_t th,
                                                               std::int64_t tw, std::int64_t tc,
                                                               std::int64_t tci) noexcept {
  const std::int64_t rows = window_extent(th, s.sh, s.kh, s.dh);
  const std::int64_t cols = window_extent(tw, s.sw, s.kw, s.dw);
  const std::int64_t chans = s.depthwise ? depthwise_span(s, tc) : tci;
  const std::int64_t taps = s.kh * s.kw;
  const std::int64_t pixels = sat_mul(th, tw);
  return {sat_mul(sat_mul(rows, cols), chans), sat_mul(sat_mul(tc, taps), s.depthwise ? 1 : tci),
          sat_mul(tc, kParamBytes), sat_mul(sat_mul(pixels, tc), 4),
          sat_mul(sat_mul(pixels, tc), s.ob)};
}

inline double conv_cost(const conv_shape& s, std::int64_t th, std::int64_t tw, std::int64_t tc,
                        std::int64_t tci, bool ws, const vnpu_config& c, double* commands) {
  const double B = static_cast<double>(s.batch);
  const double sp = static_cast<double>(ceil_div(s.out_h, th) * ceil_div(s.out_w, tw));
  const double taps = static_cast<double>(s.kh * s.kw);
  const double fill = static_cast<double>(c.mac_rows + c.mac_cols);
  const double pix_passes = static_cast<double>(ceil_div(th * tw, c.mac_rows));
  const double win = static_cast<double>(window_extent(th, s.sh, s.kh, s.dh)) *
                     static_cast<double>(window_extent(tw, s.sw, s.kw, s.dw));
  const double out_bytes = B * static_cast<double>(s.out_h * s.out_w * s.out_c * s.ob);
  double mac, in_bytes, w_bytes, in_loads, w_loads, p_loads, stores;
  if (s.depthwise) {
    const double ct = static_cast<double>(ceil_div(s.out_c, tc));
    const double col_passes = static_cast<double>(unit_passes(s.out_c, tc, c.mac_cols));
    mac = B * sp * pix_passes * col_passes * taps + B * sp * ct * fill;
    in_bytes = B * sp * win * static_cast<double>(s.in_c);
    const double W = static_cast<double>(s.out_c) * taps;
    const bool once = ws || ct == 1;
    w_bytes = once ? W : W * B * sp;
    in_loads = B * sp * ct;
    w_loads = once ? ct : B * sp * ct;
    p_loads = w_loads;
    stores = B * sp * ct;
  } else {
    const double G = static_cast<double>(s.groups);
    const double ct = static_cast<double>(ceil_div(s.og, tc));
    const double tk = static_cast<double>(ceil_div(s.cg, tci));
    const double col_passes = static_cast<double>(unit_passes(s.og, tc, c.mac_cols));
    mac = B * G * sp * pix_passes * col_passes * taps * static_cast<double>(s.cg) +
          B * G * sp * ct * tk * fill;
    const double in_once = B * G * sp * win * static_cast<double>(s.cg);
    const double W = static_cast<double>(s.out_c) * taps * static_cast<double>(s.cg);
    if (ws) {
      w_bytes = tk == 1 ? W : W * B * sp;
      in_bytes = ct == 1 ? in_once : in_once * ct;
      w_loads = tk == 1 ? G * ct : G * ct * B * sp * tk;
      in_loads = G * ct * B * sp * tk;
      p_loads = G * ct;
    } else {
      in_bytes = tk == 1 ? in_once : in_once * ct;
      const bool once = tk == 1 && ct == 1 && G == 1;
      w_bytes = once ? W : W * B * sp;
      in_loads = tk == 1 ? B * G * sp : B * G * sp * ct * tk;
      w_loads = once ? 1 : B * G * sp * ct * tk;
      p_loads = once ? 1 : B * G * sp * ct;
    }
    stores = B * G * sp * ct;
  }
  const double p_bytes = p_loads * static_cast<double>(tc * kParamBytes);
  const double dma_count = in_loads + w_loads + p_loads + stores;
  const double dma = (in_bytes + w_bytes + p_bytes + out_bytes) / c.dma_bytes_per_cycle +
                     dma_count * static_cast<double>(c.dma_setup_cycles);
  const double rq = out_bytes / static_cast<double>(s.ob) / static_cast<double>(c.requant_lanes) +
                    stores * static_cast<double>(c.requant_setup_cycles);
  *commands = dma_count + stores * 2 + in_loads;
  if (!c.double_buffer) return mac + dma + rq;
  // Prologue and epilogue, as for matmul: the first window and filters, the last output tile.
  const double tile_out = static_cast<double>(th * tw * tc);
  const double edges =
      (win * static_cast<double>(s.depthwise ? depthwise_span(s, tc) : tci) +
       static_cast<double>(tc * taps_of(s)) * static_cast<double>(s.depthwise ? 1 : tci) +
       tile_out * static_cast<double>(s.ob)) /
          c.dma_bytes_per_cycle +
      tile_out / static_cast<double>(c.requant_lanes);
  return std::max({mac, dma, rq}) + edges;
}
}  // namespace detail

inline Result<conv_tiling> choose_conv_tiling(const conv2d_desc& d, const vnpu_config& c) {
  Result<conv2d_geometry> g = conv2d_output_geometry(d);
  if (!g.ok()) return g.status();
  const detail::conv_shape s = detail::shape_of(d, g.value());
  std::vector<std::int64_t> ths, tws, tcs, tcis;
  tile_candidates(s.out_h, 1, ths);
  tile_candidates(s.out_w, 1, tws);
  tile_candidates(s.depthwise ? s.out_c : s.og, c.mac_cols, tcs);
  if (s.depthwise) {
    tcis = {1};
  } else {
    tile_candidates(s.cg, 8, tcis);
  }
  conv_tiling best;
  double best_cost = 0, best_cmds = 0;
  bool found = false;
  for (std::int64_t tci : tcis) {
    for (std::int64_t tc : tcs) {
      for (std::int64_t th : ths) {
        for (std::int64_t tw : tws) {
          const std::int64_t fp = footprint_of(detail::conv_tile_bytes(s, th, tw, tc, tci), c);
          if (fp > c.sram_bytes) continue;
          for (bool ws : {true, false}) {
            double cmds = 0;
            const double cost = detail::conv_cost(s, th, tw, tc, tci, ws, c, &cmds);
            if (!found || cost < best_cost || (cost == best_cost && cmds < best_cmds)) {
              best = {th, tw, tc, tci, ws, fp};
              best_cost = cost;
              best_cmds = cmds;
              found = true;
            }
          }
        }
      }
    }
  }
  if (!found) {
    return Status::make(
        status_code::unsupported, "conv2d_i8",
        "no tiling fits the NPU's %lld bytes of SRAM (one output pixel of one "
        "channel needs %lld: the dilated kernel window is too large)",
        static_cast<long long>(c.sram_bytes),
        static_cast<long long>(footprint_of(detail::conv_tile_bytes(s, 1, 1, 1, 1), c)));
  }
  return best;
}

// Writes the stream of a valid conv2d for a tiling choose_conv_tiling() returned.
inline void build_conv_stream(const npu_op& op, const conv_tiling& T, const vnpu_config& c,
                              command_stream& str) {
  const conv2d_desc& d = op.conv;
  const detail::conv_shape s = detail::shape_of(d, conv2d_output_geometry(d).value());

  // ---- setup: region sizes from the largest tile of each operand --------------------------
  std::array<std::int64_t, kOperandCount> bytes =
      detail::conv_tile_bytes(s, T.th, T.tw, T.tc, T.tci);
  if (s.depthwise) {
    // The exact widest channel span over the tiles actually cut (the bound above may exceed it).
    std::int64_t span = 1;
    for (std::int64_t oc0 = 0; oc0 < s.out_c; oc0 += T.tc) {
      const std::int64_t oc1 = std::min(oc0 + T.tc, s.out_c);
      span = std::max(span, (oc1 - 1) / s.multiplier - oc0 / s.multiplier + 1);
    }
    KEEL_DASSERT(span <= detail::depthwise_span(s, T.tc), "depthwise span bound");
    bytes[kInput] = detail::window_extent(T.th, s.sh, s.kh, s.dh) *
                    detail::window_extent(T.tw, s.sw, s.kw, s.dw) * span;
  }
  str.kind = op_kind::conv2d_i8;
  str.commands.clear();
  str.macs = s.batch * s.out_h * s.out_w * s.out_c * s.kh * s.kw * s.cg;
  str.tiling.tile[0] = T.th;
  str.tiling.tile[1] = T.tw;
  str.tiling.tile[2] = T.tc;
  str.tiling.tile[3] = T.tci;
  str.tiling.weights_stationary = T.weights_stationary;
  stream_builder sb(c, str, bytes);
  const std::int64_t taps = s.kh * s.kw;
  const std::int64_t reduce = s.depthwise ? 1 : s.cg;  // input channels per filter tap

  // ---- one step per (output tile, input-channel chunk) -----------------------------------
  // oc0/tc: the tile's output channels; g: their group; c0/tci: the chunk of the group's input
  // channels (depthwise: the channels the tile's outputs read, one chunk).
  auto step = [&](std::int64_t n, std::int64_t oh0, std::int64_t ow0, std::int64_t oc0,
                  std::int64_t tc, std::int64_t g, std::int64_t c0) {
    const std::int64_t th = std::min(T.th, s.out_h - oh0), tw = std::min(T.tw, s.out_w - ow0);
    const std::int64_t tci = s.depthwise ? 1 : std::min(T.tci, s.cg - c0);
    const std::int64_t ih0 = oh0 * s.sh - s.pad_top, iw0 = ow0 * s.sw - s.pad_left;
    const std::int64_t win_r = detail::window_extent(th, s.sh, s.kh, s.dh);
    const std::int64_t win_c = detail::window_extent(tw, s.sw, s.kw, s.dw);
    const std::int64_t ic0 = s.depthwise ? oc0 / s.multiplier : g * s.cg + c0;
    const std::int64_t chans = s.depthwise ? (oc0 + tc - 1) / s.multiplier - ic0 + 1 : tci;

    std::array<operand_load, 3> loads{};
    // Input window: only the rows and columns inside the image are copied.
    loads[kInput].key.v = {n, oh0, ow0, ic0, chans, 0};
    const std::int64_t r0 = std::max<std::int64_t>(ih0, 0);
    const std::int64_t r1 = std::min(ih0 + win_r, s.in_h);
    const std::int64_t q0 = std::max<std::int64_t>(iw0, 0);
    const std::int64_t q1 = std::min(iw0 + win_c, s.in_w);
    dma_desc& in = loads[kInput].dma;
    in.buffer = op.input;
    if (r1 > r0 && q1 > q0) {
      in.dram_offset = ((n * s.in_h + r0) * s.in_w + q0) * s.in_c + ic0;
      in.region_offset = ((r0 - ih0) * win_c + (q0 - iw0)) * chans;
      in.planes = r1 - r0;
      in.rows = q1 - q0;
      in.row_bytes = chans;
      in.dram_plane_stride = s.in_w * s.in_c;
      in.dram_row_stride = s.in_c;
      in.sram_plane_stride = win_c * chans;
      in.sram_row_stride = chans;
    } else {
      in.planes = 0;  // the whole window lies in the padding: every tap reads the zero point
    }
    // Filters [tc][kh][kw][tci] out of [out_c][kh][kw][cg].
    loads[kWeights].key.v = {oc0, tc, c0, tci, 0, 0};
    dma_desc& w = loads[kWeights].dma;
    w.buffer = op.weights;
    w.dram_offset = oc0 * taps * reduce + c0;
    if (tci == reduce) {  // whole filters: one contiguous run
      w.row_bytes = tc * taps * reduce;
    } else {
      w.planes = tc;
      w.rows = taps;
      w.row_bytes = tci;
      w.dram_plane_stride = taps * reduce;
      w.dram_row_stride = reduce;
      w.sram_plane_stride = taps * tci;
      w.sram_row_stride = tci;
    }
    loads[kParams].key.v = {oc0, tc, 0, 0, 0, 0};
    dma_desc& p = loads[kParams].dma;
    p.buffer = op.params;
    p.dram_offset = oc0 * kParamBytes;
    p.row_bytes = tc * kParamBytes;

    command cv;
    cv.op = opcode::conv_tile;
    conv_tile_desc& ct = cv.conv;
    ct.out_rows = th;
    ct.out_cols = tw;
    ct.channels = tc;
    ct.win_rows = win_r;
    ct.win_cols = win_c;
    ct.win_chans = chans;
    ct.ih0 = ih0;
    ct.iw0 = iw0;
    ct.in_h = s.in_h;
    ct.in_w = s.in_w;
    ct.kernel_h = s.kh;
    ct.kernel_w = s.kw;
    ct.stride_h = s.sh;
    ct.stride_w = s.sw;
    ct.dilation_h = s.dh;
    ct.dilation_w = s.dw;
    ct.w_chans = tci;
    ct.depthwise = s.depthwise;
    ct.first_oc = oc0;
    ct.multiplier = s.multiplier;
    ct.in_type = d.in_type;
    ct.w_type = d.w_type;
    ct.in_zero_point = d.in_zero_point;
    ct.accumulate = c0 > 0;

    command rq;
    rq.op = opcode::requantize;
    rq.rq.rows = th * tw;
    rq.rq.cols = tc;
    rq.rq.out = d.out;

    command st;
    st.op = opcode::store;
    st.dma.buffer = op.output;
    st.dma.dram_offset = (((n * s.out_h + oh0) * s.out_w + ow0) * s.out_c + oc0) * s.ob;
    st.dma.planes = th;
    st.dma.rows = tw;
    st.dma.row_bytes = tc * s.ob;
    st.dma.dram_plane_stride = s.out_w * s.out_c * s.ob;
    st.dma.dram_row_stride = s.out_c * s.ob;
    st.dma.sram_plane_stride = tw * tc * s.ob;
    st.dma.sram_row_stride = tc * s.ob;
    sb.step(loads, cv, c0 + tci >= reduce, rq, st);
  };

  // Channel tiles: depthwise cuts [0, out_c) across groups; otherwise each group's og outputs.
  const std::int64_t chan_groups = s.depthwise ? 1 : s.groups;
  const std::int64_t chan_extent = s.depthwise ? s.out_c : s.og;
  if (T.weights_stationary) {
    for (std::int64_t g = 0; g < chan_groups; ++g)
      for (std::int64_t j0 = 0; j0 < chan_extent; j0 += T.tc) {
        const std::int64_t oc0 = g * s.og + j0, tc = std::min(T.tc, chan_extent - j0);
        for (std::int64_t n = 0; n < s.batch; ++n)
          for (std::int64_t oh0 = 0; oh0 < s.out_h; oh0 += T.th)
            for (std::int64_t ow0 = 0; ow0 < s.out_w; ow0 += T.tw)
              for (std::int64_t c0 = 0; c0 < reduce; c0 += T.tci) step(n, oh0, ow0, oc0, tc, g, c0);
      }
  } else {
    for (std::int64_t n = 0; n < s.batch; ++n)
      for (std::int64_t oh0 = 0; oh0 < s.out_h; oh0 += T.th)
        for (std::int64_t ow0 = 0; ow0 < s.out_w; ow0 += T.tw)
          for (std::int64_t g = 0; g < chan_groups; ++g)
            for (std::int64_t j0 = 0; j0 < chan_extent; j0 += T.tc) {
              const std::int64_t oc0 = g * s.og + j0, tc = std::min(T.tc, chan_extent - j0);
              for (std::int64_t c0 = 0; c0 < reduce; c0 += T.tci) step(n, oh0, ow0, oc0, tc, g, c0);
            }
  }
  sb.finish();
}

// ============================================================================================
// entry points
// ============================================================================================

// An op's tiling, whichever its kind.
struct op_tiling {
  op_kind kind = op_kind::matmul_i8;
  matmul_tiling matmul{};
  conv_tiling conv{};
};

// Validates the op's desc against keel's rules and the configuration's capabilities: ok, or the
// Status that explains why it cannot run here. Cheap: no tiling.
inline Status check_desc(const npu_op& op, const vnpu_config& c) {
  const npu_capabilities caps = capabilities_of(c);
  switch (op.kind) {
    case op_kind::matmul_i8:
      KEEL_RETURN_IF_ERROR(validate(op.matmul));
      return check_capabilities(caps, op.matmul);
    case op_kind::conv2d_i8:
      KEEL_RETURN_IF_ERROR(validate(op.conv));
      return check_capabilities(caps, op.conv);
    default:
      return Status::make(status_code::unsupported, to_string(op.kind),
                          "the virtual NPU runs matmul_i8 and conv2d_i8 only");
  }
}

// The cheapest tiling of an op that passed check_desc(), or unsupported when none fits the
// SRAM. An empty op (batch 0) needs none and gets a default one.
inline Result<op_tiling> choose_tiling(const npu_op& op, const vnpu_config& c) {
  op_tiling t;
  t.kind = op.kind;
  if (op.kind == op_kind::matmul_i8) {
    if (op.matmul.batch == 0) return t;
    Result<matmul_tiling> m = choose_matmul_tiling(op.matmul, c);
    if (!m.ok()) return m.status();
    t.matmul = m.value();
  } else {
    if (op.conv.batch == 0) return t;
    Result<conv_tiling> v = choose_conv_tiling(op.conv, c);
    if (!v.ok()) return v.status();
    t.conv = v.value();
  }
  return t;
}

// The command stream of an op: check_desc(), then the tiling (`preset`, when the caller chose it
// before for the same desc and configuration, else choose_tiling()), then the commands. The
// buffer handles are copied into the descriptors as they are (kNoBuffer for estimates).
inline Status build_stream(const npu_op& op, const vnpu_config& c, command_stream& s,
                           const op_tiling* preset = nullptr) {
  s = command_stream{};
  s.kind = op.kind;
  KEEL_RETURN_IF_ERROR(check_desc(op, c));
  const std::int64_t batch = op.kind == op_kind::matmul_i8 ? op.matmul.batch : op.conv.batch;
  if (batch == 0) return Status::Ok();  // nothing to do: an empty stream
  op_tiling chosen;
  if (preset == nullptr) {
    Result<op_tiling> t = choose_tiling(op, c);
    if (!t.ok()) return t.status();
    chosen = t.value();
    preset = &chosen;
  }
  KEEL_DASSERT(preset->kind == op.kind, "a tiling for this op kind");
  if (op.kind == op_kind::matmul_i8) {
    build_matmul_stream(op, preset->matmul, c, s);
  } else {
    build_conv_stream(op, preset->conv, c, s);
  }
  return Status::Ok();
}

}  // namespace keel::npu::vnpu
