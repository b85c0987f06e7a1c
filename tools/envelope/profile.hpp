// tools/envelope/profile.hpp — the board profile keel-envelope measures (a keel::boards::
// board_profile filled from detection and ceilings) and the header it writes for it.
//
// Numbers are rounded to three significant digits once, here; the routing table in the reports
// and the router compiled against the header then see the very same values.
#pragma once

#include <string>
#include <vector>

#include "backends.hpp"
#include "ceilings.hpp"
#include "keel/boards/profile.hpp"
#include "machine.hpp"

namespace keel::envelope {

// Power figures: no sensor is read, so they are the caller's (or these defaults, marked as
// estimates in the header).
struct power_options {
  double idle_w = 10;
  double cpu_w_per_core = 10;
  double npu_w = 2;
  double budget_w = 0;  // 0: 1.5 x (idle + cpu + npu)
};

struct measured_profile {
  std::string type_name;  // the C++ struct name in keel::boards
  std::string name, soc, npu_name;
  boards::board_profile profile;  // its string_views point into the strings above
  // Where each number came from, by field ("cpu.peak_int8_gops" -> "measured: int8_mac...").
  std::vector<std::pair<std::string, std::string>> sources;

  measured_profile() = default;
  measured_profile(const measured_profile& o) { *this = o; }
  measured_profile& operator=(const measured_profile& o);
};

// Builds the profile. `cpu_threads` is what the cpu backend uses; `launch_us` the measured cost
// of the smallest cpu op (0 when not measured).
measured_profile build_profile(const std::string& type_name, const machine_info& m,
                               const std::vector<ceiling>& ceilings, int cpu_threads,
                               double launch_us, const npu_choice& npu, const power_options& pw);

// The header text: banner (tool, date, machine), the struct, and check_profile's static_assert.
std::string board_header(const measured_profile& p, const machine_info& m, const std::string& date,
                         const std::string& command_line);

// A valid C++ identifier that is not a keyword-like reserved name ([A-Za-z_][A-Za-z0-9_]*, not
// starting with an underscore followed by an uppercase letter or another underscore).
bool is_identifier(const std::string& s);

// Three significant digits (for profile numbers).
double round3(double v);

}  // namespace keel::envelope
