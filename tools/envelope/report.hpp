// tools/envelope/report.hpp — the envelope's outputs: the terminal table, the JSON document
// (docs/envelope.md, docs/envelope-schema.json), the offline HTML report with its roofline plot,
// and `keel-envelope compare`.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "envelope.hpp"

namespace keel::envelope {

// ---- JSON
// ----------------------------------------------------------------------------------------
nlohmann::ordered_json to_json(const envelope& e);

// ---- terminal
// ------------------------------------------------------------------------------------
struct text_style {
  bool color = false;  // ANSI colours (a terminal that asked for them)
  int width = 120;     // columns available
};

// The machine, backends and ceilings (printed before the workloads run).
void print_preamble(std::FILE* f, const envelope& e, const text_style& st);
void print_ceilings(std::FILE* f, const envelope& e, const text_style& st);
// The results table, the routing table and the verdict.
void print_results(std::FILE* f, const envelope& e, const text_style& st);
void print_routing(std::FILE* f, const envelope& e, const text_style& st);
void print_verdict(std::FILE* f, const envelope& e, const text_style& st);
// One line for a mismatch or an error, printed the moment it is found.
void print_alarm(std::FILE* f, const result_entry& r, const text_style& st);

// "1.23 ms", "856 us", "2.41 s"
std::string format_seconds(double s);

// ---- HTML
// ---------------------------------------------------------------------------------------- A single
// file with no external references: inline CSS, the JSON document embedded, and an inline script
// that draws the roofline into an SVG element.
std::string html_report(const envelope& e, const nlohmann::ordered_json& doc);

// ---- compare
// -------------------------------------------------------------------------------------
struct compare_options {
  double threshold = 0.05;      // a change below this fraction is "unchanged"
  double fail_on_slowdown = 0;  // > 0: exit 4 when an entry got slower by more than this fraction
};

// Reads two JSON documents and prints what got faster or slower per workload and backend.
// Returns the exit status: 0, 3 (a file is unreadable or not a keel-envelope document of this
// schema version), 4 (--fail-on-slowdown tripped).
int run_compare(const std::string& path_a, const std::string& path_b, const compare_options& o,
                std::FILE* out, std::FILE* err);

}  // namespace keel::envelope
