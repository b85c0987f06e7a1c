// tools/envelope/measure.hpp — one workload on every selected backend: verify against the
// reference, then time.
//
// Per workload:
//   1. materialize the operands from the run's seed; choose the verification sample;
//   2. the oracle: the reference backend computes the sample (the whole problem when it is
//      small enough);
//   3. per backend that supports the shape: when the sample is not the whole problem, pack and
//      run the sample first and check it in full; its time predicts the full run's. If that
//      prediction exceeds --max-run-seconds the backend is timed on the sample ("reduced"),
//      otherwise it packs (timed once) and runs the full shape, whose output is checked at the
//      sample's positions, then timed runs follow until they add up to --target-seconds (a run
//      longer than that is its own timing). A simulated backend (the virtual NPU) is timed by
//      its cycle model for the full shape, whatever ran on the host.
//   The reference backend's row is the oracle run itself: timed once, on the sample.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "envelope.hpp"

namespace keel::envelope {

struct measure_context {
  const run_options* options = nullptr;
  std::int64_t llc_bytes = 0;           // for workload_record::fits_in_llc
  std::vector<backend_slot*> backends;  // selected and available, reference first if selected
  std::function<const roof*(const std::string& backend)> roof_of;
  // Progress: (label) before each backend of each workload.
  std::function<void(const std::string&)> on_step;
  // A backend's result, as soon as it is known (mismatches are printed at once).
  std::function<void(const result_entry&)> on_result;
};

// Runs `w` (the index-th workload: its data stream) and appends its entries to `out`. Returns
// false when the run was interrupted before every backend ran.
bool measure_workload(const workload& w, std::size_t index, const measure_context& ctx,
                      workload_record& record, std::vector<result_entry>& out);

// The cpu backend's fixed cost per call: the fastest of many 1x16x16 matmul_i8 calls, in us.
double measure_launch_us(backend_slot& cpu);

// The test hook: changes output element 0 so that it no longer matches (integer +1, f32 +1.0).
void corrupt_output(void* out, dtype t);

}  // namespace keel::envelope
