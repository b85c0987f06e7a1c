// keel/backends/npu/adapter.hpp — npu_backend<Driver>: any npu_driver as a keel::backend.
//
// What the adapter does around the driver, for every op:
//   1. validate(desc, args): bad input returns keel's Status and touches nothing;
//   2. the driver's capabilities (ops, dtypes, granularity, limits) and supports(): anything
//      outside them is status_code::unsupported, so the router sends the op elsewhere
//      (attention's softmax, int4 weights, a dtype or a shape the NPU lacks);
//   3. staging: operands that are dense and aligned to the driver's alignment are registered in
//      place (zero copy); others are gathered into aligned host buffers; the per-channel table
//      (channel_params) is derived with keel::make_channel_requant exactly as the reference
//      derives it; the output always goes to a staging buffer;
//   4. build, submit, wait with the configured timeout (cancel on failure);
//   5. only after the job completed: the staging output is copied into the caller's view. A
//      timeout, a DMA error or a lost device therefore never writes into the caller's output.
//
// Packed weights (pack()) are a dense, aligned copy of B (or the filters) plus the per-channel
// arrays; copies of a packed object share the immutable bytes.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <span>
#include <utility>
#include <vector>

#include "keel/backend.hpp"
#include "keel/backends/npu/driver.hpp"
#include "keel/ops.hpp"

namespace keel::npu {

struct npu_backend_options {
  // Device time a job may take before the adapter gives up on it and cancels it.
  std::int64_t timeout_us = 2'000'000;
};

namespace detail {

// Host bytes at a chosen alignment, allocated without exceptions; copies share the bytes (the
// adapter fills a buffer once and then only reads it, or the driver writes it).
class host_bytes {
 public:
  Status allocate(std::int64_t bytes, std::int64_t alignment, const char* what) {
    if (bytes < 0 || alignment < 1 || bytes > (std::int64_t{1} << 48)) {
      return Status::make(status_code::out_of_memory, "npu_backend",
                          "cannot stage %lld bytes for %s", static_cast<long long>(bytes), what);
    }
    const auto total = static_cast<std::size_t>(bytes + alignment);
    unsigned char* raw = new (std::nothrow) unsigned char[total];
    if (raw == nullptr) {
      return Status::make(status_code::out_of_memory, "npu_backend",
                          "allocating %lld bytes for %s failed", static_cast<long long>(bytes),
                          what);
    }
    storage_ = std::shared_ptr<unsigned char[]>(raw);
    const auto addr = reinterpret_cast<std::uintptr_t>(raw);
    const auto a = static_cast<std::uintptr_t>(alignment);
    offset_ = static_cast<std::size_t>((a - addr % a) % a);
    size_ = bytes;
    return Status::Ok();
  }
  unsigned char* data() const noexcept { return storage_ ? storage_.get() + offset_ : nullptr; }
  std::int64_t size() const noexcept { return size_; }

 private:
  std::shared_ptr<unsigned char[]> storage_;
  std::size_t offset_ = 0;
  std::int64_t size_ = 0;
};

constexpr std::int64_t bytes_per_element(dtype t) noexcept {
  return bits_of(t) / 8;
}

// Bytes of a dense copy of a (validated) view; -1 when that overflows (host_bytes then refuses).
template <bool M>
std::int64_t dense_bytes(const basic_tensor_view<M>& v) noexcept {
  std::int64_t bytes = 0;
  const std::int64_t n = v.numel();
  return n >= 0 && checked_mul(n, bytes_per_element(v.type), &bytes) ? bytes : -1;
}

// A view's 4 dims padded with leading 1s, and its strides likewise (in elements).
template <bool M>
void dims4(const basic_tensor_view<M>& v, std::int64_t (&dim)[4], std::int64_t (&stride)[4]) {
  const int pad = 4 - v.rank;
  for (int i = 0; i < 4; ++i) {
    dim[i] = i < pad ? 1 : v.dim(i - pad);
    stride[i] = i < pad ? 0 : v.stride(i - pad);
  }
}

template <bool M>
bool is_dense(const basic_tensor_view<M>& v) {
  std::int64_t expect = 1;
  for (int i = v.rank - 1; i >= 0; --i) {
    if (v.dim(i) != 1 && v.stride(i) != expect) return false;
    expect *= v.dim(i);
  }
  return true;
}

// Copies a (validated, 8- or 32-bit) view into dense row-major bytes at dst.
inline void gather_dense(const const_tensor_view& v, unsigned char* dst) {
  std::int64_t d[4], s[4];
  dims4(v, d, s);
  const std::int64_t eb = bytes_per_element(v.type);
  const auto* src = static_cast<const unsigned char*>(v.data);
  for (std::int64_t a = 0; a < d[0]; ++a)
    for (std::int64_t b = 0; b < d[1]; ++b)
      for (std::int64_t c = 0; c < d[2]; ++c)
        for (std::int64_t e = 0; e < d[3]; ++e) {
          const std::int64_t off = a * s[0] + b * s[1] + c * s[2] + e * s[3];
          std::memcpy(dst, src + off * eb, static_cast<std::size_t>(eb));
          dst += eb;
        }
}

// Copies dense row-major bytes into a (validated) view.
inline void scatter_dense(const unsigned char* src, const tensor_view& v) {
  std::int64_t d[4], s[4];
  dims4(v, d, s);
  const std::int64_t eb = bytes_per_element(v.type);
  auto* dst = static_cast<unsigned char*>(v.data);
  for (std::int64_t a = 0; a < d[0]; ++a)
    for (std::int64_t b = 0; b < d[1]; ++b)
      for (std::int64_t c = 0; c < d[2]; ++c)
        for (std::int64_t e = 0; e < d[3]; ++e) {
          const std::int64_t off = a * s[0] + b * s[1] + c * s[2] + e * s[3];
          std::memcpy(dst + off * eb, src, static_cast<std::size_t>(eb));
          src += eb;
        }
}

template <class T>
constexpr T pick(std::span<const T> s, std::int64_t i, T absent) noexcept {
  if (s.empty()) return absent;
  return s.size() == 1 ? s[0] : s[static_cast<std::size_t>(i)];
}

// One operand ready for the device: where it is and how many bytes; `keep` owns a staging copy.
struct staged {
  const unsigned char* data = nullptr;
  std::int64_t bytes = 0;
  host_bytes keep;
};

}  // namespace detail

template <npu_driver Driver>
class npu_backend {
 public:
  static constexpr backend_caps caps = Driver::caps;

  // Packed weights: a dense, aligned copy of the weight tensor and the per-channel arrays.
  template <class Desc>
  struct packed_weights {
    Desc desc{};
    detail::host_bytes weights;
    std::vector<float> scale;
    std::vector<std::int32_t> zero_point;
    std::vector<std::int32_t> bias;
  };
  using packed_matmul_i8 = packed_weights<matmul_i8_desc>;
  using packed_conv2d = packed_weights<conv2d_desc>;
  struct packed_matmul_i4 {};  // never produced: the NPU path has no int4 weights

  npu_backend() = default;
  explicit npu_backend(Driver driver, npu_backend_options o = {})
      : driver_(std::move(driver)), options_(o) {}

  Driver& driver() noexcept { return driver_; }
  const Driver& driver() const noexcept { return driver_; }
  npu_backend_options& options() noexcept { return options_; }

  // ---- supports ----------------------------------------------------------------------------

  Status supports(const matmul_i8_desc& d) const {
    KEEL_RETURN_IF_ERROR(validate(d));
    KEEL_RETURN_IF_ERROR(check_capabilities(driver_.capabilities(), d));
    return driver_.supports(op_of(d));
  }
  Status supports(const conv2d_desc& d) const {
    KEEL_RETURN_IF_ERROR(validate(d));
    KEEL_RETURN_IF_ERROR(check_capabilities(driver_.capabilities(), d));
    return driver_.supports(op_of(d));
  }
  Status supports(const matmul_i4_desc& d) const {
    KEEL_RETURN_IF_ERROR(validate(d));
    return no_int4();
  }
  Status supports(const attention_desc& d) const {
    KEEL_RETURN_IF_ERROR(validate(d));
    return no_attention();
  }

  // ---- run ---------------------------------------------------------------------------------

  Status run(const matmul_i8_desc& d, const matmul_i8_args& a) {
    constexpr std::string_view op = "matmul_i8";
    KEEL_RETURN_IF_ERROR(validate(d, a));
    KEEL_RETURN_IF_ERROR(supports(d));
    const npu_capabilities caps_now = driver_.capabilities();
    KEEL_RETURN_IF_ERROR(check_weight_quant(caps_now, op, d.out, a.b_scale, a.b_zero_point));
    if (d.batch == 0) return Status::Ok();

    // ---- staging: A, B, the per-column table, the output --------------------------------
    const std::int64_t align = caps_now.alignment;
    detail::staged in, w, params, out;
    KEEL_RETURN_IF_ERROR(stage(a.a, align, "A", in));
    KEEL_RETURN_IF_ERROR(stage(a.b, align, "B", w));
    KEEL_RETURN_IF_ERROR(
        stage_params(d.n, d.a_scale, d.out, a.b_scale, a.b_zero_point, a.bias, align, params));
    KEEL_RETURN_IF_ERROR(stage_output(a.out, align, out));

    // ---- the job; the caller's output is written only after it completed ----------------
    KEEL_RETURN_IF_ERROR(execute(op_of(d), in, w, params, out));
    detail::scatter_dense(out.keep.data(), a.out);
    return Status::Ok();
  }

  Status run(const conv2d_desc& d, const conv2d_args& a) {
    constexpr std::string_view op = "conv2d_i8";
    KEEL_RETURN_IF_ERROR(validate(d, a));
    KEEL_RETURN_IF_ERROR(supports(d));
    const npu_capabilities caps_now = driver_.capabilities();
    KEEL_RETURN_IF_ERROR(check_weight_quant(caps_now, op, d.out, a.w_scale, a.w_zero_point));
    if (d.batch == 0) return Status::Ok();

    const std::int64_t align = caps_now.alignment;
    detail::staged in, w, params, out;
    KEEL_RETURN_IF_ERROR(stage(a.input, align, "input", in));
    KEEL_RETURN_IF_ERROR(stage(a.weights, align, "weights", w));
    KEEL_RETURN_IF_ERROR(
        stage_params(d.out_c, d.in_scale, d.out, a.w_scale, a.w_zero_point, a.bias, align, params));
    KEEL_RETURN_IF_ERROR(stage_output(a.out, align, out));

    KEEL_RETURN_IF_ERROR(execute(op_of(d), in, w, params, out));
    detail::scatter_dense(out.keep.data(), a.out);
    return Status::Ok();
  }

  Status run(const matmul_i4_desc& d, const matmul_i4_args& a) {
    KEEL_RETURN_IF_ERROR(validate(d, a));
    return no_int4();
  }
  Status run(const attention_desc& d, const attention_args& a) {
    KEEL_RETURN_IF_ERROR(validate(d, a));
    return no_attention();
  }

  // ---- packed weights ----------------------------------------------------------------------

  Result<packed_matmul_i8> pack(const matmul_i8_desc& d, const matmul_i8_args& a) {
    constexpr std::string_view op = "matmul_i8";
    KEEL_RETURN_IF_ERROR(supports(d));
    if (d.b_batched) {
      KEEL_RETURN_IF_ERROR(keel::detail::require_view(op, "B", a.b, d.b_type, {d.batch, d.k, d.n}));
    } else {
      KEEL_RETURN_IF_ERROR(keel::detail::require_view(op, "B", a.b, d.b_type, {d.k, d.n}));
    }
    KEEL_RETURN_IF_ERROR(keel::detail::validate_channel_params(op, d.n, d.b_type, d.out, a.b_scale,
                                                               a.b_zero_point, a.bias));
    KEEL_RETURN_IF_ERROR(
        check_weight_quant(driver_.capabilities(), op, d.out, a.b_scale, a.b_zero_point));
    packed_matmul_i8 p;
    p.desc = d;
    KEEL_RETURN_IF_ERROR(pack_weights(a.b, p));
    copy_spans(a.b_scale, a.b_zero_point, a.bias, p);
    return p;
  }

  Result<packed_conv2d> pack(const conv2d_desc& d, const conv2d_args& a) {
    constexpr std::string_view op = "conv2d_i8";
    KEEL_RETURN_IF_ERROR(supports(d));
    KEEL_RETURN_IF_ERROR(keel::detail::require_view(
        op, "weights", a.weights, d.w_type, {d.out_c, d.kernel_h, d.kernel_w, d.in_c / d.groups}));
    KEEL_RETURN_IF_ERROR(keel::detail::validate_channel_params(op, d.out_c, d.w_type, d.out,
                                                               a.w_scale, a.w_zero_point, a.bias));
    KEEL_RETURN_IF_ERROR(
        check_weight_quant(driver_.capabilities(), op, d.out, a.w_scale, a.w_zero_point));
    packed_conv2d p;
    p.desc = d;
    KEEL_RETURN_IF_ERROR(pack_weights(a.weights, p));
    copy_spans(a.w_scale, a.w_zero_point, a.bias, p);
    return p;
  }

  Result<packed_matmul_i4> pack(const matmul_i4_desc& d, const matmul_i4_args&) {
    KEEL_RETURN_IF_ERROR(validate(d));
    return no_int4();
  }

  Status run(const matmul_i8_desc& d, const packed_matmul_i8& p, const matmul_i8_args& a) {
    const matmul_i8_desc& q = p.desc;
    if (d.n != q.n || d.k != q.k || d.b_type != q.b_type || d.b_batched != q.b_batched ||
        (d.b_batched && d.batch != q.batch) || p.weights.data() == nullptr) {
      return packed_mismatch("matmul_i8");
    }
    matmul_i8_args full = a;
    full.b = d.b_batched ? const_tensor_view(p.weights.data(), q.b_type, {q.batch, q.k, q.n})
                         : const_tensor_view(p.weights.data(), q.b_type, {q.k, q.n});
    full.b_scale = p.scale;
    full.b_zero_point = p.zero_point;
    full.bias = p.bias;
    return run(d, full);
  }

  Status run(const conv2d_desc& d, const packed_conv2d& p, const conv2d_args& a) {
    const conv2d_desc& q = p.desc;
    if (d.out_c != q.out_c || d.in_c != q.in_c || d.kernel_h != q.kernel_h ||
        d.kernel_w != q.kernel_w || d.groups != q.groups || d.w_type != q.w_type ||
        p.weights.data() == nullptr) {
      return packed_mismatch("conv2d_i8");
    }
    conv2d_args full = a;
    full.weights = const_tensor_view(p.weights.data(), q.w_type,
                                     {q.out_c, q.kernel_h, q.kernel_w, q.in_c / q.groups});
    full.w_scale = p.scale;
    full.w_zero_point = p.zero_point;
    full.bias = p.bias;
    return run(d, full);
  }

  Status run(const matmul_i4_desc& d, const packed_matmul_i4&, const matmul_i4_args& a) {
    return run(d, a);
  }

  // ---- cost model ----------------------------------------------------------------------------

  // The driver's prediction for a (valid, supported) op; the router's cost model reads it.
  Result<cycle_estimate> estimate(const matmul_i8_desc& d) const {
    KEEL_RETURN_IF_ERROR(supports(d));
    return driver_.estimate(op_of(d));
  }
  Result<cycle_estimate> estimate(const conv2d_desc& d) const {
    KEEL_RETURN_IF_ERROR(supports(d));
    return driver_.estimate(op_of(d));
  }

  // The router's hook (keel/router/router.hpp): predicted device time in microseconds, or
  // +infinity when the driver cannot run the op. No supports() here: the driver's estimate
  // validates, and the router asks on every call, so this stays as cheap as the driver's memo.
  double estimate_us(const matmul_i8_desc& d) const { return to_us(driver_.estimate(op_of(d))); }
  double estimate_us(const conv2d_desc& d) const { return to_us(driver_.estimate(op_of(d))); }

 private:
  static npu_op op_of(const matmul_i8_desc& d) {
    npu_op o;
    o.kind = op_kind::matmul_i8;
    o.matmul = d;
    return o;
  }
  static npu_op op_of(const conv2d_desc& d) {
    npu_op o;
    o.kind = op_kind::conv2d_i8;
    o.conv = d;
    return o;
  }

  static double to_us(const Result<cycle_estimate>& e) {
    return e.ok() ? e.value().seconds * 1e6 : std::numeric_limits<double>::infinity();
  }

  static Status no_int4() {
    return Status::make(status_code::unsupported, "matmul_i4",
                        "%.*s has no int4-weight path (route it to a CPU backend)",
                        static_cast<int>(caps.name.size()), caps.name.data());
  }
  static Status no_attention() {
    return Status::make(status_code::unsupported, "attention",
                        "%.*s is an int8 MAC array: attention's f32 softmax does not run on it",
                        static_cast<int>(caps.name.size()), caps.name.data());
  }
  static Status packed_mismatch(const char* op) {
    return Status::make(status_code::shape_mismatch, op,
                        "the desc differs from the one the weights were packed for (weight "
                        "shape, dtype or grouping)");
  }

  // A validated view, in place when dense and aligned, otherwise gathered into staging.
  static Status stage(const const_tensor_view& v, std::int64_t align, const char* what,
                      detail::staged& s) {
    s.bytes = detail::dense_bytes(v);
    const auto addr = reinterpret_cast<std::uintptr_t>(v.data);
    if (detail::is_dense(v) && addr % static_cast<std::uintptr_t>(align) == 0) {
      s.data = static_cast<const unsigned char*>(v.data);
      return Status::Ok();
    }
    KEEL_RETURN_IF_ERROR(s.keep.allocate(s.bytes, align, what));
    detail::gather_dense(v, s.keep.data());
    s.data = s.keep.data();
    return Status::Ok();
  }

  static Status stage_output(const tensor_view& v, std::int64_t align, detail::staged& s) {
    s.bytes = detail::dense_bytes(v);
    KEEL_RETURN_IF_ERROR(s.keep.allocate(s.bytes, align, "the output"));
    s.data = s.keep.data();
    return Status::Ok();
  }

  // The per-channel table, derived the way keel::reference derives it.
  static Status stage_params(std::int64_t channels, float in_scale, const output_quant& o,
                             std::span<const float> w_scale,
                             std::span<const std::int32_t> w_zero_point,
                             std::span<const std::int32_t> bias, std::int64_t align,
                             detail::staged& s) {
    s.bytes = channels * static_cast<std::int64_t>(sizeof(channel_params));
    KEEL_RETURN_IF_ERROR(s.keep.allocate(s.bytes, align, "the channel table"));
    for (std::int64_t c = 0; c < channels; ++c) {
      const channel_requant cr =
          o.type == dtype::s32
              ? channel_requant{}
              : make_channel_requant(in_scale, detail::pick(w_scale, c, 0.0f), o.scale);
      const channel_params p =
          channel_params::from(detail::pick(bias, c, 0), detail::pick(w_zero_point, c, 0), cr);
      std::memcpy(s.keep.data() + c * static_cast<std::int64_t>(sizeof(channel_params)), &p,
                  sizeof(p));
    }
    s.data = s.keep.data();
    return Status::Ok();
  }

  template <class Packed>
  Status pack_weights(const const_tensor_view& v, Packed& p) {
    const std::int64_t align = driver_.capabilities().alignment;
    KEEL_RETURN_IF_ERROR(p.weights.allocate(detail::dense_bytes(v), align, "packed weights"));
    detail::gather_dense(v, p.weights.data());
    return Status::Ok();
  }

  template <class Packed>
  static void copy_spans(std::span<const float> scale, std::span<const std::int32_t> zp,
                         std::span<const std::int32_t> bias, Packed& p) {
    p.scale.assign(scale.begin(), scale.end());
    p.zero_point.assign(zp.begin(), zp.end());
    p.bias.assign(bias.begin(), bias.end());
  }

  // Registrations undone on every path out of execute().
  class registrations {
   public:
    explicit registrations(Driver& d) : d_(d) {}
    ~registrations() {
      for (int i = 0; i < n_; ++i) (void)d_.release_buffer(ids_[i]);
    }
    registrations(const registrations&) = delete;
    registrations& operator=(const registrations&) = delete;
    Status add(Result<buffer_id> r, buffer_id& out) {
      if (!r.ok()) return r.status();
      out = r.value();
      ids_[n_++] = out;
      return Status::Ok();
    }

   private:
    Driver& d_;
    buffer_id ids_[4] = {};
    int n_ = 0;
  };

  Status execute(npu_op op, const detail::staged& in, const detail::staged& w,
                 const detail::staged& params, const detail::staged& out) {
    registrations regs(driver_);
    KEEL_RETURN_IF_ERROR(regs.add(driver_.register_input(in.data, in.bytes), op.input));
    KEEL_RETURN_IF_ERROR(regs.add(driver_.register_input(w.data, w.bytes), op.weights));
    KEEL_RETURN_IF_ERROR(regs.add(driver_.register_input(params.data, params.bytes), op.params));
    KEEL_RETURN_IF_ERROR(regs.add(driver_.register_output(out.keep.data(), out.bytes), op.output));
    typename Driver::command_stream stream;
    KEEL_RETURN_IF_ERROR(driver_.build(op, stream));
    Result<job_id> job = driver_.submit(stream);
    if (!job.ok()) return job.status();
    const Status done = driver_.wait(job.value(), options_.timeout_us);
    if (!done.ok()) {
      // cancel() returns once the device no longer touches the buffers released below; its own
      // failure (device_lost) is less specific than the wait's Status, which is what we report.
      (void)driver_.cancel(job.value());
      return done;
    }
    return Status::Ok();
  }

  Driver driver_{};
  npu_backend_options options_{};
};

}  // namespace keel::npu
