// tools/envelope/backends.hpp — every backend keel-envelope measures, behind one interface.
//
// The tool never names a backend outside backends.cpp: it walks the list make_backends() returns
// and asks each slot the same questions (does it support this op, pack its weights, run it, what
// does its own device model predict). A new backend (the Vulkan backend, a vendor's NPU driver)
// is one more slot<B> line in backends.cpp; everything else (measurement, verification, tables,
// JSON, HTML, routing table, board header) follows. Backends keel has not built in this binary
// are listed by absent_backends() so reports can say "not built".
#pragma once

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "keel/backend.hpp"
#include "keel/backends/npu/vnpu_config.hpp"
#include "workloads.hpp"

namespace keel::envelope {

struct backend_info {
  std::string name;    // caps.name: "reference", "cpu", "keel_vnpu"; "vulkan" when absent
  std::string unit;    // backend_kind: "reference", "cpu", "gpu", "npu"
  std::string status;  // "available", "not built"
  std::string detail;  // one line: kernels, threads, configuration
  bool bit_exact = false;
  bool simulated = false;        // its time is a device model's prediction, not the host's clock
  std::vector<std::string> ops;  // op kinds its caps list
};

class backend_slot {
 public:
  virtual ~backend_slot() = default;
  virtual const backend_info& info() const = 0;
  virtual const backend_caps& caps() const = 0;

  // The backend's answer for this shape: ok, unsupported (with its reason), or invalid.
  virtual Status supports(const op_desc& d) const = 0;
  // Packs the weights of `p` (kept until the next prepare() or release()).
  virtual Status prepare(const problem& p) = 0;
  // Runs `p` with the prepared weights into `out` (output_elements x element_bytes bytes).
  virtual Status run(const problem& p, void* out) = 0;
  virtual void release() = 0;

  // The device time the backend's own model predicts for `d`, in seconds; NaN when it has none
  // (a real device is timed by the host's clock).
  virtual double device_seconds(const op_desc& d) const = 0;
  // What keel::router would use as this backend's prediction for `d` (its estimate_us(desc), or
  // estimate(desc).seconds), in microseconds; NaN when it has no model of its own (the router
  // then uses the board's roofline); +infinity when its model says it cannot run `d`.
  virtual double router_estimate_us(const op_desc& d) const = 0;
};

// The virtual NPU keel-envelope configures: one of the profiles keel ships.
struct npu_choice {
  std::string profile;  // "generic_16x16", "rk3588", "imx8mp"; empty: no NPU
  npu::vnpu_config config{};
};

// The profile names --npu accepts, and the configuration of one ("" when unknown).
std::vector<std::string> npu_profile_names();
bool npu_profile_config(const std::string& name, npu::vnpu_config& out);

struct backend_config {
  int cpu_threads = 0;  // 0: every CPU the runtime offers
  npu_choice npu;
};

// Every backend built into this binary, in a fixed order: reference, cpu, then accelerators.
std::vector<std::unique_ptr<backend_slot>> make_backends(const backend_config& c);
// Backends keel-envelope knows of but this binary does not contain (status "not built").
std::vector<backend_info> absent_backends();

// The threads the cpu backend will use under `cpu_threads` (1 when built without oneTBB).
int cpu_backend_threads(int cpu_threads);
bool cpu_backend_has_tbb();

}  // namespace keel::envelope
