// tools/envelope/profile.cpp — the measured board profile and its generated header.
#include "profile.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "keel/version.hpp"

namespace keel::envelope {

double round3(double v) {
  if (!(v > 0) || !std::isfinite(v)) return v;
  const double scale = std::pow(10.0, 2 - std::floor(std::log10(v)));
  return std::round(v * scale) / scale;
}

bool is_identifier(const std::string& s) {
  if (s.empty() || s.size() > 100) return false;
  if (!(std::isalpha(static_cast<unsigned char>(s[0])) || s[0] == '_')) return false;
  if (s[0] == '_' && s.size() > 1 &&
      (s[1] == '_' || std::isupper(static_cast<unsigned char>(s[1])))) {
    return false;
  }
  return std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

measured_profile& measured_profile::operator=(const measured_profile& o) {
  if (this == &o) return *this;
  type_name = o.type_name;
  name = o.name;
  soc = o.soc;
  npu_name = o.npu_name;
  profile = o.profile;
  sources = o.sources;
  // Rebind the views to this object's strings.
  profile.name = name;
  profile.soc = soc;
  profile.npu.name = npu_name;
  return *this;
}

measured_profile build_profile(const std::string& type_name, const machine_info& m,
                               const std::vector<ceiling>& ceilings, int cpu_threads,
                               double launch_us, const npu_choice& npu, const power_options& pw) {
  measured_profile r;
  r.type_name = type_name;
  r.name = m.os.hostname.empty() ? "measured: " + m.cpu.model
                                 : "measured: " + m.cpu.model + " (" + m.os.hostname + ")";
  r.soc = m.cpu.model;
  boards::board_profile& p = r.profile;
  const auto src = [&](const char* field, std::string how) {
    r.sources.emplace_back(field, std::move(how));
  };

  // ---- cpu ----
  boards::cpu_profile& c = p.cpu;
  c.arch = m.cpu.arch == "aarch64" ? boards::cpu_arch::aarch64 : boards::cpu_arch::x86_64;
  namespace isa = boards::isa;
  const std::pair<const char*, std::uint32_t> bits[] = {{"sse4_2", isa::sse4_2},
                                                        {"avx2", isa::avx2},
                                                        {"fma", isa::fma},
                                                        {"avx_vnni", isa::avx_vnni},
                                                        {"avx512f", isa::avx512f},
                                                        {"avx512bw", isa::avx512bw},
                                                        {"avx512_vnni", isa::avx512_vnni},
                                                        {"amx_int8", isa::amx_int8},
                                                        {"asimd", isa::neon},
                                                        {"asimddp", isa::dotprod},
                                                        {"i8mm", isa::i8mm},
                                                        {"asimdhp", isa::fp16},
                                                        {"sve", isa::sve},
                                                        {"sve2", isa::sve2}};
  for (const auto& [feature, bit] : bits) {
    if (m.cpu.has(feature)) c.isa |= bit;
  }
  src("cpu.isa", "detected: cpuid/xgetbv (x86-64) or AT_HWCAP (aarch64), OS-enabled only");
  c.cores = std::max(1, cpu_threads);
  src("cpu.cores", "the threads the cpu backend runs with");
  c.freq_ghz = m.cpu.freq_mhz > 0 ? round3(m.cpu.freq_mhz / 1000.0) : 1.0;
  src("cpu.freq_ghz", m.cpu.freq_mhz > 0 ? "detected: " + m.cpu.freq_source
                                         : "unknown (no cpufreq, no cpu MHz): 1 GHz placeholder");
  c.l1d_kib = static_cast<int>(std::max<std::int64_t>(1, m.cpu.cache_kib(1, true)));
  const std::int64_t l2 = m.cpu.cache_kib(2, true);
  c.l2_kib =
      static_cast<int>(std::max<std::int64_t>(1, l2 / std::max(1, m.cpu.cache_shared_by(2, true))));
  c.l3_kib = static_cast<int>(m.cpu.cache_kib(3, true));
  src("cpu.l1d_kib/l2_kib/l3_kib", "detected: /sys/devices/system/cpu/cpu0/cache (L2 per core)");
  const roof cr = cpu_roof(ceilings, c.cores);
  c.peak_int8_gops = round3(cr.int8_gops);
  c.peak_f32_gflops = round3(cr.f32_gflops);
  c.mem_bandwidth_gbs = round3(cr.mem_gbs);
  src("cpu.peak_int8_gops",
      "measured: " + (cr.int8_from.empty() ? std::string("missing") : cr.int8_from));
  src("cpu.peak_f32_gflops",
      "measured: " + (cr.f32_from.empty() ? std::string("missing") : cr.f32_from));
  src("cpu.mem_bandwidth_gbs",
      "measured: " + (cr.mem_from.empty() ? std::string("missing") : cr.mem_from));
  c.launch_us = launch_us > 0 ? round3(launch_us) : 5.0;
  src("cpu.launch_us", launch_us > 0 ? "measured: the fastest cpu matmul_i8 of 1x16x16"
                                     : "estimate: not measured, 5 us");

  // ---- gpu: none until keel has a Vulkan backend ----

  // ---- npu: the virtual NPU's configuration ----
  if (!npu.profile.empty()) {
    const npu::vnpu_config& k = npu.config;
    r.npu_name = "keel_vnpu " + npu.profile + " (virtual)";
    boards::npu_profile& n = p.npu;
    n.present = true;
    n.ops = op_bit(op_kind::matmul_i8) | op_bit(op_kind::conv2d_i8);
    n.dtypes = k.weight_types;
    n.sram_kib = static_cast<int>(k.sram_bytes / 1024);
    n.peak_int8_gops =
        round3(2.0 * static_cast<double>(k.mac_rows * k.mac_cols) * k.clock_hz * 1e-9);
    n.peak_f16_gflops = 0;
    n.max_dim = k.max_dim;
    n.mem_bandwidth_gbs = round3(k.dma_bytes_per_cycle * k.clock_hz * 1e-9);
    n.launch_us = round3(static_cast<double>(k.launch_cycles) / k.clock_hz * 1e6);
    src("npu.*", "the virtual NPU's configuration (profile " + npu.profile +
                     "): MAC array x clock, SRAM, DMA bytes/cycle x clock, launch cycles");
  }

  // ---- power: no sensor ----
  p.power.idle_w = pw.idle_w;
  p.power.cpu_w = pw.cpu_w_per_core * c.cores;
  p.power.npu_w = p.npu.present ? pw.npu_w : 0.0;
  const double sum = p.power.idle_w + p.power.cpu_w + p.power.npu_w;
  p.power.budget_w =
      pw.budget_w > 0 ? std::max(pw.budget_w, p.power.idle_w + p.power.cpu_w) : round3(1.5 * sum);
  src("power.*",
      "estimate: keel-envelope reads no power sensor (set --power-* to the board's "
      "figures)");
  // The views last: the strings are final now.
  p.name = r.name;
  p.soc = r.soc;
  p.npu.name = r.npu_name;
  return r;
}

namespace {

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    if (static_cast<unsigned char>(ch) < 0x20) continue;
    out += ch;
  }
  return out + "\"";
}

// Shortest text that reads back as the same double ("2.3", "147", "0.5"), with a decimal point.
std::string number(double v) {
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string isa_text(std::uint32_t bits) {
  namespace isa = boards::isa;
  const std::pair<std::uint32_t, const char*> names[] = {{isa::sse4_2, "isa::sse4_2"},
                                                         {isa::avx2, "isa::avx2"},
                                                         {isa::fma, "isa::fma"},
                                                         {isa::avx_vnni, "isa::avx_vnni"},
                                                         {isa::avx512f, "isa::avx512f"},
                                                         {isa::avx512bw, "isa::avx512bw"},
                                                         {isa::avx512_vnni, "isa::avx512_vnni"},
                                                         {isa::amx_int8, "isa::amx_int8"},
                                                         {isa::neon, "isa::neon"},
                                                         {isa::dotprod, "isa::dotprod"},
                                                         {isa::i8mm, "isa::i8mm"},
                                                         {isa::fp16, "isa::fp16"},
                                                         {isa::sve, "isa::sve"},
                                                         {isa::sve2, "isa::sve2"}};
  std::string s;
  for (const auto& [bit, name] : names) {
    if (bits & bit) s += (s.empty() ? "" : " | ") + std::string(name);
  }
  return s.empty() ? "0" : s;
}

std::string bits_text(std::uint32_t bits, bool ops) {
  std::string s;
  if (ops) {
    for (op_kind k :
         {op_kind::matmul_i8, op_kind::matmul_i4, op_kind::conv2d_i8, op_kind::attention}) {
      if (bits & op_bit(k))
        s += (s.empty() ? "" : " | ") + fmt::format("op_bit(op_kind::{})", to_string(k));
    }
  } else {
    for (dtype t : {dtype::s8, dtype::u8, dtype::s4, dtype::u4, dtype::f16, dtype::f32}) {
      if (bits & dtype_bit(t))
        s += (s.empty() ? "" : " | ") + fmt::format("dtype_bit(dtype::{})", to_string(t));
    }
  }
  return s.empty() ? "0" : s;
}

std::vector<std::string> split(const std::string& s, const std::string& sep) {
  std::vector<std::string> v;
  std::size_t pos = 0;
  for (;;) {
    const std::size_t end = s.find(sep, pos);
    v.push_back(s.substr(pos, end == std::string::npos ? std::string::npos : end - pos));
    if (end == std::string::npos) return v;
    pos = end + sep.size();
  }
}

// `text` as // comment lines of at most 100 columns (a word longer than that stays whole); its
// leading spaces indent the first line, continuation lines are indented by `indent`.
std::string comment(const std::string& text, std::size_t indent = 4) {
  constexpr std::size_t kWidth = 100;
  const std::size_t lead = text.find_first_not_of(' ');
  std::string out, line = "// " + std::string(lead == std::string::npos ? 0 : lead, ' ');
  bool empty = true;
  for (const std::string& word : split(text, " ")) {
    if (word.empty()) continue;
    if (!empty && line.size() + 1 + word.size() > kWidth) {
      out += line + "\n";
      line = "//" + std::string(indent, ' ');
      empty = true;
    }
    line += (empty ? "" : " ") + word;
    empty = false;
  }
  return out + line + "\n";
}

// A designated initializer `.name = a | b | c,` broken after a `|` to stay within 100 columns.
std::string field(const std::string& name, const std::string& value) {
  const std::string head = "              ." + name + " = ";
  const std::vector<std::string> parts = split(value, " | ");
  std::string out, line = head;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0 && line.size() + 3 + parts[i].size() + 2 > 100) {
      out += line + " |\n";
      line = std::string(head.size(), ' ') + parts[i];
    } else {
      line += (i > 0 ? " | " : "") + parts[i];
    }
  }
  return out + line + ",\n";
}

// `.name = "text",` as adjacent string literals (which C++ joins) within 100 columns.
std::string string_field(const std::string& indent, const std::string& name,
                         std::string_view text) {
  const std::string head = indent + "." + name + " = ";
  std::string out;
  std::string line = head;
  for (;;) {
    // Room for the quotes, the comma and escapes (each at most doubles a character).
    const std::size_t room = line.size() + 4 < 100 ? (100 - line.size() - 3) / 2 : 1;
    const std::string_view chunk = text.substr(0, std::max<std::size_t>(room, 1));
    text.remove_prefix(chunk.size());
    line += quoted(chunk);
    if (text.empty()) return out + line + ",\n";
    out += line + "\n";
    line = std::string(head.size(), ' ');
  }
}

std::string source_of(const measured_profile& p, const std::string& field) {
  for (const auto& [f, how] : p.sources) {
    if (f == field) return how;
  }
  return {};
}

}  // namespace

std::string board_header(const measured_profile& mp, const machine_info& m, const std::string& date,
                         const std::string& command_line) {
  const boards::board_profile& p = mp.profile;
  const boards::cpu_profile& c = p.cpu;
  const auto s = [&](const char* f) { return source_of(mp, f); };
  std::string h;
  h += fmt::format("// keel/boards/{}.hpp: a board profile GENERATED by keel-envelope.\n",
                   mp.type_name);
  h += fmt::format("// Tool: keel-envelope {}; date: {}.\n", KEEL_VERSION_STRING, date);
  h += comment(fmt::format("Machine: {}, {} online CPUs ({} {}, host {}).", m.cpu.model,
                           m.cpu.logical_cpus, m.os.name, m.os.release,
                           m.os.hostname.empty() ? std::string("unknown") : m.os.hostname));
  h += "// Do not edit: re-run keel-envelope on the board to refresh it. It was written by\n";
  h += comment("  " + command_line, 6);
  h += "// Sources of the numbers:\n";
  for (const auto& [f, how] : mp.sources) h += comment("  " + f + ": " + how, 6);
  h += "// Use it like any board in boards/keel/boards/:\n";
  h += fmt::format("//   keel::router<keel::boards::{}, keel::latency_first<...>> r;\n",
                   mp.type_name);
  h += "#pragma once\n\n#include \"keel/boards/profile.hpp\"\n\nnamespace keel::boards {\n\n";
  h += fmt::format("struct {} {{\n  static constexpr board_profile profile{{\n", mp.type_name);
  h += string_field("      ", "name", p.name) + string_field("      ", "soc", p.soc);
  h += "      .cpu =\n          {\n";
  h += fmt::format("              .arch = cpu_arch::{},\n",
                   c.arch == boards::cpu_arch::aarch64 ? "aarch64" : "x86_64");
  h += field("isa", isa_text(c.isa));
  h += fmt::format("              .cores = {},\n", c.cores);
  h += fmt::format("              .freq_ghz = {},  // {}\n", number(c.freq_ghz), s("cpu.freq_ghz"));
  h += fmt::format(
      "              .l1d_kib = {},\n              .l2_kib = {},\n              .l3_kib = {},\n",
      c.l1d_kib, c.l2_kib, c.l3_kib);
  h += fmt::format("              .mem_bandwidth_gbs = {},  // {}\n", number(c.mem_bandwidth_gbs),
                   s("cpu.mem_bandwidth_gbs"));
  h += fmt::format("              .peak_int8_gops = {},  // {}\n", number(c.peak_int8_gops),
                   s("cpu.peak_int8_gops"));
  h += fmt::format("              .peak_f32_gflops = {},  // {}\n", number(c.peak_f32_gflops),
                   s("cpu.peak_f32_gflops"));
  h += fmt::format("              .launch_us = {},  // {}\n", number(c.launch_us),
                   s("cpu.launch_us"));
  h += "          },\n      .gpu = {},  // keel has no Vulkan backend in this build: no GPU "
       "measured\n";
  if (p.npu.present) {
    const boards::npu_profile& n = p.npu;
    h += "      .npu =\n          {\n              .present = true,\n";
    h += string_field("              ", "name", n.name);
    h += field("ops", bits_text(n.ops, true));
    h += field("dtypes", bits_text(n.dtypes, false));
    h += fmt::format("              .sram_kib = {},\n", n.sram_kib);
    h += fmt::format("              .peak_int8_gops = {},\n", number(n.peak_int8_gops));
    h += fmt::format("              .peak_f16_gflops = {},\n", number(n.peak_f16_gflops));
    h += fmt::format("              .max_dim = {},\n", n.max_dim);
    h += fmt::format("              .mem_bandwidth_gbs = {},\n", number(n.mem_bandwidth_gbs));
    h += fmt::format("              .launch_us = {},\n", number(n.launch_us));
    h += "          },\n";
  } else {
    h += "      .npu = {},\n";
  }
  h += "      .power =\n          {  // estimates: no power sensor is read\n";
  h += fmt::format("              .idle_w = {},\n              .cpu_w = {},\n",
                   number(p.power.idle_w), number(p.power.cpu_w));
  if (p.npu.present) h += fmt::format("              .npu_w = {},\n", number(p.power.npu_w));
  h += fmt::format("              .budget_w = {},\n          }},\n", number(p.power.budget_w));
  h += "  };\n};\n";
  h += fmt::format("static_assert(check_profile<{}>());\n\n}}  // namespace keel::boards\n",
                   mp.type_name);
  return h;
}

}  // namespace keel::envelope
