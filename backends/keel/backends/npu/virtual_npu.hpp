// keel/backends/npu/virtual_npu.hpp — the virtual NPU: a driver (npu_driver) for a device that
// exists only as a functional and timing model, so routing, tiling and fallback can be brought up
// before silicon.
//
// Functional model: the SRAM is a real byte array of `sram_bytes`; DMA descriptors copy between
// it and registered host buffers; the MAC array and the requantization unit read and write only
// SRAM. A tile that did not fit would have nowhere to go. Results are bit-exact with
// keel::reference::matmul_i8 and conv2d_i8 for every output mode: the MACs are exact int32 sums
// of (x - zx) * (w - zw) (validate_accumulator bounds every partial sum), and the
// requantization unit calls keel/quant.hpp's requantize() / dequantize_acc() on the same
// constants keel::make_channel_requant derives.
//
// Timing model: timing.hpp, run on every submitted stream (last_timing()) and by estimate().
//
// Faults: vnpu_config::faults, checked at each submission; a faulting job stops part-way, so the
// registered output buffer may hold a partial result — the adapter's staging buffer, never the
// caller's output.
//
// Thread safety: none, as for a device handle. Even the const calls (supports, build, estimate)
// update a memo of tilings and estimates; use one instance per thread, or serialise calls.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "keel/backends/npu/command_stream.hpp"
#include "keel/backends/npu/driver.hpp"
#include "keel/backends/npu/tiler.hpp"
#include "keel/backends/npu/timing.hpp"
#include "keel/backends/npu/vnpu_config.hpp"

namespace keel::npu {

class virtual_npu {
 public:
  // The superset any configuration can run; supports() narrows it to the configured device.
  // Alignment 1: the adapter stages misaligned operands, callers need not align anything.
  static constexpr backend_caps caps{
      .name = "keel_vnpu",
      .kind = backend_kind::npu,
      .bit_exact = true,
      .ops = op_bit(op_kind::matmul_i8) | op_bit(op_kind::conv2d_i8),
      .weight_types = dtype_bit(dtype::s8) | dtype_bit(dtype::u8),
  };
  using command_stream = vnpu::command_stream;

  // How many jobs may be submitted and not yet waited for or cancelled.
  static constexpr std::size_t kMaxOutstandingJobs = 256;

  virtual_npu() : virtual_npu(vnpu_config{}) {}
  explicit virtual_npu(const vnpu_config& c) { (void)configure(c); }

  // Replaces the configuration (and resets the device); an invalid one is reported here and by
  // every later call until a valid one is set.
  Status configure(const vnpu_config& c) {
    config_ = c;
    config_status_ = validate(c);
    sram_.assign(config_status_.ok() ? static_cast<std::size_t>((c.sram_bytes + 3) / 4) : 0, 0);
    for (memo_entry& e : memo_) e = memo_entry{};
    reset();
    return config_status_;
  }
  const vnpu_config& config() const noexcept { return config_; }
  const Status& config_status() const noexcept { return config_status_; }

  // Fault injection can be changed at any time without touching the rest of the configuration.
  void set_fault(std::size_t slot, const fault_rule& f) noexcept {
    if (slot < config_.faults.size()) config_.faults[slot] = f;
  }
  void clear_faults() noexcept { config_.faults = {}; }
  void set_device_lost_for(std::uint64_t submissions) noexcept {
    config_.device_lost_for = submissions;
  }

  // The device comes back (as after a driver reload): not lost, no jobs, counters kept.
  void reset() noexcept {
    lost_ = false;
    lost_remaining_ = 0;
    jobs_.clear();
  }
  bool device_lost() const noexcept { return lost_; }

  // ---- npu_driver ------------------------------------------------------------------------

  npu_capabilities capabilities() const noexcept { return capabilities_of(config_); }

  Result<buffer_id> register_input(const void* p, std::int64_t bytes) {
    return register_buffer(p, bytes, /*writable=*/false);
  }
  Result<buffer_id> register_output(void* p, std::int64_t bytes) {
    return register_buffer(p, bytes, /*writable=*/true);
  }

  Status release_buffer(buffer_id id) {
    for (std::size_t i = 0; i < buffers_.size(); ++i) {
      if (buffers_[i].id == id) {
        buffers_.erase(buffers_.begin() + static_cast<std::ptrdiff_t>(i));
        return Status::Ok();
      }
    }
    return Status::make(status_code::invalid_argument, "virtual_npu",
                        "release of buffer %u, which is not registered", id);
  }

  Status supports(const npu_op& op) const {
    KEEL_RETURN_IF_ERROR(config_status_);
    KEEL_RETURN_IF_ERROR(vnpu::check_desc(op, config_));
    return plan(op).status();
  }

  Status build(const npu_op& op, command_stream& s) const {
    KEEL_RETURN_IF_ERROR(config_status_);
    KEEL_RETURN_IF_ERROR(vnpu::check_desc(op, config_));
    Result<memo_entry*> m = plan(op);
    if (!m.ok()) return m.status();
    return vnpu::build_stream(op, config_, s, &m.value()->tiling);
  }

  Result<job_id> submit(const command_stream& s) {
    KEEL_RETURN_IF_ERROR(config_status_);
    KEEL_RETURN_IF_ERROR(check_lost());
    if (jobs_.size() >= kMaxOutstandingJobs) {
      return Status::make(status_code::out_of_memory, "virtual_npu",
                          "%zu jobs are outstanding (wait for or cancel some)", jobs_.size());
    }
    KEEL_RETURN_IF_ERROR(validate_stream(s));
    ++counters_.submissions;

    // ---- faults: which one (if any) strikes, and at which command ------------------------
    job j;
    j.id = ++last_job_;
    const fault_hit hit = pick_fault(s);
    const std::size_t run_until = hit.kind == fault_kind::none ? s.commands.size() : hit.command;

    // ---- functional model: the commands before the fault, in program order ---------------
    for (std::size_t i = 0; i < run_until; ++i) execute(s, s.commands[i]);

    // ---- timing model ---------------------------------------------------------------------
    last_timing_ = vnpu::simulate_timing(s, config_);
    j.cycles = last_timing_.cycles;
    switch (hit.kind) {
      case fault_kind::none: counters_.simulated_macs += s.macs; break;
      case fault_kind::timeout:
        j.hung = true;
        j.hung_at = hit.command;
        ++counters_.faults;
        break;
      case fault_kind::dma_error:
        j.status =
            Status::make(status_code::device_lost, "virtual_npu",
                         "DMA error at command %zu of %zu (injected): job %llu aborted, "
                         "the device recovered",
                         hit.command, s.commands.size(), static_cast<unsigned long long>(j.id));
        ++counters_.faults;
        break;
      case fault_kind::device_lost:
        j.status =
            Status::make(status_code::device_lost, "virtual_npu",
                         "device lost at command %zu of %zu (injected) while running job "
                         "%llu",
                         hit.command, s.commands.size(), static_cast<unsigned long long>(j.id));
        lost_ = true;
        lost_remaining_ = config_.device_lost_for;
        ++counters_.faults;
        break;
    }
    jobs_.push_back(j);
    return j.id;
  }

  Status wait(job_id id, std::int64_t timeout_us) {
    KEEL_RETURN_IF_ERROR(config_status_);
    if (timeout_us < 0) {
      return Status::make(status_code::invalid_argument, "virtual_npu",
                          "timeout %lld us (must be >= 0)", static_cast<long long>(timeout_us));
    }
    const std::size_t i = find_job(id);
    if (i == jobs_.size()) {
      return Status::make(status_code::invalid_argument, "virtual_npu",
                          "wait for job %llu, which is not outstanding",
                          static_cast<unsigned long long>(id));
    }
    const job j = jobs_[i];
    if (j.hung) {  // stays outstanding: the caller cancels it
      return Status::make(status_code::timeout, "virtual_npu",
                          "job %llu did not complete within %lld us (injected hang at command "
                          "%zu)",
                          static_cast<unsigned long long>(id), static_cast<long long>(timeout_us),
                          j.hung_at);
    }
    const double needed_us = static_cast<double>(j.cycles) / config_.clock_hz * 1e6;
    if (needed_us > static_cast<double>(timeout_us)) {
      return Status::make(status_code::timeout, "virtual_npu",
                          "job %llu needs %.1f us of device time, more than the %lld us allowed",
                          static_cast<unsigned long long>(id), needed_us,
                          static_cast<long long>(timeout_us));
    }
    jobs_.erase(jobs_.begin() + static_cast<std::ptrdiff_t>(i));
    if (j.status.ok()) ++counters_.completed;
    return j.status;
  }

  Status cancel(job_id id) {
    const std::size_t i = find_job(id);
    if (i != jobs_.size()) jobs_.erase(jobs_.begin() + static_cast<std::ptrdiff_t>(i));
    // The model has finished touching the job's buffers by the time submit() returns, so a
    // cancel always succeeds; a lost device cannot be asked, but it no longer writes either.
    return Status::Ok();
  }

  // Builds the stream and schedules it. The router asks on every call, so tilings and estimates
  // are memoised by the op's timing-relevant fields (see plan()).
  Result<cycle_estimate> estimate(const npu_op& op) const {
    KEEL_RETURN_IF_ERROR(config_status_);
    KEEL_RETURN_IF_ERROR(vnpu::check_desc(op, config_));
    Result<memo_entry*> m = plan(op);
    if (!m.ok()) return m.status();
    memo_entry& e = *m.value();
    if (!e.has_estimate) {
      command_stream s;
      KEEL_RETURN_IF_ERROR(vnpu::build_stream(op, config_, s, &e.tiling));
      const vnpu::timing_report t = vnpu::simulate_timing(s, config_);
      e.estimate = {t.cycles, t.seconds, t.macs, t.dram_bytes, t.commands};
      e.has_estimate = true;
    }
    return e.estimate;
  }

  // ---- beyond the concept: for tests, benches and bring-up ------------------------------

  // The schedule of the most recently submitted stream.
  const vnpu::timing_report& last_timing() const noexcept { return last_timing_; }

  struct counters {
    std::uint64_t submissions = 0;     // accepted by submit()
    std::uint64_t completed = 0;       // waited for with an ok Status
    std::uint64_t faults = 0;          // injected
    std::uint64_t refused = 0;         // submissions refused while the device was lost
    std::uint64_t simulated_macs = 0;  // useful MACs of the jobs that ran to the end
  };
  const counters& stats() const noexcept { return counters_; }

  // Every descriptor inside SRAM, its regions and registered buffers; what submit() checks
  // before running anything. Public so a test (or a vendor's bring-up) can check a stream.
  Status validate_stream(const command_stream& s) const {
    KEEL_RETURN_IF_ERROR(config_status_);
    const auto region_count = static_cast<std::int32_t>(s.regions.size());
    for (std::size_t r = 0; r < s.regions.size(); ++r) {
      const vnpu::sram_region& g = s.regions[r];
      std::int64_t end = 0;
      if (g.offset < 0 || g.bytes < 0 || !checked_add(g.offset, g.bytes, &end) ||
          end > config_.sram_bytes || g.offset % 4 != 0) {
        return bad_stream(r, "region", "lies outside the SRAM or is not 4-byte aligned");
      }
    }
    auto region_ok = [&](std::int32_t idx, std::int64_t need) {
      if (idx < 0 || idx >= region_count || need < 0) return false;
      return need <= s.regions[static_cast<std::size_t>(idx)].bytes;
    };
    for (std::size_t i = 0; i < s.commands.size(); ++i) {
      const vnpu::command& c = s.commands[i];
      switch (c.op) {
        case vnpu::opcode::load:
        case vnpu::opcode::store: {
          const vnpu::dma_desc& d = c.dma;
          const buffer_record* b = find_buffer(d.buffer);
          if (b == nullptr) return bad_stream(i, "dma", "names an unregistered buffer");
          if (c.op == vnpu::opcode::store && !b->writable) {
            return bad_stream(i, "store", "writes to a buffer registered as an input");
          }
          const std::int64_t sram_end = span_end(d.region_offset, d.planes, d.sram_plane_stride,
                                                 d.rows, d.sram_row_stride, d.row_bytes);
          const std::int64_t dram_end = span_end(d.dram_offset, d.planes, d.dram_plane_stride,
                                                 d.rows, d.dram_row_stride, d.row_bytes);
          if (sram_end < 0 || !region_ok(d.region, sram_end)) {
            return bad_stream(i, "dma", "reaches outside its SRAM region");
          }
          if (dram_end < 0 || dram_end > b->bytes) {
            return bad_stream(i, "dma", "reaches outside its DRAM buffer");
          }
          break;
        }
        case vnpu::opcode::matmul_tile: {
          const vnpu::matmul_tile_desc& m = c.mm;
          if (m.m < 1 || m.n < 1 || m.k < 1 || !is_quantized_8bit(m.a_type) ||
              !is_quantized_8bit(m.b_type) || !region_ok(m.a_region, vnpu::sat_mul(m.m, m.k)) ||
              !region_ok(m.b_region, vnpu::sat_mul(m.k, m.n)) ||
              !region_ok(m.params_region, vnpu::sat_mul(m.n, vnpu::kParamBytes)) ||
              !region_ok(m.acc_region, vnpu::sat_mul(vnpu::sat_mul(m.m, m.n), 4))) {
            return bad_stream(i, "matmul_tile", "has a bad size, dtype or region");
          }
          break;
        }
        case vnpu::opcode::conv_tile: {
          const vnpu::conv_tile_desc& t = c.conv;
          const std::int64_t taps = vnpu::sat_mul(t.kernel_h, t.kernel_w);
          const bool sizes = t.out_rows >= 1 && t.out_cols >= 1 && t.channels >= 1 &&
                             t.win_chans >= 1 && t.w_chans >= 1 && t.kernel_h >= 1 &&
                             t.kernel_w >= 1 && t.stride_h >= 1 && t.stride_w >= 1 &&
                             t.dilation_h >= 1 && t.dilation_w >= 1 && t.multiplier >= 1 &&
                             t.first_oc >= 0;
          if (!sizes || !is_quantized_8bit(t.in_type) || !is_quantized_8bit(t.w_type)) {
            return bad_stream(i, "conv_tile", "has a bad size or dtype");
          }
          // The window must hold every tap of every output pixel of the tile.
          const std::int64_t need_r =
              vnpu::detail::window_extent(t.out_rows, t.stride_h, t.kernel_h, t.dilation_h);
          const std::int64_t need_c =
              vnpu::detail::window_extent(t.out_cols, t.stride_w, t.kernel_w, t.dilation_w);
          const std::int64_t chan_last =
              t.depthwise ? (t.first_oc + t.channels - 1) / t.multiplier - t.first_oc / t.multiplier
                          : t.w_chans - 1;
          if (need_r > t.win_rows || need_c > t.win_cols || chan_last >= t.win_chans ||
              (t.depthwise && t.w_chans != 1)) {
            return bad_stream(i, "conv_tile", "has a window smaller than its taps");
          }
          const std::int64_t pixels = vnpu::sat_mul(t.out_rows, t.out_cols);
          if (!region_ok(t.in_region,
                         vnpu::sat_mul(vnpu::sat_mul(t.win_rows, t.win_cols), t.win_chans)) ||
              !region_ok(t.w_region, vnpu::sat_mul(vnpu::sat_mul(t.channels, taps), t.w_chans)) ||
              !region_ok(t.params_region, vnpu::sat_mul(t.channels, vnpu::kParamBytes)) ||
              !region_ok(t.acc_region, vnpu::sat_mul(vnpu::sat_mul(pixels, t.channels), 4))) {
            return bad_stream(i, "conv_tile", "reaches outside a region");
          }
          break;
        }
        case vnpu::opcode::requantize: {
          const vnpu::requant_desc& q = c.rq;
          const std::int64_t n = vnpu::sat_mul(q.rows, q.cols);
          const dtype t = q.out.type;
          if (q.rows < 1 || q.cols < 1 ||
              (t != dtype::s32 && t != dtype::f32 && t != dtype::s8 && t != dtype::u8) ||
              !region_ok(q.acc_region, vnpu::sat_mul(n, 4)) ||
              !region_ok(q.params_region, vnpu::sat_mul(q.cols, vnpu::kParamBytes)) ||
              !region_ok(q.out_region, vnpu::sat_mul(n, vnpu::element_bytes(t)))) {
            return bad_stream(i, "requantize", "has a bad size, dtype or region");
          }
          break;
        }
        default: return bad_stream(i, "command", "has an unknown opcode");
      }
    }
    return Status::Ok();
  }

 private:
  struct buffer_record {
    buffer_id id = kNoBuffer;
    unsigned char* data = nullptr;  // const for inputs: never written through (writable false)
    std::int64_t bytes = 0;
    bool writable = false;
  };

  struct job {
    job_id id = 0;
    Status status{};
    std::int64_t cycles = 0;
    bool hung = false;
    std::size_t hung_at = 0;
  };

  // The fields of an op that its tiling and command stream depend on (the rest of the desc is
  // only validated, which check_desc() does on every call).
  using memo_key = std::array<std::int64_t, 24>;
  struct memo_entry {
    bool used = false;
    memo_key key{};
    vnpu::op_tiling tiling{};
    bool has_estimate = false;
    cycle_estimate estimate{};
  };

  static memo_key key_of(const npu_op& op) noexcept {
    memo_key k{};
    k[0] = static_cast<std::int64_t>(op.kind);
    if (op.kind == op_kind::matmul_i8) {
      const matmul_i8_desc& d = op.matmul;
      const std::int64_t v[] = {d.batch,
                                d.m,
                                d.n,
                                d.k,
                                static_cast<std::int64_t>(d.a_type),
                                static_cast<std::int64_t>(d.b_type),
                                d.b_batched ? 1 : 0,
                                static_cast<std::int64_t>(d.out.type)};
      std::copy(std::begin(v), std::end(v), k.begin() + 1);
    } else {
      const conv2d_desc& d = op.conv;
      const std::int64_t v[] = {d.batch,
                                d.in_h,
                                d.in_w,
                                d.in_c,
                                d.out_c,
                                d.kernel_h,
                                d.kernel_w,
                                d.stride_h,
                                d.stride_w,
                                d.dilation_h,
                                d.dilation_w,
                                static_cast<std::int64_t>(d.padding),
                                d.pad_top,
                                d.pad_bottom,
                                d.pad_left,
                                d.pad_right,
                                d.groups,
                                static_cast<std::int64_t>(d.in_type),
                                static_cast<std::int64_t>(d.w_type),
                                static_cast<std::int64_t>(d.out.type)};
      std::copy(std::begin(v), std::end(v), k.begin() + 1);
    }
    return k;
  }

  // The memo entry of an op that passed check_desc(): found, or tiled now and stored (16
  // entries, round robin). A tiling that does not fit is not stored: it is cheap to refuse again
  // only relative to how rarely it is asked.
  Result<memo_entry*> plan(const npu_op& op) const {
    const memo_key key = key_of(op);
    for (memo_entry& e : memo_) {
      if (e.used && e.key == key) return &e;
    }
    Result<vnpu::op_tiling> t = vnpu::choose_tiling(op, config_);
    if (!t.ok()) return t.status();
    memo_entry& e = memo_[next_memo_++ % memo_.size()];
    e = memo_entry{true, key, t.value(), false, {}};
    return &e;
  }

  struct fault_hit {
    fault_kind kind = fault_kind::none;
    std::size_t command = 0;
  };

  static Status bad_stream(std::size_t index, const char* what, const char* rule) {
    return Status::make(status_code::invalid_argument, "virtual_npu",
                        "command stream entry %zu (%s) %s", index, what, rule);
  }

  // One past the last byte a (planes x rows x row_bytes) pattern touches, or -1 when a value is
  // negative or the arithmetic overflows.
  static std::int64_t span_end(std::int64_t offset, std::int64_t planes, std::int64_t plane_stride,
                               std::int64_t rows, std::int64_t row_stride,
                               std::int64_t row_bytes) noexcept {
    if (offset < 0 || planes < 1 || rows < 1 || row_bytes < 1 || plane_stride < 0 ||
        row_stride < 0) {
      return -1;
    }
    std::int64_t a = 0, b = 0, end = 0;
    if (!checked_mul(planes - 1, plane_stride, &a) || !checked_mul(rows - 1, row_stride, &b) ||
        !checked_add(offset, a, &end) || !checked_add(end, b, &end) ||
        !checked_add(end, row_bytes, &end)) {
      return -1;
    }
    return end;
  }

  Status check_lost() {
    if (!lost_) return Status::Ok();
    ++counters_.refused;
    if (lost_remaining_ > 0 && --lost_remaining_ == 0) {
      lost_ = false;  // this refusal was the last: the device is back for the next submission
    }
    return Status::make(status_code::device_lost, "virtual_npu",
                        "the device is lost (refusing submissions until it is back)");
  }

  Result<buffer_id> register_buffer(const void* p, std::int64_t bytes, bool writable) {
    // Registration is host-side bookkeeping here (as importing a dma-buf is): it works while
    // the device is lost; submit() is what refuses, and what counts the refusals.
    KEEL_RETURN_IF_ERROR(config_status_);
    if (bytes < 0 || (bytes > 0 && p == nullptr)) {
      return Status::make(status_code::invalid_argument, "virtual_npu",
                          "buffer %p of %lld bytes (need a non-null pointer and bytes >= 0)", p,
                          static_cast<long long>(bytes));
    }
    const auto addr = reinterpret_cast<std::uintptr_t>(p);
    if (addr % static_cast<std::uintptr_t>(config_.alignment) != 0) {
      return Status::make(status_code::invalid_argument, "virtual_npu",
                          "buffer at %p is not aligned to %lld bytes", p,
                          static_cast<long long>(config_.alignment));
    }
    buffer_record r;
    r.id = ++last_buffer_;
    if (r.id == kNoBuffer) r.id = ++last_buffer_;  // wrapped: skip the null handle
    r.data = static_cast<unsigned char*>(const_cast<void*>(p));
    r.bytes = bytes;
    r.writable = writable;
    buffers_.push_back(r);
    return r.id;
  }

  const buffer_record* find_buffer(buffer_id id) const noexcept {
    for (const buffer_record& b : buffers_) {
      if (b.id == id) return &b;
    }
    return nullptr;
  }

  std::size_t find_job(job_id id) const noexcept {
    for (std::size_t i = 0; i < jobs_.size(); ++i) {
      if (jobs_[i].id == id) return i;
    }
    return jobs_.size();
  }

  // A 64-bit mix (splitmix64's finaliser): deterministic on every platform, unlike std::
  // distributions.
  static constexpr std::uint64_t mix(std::uint64_t x) noexcept {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
  }

  fault_hit pick_fault(const command_stream& s) const {
    const std::uint64_t n = counters_.submissions;
    for (const fault_rule& f : config_.faults) {
      if (f.kind == fault_kind::none) continue;
      const std::uint64_t h = mix(f.seed ^ mix(n));
      const bool nth = f.every_nth > 0 && n % f.every_nth == 0;
      const bool drawn = f.per_million > 0 && h % 1000000u < f.per_million;
      if (!nth && !drawn) continue;
      fault_hit hit;
      hit.kind = f.kind;
      if (s.commands.empty()) return hit;  // strikes before anything runs
      const std::uint64_t pick = mix(h);
      if (f.kind == fault_kind::dma_error) {
        // The k-th DMA descriptor of the stream.
        std::size_t dma_count = 0;
        for (const vnpu::command& c : s.commands) {
          dma_count += (c.op == vnpu::opcode::load || c.op == vnpu::opcode::store) ? 1 : 0;
        }
        std::size_t k = static_cast<std::size_t>(pick % (dma_count ? dma_count : 1));
        for (std::size_t i = 0; i < s.commands.size(); ++i) {
          const vnpu::opcode op = s.commands[i].op;
          if (op != vnpu::opcode::load && op != vnpu::opcode::store) continue;
          if (k-- == 0) {
            hit.command = i;
            break;
          }
        }
      } else {
        hit.command = static_cast<std::size_t>(pick % s.commands.size());
      }
      return hit;
    }
    return {};
  }

  // ---- functional model ------------------------------------------------------------------

  unsigned char* sram() noexcept { return reinterpret_cast<unsigned char*>(sram_.data()); }
  unsigned char* region_ptr(const command_stream& s, std::int32_t r) noexcept {
    return sram() + s.regions[static_cast<std::size_t>(r)].offset;
  }
  // The accumulators are int32 objects of the SRAM array (regions are 4-byte aligned).
  std::int32_t* acc_ptr(const command_stream& s, std::int32_t r) noexcept {
    return sram_.data() + s.regions[static_cast<std::size_t>(r)].offset / 4;
  }

  static std::int32_t load8(const unsigned char* p, dtype t) noexcept {
    return t == dtype::s8 ? static_cast<std::int32_t>(static_cast<std::int8_t>(*p))
                          : static_cast<std::int32_t>(*p);
  }

  void read_params(const command_stream& s, std::int32_t r, std::int64_t n) {
    params_.resize(static_cast<std::size_t>(n));
    std::memcpy(params_.data(), region_ptr(s, r),
                static_cast<std::size_t>(n) * sizeof(channel_params));
  }

  void execute(const command_stream& s, const vnpu::command& c) {
    switch (c.op) {
      case vnpu::opcode::load:
      case vnpu::opcode::store: return run_dma(s, c);
      case vnpu::opcode::matmul_tile: return run_matmul(s, c.mm);
      case vnpu::opcode::conv_tile: return run_conv(s, c.conv);
      case vnpu::opcode::requantize: return run_requant(s, c.rq);
    }
  }

  void run_dma(const command_stream& s, const vnpu::command& c) {
    const vnpu::dma_desc& d = c.dma;
    const buffer_record* b = find_buffer(d.buffer);
    KEEL_DASSERT(b != nullptr, "validated buffer");
    unsigned char* local = region_ptr(s, d.region) + d.region_offset;
    unsigned char* remote = b->data + d.dram_offset;
    const bool load = c.op == vnpu::opcode::load;
    for (std::int64_t p = 0; p < d.planes; ++p) {
      for (std::int64_t r = 0; r < d.rows; ++r) {
        unsigned char* l = local + p * d.sram_plane_stride + r * d.sram_row_stride;
        unsigned char* m = remote + p * d.dram_plane_stride + r * d.dram_row_stride;
        if (load) {
          std::memcpy(l, m, static_cast<std::size_t>(d.row_bytes));
        } else {
          std::memcpy(m, l, static_cast<std::size_t>(d.row_bytes));
        }
      }
    }
  }

  // acc[m][n] (+)= sum_k (A - za) * (B - zb). The B tile is widened once to int16 with its zero
  // points subtracted (|b - zb| <= 255), so the inner loop is a plain int16 x int32 axpy.
  void run_matmul(const command_stream& s, const vnpu::matmul_tile_desc& t) {
    read_params(s, t.params_region, t.n);
    const unsigned char* a = region_ptr(s, t.a_region);
    const unsigned char* b = region_ptr(s, t.b_region);
    std::int32_t* acc = acc_ptr(s, t.acc_region);

    // ---- setup: B - zb --------------------------------------------------------------------
    wide_.resize(static_cast<std::size_t>(t.k * t.n));
    for (std::int64_t k = 0; k < t.k; ++k) {
      for (std::int64_t n = 0; n < t.n; ++n) {
        wide_[static_cast<std::size_t>(k * t.n + n)] = static_cast<std::int16_t>(
            load8(b + k * t.n + n, t.b_type) - params_[static_cast<std::size_t>(n)].w_zero_point);
      }
    }

    // ---- main loop: rank-1 updates of each accumulator row ---------------------------------
    for (std::int64_t m = 0; m < t.m; ++m) {
      std::int32_t* row = acc + m * t.n;
      if (!t.accumulate) std::fill(row, row + t.n, 0);
      for (std::int64_t k = 0; k < t.k; ++k) {
        const std::int32_t av = load8(a + m * t.k + k, t.a_type) - t.a_zero_point;
        if (av == 0) continue;  // adds exactly 0
        const std::int16_t* w = wide_.data() + k * t.n;
        for (std::int64_t n = 0; n < t.n; ++n) row[n] += av * w[n];
      }
    }
  }

  void run_conv(const command_stream& s, const vnpu::conv_tile_desc& t) {
    read_params(s, t.params_region, t.channels);
    const unsigned char* win = region_ptr(s, t.in_region);
    const unsigned char* w = region_ptr(s, t.w_region);
    std::int32_t* acc = acc_ptr(s, t.acc_region);
    const std::int64_t taps = t.kernel_h * t.kernel_w;

    // ---- setup: filters - zw, widened; the window channel each output channel reads ---------
    const std::int64_t wn = t.channels * taps * t.w_chans;
    wide_.resize(static_cast<std::size_t>(wn));
    for (std::int64_t oc = 0; oc < t.channels; ++oc) {
      const std::int32_t zw = params_[static_cast<std::size_t>(oc)].w_zero_point;
      for (std::int64_t e = 0; e < taps * t.w_chans; ++e) {
        const std::int64_t at = oc * taps * t.w_chans + e;
        wide_[static_cast<std::size_t>(at)] =
            static_cast<std::int16_t>(load8(w + at, t.w_type) - zw);
      }
    }
    if (t.depthwise) {
      chan_.resize(static_cast<std::size_t>(t.channels));
      for (std::int64_t oc = 0; oc < t.channels; ++oc) {
        chan_[static_cast<std::size_t>(oc)] =
            (t.first_oc + oc) / t.multiplier - t.first_oc / t.multiplier;
      }
    }
    xs_.resize(static_cast<std::size_t>(t.w_chans));

    // ---- main loop: per output pixel, per tap inside the image ------------------------------
    for (std::int64_t r = 0; r < t.out_rows; ++r) {
      for (std::int64_t q = 0; q < t.out_cols; ++q) {
        std::int32_t* out = acc + (r * t.out_cols + q) * t.channels;
        if (!t.accumulate) std::fill(out, out + t.channels, 0);
        for (std::int64_t i = 0; i < t.kernel_h; ++i) {
          const std::int64_t wr = r * t.stride_h + i * t.dilation_h;
          const std::int64_t ih = t.ih0 + wr;
          if (ih < 0 || ih >= t.in_h) continue;  // padding: (zx - zx) * w = 0
          for (std::int64_t j = 0; j < t.kernel_w; ++j) {
            const std::int64_t wc = q * t.stride_w + j * t.dilation_w;
            const std::int64_t iw = t.iw0 + wc;
            if (iw < 0 || iw >= t.in_w) continue;
            const unsigned char* x = win + (wr * t.win_cols + wc) * t.win_chans;
            const std::int64_t tap = i * t.kernel_w + j;
            if (t.depthwise) {
              for (std::int64_t oc = 0; oc < t.channels; ++oc) {
                const std::int32_t xv =
                    load8(x + chan_[static_cast<std::size_t>(oc)], t.in_type) - t.in_zero_point;
                out[oc] += xv * wide_[static_cast<std::size_t>(oc * taps + tap)];
              }
              continue;
            }
            for (std::int64_t ci = 0; ci < t.w_chans; ++ci) {
              xs_[static_cast<std::size_t>(ci)] =
                  static_cast<std::int16_t>(load8(x + ci, t.in_type) - t.in_zero_point);
            }
            for (std::int64_t oc = 0; oc < t.channels; ++oc) {
              const std::int16_t* f = wide_.data() + (oc * taps + tap) * t.w_chans;
              std::int32_t dot = 0;
              for (std::int64_t ci = 0; ci < t.w_chans; ++ci) {
                dot += static_cast<std::int32_t>(xs_[static_cast<std::size_t>(ci)]) * f[ci];
              }
              out[oc] += dot;
            }
          }
        }
      }
    }
  }

  // The requantization unit: bias with int32 saturation (as the reference adds it), then the
  // shared output stage of keel/quant.hpp.
  void run_requant(const command_stream& s, const vnpu::requant_desc& q) {
    read_params(s, q.params_region, q.cols);
    const std::int32_t* acc = acc_ptr(s, q.acc_region);
    unsigned char* out = region_ptr(s, q.out_region);
    for (std::int64_t c = 0; c < q.cols; ++c) {
      const channel_params& p = params_[static_cast<std::size_t>(c)];
      const channel_requant cr = p.requant();
      for (std::int64_t r = 0; r < q.rows; ++r) {
        const std::int64_t at = r * q.cols + c;
        const std::int32_t v =
            clamp_i32(static_cast<std::int64_t>(acc[at]) + p.bias, INT32_MIN, INT32_MAX);
        switch (q.out.type) {
          case dtype::s32: std::memcpy(out + at * 4, &v, 4); break;
          case dtype::f32: {
            const float f = dequantize_acc(v, cr);
            std::memcpy(out + at * 4, &f, 4);
            break;
          }
          case dtype::s8:
            out[at] =
                static_cast<unsigned char>(static_cast<std::int8_t>(requantize(v, cr, q.out)));
            break;
          case dtype::u8: out[at] = static_cast<unsigned char>(requantize(v, cr, q.out)); break;
          default: KEEL_DASSERT(false, "validated output dtype"); break;
        }
      }
    }
  }

  vnpu_config config_{};
  Status config_status_{};
  std::vector<std::int32_t> sram_;  // int32 storage: byte access anywhere, int32 accumulators
  std::vector<buffer_record> buffers_;
  buffer_id last_buffer_ = kNoBuffer;
  std::vector<job> jobs_;
  job_id last_job_ = 0;
  bool lost_ = false;
  std::uint64_t lost_remaining_ = 0;
  counters counters_{};
  vnpu::timing_report last_timing_{};
  // Scratch of the functional model, kept to avoid an allocation per command.
  std::vector<channel_params> params_;
  std::vector<std::int16_t> wide_, xs_;
  std::vector<std::int64_t> chan_;
  mutable std::array<memo_entry, 16> memo_{};
  mutable std::size_t next_memo_ = 0;
};

static_assert(npu_driver<virtual_npu>, "the virtual NPU must satisfy keel::npu::npu_driver");

}  // namespace keel::npu
