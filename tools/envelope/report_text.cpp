// tools/envelope/report_text.cpp — what keel-envelope prints on the terminal.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>

#include "keel/version.hpp"
#include "report.hpp"

namespace keel::envelope {

namespace {

const char* paint(const text_style& st, const char* code) {
  return st.color ? code : "";
}
constexpr const char* kBold = "\x1b[1m";
constexpr const char* kRed = "\x1b[1;31m";
constexpr const char* kGreen = "\x1b[32m";
constexpr const char* kDim = "\x1b[2m";
constexpr const char* kReset = "\x1b[0m";

std::string kib_text(std::int64_t kib) {
  if (kib >= 1024 * 1024)
    return fmt::format("{:.3g} GiB", static_cast<double>(kib) / (1024.0 * 1024));
  if (kib >= 1024) return fmt::format("{:.3g} MiB", static_cast<double>(kib) / 1024);
  return fmt::format("{} KiB", kib);
}

std::string rate_text(double v) {
  if (!(v > 0)) return "-";
  if (v >= 100) return fmt::format("{:.0f}", v);
  if (v >= 10) return fmt::format("{:.1f}", v);
  if (v >= 0.1) return fmt::format("{:.2f}", v);
  return fmt::format("{:.3f}", v);
}

std::string percent(double share) {
  if (!(share > 0)) return "-";
  return share >= 0.1 ? fmt::format("{:.0f}%", share * 100) : fmt::format("{:.1f}%", share * 100);
}

std::string clip(const std::string& s, std::size_t n) {
  return s.size() <= n ? s : s.substr(0, n - 1) + "~";
}

}  // namespace

std::string format_seconds(double s) {
  if (!(s > 0)) return "-";
  if (s >= 1) return fmt::format("{:.2f} s", s);
  if (s >= 1e-3) return fmt::format("{:.3g} ms", s * 1e3);
  return fmt::format("{:.3g} us", s * 1e6);
}

void print_preamble(std::FILE* f, const envelope& e, const text_style& st) {
  const machine_info& m = e.machine;
  fmt::print(f, "{}keel-envelope {}{}  {}\n", paint(st, kBold), KEEL_VERSION_STRING,
             paint(st, kReset), e.options.quick ? "(quick mode: shapes scaled down)" : "");
  std::string features;
  for (const isa_feature& x : m.cpu.features) {
    features += (features.empty() ? "" : " ") + x.name + (x.usable ? "" : "(off)");
  }
  fmt::print(f, "  cpu      {} ({}), {} CPUs online, {} usable{}{}\n", m.cpu.model, m.cpu.arch,
             m.cpu.logical_cpus, m.cpu.usable_cpus,
             m.cpu.freq_mhz > 0 ? fmt::format(", {:.0f} MHz", m.cpu.freq_mhz) : std::string(),
             m.cpu.hypervisor ? ", virtual machine" : "");
  fmt::print(f, "  isa      {}\n", features.empty() ? std::string("(none detected)") : features);
  std::string caches;
  for (const cache_info& c : m.cpu.caches) {
    if (c.type == "Instruction") continue;
    caches +=
        fmt::format("{}L{}{} {}{}", caches.empty() ? "" : ", ", c.level,
                    c.type == "Data" ? "d" : "", kib_text(c.size_kib),
                    c.shared_by > 1 ? fmt::format(" (shared by {})", c.shared_by) : std::string());
  }
  fmt::print(f, "  caches   {}\n", caches.empty() ? std::string("unknown") : caches);
  fmt::print(f, "  memory   {} total, {} available; {} {}\n", kib_text(m.memory.total_mib * 1024),
             kib_text(m.memory.available_mib * 1024), m.os.name, m.os.release);
  for (const backend_info& b : e.backends) {
    const bool on = b.status == "available";
    fmt::print(f, "  {}{:<8}{} {}{}\n", paint(st, on ? "" : kDim), b.name,
               paint(st, on ? "" : kReset), on ? "" : b.status + ": ", b.detail);
  }
  std::fflush(f);
}

void print_ceilings(std::FILE* f, const envelope& e, const text_style& st) {
  if (e.ceilings.empty()) return;
  fmt::print(f, "\n{}Ceilings{} (best of several rounds; a noisy machine only lowers them)\n",
             paint(st, kBold), paint(st, kReset));
  std::vector<int> teams;
  for (const ceiling& c : e.ceilings) {
    if (std::find(teams.begin(), teams.end(), c.threads) == teams.end()) teams.push_back(c.threads);
  }
  std::string head = fmt::format("  {:<10} {:<13}", "kind", "method");
  for (int t : teams)
    head += fmt::format(" {:>13}", fmt::format("{} thread{}", t, t == 1 ? "" : "s"));
  fmt::print(f, "{}\n", head);
  std::vector<std::pair<std::string, std::string>> rows;
  for (const ceiling& c : e.ceilings) {
    const std::pair<std::string, std::string> key{c.kind, c.isa};
    if (std::find(rows.begin(), rows.end(), key) == rows.end()) rows.push_back(key);
  }
  for (const auto& [kind, isa] : rows) {
    std::string line = fmt::format("  {:<10} {:<13}", kind, isa);
    for (int t : teams) {
      std::string cell = "-";
      for (const ceiling& c : e.ceilings) {
        if (c.kind == kind && c.isa == isa && c.threads == t)
          cell = rate_text(c.value) + " " + c.unit;
      }
      line += fmt::format(" {:>13}", cell);
    }
    fmt::print(f, "{}\n", line);
  }
  std::fflush(f);
}

void print_results(std::FILE* f, const envelope& e, const text_style& st) {
  fmt::print(f,
             "\n{}Results{} (time: best run; GOPS: ops of keel's cost model / time; roof: share of "
             "what the unit's\nroofline allows at this intensity; flags: S simulated device time, "
             "R timed on the verification sample,\nC operands fit in the last-level cache, so the "
             "DRAM roofline understates what is possible)\n",
             paint(st, kBold), paint(st, kReset));
  fmt::print(f, "  {:<24} {:<9} {:<34} {:>9} {:>7} {:>5} {:<2} {}\n", "workload", "backend",
             "op and shape", "time", "GOPS", "roof", "", "verification");
  std::string last;
  for (const result_entry& r : e.results) {
    const workload_record* w = e.find_workload(r.workload);
    const std::string shape =
        w ? clip(std::string(to_string(r.op)) + " " + w->shape, 34) : std::string(to_string(r.op));
    const bool first = r.workload != last;
    last = r.workload;
    std::string flags;
    if (r.time.simulated) flags += "S";
    if (r.time.reps > 0 && !r.timed_full) flags += "R";
    if (r.time.reps > 0 && !r.time.simulated && w && w->fits_in_llc) flags += "C";
    const std::string rule = r.check.exact_rule ? "exact" : "bound";
    std::string verdict;
    const char* color = "";
    if (r.outcome == "ok") {
      if (r.verified_on == "oracle") {
        verdict = "oracle";
      } else if (r.verified_on == "full") {
        verdict = fmt::format("ok {}, all {}", rule, w ? w->total_outputs : 0);
      } else if (r.verified_on == "sample") {
        verdict = fmt::format("ok {}, sample only", rule);
      } else {
        verdict = fmt::format("ok {}, {}/{} sampled", rule, w ? w->sample_outputs : 0,
                              w ? w->total_outputs : 0);
      }
      color = kGreen;
    } else if (r.outcome == "mismatch") {
      verdict = fmt::format("MISMATCH: {} of {} differ", r.check.mismatches, r.check.checked);
      color = kRed;
    } else if (r.outcome == "unsupported") {
      verdict = "unsupported";
      color = kDim;
    } else {
      verdict = r.outcome == "error" ? "ERROR" : r.outcome;
      color = kRed;
    }
    const bool timed = r.time.reps > 0;
    fmt::print(f, "  {:<24} {:<9} {:<34} {:>9} {:>7} {:>5} {:<2} {}{}{}\n",
               first ? clip(r.workload, 24) : "", clip(r.backend, 9), first ? shape : "",
               timed ? format_seconds(r.time.best_s) : "-", timed ? rate_text(r.rate_gops) : "-",
               timed ? percent(r.share_roofline) : "-", flags, paint(st, color), verdict,
               paint(st, *color ? kReset : ""));
  }
  std::fflush(f);
}

void print_routing(std::FILE* f, const envelope& e, const text_style& st) {
  if (e.routing.empty()) return;
  fmt::print(f,
             "\n{}Routing{} on the measured profile (what keel::router would run first; "
             "predicted time)\n",
             paint(st, kBold), paint(st, kReset));
  const std::vector<std::string> policies = policy_names();
  std::string head = fmt::format("  {:<24}", "workload");
  for (const std::string& p : policies) head += fmt::format(" {:<24}", p);
  fmt::print(f, "{} {}\n", head, "measured fastest");
  std::vector<std::string> ids;
  for (const route_row& r : e.routing) {
    if (std::find(ids.begin(), ids.end(), r.workload) == ids.end()) ids.push_back(r.workload);
  }
  int agree = 0, compared = 0;
  for (const std::string& id : ids) {
    std::string line = fmt::format("  {:<24}", clip(id, 24));
    std::string latency_choice;
    for (const std::string& p : policies) {
      std::string cell = "-";
      for (const route_row& r : e.routing) {
        if (r.workload == id && r.policy == p && !r.order.empty()) {
          cell = fmt::format("{} {}", r.order.front().backend,
                             format_seconds(r.order.front().predicted_us * 1e-6));
          if (p == policies.front()) latency_choice = r.order.front().backend;
        }
      }
      line += fmt::format(" {:<24}", clip(cell, 24));
    }
    const auto [fastest, s] = measured_fastest(e, id);
    if (!fastest.empty()) {
      ++compared;
      agree += fastest == latency_choice;
    }
    line += fastest.empty() ? " -" : fmt::format(" {} {}", fastest, format_seconds(s));
    fmt::print(f, "{}\n", line);
  }
  if (compared > 0) {
    fmt::print(f, "  latency-first picks the measured fastest backend for {} of {} workloads\n",
               agree, compared);
  }
  std::fflush(f);
}

void print_alarm(std::FILE* f, const result_entry& r, const text_style& st) {
  if (r.outcome != "mismatch" && r.outcome != "error") return;
  fmt::print(f, "\n{}{} {} {} on {}:{} {}\n", paint(st, kRed),
             r.outcome == "mismatch" ? "MISMATCH" : "ERROR", r.backend, to_string(r.op), r.workload,
             paint(st, kReset), r.message);
  std::fflush(f);
}

void print_verdict(std::FILE* f, const envelope& e, const text_style& st) {
  const outcome_counts c = count_outcomes(e);
  fmt::print(f, "\n");
  if (!e.written.json.empty() || !e.written.html.empty() || !e.written.header.empty()) {
    fmt::print(f, "Wrote:");
    for (const std::string& p : {e.written.json, e.written.html, e.written.header}) {
      if (!p.empty()) fmt::print(f, " {}", p);
    }
    fmt::print(f, "\n");
  }
  if (e.interrupted) {
    fmt::print(f, "{}Interrupted{}: the outputs hold the {} results measured before the stop.\n",
               paint(st, kRed), paint(st, kReset), c.total);
  }
  if (c.mismatch > 0 || c.error > 0) {
    fmt::print(f, "{}FAILED{}: {} mismatch{} and {} error{} in {} results (see above).\n",
               paint(st, kRed), paint(st, kReset), c.mismatch, c.mismatch == 1 ? "" : "es", c.error,
               c.error == 1 ? "" : "s", c.total);
  } else {
    fmt::print(f, "{}Verified{}: {} results agree with the reference ({} unsupported); {:.1f} s.\n",
               paint(st, kGreen), paint(st, kReset), c.ok, c.unsupported, e.duration_s);
  }
  std::fflush(f);
}

}  // namespace keel::envelope
