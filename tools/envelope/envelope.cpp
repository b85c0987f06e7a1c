// tools/envelope/envelope.cpp — small queries over an envelope.
#include "envelope.hpp"

namespace keel::envelope {

int envelope::mismatches() const {
  int n = 0;
  for (const result_entry& r : results) n += r.outcome == "mismatch";
  return n;
}

int envelope::errors() const {
  int n = 0;
  for (const result_entry& r : results) n += r.outcome == "error";
  return n;
}

const roof* envelope::roof_of(const std::string& backend) const {
  for (const auto& [name, r] : roofs) {
    if (name == backend) return &r;
  }
  return nullptr;
}

const workload_record* envelope::find_workload(const std::string& id) const {
  for (const workload_record& w : workloads) {
    if (w.w.id == id) return &w;
  }
  return nullptr;
}

std::pair<std::string, double> measured_fastest(const envelope& e, const std::string& workload) {
  std::pair<std::string, double> best{"", 0};
  for (const result_entry& r : e.results) {
    if (r.workload != workload || r.outcome != "ok" || !r.timed_full || r.backend == "reference") {
      continue;
    }
    if (best.first.empty() || r.time.best_s < best.second) best = {r.backend, r.time.best_s};
  }
  return best;
}

outcome_counts count_outcomes(const envelope& e) {
  outcome_counts c;
  for (const result_entry& r : e.results) {
    ++c.total;
    if (r.outcome == "ok") ++c.ok;
    if (r.outcome == "mismatch") ++c.mismatch;
    if (r.outcome == "error") ++c.error;
    if (r.outcome == "unsupported") ++c.unsupported;
    if (r.outcome == "interrupted") ++c.interrupted;
  }
  return c;
}

}  // namespace keel::envelope
