// tools/envelope/compare.cpp — `keel-envelope compare a.json b.json`: what got faster or slower,
// by how much, per workload and backend.
//
// Two entries are compared when both verified ok and were timed the same way (same shape: full or
// sample; same clock: wall or cycle model). The change is time(a) / time(b) of the best runs: above
// 1 + threshold is "faster", below 1 / (1 + threshold) "slower", anything between "unchanged" (a
// shared machine's noise is easily a few percent). The ceilings are compared the same way, so a
// slower op on a slower machine reads as such.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "report.hpp"

namespace keel::envelope {

namespace {

using json = nlohmann::json;

bool load(const std::string& path, json& doc, std::string& why) {
  std::ifstream f(path);
  if (!f) {
    why = "cannot open it";
    return false;
  }
  std::stringstream ss;
  ss << f.rdbuf();
  doc = json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    why = "it is not JSON";
    return false;
  }
  if (doc.value("schema", "") != "keel-envelope") {
    why = "it is not a keel-envelope document (no \"schema\": \"keel-envelope\")";
    return false;
  }
  if (!doc.contains("schema_version") || !doc["schema_version"].is_number_integer() ||
      doc["schema_version"].get<int>() != kSchemaVersion) {
    why = fmt::format("its schema_version is not {}", kSchemaVersion);
    return false;
  }
  if (!doc.contains("results") || !doc["results"].is_array()) {
    why = "it has no results array";
    return false;
  }
  return true;
}

struct timed {
  double best = 0;
  std::string shape, source;
};

// (workload, backend) -> time, for the entries that can be compared.
std::map<std::pair<std::string, std::string>, timed> entries(const json& doc) {
  std::map<std::pair<std::string, std::string>, timed> m;
  for (const json& r : doc["results"]) {
    if (!r.is_object() || r.value("outcome", "") != "ok") continue;
    const json& t = r.contains("time_s") ? r["time_s"] : json();
    if (!t.is_object() || !t.contains("best") || !t["best"].is_number()) continue;
    const double best = t["best"].get<double>();
    if (!(best > 0)) continue;
    m[{r.value("workload", ""), r.value("backend", "")}] = {
        best,
        r.contains("timed_shape") && r["timed_shape"].is_string()
            ? r["timed_shape"].get<std::string>()
            : "",
        t.value("source", "")};
  }
  return m;
}

std::string describe(const json& doc, const std::string& path) {
  std::string model = "?", host, started;
  if (doc.contains("machine") && doc["machine"].is_object()) {
    const json& m = doc["machine"];
    host = m.value("hostname", "");
    if (m.contains("cpu") && m["cpu"].is_object()) model = m["cpu"].value("model", "?");
  }
  if (doc.contains("run") && doc["run"].is_object()) started = doc["run"].value("started", "");
  return fmt::format("{}: {}{}, {}", path, model, host.empty() ? "" : " on " + host, started);
}

std::string change_text(double ratio, double threshold) {
  if (ratio > 1 + threshold) return fmt::format("{:.2f}x faster", ratio);
  if (ratio < 1 / (1 + threshold)) return fmt::format("{:.2f}x slower", 1 / ratio);
  return fmt::format("unchanged (time {:+.1f}%)", (1 / ratio - 1) * 100);
}

}  // namespace

int run_compare(const std::string& path_a, const std::string& path_b, const compare_options& o,
                std::FILE* out, std::FILE* err) {
  json a, b;
  std::string why;
  if (!load(path_a, a, why)) {
    fmt::print(err, "keel-envelope compare: {}: {}\n", path_a, why);
    return 3;
  }
  if (!load(path_b, b, why)) {
    fmt::print(err, "keel-envelope compare: {}: {}\n", path_b, why);
    return 3;
  }
  fmt::print(out, "a  {}\nb  {}\n", describe(a, path_a), describe(b, path_b));
  if (a.contains("run") && b.contains("run") && a["run"].is_object() && b["run"].is_object() &&
      a["run"].value("quick", false) != b["run"].value("quick", false)) {
    fmt::print(out,
               "note: one run is --quick and the other is not: the shapes differ, nothing "
               "below is comparable\n");
  }

  // ---- ceilings ----
  std::map<std::string, double> ca, cb;
  for (const auto* pair : {&a, &b}) {
    const json& doc = *pair;
    auto& into = pair == &a ? ca : cb;
    if (!doc.contains("ceilings") || !doc["ceilings"].is_array()) continue;
    for (const json& c : doc["ceilings"]) {
      if (c.is_object() && c.contains("value") && c["value"].is_number()) {
        into[c.value("id", "")] = c["value"].get<double>();
      }
    }
  }
  bool header = false;
  for (const auto& [id, va] : ca) {
    const auto it = cb.find(id);
    if (it == cb.end() || !(va > 0) || !(it->second > 0)) continue;
    if (!header) {
      fmt::print(out, "\nceilings (higher is better)\n  {:<28} {:>12} {:>12}  {}\n", "ceiling", "a",
                 "b", "change");
      header = true;
    }
    fmt::print(out, "  {:<28} {:>12.4g} {:>12.4g}  {}\n", id, va, it->second,
               change_text(it->second / va, o.threshold));
  }

  // ---- results ----
  const auto ea = entries(a), eb = entries(b);
  int faster = 0, slower = 0, same = 0, skipped = 0;
  double worst_slowdown = 0;
  fmt::print(out,
             "\nresults (best run; change = time a / time b)\n  {:<24} {:<10} {:>11} {:>11}  {}\n",
             "workload", "backend", "a", "b", "change");
  std::vector<std::pair<double, std::string>> lines;
  for (const auto& [key, ta] : ea) {
    const auto it = eb.find(key);
    if (it == eb.end()) continue;
    const timed& tb = it->second;
    if (ta.shape != tb.shape || ta.source != tb.source) {
      ++skipped;
      continue;
    }
    const double ratio = ta.best / tb.best;
    if (ratio > 1 + o.threshold) {
      ++faster;
    } else if (ratio < 1 / (1 + o.threshold)) {
      ++slower;
      worst_slowdown = std::max(worst_slowdown, 1 / ratio - 1);
    } else {
      ++same;
    }
    lines.emplace_back(ratio, fmt::format("  {:<24} {:<10} {:>11} {:>11}  {}{}", key.first,
                                          key.second, format_seconds(ta.best),
                                          format_seconds(tb.best), change_text(ratio, o.threshold),
                                          ta.source == "cycle model" ? " (simulated)" : ""));
  }
  // Biggest changes first: the slowest regressions, then the largest gains, then the rest.
  std::sort(lines.begin(), lines.end(), [](const auto& x, const auto& y) {
    return std::fabs(std::log(x.first)) > std::fabs(std::log(y.first));
  });
  for (const auto& [ratio, line] : lines) fmt::print(out, "{}\n", line);

  int only_a = 0, only_b = 0;
  for (const auto& [key, t] : ea) only_a += eb.count(key) == 0;
  for (const auto& [key, t] : eb) only_b += ea.count(key) == 0;
  fmt::print(out, "\n{} faster, {} slower, {} unchanged (threshold {:.0f}%)", faster, slower, same,
             o.threshold * 100);
  if (skipped) fmt::print(out, "; {} timed differently (skipped)", skipped);
  if (only_a || only_b) fmt::print(out, "; {} only in a, {} only in b", only_a, only_b);
  fmt::print(out, "\n");
  if (o.fail_on_slowdown > 0 && worst_slowdown > o.fail_on_slowdown) {
    fmt::print(err, "keel-envelope compare: an entry got {:.0f}% slower (limit {:.0f}%)\n",
               worst_slowdown * 100, o.fail_on_slowdown * 100);
    return 4;
  }
  return 0;
}

}  // namespace keel::envelope
