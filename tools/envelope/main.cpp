// keel-envelope: profiles the machine it runs on. It detects the board, measures its ceilings,
// runs every op on every available backend over model-shaped workloads, verifies each result
// against the reference, and writes the board's envelope: a table on the terminal, JSON for
// machines, an offline HTML report with a roofline plot, the routing table each shipped policy
// would choose here, and a board-profile header that keel::router compiles against.
//
//   keel-envelope [options]              measure (docs/envelope.md lists the options)
//   keel-envelope compare a.json b.json  what got faster or slower between two runs
//
// Exit status: 0 every result verified; 1 a result disagreed with the reference or a backend
// failed; 2 a bad command line; 3 an output could not be written; 130 (143) stopped by SIGINT
// (SIGTERM) with the outputs written from what was measured. A disagreement outranks the rest.
#include <fmt/core.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>

#include "backends.hpp"
#include "ceilings.hpp"
#include "common.hpp"
#include "keel/version.hpp"
#include "machine.hpp"
#include "measure.hpp"
#include "profile.hpp"
#include "report.hpp"
#include "routing.hpp"

namespace {

using namespace keel::envelope;

// ---- signals ---------------------------------------------------------------------------------

volatile std::sig_atomic_t g_signal = 0;

// The first SIGINT/SIGTERM asks the run to stop after the current kernel call; the outputs are
// then written from what was measured. A second one ends the process at once.
extern "C" void on_signal(int sig) {
  g_signal = sig;
  stop_flag().store(true, std::memory_order_relaxed);
  std::signal(sig, SIG_DFL);
}

// ---- progress ----------------------------------------------------------------------------------

// A bar on stderr when it is a terminal; otherwise one line per workload (logs stay readable).
class progress {
 public:
  progress(bool enabled, bool tty) : enabled_(enabled), tty_(tty) {}

  void start(int total) {
    total_ = total;
    done_ = 0;
    t0_ = clock_type::now();
  }
  void step(const std::string& label) {
    ++done_;
    label_ = label;
    draw();
  }
  void line(const std::string& text) {  // non-terminal mode: one line per workload
    if (enabled_ && !tty_) fmt::print(stderr, "{}\n", text);
  }
  void clear() {
    if (enabled_ && tty_ && drawn_) fmt::print(stderr, "\r\x1b[2K");
    drawn_ = false;
  }
  void redraw() { draw(); }

 private:
  void draw() {
    if (!enabled_ || !tty_ || total_ == 0) return;
    const int width = 28;
    const int filled = std::min(width, done_ * width / std::max(total_, 1));
    fmt::print(stderr, "\r\x1b[2K[{}{}] {:>3}/{} {:>4.0f} s  {}", std::string(filled, '#'),
               std::string(width - filled, '.'), std::min(done_, total_), total_,
               seconds_since(t0_), label_.substr(0, 60));
    std::fflush(stderr);
    drawn_ = true;
  }

  bool enabled_, tty_;
  int total_ = 0, done_ = 0;
  bool drawn_ = false;
  std::string label_;
  clock_type::time_point t0_ = clock_type::now();
};

// ---- helpers -----------------------------------------------------------------------------------

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                        "0123456789-_./=,:+@%") == std::string::npos) {
    return s;
  }
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Writes `text` to `path` through a temporary file and a rename, so a reader never sees half a
// file; creates the parent directory.
bool write_file(const std::string& path, const std::string& text, std::string& why) {
  std::error_code ec;
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) {
      why = "cannot create " + tmp;
      return false;
    }
    f << text;
    f.flush();
    if (!f) {
      why = "cannot write " + tmp;
      return false;
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    why = "cannot rename " + tmp + ": " + ec.message();
    return false;
  }
  return true;
}

// Does `id` match `pattern`: exact, a prefix ending in '.' or '*' ("llm7b", "llm7b.decode.*"),
// or the model part ("mbv2").
bool matches(const std::string& id, const std::string& pattern) {
  if (pattern == id || pattern == "all") return true;
  std::string p = pattern;
  if (!p.empty() && p.back() == '*') p.pop_back();
  if (!p.empty() && p.back() != '.') p += '.';
  return id.compare(0, p.size(), p) == 0;
}

struct cli_options {
  bool quick = false;
  std::uint64_t seed = 1;
  int threads = 0;
  std::vector<std::string> ops, backends, workloads;
  std::string out_dir = "keel-envelope-out";
  std::string json_path, html_path, header_path;
  std::string board_name = "measured_host";
  std::string npu = "generic_16x16";
  double max_run_seconds = -1, target_seconds = -1, ceiling_seconds = -1;
  int max_reps = 20;
  std::int64_t verify_macs = -1;
  bool no_progress = false, no_color = false, list = false, version = false;
  power_options power;
};

void list_everything(const cli_options& o) {
  fmt::print("workloads{}:\n", o.quick ? " (--quick shapes)" : "");
  for (const workload& w : default_workloads(o.quick)) {
    fmt::print("  {:<24} {:<10} {:<34} {}\n", w.id, keel::to_string(kind_of(w.desc)),
               shape_text(w.desc), dtype_text(w.desc));
  }
  fmt::print("ops: matmul_i8 matmul_i4 conv2d_i8 attention\nbackends:");
  backend_config bc;
  npu_profile_config("generic_16x16", bc.npu.config);
  bc.npu.profile = "generic_16x16";
  for (const auto& b : make_backends(bc)) fmt::print(" {}", b->info().name);
  for (const backend_info& b : absent_backends()) fmt::print(" {} ({})", b.name, b.status);
  fmt::print("\nnpu profiles:");
  for (const std::string& n : npu_profile_names()) fmt::print(" {}", n);
  fmt::print(" none\n");
}

int run_envelope(const cli_options& o, const std::string& command_line) {
  const bool out_tty = isatty(STDOUT_FILENO) != 0;
  const bool err_tty = isatty(STDERR_FILENO) != 0;
  const char* no_color_env = std::getenv("NO_COLOR");
  text_style st;
  st.color = out_tty && !o.no_color && (no_color_env == nullptr || *no_color_env == '\0');
  text_style est = st;
  est.color = err_tty && !o.no_color && (no_color_env == nullptr || *no_color_env == '\0');

  envelope e;
  e.tool_version = KEEL_VERSION_STRING;
  e.started = utc_now();
  e.command_line = command_line;
  const auto t_start = clock_type::now();

  // ---- options -> run settings ----
  run_options& ro = e.options;
  ro.quick = o.quick;
  ro.seed = o.seed;
  ro.max_reps = std::max(1, o.max_reps);
  ro.max_run_seconds = o.max_run_seconds >= 0 ? o.max_run_seconds : (o.quick ? 0.5 : 2.0);
  ro.target_seconds = o.target_seconds >= 0 ? o.target_seconds : (o.quick ? 0.01 : 0.25);
  ro.ceiling_seconds = o.ceiling_seconds >= 0 ? o.ceiling_seconds : (o.quick ? 0.03 : 0.25);
  ro.verify_macs = o.verify_macs >= 0 ? o.verify_macs : (o.quick ? 300'000 : 4'000'000);
  if (const char* hook = std::getenv("KEEL_ENVELOPE_WRONG_RESULT")) ro.wrong_result_backend = hook;

  e.machine = detect_machine();
  ro.threads = o.threads > 0 ? o.threads : std::max(1, e.machine.cpu.usable_cpus);

  backend_config bc;
  bc.cpu_threads = o.threads;  // 0: what the runtime offers (the affinity mask)
  if (o.npu != "none") {
    bc.npu.profile = o.npu;
    npu_profile_config(o.npu, bc.npu.config);
    e.npu = bc.npu;
  }
  std::vector<std::unique_ptr<backend_slot>> all = make_backends(bc);
  std::vector<backend_slot*> selected;
  for (const auto& b : all) {
    const std::string& name = b->info().name;
    const bool pick = o.backends.empty() ||
                      std::find(o.backends.begin(), o.backends.end(), name) != o.backends.end() ||
                      (b->info().unit == "npu" &&
                       std::find(o.backends.begin(), o.backends.end(), "npu") != o.backends.end());
    e.backends.push_back(b->info());
    if (pick) {
      selected.push_back(b.get());
      e.selected_backends.push_back(name);
    } else {
      e.backends.back().status = "not selected";
    }
  }
  for (const backend_info& b : absent_backends()) e.backends.push_back(b);
  for (const std::string& name : o.backends) {
    const bool known = std::any_of(e.backends.begin(), e.backends.end(),
                                   [&](const backend_info& b) { return b.name == name; }) ||
                       name == "npu";
    if (!known) {
      fmt::print(stderr, "keel-envelope: --backends: no backend named '{}' (try --list)\n", name);
      return 2;
    }
    for (const backend_info& b : absent_backends()) {
      if (b.name == name)
        fmt::print(stderr, "keel-envelope: note: backend '{}' is {}\n", name, b.status);
    }
  }
  if (!ro.wrong_result_backend.empty()) {
    const bool ok = ro.wrong_result_backend != "reference" &&
                    std::any_of(selected.begin(), selected.end(), [&](const backend_slot* b) {
                      return b->info().name == ro.wrong_result_backend;
                    });
    if (!ok) {
      fmt::print(stderr,
                 "keel-envelope: KEEL_ENVELOPE_WRONG_RESULT={} names no selected backend other "
                 "than the reference\n",
                 ro.wrong_result_backend);
      return 2;
    }
    fmt::print(stderr,
               "keel-envelope: test hook: the outputs of '{}' are corrupted on purpose "
               "(KEEL_ENVELOPE_WRONG_RESULT)\n",
               ro.wrong_result_backend);
  }

  std::vector<workload> wl;
  for (const workload& w : default_workloads(o.quick)) {
    const std::string op(keel::to_string(kind_of(w.desc)));
    const bool op_ok = o.ops.empty() || std::find(o.ops.begin(), o.ops.end(), op) != o.ops.end();
    const bool id_ok =
        o.workloads.empty() || std::any_of(o.workloads.begin(), o.workloads.end(),
                                           [&](const std::string& p) { return matches(w.id, p); });
    if (op_ok && id_ok) wl.push_back(w);
  }
  e.selected_ops =
      o.ops.empty() ? std::vector<std::string>{"matmul_i8", "matmul_i4", "conv2d_i8", "attention"}
                    : o.ops;
  if (wl.empty()) {
    fmt::print(stderr, "keel-envelope: no workload matches --ops/--workloads (try --list)\n");
    return 2;
  }

  print_preamble(stdout, e, st);

  // ---- ceilings ----
  progress bar(!o.no_progress, err_tty);
  ceiling_options co;
  co.threads = ro.threads;
  co.seconds_each = ro.ceiling_seconds;
  if (o.quick) co.stream_bytes = std::int64_t{32} << 20;  // quick: cache-sized, marked as such
  bar.start(ceiling_count(e.machine, co));
  bar.line(fmt::format("measuring {} ceilings ...", ceiling_count(e.machine, co)));
  e.ceilings =
      measure_ceilings(e.machine, co, [&](const std::string& id) { bar.step("ceiling " + id); });
  bar.clear();
  print_ceilings(stdout, e, st);

  // Each backend's roof: the cpu backend at its thread count, the reference at one thread, the
  // virtual NPU from its configuration.
  const int cpu_threads = cpu_backend_threads(o.threads);
  for (backend_slot* b : selected) {
    const backend_info& info = b->info();
    if (info.unit == "cpu") e.roofs.emplace_back(info.name, cpu_roof(e.ceilings, cpu_threads));
    if (info.unit == "reference") e.roofs.emplace_back(info.name, cpu_roof(e.ceilings, 1));
    if (info.unit == "npu" && !e.npu.profile.empty()) {
      const auto& k = e.npu.config;
      roof r;
      r.int8_gops = 2.0 * static_cast<double>(k.mac_rows * k.mac_cols) * k.clock_hz * 1e-9;
      r.mem_gbs = k.dma_bytes_per_cycle * k.clock_hz * 1e-9;
      r.int8_from = "configuration: 2 x MAC array x clock";
      r.mem_from = "configuration: DMA bytes per cycle x clock";
      e.roofs.emplace_back(info.name, r);
    }
  }
  for (const auto& b : all) {
    if (b->info().unit == "cpu" && !stop_requested()) e.cpu_launch_us = measure_launch_us(*b);
  }

  // ---- workloads ----
  measure_context ctx;
  ctx.options = &ro;
  ctx.llc_bytes = llc_bytes(e.machine);
  ctx.backends = selected;
  ctx.roof_of = [&](const std::string& name) { return e.roof_of(name); };
  ctx.on_step = [&](const std::string& label) { bar.step(label); };
  ctx.on_result = [&](const result_entry& r) {
    if (r.outcome == "mismatch" || r.outcome == "error") {
      bar.clear();
      print_alarm(stderr, r, est);
      bar.redraw();
    }
  };
  fmt::print("\nRunning {} workloads on {} backend{} ...\n", wl.size(), selected.size(),
             selected.size() == 1 ? "" : "s");
  std::fflush(stdout);
  bar.start(static_cast<int>(wl.size() * (selected.size() + 1)));
  bool complete = true;
  for (std::size_t i = 0; i < wl.size(); ++i) {
    if (stop_requested()) {
      complete = false;
      break;
    }
    bar.line(fmt::format("[{:>2}/{}] {}", i + 1, wl.size(), wl[i].id));
    workload_record rec;
    const bool finished = measure_workload(wl[i], i, ctx, rec, e.results);
    e.workloads.push_back(rec);
    if (!finished) {
      complete = false;
      break;
    }
  }
  bar.clear();
  // Workloads that never ran are listed (ran = false) so a partial report says what is missing.
  for (std::size_t i = e.workloads.size(); i < wl.size(); ++i) {
    workload_record rec;
    rec.w = wl[i];
    rec.work = work_of_desc(wl[i].desc);
    rec.shape = shape_text(wl[i].desc);
    rec.dtypes = dtype_text(wl[i].desc);
    e.workloads.push_back(rec);
  }
  e.interrupted = g_signal != 0;
  e.complete = complete && !e.interrupted;

  // ---- the measured profile, its routing table and header ----
  const roof cr = cpu_roof(e.ceilings, cpu_threads);
  std::vector<const backend_slot*> policy_backends;
  const backend_slot* reference = nullptr;
  for (const auto& b : all) {
    if (b->info().unit == "reference") {
      reference = b.get();
    } else {
      policy_backends.push_back(b.get());
    }
  }
  if (cr.int8_gops > 0 && cr.f32_gflops > 0 && cr.mem_gbs > 0 && reference != nullptr) {
    e.profile = build_profile(o.board_name, e.machine, e.ceilings, cpu_threads, e.cpu_launch_us,
                              e.npu, o.power);
    e.has_profile = true;
    std::vector<workload> ran;
    for (const workload_record& w : e.workloads) {
      if (w.ran) ran.push_back(w.w);
    }
    e.routing = routing_table(e.profile.profile, policy_backends, *reference, ran);
    for (const std::string& policy : policy_names()) {
      for (const auto& [k, t] : {std::pair{keel::op_kind::matmul_i8, keel::dtype::s8},
                                 std::pair{keel::op_kind::matmul_i4, keel::dtype::s4},
                                 std::pair{keel::op_kind::conv2d_i8, keel::dtype::s8},
                                 std::pair{keel::op_kind::attention, keel::dtype::s8},
                                 std::pair{keel::op_kind::attention, keel::dtype::f32}}) {
        std::string order;
        for (const std::string& n :
             candidate_names(e.profile.profile, policy_backends, *reference, policy, k, t)) {
          order += (order.empty() ? "" : " > ") + n;
        }
        e.candidates.emplace_back(
            fmt::format("{} {}/{}", policy, keel::to_string(k), keel::to_string(t)), order);
      }
    }
  }

  // ---- outputs ----
  const auto path_or = [&](const std::string& given, const std::string& fallback) {
    if (given == "none") return std::string();
    return given.empty() ? (std::filesystem::path(o.out_dir) / fallback).string() : given;
  };
  const std::string json_path = path_or(o.json_path, "envelope.json");
  const std::string html_path = path_or(o.html_path, "envelope.html");
  const std::string header_path = path_or(o.header_path, o.board_name + ".hpp");
  e.finished = utc_now();
  e.duration_s = seconds_since(t_start);
  if (e.has_profile) {
    e.header_text = board_header(e.profile, e.machine, e.started, command_line);
    if (!e.complete) {
      e.header_text =
          "// NOTE: written from an interrupted run; its routing table covers only the "
          "workloads that ran.\n" +
          e.header_text;
    }
  }
  // The document names the files it is written with; the header is only claimed once written.
  e.written.json = json_path;
  e.written.html = html_path;
  e.written.header = e.has_profile ? header_path : std::string();
  bool write_failed = false;
  std::string why;
  const auto write = [&](const std::string& path, const std::string& text, std::string& claimed) {
    if (path.empty()) return;
    if (!write_file(path, text, why)) {
      fmt::print(stderr, "keel-envelope: {}\n", why);
      write_failed = true;
      claimed.clear();
    }
  };
  if (!header_path.empty() && e.has_profile) write(header_path, e.header_text, e.written.header);
  nlohmann::ordered_json doc = to_json(e);
  if (!html_path.empty()) write(html_path, html_report(e, doc), e.written.html);
  doc = to_json(e);
  if (!json_path.empty()) write(json_path, doc.dump(2) + "\n", e.written.json);
  if (!e.has_profile && !header_path.empty()) {
    fmt::print(stderr, "keel-envelope: no board header: the ceilings were not all measured\n");
  }

  print_results(stdout, e, st);
  print_routing(stdout, e, st);
  print_verdict(stdout, e, st);

  if (e.mismatches() > 0 || e.errors() > 0) return 1;
  if (write_failed) return 3;
  if (g_signal != 0) return 128 + g_signal;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "keel-envelope: profile this machine for keel. Detects the CPU, memory and accelerators, "
      "measures the ceilings (int8 MAC, f32 FMA, memory bandwidth), runs every op on every "
      "available backend over model-shaped workloads (a 7B-class decoder layer at decode and "
      "prefill, MobileNetV2 convolutions, a MiniLM attention block), verifies each result "
      "against the reference, and writes a table, JSON, an HTML report with a roofline plot, "
      "the routing table of each shipped policy, and a board-profile header.\n\n"
      "Exit status: 0 verified, 1 a mismatch or backend error, 2 bad usage, 3 an output could "
      "not be written, 130 interrupted (outputs keep what was measured).",
      "keel-envelope"};
  cli_options o;
  // A repeated single-value option takes its last value, so a wrapper (scripts/main.sh) can set
  // a default that the user's own arguments override.
  app.add_flag("--quick", o.quick,
               "the same workloads with shapes scaled down, short ceilings (smoke tests)");
  app.add_option("--ops", o.ops,
                 "ops to run, comma-separated: matmul_i8,matmul_i4,conv2d_i8,attention")
      ->delimiter(',')
      ->check(CLI::IsMember({"matmul_i8", "matmul_i4", "conv2d_i8", "attention"}));
  app.add_option("--backends", o.backends,
                 "backends to run, comma-separated (reference, cpu, keel_vnpu or npu; see --list)")
      ->delimiter(',');
  app.add_option("--workloads", o.workloads,
                 "workloads by id or prefix, comma-separated: llm7b, llm7b.decode, mbv2.b1.dw, "
                 "minilm, ... (see --list)")
      ->delimiter(',');
  app.add_option("--threads", o.threads,
                 "threads for the cpu backend and the all-core ceilings "
                 "(default: every CPU this process may use)")
      ->check(CLI::Range(1, 4096))
      ->take_last();
  app.add_option("--npu", o.npu, "virtual NPU profile: generic_16x16, rk3588, imx8mp or none")
      ->check(CLI::IsMember({"generic_16x16", "rk3588", "imx8mp", "none"}))
      ->capture_default_str()
      ->take_last();
  app.add_option("--out-dir", o.out_dir, "directory of the outputs")
      ->capture_default_str()
      ->take_last();
  app.add_option("--json", o.json_path,
                 "JSON output path (default <out-dir>/envelope.json; none: skip)")
      ->take_last();
  app.add_option("--html", o.html_path,
                 "HTML report path (default <out-dir>/envelope.html; none: skip)")
      ->take_last();
  app.add_option("--header", o.header_path,
                 "board header path (default <out-dir>/<board-name>.hpp; none: skip)")
      ->take_last();
  app.add_option("--board-name", o.board_name, "C++ name of the generated board struct")
      ->capture_default_str()
      ->take_last();
  app.add_option("--seed", o.seed, "seed of the generated inputs")
      ->capture_default_str()
      ->take_last();
  app.add_option("--max-run-seconds", o.max_run_seconds,
                 "a backend whose full-shape run is predicted to take longer is timed on the "
                 "verification sample (default 2; quick 0.5)")
      ->check(CLI::Range(0.0, 1e6))
      ->take_last();
  app.add_option("--target-seconds", o.target_seconds,
                 "timed runs per result add up to about this (default 0.25; quick 0.01)")
      ->check(CLI::Range(0.0, 1e6))
      ->take_last();
  app.add_option("--max-reps", o.max_reps, "at most this many timed runs per result")
      ->check(CLI::Range(1, 100000))
      ->capture_default_str()
      ->take_last();
  app.add_option("--ceiling-seconds", o.ceiling_seconds,
                 "time spent on each ceiling (default 0.25; quick 0.03)")
      ->check(CLI::Range(0.0, 1e6))
      ->take_last();
  app.add_option("--verify-macs", o.verify_macs,
                 "multiply-accumulates the reference may spend per workload on the verification "
                 "sample (default 4e6; quick 3e5)")
      ->check(CLI::Range(std::int64_t{1}, std::int64_t{1} << 50))
      ->take_last();
  app.add_option("--power-idle-w", o.power.idle_w, "board idle power for the profile (no sensor)")
      ->capture_default_str()
      ->take_last();
  app.add_option("--power-cpu-w-per-core", o.power.cpu_w_per_core, "CPU power per busy core")
      ->capture_default_str()
      ->take_last();
  app.add_option("--power-npu-w", o.power.npu_w, "NPU power at full load")
      ->capture_default_str()
      ->take_last();
  app.add_option("--power-budget-w", o.power.budget_w,
                 "the board's power budget (0: 1.5 x the sum)")
      ->capture_default_str()
      ->take_last();
  app.add_flag("--no-progress", o.no_progress, "no progress bar or progress lines on stderr");
  app.add_flag("--no-color", o.no_color, "no colours (also: the NO_COLOR environment variable)");
  app.add_flag("--list", o.list, "list the workloads, ops, backends and NPU profiles, then exit");
  app.add_flag("--version", o.version, "print keel's version and exit");

  CLI::App* cmp =
      app.add_subcommand("compare", "compare two JSON outputs: what got faster or slower");
  std::string path_a, path_b;
  compare_options copt;
  cmp->add_option("a", path_a, "the earlier run's JSON")->required();
  cmp->add_option("b", path_b, "the later run's JSON")->required();
  cmp->add_option("--threshold", copt.threshold,
                  "changes smaller than this fraction count as unchanged (default 0.05)")
      ->check(CLI::Range(0.0, 10.0));
  cmp->add_option("--fail-on-slowdown", copt.fail_on_slowdown,
                  "exit 4 when an entry got slower by more than this fraction (e.g. 0.2)")
      ->check(CLI::Range(0.0, 1000.0));

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& err) {
    const int rc = app.exit(err);
    return rc == 0 ? 0 : 2;
  }
  if (o.version) {
    fmt::print("keel-envelope {}\n", KEEL_VERSION_STRING);
    return 0;
  }
  if (cmp->parsed()) return run_compare(path_a, path_b, copt, stdout, stderr);
  if (o.list) {
    list_everything(o);
    return 0;
  }
  if (!is_identifier(o.board_name)) {
    fmt::print(stderr, "keel-envelope: --board-name '{}' is not a C++ identifier\n", o.board_name);
    return 2;
  }

  std::string command_line = "keel-envelope";
  for (int i = 1; i < argc; ++i) command_line += " " + shell_quote(argv[i]);

  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  return run_envelope(o, command_line);
}
