// tools/envelope/envelope.hpp — everything one keel-envelope run learns, in one value: what the
// reports (terminal, JSON, HTML, board header) are written from, and what `compare` reads back.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "backends.hpp"
#include "ceilings.hpp"
#include "machine.hpp"
#include "profile.hpp"
#include "routing.hpp"
#include "verify.hpp"
#include "workloads.hpp"

namespace keel::envelope {

// The version of the JSON document (docs/envelope.md, docs/envelope-schema.json). Bump it on any
// change a reader would notice; `compare` refuses documents of another major version.
inline constexpr int kSchemaVersion = 1;

struct run_options {
  bool quick = false;
  std::uint64_t seed = 1;
  int threads = 0;               // cpu backend and all-core ceilings; 0: every usable CPU
  double max_run_seconds = 2.0;  // a backend predicted slower on a full shape runs the sample
  double target_seconds = 0.25;  // timed runs per entry add up to about this
  int max_reps = 20;
  std::int64_t verify_macs = 4'000'000;  // the reference's work per workload (the sample)
  double ceiling_seconds = 0.25;
  std::string wrong_result_backend;  // test hook: this backend's outputs are corrupted
};

struct timing {
  double best_s = 0;  // fastest run
  double median_s = 0;
  int reps = 0;            // timed runs
  bool simulated = false;  // a device model's predicted time, not the host's clock
  double host_s = 0;       // simulated: what one run cost the host
};

// One (workload, backend) pair.
struct result_entry {
  std::string workload;
  std::string backend;
  op_kind op = op_kind::matmul_i8;
  // "ok", "mismatch", "unsupported", "error" (a Status other than unsupported), "interrupted"
  std::string outcome;
  std::string message;
  bool timed_full = false;  // the time is of the full shape (else of the reduced sample)
  double timed_ops = 0;     // ops and bytes of the timed shape (keel::work_of)
  double timed_bytes = 0;
  timing time;
  double pack_s = 0;     // packing the weights of the timed shape once
  double rate_gops = 0;  // timed_ops / best time
  double roof_gops = 0;  // attainable at the workload's intensity on this backend's unit
  double share_roofline = 0;
  double peak_gops = 0;  // the unit's compute peak for this op's math (int8 or f32)
  double share_peak = 0;
  std::string verified_on;  // "full", "full (sampled)", "sample", "full (sampled) + sample"
  check_result check;
};

struct workload_record {
  workload w;
  op_work work;                     // of the full shape
  std::string shape;                // shape_text
  std::string dtypes;               // dtype_text
  std::string sample;               // what the reference verified (sample description)
  std::int64_t sample_outputs = 0;  // output elements the reference computed
  std::int64_t total_outputs = 0;   // output elements of the full shape
  bool ran = false;                 // false when the run stopped before it
  bool fits_in_llc = false;  // its operands fit in the last-level cache (a DRAM roof understates)
};

struct outputs {
  std::string json, html, header;  // paths written ("" when not written)
};

struct envelope {
  std::string tool_version;
  std::string started, finished;  // ISO 8601, UTC
  double duration_s = 0;
  std::string command_line;
  bool complete = false;     // every selected workload ran on every selected backend
  bool interrupted = false;  // stopped by SIGINT/SIGTERM
  run_options options;
  std::vector<std::string> selected_ops, selected_backends;

  machine_info machine;
  std::vector<ceiling> ceilings;
  std::vector<std::pair<std::string, roof>> roofs;  // by backend name
  std::vector<backend_info> backends;               // available ones, then absent ones
  npu_choice npu;
  double cpu_launch_us = 0;

  std::vector<workload_record> workloads;
  std::vector<result_entry> results;
  std::vector<route_row> routing;
  std::vector<std::pair<std::string, std::string>> candidates;  // "policy op/dtype" -> "a > b"
  bool has_profile = false;
  measured_profile profile;
  std::string header_text;  // the generated board header (also shown in the HTML report)
  outputs written;

  int mismatches() const;
  int errors() const;
  const roof* roof_of(const std::string& backend) const;
  const workload_record* find_workload(const std::string& id) const;
};

// The backend with the shortest full-shape time for `workload` among verified results (the
// reference excluded: it is timed on samples); {"", 0} when none ran the full shape.
std::pair<std::string, double> measured_fastest(const envelope& e, const std::string& workload);

// Counts of the results by outcome.
struct outcome_counts {
  int total = 0, ok = 0, mismatch = 0, error = 0, unsupported = 0, interrupted = 0;
};
outcome_counts count_outcomes(const envelope& e);

}  // namespace keel::envelope
