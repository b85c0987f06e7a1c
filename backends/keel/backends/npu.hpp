// keel/backends/npu.hpp — the NPU backend: the driver concept a vendor implements, the adapter
// that makes any driver a keel backend, and the virtual NPU with its profiles.
//
//   keel::npu::npu_driver<D>        the concept (backends/npu/driver.hpp)
//   keel::npu::npu_backend<D>       the adapter: a keel::backend (backends/npu/adapter.hpp)
//   keel::npu::virtual_npu          a functional and timing model of an int8 NPU
//   keel::npu::rk3588_vnpu_backend  ... configured like real NPUs (backends/npu/profiles.hpp)
//
// docs/npu-driver.md explains how a vendor writes a driver.
#pragma once

#include "keel/backends/npu/adapter.hpp"
#include "keel/backends/npu/command_stream.hpp"
#include "keel/backends/npu/driver.hpp"
#include "keel/backends/npu/profiles.hpp"
#include "keel/backends/npu/tiler.hpp"
#include "keel/backends/npu/timing.hpp"
#include "keel/backends/npu/virtual_npu.hpp"
#include "keel/backends/npu/vnpu_config.hpp"

namespace keel::npu {
static_assert(backend<npu_backend<virtual_npu>>, "the NPU adapter must satisfy keel::backend");
}  // namespace keel::npu
