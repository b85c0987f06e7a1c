// keel/backends/npu/driver.hpp — the seam between keel and a vendor's NPU.
//
// A vendor's NPU SDK is proprietary and keel cannot link it. What keel defines instead is the
// set of calls a driver adapter must answer (the `npu_driver` concept below) and the plain types
// that cross the seam. keel::npu::npu_backend<Driver> (adapter.hpp) turns any type satisfying the
// concept into a keel backend: it validates the op, checks it against the driver's capabilities,
// stages operands in DMA-able memory, hands the driver one `npu_op`, and copies the result out
// only when the job completed, so a failing device never writes into the caller's output.
//
// docs/npu-driver.md has the same contract as a requirements table, and a skeleton adapter.
#pragma once

#include <concepts>
#include <cstdint>
#include <span>
#include <string_view>

#include "keel/backend.hpp"
#include "keel/ops.hpp"
#include "keel/quant.hpp"
#include "keel/status.hpp"

namespace keel::npu {

// ---- buffers and jobs ------------------------------------------------------------------------

// Host memory the driver has registered for DMA (pinned, mapped through the NPU's IOMMU, or
// imported as a dma-buf: whatever the vendor's SDK does). 0 is never a valid handle.
using buffer_id = std::uint32_t;
inline constexpr buffer_id kNoBuffer = 0;

// One submitted command stream.
using job_id = std::uint64_t;

// ---- capabilities ----------------------------------------------------------------------------

// The finest weight-scale granularity the requantization hardware has tables for.
enum class weight_scales : std::uint8_t {
  per_tensor,   // one scale for every output channel
  per_channel,  // one scale per output channel (matmul column, conv filter)
};

constexpr std::uint32_t requant_bit(requant_mode m) noexcept {
  return 1u << static_cast<unsigned>(m);
}

// What one configured NPU can run, read at run time by the adapter's supports(). Anything outside
// it is reported as status_code::unsupported, which sends the op to the router's next candidate.
struct npu_capabilities {
  std::uint32_t ops = 0;            // op_bit() of each op kind it runs (e.g. matmul_i8, conv2d_i8)
  std::uint32_t input_types = 0;    // dtype_bit() of each activation dtype (s8, u8)
  std::uint32_t weight_types = 0;   // dtype_bit() of each weight dtype (s8, u8, s4, u4)
  std::uint32_t output_types = 0;   // dtype_bit() of each output dtype (s32, f32, s8, u8)
  std::uint32_t requant_modes = 0;  // requant_bit() of each requantization mode
  weight_scales scales = weight_scales::per_channel;
  bool weight_zero_points = true;   // non-zero weight zero points (asymmetric weights)
  bool grouped_conv = true;         // 1 < groups < in_c
  bool depthwise_conv = true;       // groups == in_c (any channel multiplier)
  bool dilation = true;             // dilation > 1
  std::int64_t max_dim = 0;         // largest single size: M, N, K, H, W, C, batch
  std::int64_t max_kernel = 0;      // largest kernel_h / kernel_w
  std::int64_t max_stride = 0;      // largest stride_h / stride_w
  std::int64_t sram_bytes = 0;      // on-chip SRAM that every tile must fit in
  std::int64_t alignment = 1;       // byte alignment of every registered buffer (a power of two)
  double clock_hz = 0;              // turns cycle estimates into time
  std::int64_t macs_per_cycle = 0;  // peak int8 multiply-accumulates per cycle (all MAC units)
  double dram_bytes_per_cycle = 0;  // sustained DMA bandwidth between DRAM and SRAM

  constexpr bool runs(op_kind k) const noexcept { return (ops & op_bit(k)) != 0; }
  constexpr bool has_input(dtype t) const noexcept { return (input_types & dtype_bit(t)) != 0; }
  constexpr bool has_weight(dtype t) const noexcept { return (weight_types & dtype_bit(t)) != 0; }
  constexpr bool has_output(dtype t) const noexcept { return (output_types & dtype_bit(t)) != 0; }
  constexpr bool has_mode(requant_mode m) const noexcept {
    return (requant_modes & requant_bit(m)) != 0;
  }
};

// ---- the op the adapter hands the driver -----------------------------------------------------

// One entry of the per-output-channel table the requantization unit reads: bias, weight zero
// point, and the constants keel::make_channel_requant derives from the scales (fixed-point
// multiplier and shift, float multiplier, dequantization factor). 24 bytes, no padding, so a
// driver can DMA the table as it is.
struct channel_params {
  std::int32_t bias = 0;
  std::int32_t w_zero_point = 0;
  std::int32_t multiplier = 0;  // Q31 (fixed_point mode)
  std::int32_t shift = 0;       // left shift (fixed_point mode)
  float float_multiplier = 0;   // float_scale mode
  float dequant = 0;            // f32 output

  constexpr channel_requant requant() const noexcept {
    channel_requant c;
    c.fixed = {multiplier, shift};
    c.multiplier = float_multiplier;
    c.dequant = dequant;
    return c;
  }
  static constexpr channel_params from(std::int32_t bias, std::int32_t zp,
                                       const channel_requant& c) noexcept {
    return {bias, zp, c.fixed.multiplier, c.fixed.shift, c.multiplier, c.dequant};
  }
};
static_assert(sizeof(channel_params) == 24, "channel_params is a DMA-able 24-byte record");

// What the adapter asks the driver to run: the op's desc and the registered buffers holding its
// operands, every one dense, in keel's layouts, aligned to npu_capabilities::alignment:
//
//   matmul_i8  input    A [batch*M, K] (batches stacked)
//              weights  B [K, N], or [batch, K, N] when b_batched
//              params   channel_params [N]
//              output   [batch*M, N] of out.type
//   conv2d_i8  input    [batch, H, W, C_in] (NHWC)
//              weights  [C_out, KH, KW, C_in / groups] (OHWI)
//              params   channel_params [C_out]
//              output   [batch, OH, OW, C_out] of out.type (NHWC)
//
// For estimate() the buffers are kNoBuffer: only the desc is read.
struct npu_op {
  op_kind kind = op_kind::matmul_i8;  // matmul_i8 or conv2d_i8
  matmul_i8_desc matmul{};            // read when kind == matmul_i8
  conv2d_desc conv{};                 // read when kind == conv2d_i8
  buffer_id input = kNoBuffer;
  buffer_id weights = kNoBuffer;
  buffer_id params = kNoBuffer;
  buffer_id output = kNoBuffer;
};

// A driver's prediction for one op, for the router's cost model.
struct cycle_estimate {
  std::int64_t cycles = 0;      // device cycles from the first command to the last
  double seconds = 0;           // cycles / clock
  std::int64_t macs = 0;        // useful multiply-accumulates of the op
  std::int64_t dram_bytes = 0;  // bytes moved between DRAM and on-chip SRAM
  std::int64_t commands = 0;    // descriptors in the command stream
};

// ---- capability checks shared by the adapter and drivers -------------------------------------

namespace detail {
inline Status unsupported_dtype(std::string_view op, const char* what, dtype t) {
  return Status::make(status_code::unsupported, op, "%s dtype %s is not supported by this NPU",
                      what, to_string(t).data());
}
inline Status check_output(std::string_view op, const npu_capabilities& c, const output_quant& o) {
  if (!c.has_output(o.type)) return unsupported_dtype(op, "output", o.type);
  if ((o.type == dtype::s8 || o.type == dtype::u8) && !c.has_mode(o.mode)) {
    return Status::make(status_code::unsupported, op,
                        "requantization mode %s is not supported by this NPU", to_string(o.mode));
  }
  return Status::Ok();
}
inline Status check_dim(std::string_view op, const char* name, std::int64_t v, std::int64_t limit) {
  if (v > limit) {
    return Status::make(status_code::unsupported, op, "%s = %lld exceeds this NPU's limit %lld",
                        name, static_cast<long long>(v), static_cast<long long>(limit));
  }
  return Status::Ok();
}
}  // namespace detail

// Whether a (valid) desc is within the capabilities: ok, or unsupported naming the limit.
inline Status check_capabilities(const npu_capabilities& c, const matmul_i8_desc& d) {
  constexpr std::string_view op = "matmul_i8";
  if (!c.runs(op_kind::matmul_i8)) {
    return Status::make(status_code::unsupported, op, "this NPU does not run matmul_i8");
  }
  if (!c.has_input(d.a_type)) return detail::unsupported_dtype(op, "A", d.a_type);
  if (!c.has_weight(d.b_type)) return detail::unsupported_dtype(op, "B", d.b_type);
  KEEL_RETURN_IF_ERROR(detail::check_output(op, c, d.out));
  KEEL_RETURN_IF_ERROR(detail::check_dim(op, "batch", d.batch, c.max_dim));
  KEEL_RETURN_IF_ERROR(detail::check_dim(op, "M", d.m, c.max_dim));
  KEEL_RETURN_IF_ERROR(detail::check_dim(op, "N", d.n, c.max_dim));
  return detail::check_dim(op, "K", d.k, c.max_dim);
}

inline Status check_capabilities(const npu_capabilities& c, const conv2d_desc& d) {
  constexpr std::string_view op = "conv2d_i8";
  if (!c.runs(op_kind::conv2d_i8)) {
    return Status::make(status_code::unsupported, op, "this NPU does not run conv2d_i8");
  }
  if (!c.has_input(d.in_type)) return detail::unsupported_dtype(op, "input", d.in_type);
  if (!c.has_weight(d.w_type)) return detail::unsupported_dtype(op, "weight", d.w_type);
  KEEL_RETURN_IF_ERROR(detail::check_output(op, c, d.out));
  const bool depthwise = d.groups == d.in_c && d.groups > 1;
  if (depthwise && !c.depthwise_conv) {
    return Status::make(status_code::unsupported, op,
                        "depthwise convolution (groups = in_c = %lld) is not supported by this NPU",
                        static_cast<long long>(d.groups));
  }
  if (!depthwise && d.groups > 1 && !c.grouped_conv) {
    return Status::make(status_code::unsupported, op,
                        "grouped convolution (groups = %lld) is not supported by this NPU",
                        static_cast<long long>(d.groups));
  }
  if ((d.dilation_h > 1 || d.dilation_w > 1) && !c.dilation) {
    return Status::make(status_code::unsupported, op,
                        "dilation %lldx%lld is not supported by this NPU",
                        static_cast<long long>(d.dilation_h), static_cast<long long>(d.dilation_w));
  }
  KEEL_RETURN_IF_ERROR(detail::check_dim(op, "batch", d.batch, c.max_dim));
  KEEL_RETURN_IF_ERROR(detail::check_dim(op, "in_h", d.in_h, c.max_dim));
  KEEL_RETURN_IF_ERROR(detail::check_dim(op, "in_w", d.in_w, c.max_dim));
  KEEL_RETURN_IF_ERROR(detail::check_dim(op, "in_c", d.in_c, c.max_dim));
  KEEL_RETURN_IF_ERROR(detail::check_dim(op, "out_c", d.out_c, c.max_dim));
  KEEL_RETURN_IF_ERROR(detail::check_dim(op, "kernel_h", d.kernel_h, c.max_kernel));
  KEEL_RETURN_IF_ERROR(detail::check_dim(op, "kernel_w", d.kernel_w, c.max_kernel));
  KEEL_RETURN_IF_ERROR(detail::check_dim(op, "stride_h", d.stride_h, c.max_stride));
  return detail::check_dim(op, "stride_w", d.stride_w, c.max_stride);
}

// The per-call part: weight-scale granularity and weight zero points, which live in the args.
inline Status check_weight_quant(const npu_capabilities& c, std::string_view op,
                                 const output_quant& o, std::span<const float> w_scale,
                                 std::span<const std::int32_t> w_zero_point) {
  if (o.type != dtype::s32 && c.scales == weight_scales::per_tensor && w_scale.size() > 1) {
    for (float s : w_scale) {
      if (s != w_scale[0]) {
        return Status::make(status_code::unsupported, op,
                            "per-channel weight scales (%zu entries) on an NPU with per-tensor "
                            "requantization tables",
                            w_scale.size());
      }
    }
  }
  if (!c.weight_zero_points) {
    for (std::int32_t z : w_zero_point) {
      if (z != 0) {
        return Status::make(status_code::unsupported, op,
                            "weight zero point %d on an NPU that takes symmetric weights only", z);
      }
    }
  }
  return Status::Ok();
}

// ---- the concept -----------------------------------------------------------------------------

// What a vendor implements. Every call returns a Status (or Result) and never throws or aborts;
// see docs/npu-driver.md for each requirement in words.
//
//   D::caps                  constexpr backend_caps: the superset of op kinds and weight dtypes
//                            any configuration of this NPU can run (the router's compile-time
//                            candidate lists come from it); kind = backend_kind::npu.
//   D::command_stream        the driver's own command-stream type, default-constructible.
//   capabilities()           the configured device's limits (npu_capabilities).
//   register_input(p, n)     makes n bytes at p readable by the device's DMA; returns a handle.
//   register_output(p, n)    the same, writable.
//   release_buffer(id)       undoes a registration; the memory is the caller's again.
//   supports(op)             whether build() would succeed for this desc (capabilities, and a
//                            tiling that fits the SRAM), without building anything.
//   build(op, stream)        tiles the op for the device's SRAM and writes its command stream;
//                            unsupported when no tiling fits.
//   submit(stream)           queues the stream; returns a job handle.
//   wait(job, timeout_us)    blocks until the job completes or `timeout_us` microseconds of
//                            device time pass: ok, timeout, device_lost, ...
//   cancel(job)              after a failed wait: returns only once the device no longer touches
//                            the job's buffers (stopping the device if it must, and then
//                            reporting device_lost), so that they can be released.
//   estimate(op)             predicted cycles for the cost model, without running anything.
template <class D>
concept npu_driver = std::default_initializable<typename D::command_stream> &&
    requires(D& d, const D& cd, const npu_op& op, const void* in, void* out, std::int64_t bytes,
             buffer_id id, typename D::command_stream& cs, const typename D::command_stream& ccs,
             job_id job, std::int64_t timeout_us) {
  { D::caps } -> std::convertible_to<backend_caps>;
  { cd.capabilities() } -> std::convertible_to<npu_capabilities>;
  { d.register_input(in, bytes) } -> std::same_as<Result<buffer_id>>;
  { d.register_output(out, bytes) } -> std::same_as<Result<buffer_id>>;
  { d.release_buffer(id) } -> std::same_as<Status>;
  { cd.supports(op) } -> std::same_as<Status>;
  { cd.build(op, cs) } -> std::same_as<Status>;
  { d.submit(ccs) } -> std::same_as<Result<job_id>>;
  { d.wait(job, timeout_us) } -> std::same_as<Status>;
  { d.cancel(job) } -> std::same_as<Status>;
  { cd.estimate(op) } -> std::same_as<Result<cycle_estimate>>;
};

}  // namespace keel::npu
