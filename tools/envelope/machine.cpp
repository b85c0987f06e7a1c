// tools/envelope/machine.cpp — machine detection (see machine.hpp for the sources).
#include "machine.hpp"

#include <sched.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__)
#include <sys/auxv.h>
#endif

namespace keel::envelope {

bool cpu_info::has(const std::string& feature) const {
  for (const isa_feature& f : features) {
    if (f.name == feature) return f.usable;
  }
  return false;
}

std::int64_t cpu_info::cache_kib(int level, bool data) const {
  for (const cache_info& c : caches) {
    if (c.level == level &&
        (c.type == "Unified" || (data ? c.type == "Data" : c.type == "Instruction"))) {
      return c.size_kib;
    }
  }
  return 0;
}

int cpu_info::cache_shared_by(int level, bool data) const {
  for (const cache_info& c : caches) {
    if (c.level == level &&
        (c.type == "Unified" || (data ? c.type == "Data" : c.type == "Instruction"))) {
      return c.shared_by;
    }
  }
  return 1;
}

namespace {

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  if (f) std::getline(f, s);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\0')) s.pop_back();
  return s;
}

std::string trim(std::string s) {
  const auto b = s.find_first_not_of(" \t");
  const auto e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

// The value of the first "key : value" line of /proc/cpuinfo whose key is `key`.
std::string cpuinfo_field(const std::string& key) {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    if (trim(line.substr(0, colon)) == key) return trim(line.substr(colon + 1));
  }
  return {};
}

// "0-3,8,10-11" -> the CPU numbers it lists.
std::set<int> parse_cpu_list(const std::string& s) {
  std::set<int> cpus;
  std::stringstream ss(s);
  std::string part;
  while (std::getline(ss, part, ',')) {
    part = trim(part);
    if (part.empty()) continue;
    const auto dash = part.find('-');
    const int lo = std::atoi(part.substr(0, dash).c_str());
    const int hi = dash == std::string::npos ? lo : std::atoi(part.substr(dash + 1).c_str());
    for (int c = lo; c <= hi && c - lo < 65536; ++c) cpus.insert(c);
  }
  return cpus;
}

// "48K", "2048K", "32M" -> KiB.
std::int64_t parse_size_kib(const std::string& s) {
  if (s.empty()) return 0;
  const std::int64_t v = std::atoll(s.c_str());
  switch (s.back()) {
    case 'K': return v;
    case 'M': return v * 1024;
    case 'G': return v * 1024 * 1024;
    default: return v / 1024;
  }
}

void detect_features(cpu_info& c) {
#if defined(__x86_64__) || defined(__i386__)
  c.arch = "x86-64";
  unsigned a = 0, b = 0, cx = 0, d = 0;
  char vendor[13] = {};
  if (__get_cpuid(0, &a, &b, &cx, &d)) {
    std::memcpy(vendor, &b, 4);
    std::memcpy(vendor + 4, &d, 4);
    std::memcpy(vendor + 8, &cx, 4);
    c.vendor = vendor;
  }
  const unsigned max_leaf = a;
  unsigned ecx1 = 0, edx1 = 0;
  if (__get_cpuid(1, &a, &b, &ecx1, &edx1)) c.hypervisor = (ecx1 >> 31) & 1u;
  // What the OS saves on a context switch (XCR0): without it the registers are unusable.
  std::uint64_t xcr0 = 0;
  if ((ecx1 >> 27) & 1u) {  // OSXSAVE
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    xcr0 = (static_cast<std::uint64_t>(hi) << 32) | lo;
  }
  const bool os_avx = (xcr0 & 0x6) == 0x6;                 // XMM and YMM state
  const bool os_avx512 = os_avx && (xcr0 & 0xE0) == 0xE0;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;         // XTILECFG, XTILEDATA
  unsigned b7 = 0, c7 = 0, d7 = 0, a71 = 0;
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b7, c7, d7);
    unsigned x = 0, y = 0, z = 0;
    __cpuid_count(7, 1, a71, x, y, z);
  }
  const auto add = [&](const char* name, bool present, bool usable) {
    if (present) c.features.push_back({name, usable});
  };
  add("sse4_2", (ecx1 >> 20) & 1u, true);
  add("avx", (ecx1 >> 28) & 1u, os_avx);
  add("fma", (ecx1 >> 12) & 1u, os_avx);
  add("f16c", (ecx1 >> 29) & 1u, os_avx);
  add("avx2", (b7 >> 5) & 1u, os_avx);
  add("avx_vnni", (a71 >> 4) & 1u, os_avx);
  add("avx512f", (b7 >> 16) & 1u, os_avx512);
  add("avx512bw", (b7 >> 30) & 1u, os_avx512);
  add("avx512vl", (b7 >> 31) & 1u, os_avx512);
  add("avx512_vnni", (c7 >> 11) & 1u, os_avx512);
  add("avx512_bf16", (a71 >> 5) & 1u, os_avx512);
  add("amx_int8", (d7 >> 25) & 1u, os_amx);
  // The brand string, leaves 0x80000002..4.
  char brand[49] = {};
  if (__get_cpuid(0x80000000, &a, &b, &cx, &d) && a >= 0x80000004) {
    for (unsigned i = 0; i < 3; ++i) {
      __get_cpuid(0x80000002 + i, &a, &b, &cx, &d);
      std::memcpy(brand + 16 * i, &a, 4);
      std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &cx, 4);
      std::memcpy(brand + 16 * i + 12, &d, 4);
    }
    c.model = trim(brand);
  }
#elif defined(__aarch64__)
  c.arch = "aarch64";
  const unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
  const auto add = [&](const char* name, bool present) {
    if (present) c.features.push_back({name, true});
  };
  // Bit numbers from the kernel's arch/arm64/include/uapi/asm/hwcap.h.
  add("asimd", hw & (1ul << 1));
  add("asimdhp", hw & (1ul << 10));
  add("asimddp", hw & (1ul << 20));
  add("sve", hw & (1ul << 22));
  add("sve2", hw2 & (1ul << 1));
  add("i8mm", hw2 & (1ul << 13));
  c.vendor = cpuinfo_field("CPU implementer");
  const std::string dt = read_line("/sys/firmware/devicetree/base/model");
  c.model = dt.empty() ? "Arm CPU part " + cpuinfo_field("CPU part") : dt;
#else
  c.arch = "unknown";
#endif
  if (c.model.empty()) c.model = cpuinfo_field("model name");
  if (c.model.empty()) c.model = "unknown CPU";
}

void detect_topology(cpu_info& c) {
  const std::set<int> online = parse_cpu_list(read_line("/sys/devices/system/cpu/online"));
  c.logical_cpus = online.empty() ? static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN))
                                  : static_cast<int>(online.size());
  std::set<std::pair<int, int>> cores;
  for (int cpu : online) {
    const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(cpu) + "/topology/";
    const std::string pkg = read_line(base + "physical_package_id");
    const std::string core = read_line(base + "core_id");
    if (pkg.empty() || core.empty()) {
      cores.clear();
      break;
    }
    cores.insert({std::atoi(pkg.c_str()), std::atoi(core.c_str())});
  }
  c.physical_cores = static_cast<int>(cores.size());
  cpu_set_t set;
  CPU_ZERO(&set);
  c.usable_cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : c.logical_cpus;

  for (int i = 0; i < 16; ++i) {
    const std::string base = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    const std::string level = read_line(base + "level");
    if (level.empty()) break;
    cache_info k;
    k.level = std::atoi(level.c_str());
    k.type = read_line(base + "type");
    k.size_kib = parse_size_kib(read_line(base + "size"));
    k.shared_by = std::max<int>(
        1, static_cast<int>(parse_cpu_list(read_line(base + "shared_cpu_list")).size()));
    k.line_bytes = std::atoi(read_line(base + "coherency_line_size").c_str());
    c.caches.push_back(k);
  }

  const std::string max_khz = read_line("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq");
  if (!max_khz.empty()) {
    c.freq_mhz = std::atof(max_khz.c_str()) / 1000.0;
    c.freq_source = "cpufreq cpuinfo_max_freq";
  } else {
    const std::string mhz = cpuinfo_field("cpu MHz");
    if (!mhz.empty()) {
      c.freq_mhz = std::atof(mhz.c_str());
      c.freq_source = "/proc/cpuinfo cpu MHz";
    }
  }
}

memory_info detect_memory() {
  memory_info m;
  std::ifstream f("/proc/meminfo");
  std::string key;
  std::int64_t kib = 0;
  std::string unit;
  while (f >> key >> kib) {
    std::getline(f, unit);
    if (key == "MemTotal:") m.total_mib = kib / 1024;
    if (key == "MemAvailable:") m.available_mib = kib / 1024;
  }
  return m;
}

}  // namespace

machine_info detect_machine() {
  machine_info m;
  detect_features(m.cpu);
  detect_topology(m.cpu);
  m.memory = detect_memory();
  utsname u{};
  if (uname(&u) == 0) {
    m.os.name = u.sysname;
    m.os.release = u.release;
  }
  char host[256] = {};
  if (gethostname(host, sizeof host - 1) == 0) m.os.hostname = host;
  return m;
}

}  // namespace keel::envelope
