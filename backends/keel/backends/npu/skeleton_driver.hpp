// keel/backends/npu/skeleton_driver.hpp — the starting point of a vendor's NPU driver.
//
// Copy this file into your BSP, rename the namespace and the class, and replace every TODO with
// calls into your NPU SDK. As it stands it compiles, satisfies keel::npu::npu_driver, and
// declines every op (status_code::unsupported), so a router that lists it keeps sending every
// request to the next backend. docs/npu-driver.md describes each requirement; the virtual NPU
// (virtual_npu.hpp) is a complete driver to read alongside.
#pragma once

#include <cstdint>

#include "keel/backends/npu/adapter.hpp"
#include "keel/backends/npu/driver.hpp"

namespace keel::npu::skeleton {

class vendor_npu_driver {
 public:
  // What any configuration of your NPU can run, known at compile time: the router builds its
  // candidate lists from it. List only op kinds and weight dtypes the silicon has.
  static constexpr backend_caps caps{
      .name = "vendor_npu",  // TODO: your NPU's name, as traces and reports should show it
      .kind = backend_kind::npu,
      .bit_exact = true,  // TODO: true only if every integer output equals keel's reference
      .ops = op_bit(op_kind::matmul_i8) | op_bit(op_kind::conv2d_i8),
      .weight_types = dtype_bit(dtype::s8),
  };

  // Whatever your SDK calls a compiled job: register lists, a command buffer, a network handle.
  struct command_stream {
    std::uint64_t sdk_handle = 0;  // TODO
  };

  // The device as configured: the adapter checks every op against this before staging it.
  npu_capabilities capabilities() const {
    npu_capabilities c;
    c.ops = 0;  // TODO: op_bit() of what runs (0: everything is declined)
    c.input_types = dtype_bit(dtype::s8) | dtype_bit(dtype::u8);
    c.weight_types = dtype_bit(dtype::s8);
    c.output_types = dtype_bit(dtype::s8);
    c.requant_modes = requant_bit(requant_mode::fixed_point);
    c.scales = weight_scales::per_channel;
    c.weight_zero_points = false;
    c.max_dim = 8192;             // TODO: from your datasheet
    c.max_kernel = 7;             // TODO
    c.max_stride = 4;             // TODO
    c.sram_bytes = 256 * 1024;    // TODO
    c.alignment = 64;             // TODO: what your DMA needs
    c.clock_hz = 1.0e9;           // TODO
    c.macs_per_cycle = 1024;      // TODO
    c.dram_bytes_per_cycle = 16;  // TODO
    return c;
  }

  // TODO: pin or import the memory (IOMMU map, dma-buf import) and return your handle for it.
  Result<buffer_id> register_input(const void* host, std::int64_t bytes) {
    (void)host;
    (void)bytes;
    return not_yet("register_input");
  }
  Result<buffer_id> register_output(void* host, std::int64_t bytes) {
    (void)host;
    (void)bytes;
    return not_yet("register_output");
  }
  // TODO: unmap; the memory belongs to the caller again when this returns.
  Status release_buffer(buffer_id id) {
    (void)id;
    return Status::Ok();
  }

  // TODO: answer for the shape without compiling it: your SDK's limits and your tiler's SRAM fit.
  Status supports(const npu_op& op) const { return not_yet(to_string(op.kind)); }

  // TODO: tile op.matmul or op.conv (by op.kind) for the SRAM and record the job; the operands
  // are in the registered buffers op.input, op.weights, op.params and op.output, dense, in the
  // layouts npu_op documents; op.params holds one channel_params per output channel.
  Status build(const npu_op& op, command_stream& stream) const {
    (void)stream;
    return not_yet(to_string(op.kind));
  }

  // TODO: queue the job; return your job handle. Errors of the device itself (lost, reset) are
  // device_lost, so the router holds this backend out and probes it later.
  Result<job_id> submit(const command_stream& stream) {
    (void)stream;
    return not_yet("submit");
  }

  // TODO: block until the job completes or timeout_us microseconds pass: ok, timeout,
  // device_lost; never throw, never abort.
  Status wait(job_id job, std::int64_t timeout_us) {
    (void)job;
    (void)timeout_us;
    return not_yet("wait");
  }

  // TODO: stop the job; return only when the device no longer touches its buffers (reset the
  // device if that is the only way, and then report device_lost).
  Status cancel(job_id job) {
    (void)job;
    return Status::Ok();
  }

  // TODO: predicted cycles for the router's cost model (from your tiler and a roofline of your
  // MAC array and DMA, or a table measured on silicon).
  Result<cycle_estimate> estimate(const npu_op& op) const { return not_yet(to_string(op.kind)); }

 private:
  static Status not_yet(std::string_view what) {
    return Status::make(status_code::unsupported, what, "the vendor NPU driver is a skeleton");
  }
};

static_assert(npu_driver<vendor_npu_driver>, "the skeleton must satisfy keel::npu::npu_driver");

// The backend a board profile and a routing policy name.
using vendor_npu_backend = npu_backend<vendor_npu_driver>;

}  // namespace keel::npu::skeleton
