// tools/envelope/machine.hpp — what keel-envelope learns about the machine it runs on: the CPU
// (model, ISA features the OS has enabled, cores, caches, clock), memory, the operating system,
// and the accelerators keel can use (Vulkan devices, configured NPUs).
//
// Sources: cpuid and xgetbv on x86-64 (a feature counts only when the OS saves its registers:
// AVX-512 listed by cpuid but off in XCR0 is reported as disabled), getauxval(AT_HWCAP) on
// aarch64; /proc/cpuinfo for the model name and clock; /sys/devices/system/cpu for online CPUs,
// core topology and caches; /proc/meminfo; uname; sched_getaffinity for the CPUs this process may
// use. Anything unreadable is reported as unknown (0 or empty), never guessed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace keel::envelope {

struct cache_info {
  int level = 0;
  std::string type;  // "Data", "Instruction", "Unified"
  std::int64_t size_kib = 0;
  int shared_by = 1;  // logical CPUs sharing one instance
  int line_bytes = 0;
};

struct isa_feature {
  std::string name;    // "avx2", "avx512_vnni", "asimddp", ...
  bool usable = true;  // false: the CPU has it but the OS has not enabled its registers
};

struct cpu_info {
  std::string arch;    // "x86-64", "aarch64", ...
  std::string vendor;  // "GenuineIntel", "AuthenticAMD", or the Arm implementer
  std::string model;   // "Intel(R) Xeon(R) Processor"
  std::vector<isa_feature> features;
  int logical_cpus = 0;    // online
  int physical_cores = 0;  // distinct (package, core) pairs among them; 0 if unknown
  int usable_cpus = 0;     // in this process's affinity mask
  double freq_mhz = 0;     // max from cpufreq, else /proc/cpuinfo's current value; 0 if unknown
  std::string freq_source;
  std::vector<cache_info> caches;
  bool hypervisor = false;

  bool has(const std::string& feature) const;          // present and usable
  std::int64_t cache_kib(int level, bool data) const;  // size of one instance; 0 if none
  int cache_shared_by(int level, bool data) const;
};

struct memory_info {
  std::int64_t total_mib = 0;
  std::int64_t available_mib = 0;
};

struct os_info {
  std::string name;     // "Linux"
  std::string release;  // kernel release
  std::string hostname;
};

struct machine_info {
  cpu_info cpu;
  memory_info memory;
  os_info os;
};

machine_info detect_machine();

}  // namespace keel::envelope
