// keel/router/cost_model.hpp — how long an op takes on a unit of a board, from numbers alone.
//
// A roofline: an op does `ops` arithmetic operations and moves `bytes` between DRAM and the unit;
// on a unit with peak rate R and bandwidth W it takes at least max(ops / R, bytes / W), plus a
// fixed launch cost L (waking threads, submitting a command buffer, an NPU job). The router
// compares these predictions across its candidates; it needs them to rank correctly, not to be
// exact. Peak rates from datasheets overestimate what kernels reach, by a similar factor on every
// unit of one board; the envelope profiler writes measured rates into a profile when a vendor
// wants better. A backend with its own model (the virtual NPU predicts cycles) provides
// `estimate_us(desc)` and the router uses that instead of the roofline.
//
// bytes counts each operand once (inputs read, output written): the traffic of a kernel whose
// tiles fit in cache. Weights that do not fit are re-read; the model ignores that (shortcoming:
// it favours units with small caches on very large matrices; measured profiles correct it).
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string_view>

#include "keel/backend.hpp"
#include "keel/boards/profile.hpp"
#include "keel/ops.hpp"

namespace keel {

// What one op costs, from its desc alone (no data is read).
struct op_work {
  op_kind kind = op_kind::matmul_i8;
  dtype weights = dtype::s8;  // the routing key's dtype: weights, or K/V for attention
  double ops = 0;             // arithmetic operations (a multiply-add is 2)
  double bytes = 0;           // bytes read and written, each operand once
  bool float_math = false;    // computed in floating point (rates: f32 / f16, not int8)
  std::int64_t largest_dim = 0;
  std::uint8_t rank = 0;                // entries of `shape` in use
  std::array<std::int64_t, 8> shape{};  // op-specific, see shape_labels()
};

// The names of op_work::shape's entries, for traces and tables.
constexpr std::array<std::string_view, 8> shape_labels(op_kind k) noexcept {
  switch (k) {
    case op_kind::matmul_i8:
    case op_kind::matmul_i4: return {"B", "M", "N", "K", "", "", "", ""};
    case op_kind::conv2d_i8: return {"N", "H", "W", "C", "OC", "KH", "KW", "G"};
    case op_kind::attention: return {"B", "Hq", "Hkv", "Sq", "Skv", "D", "", ""};
    default: return {};
  }
}

namespace cost_detail {
// Negative sizes (an invalid desc, which the backend will reject) count as zero work.
constexpr double nonneg(std::int64_t v) noexcept {
  return v > 0 ? static_cast<double>(v) : 0.0;
}
constexpr std::int64_t largest(std::initializer_list<std::int64_t> v) noexcept {
  std::int64_t m = 0;
  for (std::int64_t x : v) m = x > m ? x : m;
  return m;
}
constexpr double bytes_of(dtype t) noexcept {
  return bits_of(t) / 8.0;
}
}  // namespace cost_detail

// The dtype an op is routed by: its weight dtype (K/V for attention).
constexpr dtype routing_dtype(const matmul_i8_desc& d) noexcept {
  return d.b_type;
}
constexpr dtype routing_dtype(const matmul_i4_desc& d) noexcept {
  return d.b_type;
}
constexpr dtype routing_dtype(const conv2d_desc& d) noexcept {
  return d.w_type;
}
constexpr dtype routing_dtype(const attention_desc& d) noexcept {
  return d.kv_type;
}

constexpr op_work work_of(const matmul_i8_desc& d) noexcept {
  using namespace cost_detail;
  const double b = nonneg(d.batch), m = nonneg(d.m), n = nonneg(d.n), k = nonneg(d.k);
  op_work w;
  w.kind = op_kind::matmul_i8;
  w.weights = d.b_type;
  w.ops = 2 * b * m * n * k;
  w.bytes = b * m * k + (d.b_batched ? b : 1) * k * n + b * m * n * bytes_of(d.out.type);
  w.largest_dim = largest({d.batch, d.m, d.n, d.k});
  w.rank = 4;
  w.shape = {d.batch, d.m, d.n, d.k, 0, 0, 0, 0};
  return w;
}

constexpr op_work work_of(const matmul_i4_desc& d) noexcept {
  using namespace cost_detail;
  const double b = nonneg(d.batch), m = nonneg(d.m), n = nonneg(d.n), k = nonneg(d.k);
  op_work w;
  w.kind = op_kind::matmul_i4;
  w.weights = d.b_type;
  w.ops = 2 * b * m * n * k;
  // f32 activations and outputs, nibble weights, one scale per group.
  w.bytes =
      4 * b * m * k + n * k / 2 + n * nonneg(d.groups()) * bytes_of(d.scale_type) + 4 * b * m * n;
  w.float_math = d.activation == i4_activation::f32;
  w.largest_dim = largest({d.batch, d.m, d.n, d.k});
  w.rank = 4;
  w.shape = {d.batch, d.m, d.n, d.k, 0, 0, 0, 0};
  return w;
}

constexpr op_work work_of(const conv2d_desc& d) noexcept {
  using namespace cost_detail;
  // The output size, as ops.hpp resolves it (SAME or explicit pads); 0 for an invalid desc.
  std::int64_t pt = d.pad_top, pb = d.pad_bottom, pl = d.pad_left, pr = d.pad_right;
  std::int64_t oh = 0, ow = 0;
  if (d.stride_h > 0 && d.stride_w > 0 && d.kernel_h > 0 && d.kernel_w > 0 && d.dilation_h > 0 &&
      d.dilation_w > 0) {
    oh = detail::conv_axis(d.in_h, d.kernel_h, d.stride_h, d.dilation_h, d.padding, pt, pb);
    ow = detail::conv_axis(d.in_w, d.kernel_w, d.stride_w, d.dilation_w, d.padding, pl, pr);
  }
  const double g = d.groups > 0 ? static_cast<double>(d.groups) : 1.0;
  const double b = nonneg(d.batch), cin = nonneg(d.in_c), cout = nonneg(d.out_c);
  const double kh = nonneg(d.kernel_h), kw = nonneg(d.kernel_w);
  const double out_pixels = b * nonneg(oh) * nonneg(ow);
  op_work w;
  w.kind = op_kind::conv2d_i8;
  w.weights = d.w_type;
  w.ops = 2 * out_pixels * cout * kh * kw * (cin / g);
  w.bytes = b * nonneg(d.in_h) * nonneg(d.in_w) * cin + cout * kh * kw * (cin / g) +
            out_pixels * cout * bytes_of(d.out.type);
  w.largest_dim = largest({d.batch, d.in_h, d.in_w, d.in_c, d.out_c});
  w.rank = 8;
  w.shape = {d.batch, d.in_h, d.in_w, d.in_c, d.out_c, d.kernel_h, d.kernel_w, d.groups};
  return w;
}

constexpr op_work work_of(const attention_desc& d) noexcept {
  using namespace cost_detail;
  const double b = nonneg(d.batch), hq = nonneg(d.q_heads), hkv = nonneg(d.kv_heads);
  const double sq = nonneg(d.q_len), skv = nonneg(d.kv_len);
  const double dk = nonneg(d.head_dim), dv = nonneg(d.value_dim());
  op_work w;
  w.kind = op_kind::attention;
  w.weights = d.kv_type;
  // Q K^T and P V; the softmax's few operations per score are folded in as 5 more.
  w.ops = b * hq * sq * skv * (2 * dk + 2 * dv + 5);
  w.bytes = b * hq * sq * dk * bytes_of(d.q_type) +
            b * hkv * skv * (dk + dv) * bytes_of(d.kv_type) +
            b * hq * sq * dv * bytes_of(d.out_type);
  w.float_math = d.q_type == dtype::f32 || d.kv_type == dtype::f32;
  w.largest_dim = largest({d.batch, d.q_heads, d.q_len, d.kv_len, d.head_dim, d.value_dim()});
  w.rank = 6;
  w.shape = {d.batch, d.q_heads, d.kv_heads, d.q_len, d.kv_len, d.head_dim, 0, 0};
  return w;
}

// What a unit of a board can do, in the units the model computes in.
struct unit_rates {
  double int_ops_per_us = 0;    // 0: cannot compute in int8 at all
  double float_ops_per_us = 0;  // 0: no float path
  double bytes_per_us = 0;
  double launch_us = 0;
  double watts = 0;  // power added while it runs
  std::int64_t max_dim = std::numeric_limits<std::int64_t>::max();
};

// The reference backend is scalar and single-threaded: one multiply-add per cycle on one core
// (estimate), so it ranks last on every shape where another unit can run at all.
inline constexpr double kReferenceOpsPerCycle = 2;

template <boards::board Board>
constexpr unit_rates rates_for(backend_kind kind) noexcept {
  constexpr const boards::board_profile& p = Board::profile;
  unit_rates r;
  switch (kind) {
    case backend_kind::reference:
      r.int_ops_per_us = p.cpu.freq_ghz * 1e3 * kReferenceOpsPerCycle;
      r.float_ops_per_us = r.int_ops_per_us;
      r.bytes_per_us = p.cpu.mem_bandwidth_gbs * 1e3;
      r.watts = p.power.cpu_w / p.cpu.cores;
      break;
    case backend_kind::cpu:
      r.int_ops_per_us = p.cpu.peak_int8_gops * 1e3;
      r.float_ops_per_us = p.cpu.peak_f32_gflops * 1e3;
      r.bytes_per_us = p.cpu.mem_bandwidth_gbs * 1e3;
      r.launch_us = p.cpu.launch_us;
      r.watts = p.power.cpu_w;
      break;
    case backend_kind::gpu:
      r.int_ops_per_us = p.gpu.peak_int8_gops * 1e3;
      r.float_ops_per_us = p.gpu.peak_f32_gflops * 1e3;
      r.bytes_per_us = p.gpu.mem_bandwidth_gbs * 1e3;
      r.launch_us = p.gpu.launch_us;
      r.watts = p.power.gpu_w;
      break;
    case backend_kind::npu:
      r.int_ops_per_us = p.npu.peak_int8_gops * 1e3;
      r.float_ops_per_us = p.npu.peak_f16_gflops * 1e3;
      r.bytes_per_us = p.npu.mem_bandwidth_gbs * 1e3;
      r.launch_us = p.npu.launch_us;
      r.watts = p.power.npu_w;
      r.max_dim = p.npu.max_dim;
      break;
  }
  return r;
}

// Predicted microseconds for `w` on a unit; +infinity when the unit has no path for its math.
constexpr double roofline_us(const unit_rates& r, const op_work& w) noexcept {
  const double rate = w.float_math ? r.float_ops_per_us : r.int_ops_per_us;
  if (rate <= 0 || r.bytes_per_us <= 0) return std::numeric_limits<double>::infinity();
  const double compute = w.ops / rate;
  const double memory = w.bytes / r.bytes_per_us;
  return r.launch_us + (compute > memory ? compute : memory);
}

}  // namespace keel
