// tools/envelope/ceilings.cpp — the ceiling loops and their timing (see ceilings.hpp).
#include "ceilings.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <thread>

#include "common.hpp"
#include "keel/kernels/gemm_i8/amx.hpp"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace keel::envelope {

namespace {

// ---- arithmetic loops ------------------------------------------------------------------------
// Each runs `iterations` of a fixed block and returns the operations it did. Only the
// accumulators carry a dependency from one iteration to the next.

#if defined(__x86_64__)

// AVX2 int8: the sequence keel's AVX2 kernels use. Per step, vpmaddubsw multiplies 32 u8 x s8
// pairs and adds neighbours into 16 int16, vpmaddwd adds those pairs into 8 int32 (against int16
// ones), vpaddd accumulates: 32 MACs. Both multiplies issue on the same two ports on Intel cores
// since Haswell, so one step per cycle is the peak. Six independent steps per iteration keep
// both ports busy through the 5-cycle multiply latencies.
constexpr std::int64_t kAvx2Int8OpsPerIteration = 6 * 32 * 2;

__attribute__((target("avx2"))) std::int64_t int8_avx2(std::int64_t iterations) {
  if (iterations <= 0) return 0;
  std::int64_t n = iterations;
  // clang-format off
  __asm__ volatile(
      "vpcmpeqd   %%ymm15, %%ymm15, %%ymm15\n\t"
      "vpsrlw     $15, %%ymm15, %%ymm13\n\t"       // int16 ones for vpmaddwd
      "vpsrlw     $9, %%ymm15, %%ymm14\n\t"        // operand bytes (values do not matter)
      "vpxor      %%ymm0, %%ymm0, %%ymm0\n\t"
      "vpxor      %%ymm1, %%ymm1, %%ymm1\n\t"
      "vpxor      %%ymm2, %%ymm2, %%ymm2\n\t"
      "vpxor      %%ymm3, %%ymm3, %%ymm3\n\t"
      "vpxor      %%ymm4, %%ymm4, %%ymm4\n\t"
      "vpxor      %%ymm5, %%ymm5, %%ymm5\n\t"
      "2:\n\t"
      "vpmaddubsw %%ymm14, %%ymm15, %%ymm6\n\t"
      "vpmaddubsw %%ymm14, %%ymm15, %%ymm7\n\t"
      "vpmaddubsw %%ymm14, %%ymm15, %%ymm8\n\t"
      "vpmaddubsw %%ymm14, %%ymm15, %%ymm9\n\t"
      "vpmaddubsw %%ymm14, %%ymm15, %%ymm10\n\t"
      "vpmaddubsw %%ymm14, %%ymm15, %%ymm11\n\t"
      "vpmaddwd   %%ymm13, %%ymm6, %%ymm6\n\t"
      "vpmaddwd   %%ymm13, %%ymm7, %%ymm7\n\t"
      "vpmaddwd   %%ymm13, %%ymm8, %%ymm8\n\t"
      "vpmaddwd   %%ymm13, %%ymm9, %%ymm9\n\t"
      "vpmaddwd   %%ymm13, %%ymm10, %%ymm10\n\t"
      "vpmaddwd   %%ymm13, %%ymm11, %%ymm11\n\t"
      "vpaddd     %%ymm6, %%ymm0, %%ymm0\n\t"
      "vpaddd     %%ymm7, %%ymm1, %%ymm1\n\t"
      "vpaddd     %%ymm8, %%ymm2, %%ymm2\n\t"
      "vpaddd     %%ymm9, %%ymm3, %%ymm3\n\t"
      "vpaddd     %%ymm10, %%ymm4, %%ymm4\n\t"
      "vpaddd     %%ymm11, %%ymm5, %%ymm5\n\t"
      "sub        $1, %[n]\n\t"
      "jnz        2b\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "xmm13", "xmm14", "xmm15", "cc");
  // clang-format on
  return iterations * kAvx2Int8OpsPerIteration;
}

// AVX-512 VNNI int8: vpdpbusd multiplies 64 u8 x s8 pairs, sums them in fours and accumulates
// into 16 int32 lanes: 64 MACs in one instruction. Up to two issue per cycle on server cores
// (latency 5): ten independent accumulators.
constexpr std::int64_t kVnniInt8OpsPerIteration = 10 * 64 * 2;

__attribute__((target("avx512f,avx512vnni"))) std::int64_t int8_vnni512(std::int64_t iterations) {
  if (iterations <= 0) return 0;
  std::int64_t n = iterations;
  // clang-format off
  __asm__ volatile(
      "vpternlogd $0xff, %%zmm11, %%zmm11, %%zmm11\n\t"
      "vpsrld     $9, %%zmm11, %%zmm10\n\t"
      "vpxord     %%zmm0, %%zmm0, %%zmm0\n\t"
      "vpxord     %%zmm1, %%zmm1, %%zmm1\n\t"
      "vpxord     %%zmm2, %%zmm2, %%zmm2\n\t"
      "vpxord     %%zmm3, %%zmm3, %%zmm3\n\t"
      "vpxord     %%zmm4, %%zmm4, %%zmm4\n\t"
      "vpxord     %%zmm5, %%zmm5, %%zmm5\n\t"
      "vpxord     %%zmm6, %%zmm6, %%zmm6\n\t"
      "vpxord     %%zmm7, %%zmm7, %%zmm7\n\t"
      "vpxord     %%zmm8, %%zmm8, %%zmm8\n\t"
      "vpxord     %%zmm9, %%zmm9, %%zmm9\n\t"
      "2:\n\t"
      "vpdpbusd   %%zmm11, %%zmm10, %%zmm0\n\t"
      "vpdpbusd   %%zmm11, %%zmm10, %%zmm1\n\t"
      "vpdpbusd   %%zmm11, %%zmm10, %%zmm2\n\t"
      "vpdpbusd   %%zmm11, %%zmm10, %%zmm3\n\t"
      "vpdpbusd   %%zmm11, %%zmm10, %%zmm4\n\t"
      "vpdpbusd   %%zmm11, %%zmm10, %%zmm5\n\t"
      "vpdpbusd   %%zmm11, %%zmm10, %%zmm6\n\t"
      "vpdpbusd   %%zmm11, %%zmm10, %%zmm7\n\t"
      "vpdpbusd   %%zmm11, %%zmm10, %%zmm8\n\t"
      "vpdpbusd   %%zmm11, %%zmm10, %%zmm9\n\t"
      "sub        $1, %[n]\n\t"
      "jnz        2b\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "cc");
  // clang-format on
  return iterations * kVnniInt8OpsPerIteration;
}

#if defined(KEEL_GEMM_I8_HAVE_AMX)
// AMX-INT8: the tile unit's peak loop of keel's AMX kernel header (tdpbusd on full tiles).
std::int64_t int8_amx(std::int64_t iterations) {
  return keel::kernels::gemm_i8::amx::peak_loop(iterations);
}
#endif

// f32 FMA, 256-bit: ten independent vfmadd231ps (latency 4, two ports: eight would just cover
// it). acc += 1.0 * 0.0 keeps every value zero, so no denormal ever slows a lane.
constexpr std::int64_t kAvx2FmaFlopsPerIteration = 10 * 8 * 2;

__attribute__((target("avx2,fma"))) std::int64_t f32_fma256(std::int64_t iterations) {
  if (iterations <= 0) return 0;
  std::int64_t n = iterations;
  // clang-format off
  __asm__ volatile(
      "vxorps     %%ymm11, %%ymm11, %%ymm11\n\t"   // 0.0
      "vpcmpeqd   %%ymm10, %%ymm10, %%ymm10\n\t"
      "vpslld     $25, %%ymm10, %%ymm10\n\t"
      "vpsrld     $2, %%ymm10, %%ymm10\n\t"        // 0x3F800000: 1.0
      "vxorps     %%ymm0, %%ymm0, %%ymm0\n\t"
      "vxorps     %%ymm1, %%ymm1, %%ymm1\n\t"
      "vxorps     %%ymm2, %%ymm2, %%ymm2\n\t"
      "vxorps     %%ymm3, %%ymm3, %%ymm3\n\t"
      "vxorps     %%ymm4, %%ymm4, %%ymm4\n\t"
      "vxorps     %%ymm5, %%ymm5, %%ymm5\n\t"
      "vxorps     %%ymm6, %%ymm6, %%ymm6\n\t"
      "vxorps     %%ymm7, %%ymm7, %%ymm7\n\t"
      "vxorps     %%ymm8, %%ymm8, %%ymm8\n\t"
      "vxorps     %%ymm9, %%ymm9, %%ymm9\n\t"
      "2:\n\t"
      "vfmadd231ps %%ymm11, %%ymm10, %%ymm0\n\t"
      "vfmadd231ps %%ymm11, %%ymm10, %%ymm1\n\t"
      "vfmadd231ps %%ymm11, %%ymm10, %%ymm2\n\t"
      "vfmadd231ps %%ymm11, %%ymm10, %%ymm3\n\t"
      "vfmadd231ps %%ymm11, %%ymm10, %%ymm4\n\t"
      "vfmadd231ps %%ymm11, %%ymm10, %%ymm5\n\t"
      "vfmadd231ps %%ymm11, %%ymm10, %%ymm6\n\t"
      "vfmadd231ps %%ymm11, %%ymm10, %%ymm7\n\t"
      "vfmadd231ps %%ymm11, %%ymm10, %%ymm8\n\t"
      "vfmadd231ps %%ymm11, %%ymm10, %%ymm9\n\t"
      "sub        $1, %[n]\n\t"
      "jnz        2b\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "cc");
  // clang-format on
  return iterations * kAvx2FmaFlopsPerIteration;
}

// f32 FMA, 512-bit: the same with zmm registers (cores with two 512-bit FMA units double the
// 256-bit rate; those with one do not).
constexpr std::int64_t kAvx512FmaFlopsPerIteration = 10 * 16 * 2;

__attribute__((target("avx512f"))) std::int64_t f32_fma512(std::int64_t iterations) {
  if (iterations <= 0) return 0;
  std::int64_t n = iterations;
  // clang-format off
  __asm__ volatile(
      "vpxord     %%zmm11, %%zmm11, %%zmm11\n\t"
      "vpternlogd $0xff, %%zmm10, %%zmm10, %%zmm10\n\t"
      "vpslld     $25, %%zmm10, %%zmm10\n\t"
      "vpsrld     $2, %%zmm10, %%zmm10\n\t"
      "vpxord     %%zmm0, %%zmm0, %%zmm0\n\t"
      "vpxord     %%zmm1, %%zmm1, %%zmm1\n\t"
      "vpxord     %%zmm2, %%zmm2, %%zmm2\n\t"
      "vpxord     %%zmm3, %%zmm3, %%zmm3\n\t"
      "vpxord     %%zmm4, %%zmm4, %%zmm4\n\t"
      "vpxord     %%zmm5, %%zmm5, %%zmm5\n\t"
      "vpxord     %%zmm6, %%zmm6, %%zmm6\n\t"
      "vpxord     %%zmm7, %%zmm7, %%zmm7\n\t"
      "vpxord     %%zmm8, %%zmm8, %%zmm8\n\t"
      "vpxord     %%zmm9, %%zmm9, %%zmm9\n\t"
      "2:\n\t"
      "vfmadd231ps %%zmm11, %%zmm10, %%zmm0\n\t"
      "vfmadd231ps %%zmm11, %%zmm10, %%zmm1\n\t"
      "vfmadd231ps %%zmm11, %%zmm10, %%zmm2\n\t"
      "vfmadd231ps %%zmm11, %%zmm10, %%zmm3\n\t"
      "vfmadd231ps %%zmm11, %%zmm10, %%zmm4\n\t"
      "vfmadd231ps %%zmm11, %%zmm10, %%zmm5\n\t"
      "vfmadd231ps %%zmm11, %%zmm10, %%zmm6\n\t"
      "vfmadd231ps %%zmm11, %%zmm10, %%zmm7\n\t"
      "vfmadd231ps %%zmm11, %%zmm10, %%zmm8\n\t"
      "vfmadd231ps %%zmm11, %%zmm10, %%zmm9\n\t"
      "sub        $1, %[n]\n\t"
      "jnz        2b\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
        "xmm10", "xmm11", "cc");
  // clang-format on
  return iterations * kAvx512FmaFlopsPerIteration;
}

// Streaming read, 256-bit loads into four independent 64-bit lane sums.
__attribute__((target("avx2"))) std::uint64_t read_sum_avx2(const std::byte* p,
                                                            std::int64_t bytes) {
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  std::int64_t i = 0;
  for (; i + 128 <= bytes; i += 128) {
    s0 = _mm256_add_epi64(s0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    s1 = _mm256_add_epi64(s1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    s2 = _mm256_add_epi64(s2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    s3 = _mm256_add_epi64(s3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  alignas(32) std::uint64_t lane[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lane),
                     _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3)));
  return lane[0] + lane[1] + lane[2] + lane[3];
}

#endif  // __x86_64__

// Portable int8 dot products over two 4 KiB arrays that stay in L1: what the compiler makes of
// plain C++ (vectorised at -O2 by GCC 12 and Clang). Not a hardware peak: the stand-in where
// keel-envelope has no assembly loop for the ISA (shortcoming: aarch64 SDOT/I8MM loops to come).
std::int64_t int8_portable(std::int64_t iterations) {
  alignas(64) static std::int8_t a[4096], b[4096];
  static const bool filled = [] {
    for (int i = 0; i < 4096; ++i) {
      a[i] = static_cast<std::int8_t>(i * 7);
      b[i] = static_cast<std::int8_t>(i * 13);
    }
    return true;
  }();
  (void)filled;
  std::int32_t acc = 0;
  for (std::int64_t it = 0; it < iterations; ++it) {
    std::int32_t s = 0;
    for (int i = 0; i < 4096; ++i) s += a[i] * b[i];
    acc += s;
    __asm__ volatile("" : "+r"(acc));  // keeps every iteration
  }
  return iterations * 4096 * 2;
}

std::int64_t f32_portable(std::int64_t iterations) {
  alignas(64) static float a[1024], b[1024];
  float acc = 0;
  for (std::int64_t it = 0; it < iterations; ++it) {
    float s = 0;
    for (int i = 0; i < 1024; ++i) s += a[i] * b[i];
    acc += s;
    __asm__ volatile("" : "+m"(acc));
  }
  return iterations * 1024 * 2;
}

std::uint64_t read_sum_portable(const std::byte* p, std::int64_t bytes) {
  const auto* q = reinterpret_cast<const std::uint64_t*>(p);
  std::uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (std::int64_t i = 0; i + 4 <= bytes / 8; i += 4) {
    s0 += q[i];
    s1 += q[i + 1];
    s2 += q[i + 2];
    s3 += q[i + 3];
  }
  return s0 + s1 + s2 + s3;
}

// ---- teams -----------------------------------------------------------------------------------

// Runs job(thread_index) on `threads` threads released together; returns the wall time from the
// release to the last one's end.
template <class Job>
double run_team(int threads, const Job& job) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> team;
  team.reserve(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    team.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      job(t);
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  const auto t0 = clock_type::now();
  go.store(true, std::memory_order_release);
  for (std::thread& th : team) th.join();
  return seconds_since(t0);
}

using compute_loop = std::int64_t (*)(std::int64_t);

// Best rate (operations per second) of `loop` on a team of `threads` within about `seconds`.
double measure_compute(compute_loop loop, int threads, double seconds) {
  // ---- calibrate: iterations for about 5 ms on one thread ----
  std::int64_t iterations = 1024;
  for (;;) {
    const auto t0 = clock_type::now();
    loop(iterations);
    const double dt = seconds_since(t0);
    if (dt > 0.002 || iterations > (std::int64_t{1} << 40)) {
      iterations = std::max<std::int64_t>(1, static_cast<std::int64_t>(iterations * 0.005 / dt));
      break;
    }
    iterations *= 4;
  }
  // ---- short rounds (a twentieth of the budget, at least 2 ms); keep the best ----
  // On a shared machine a round that the scheduler preempts is slow; many short rounds give
  // some a chance to run undisturbed, and the best of them is the ceiling.
  const double round_s = std::max(0.002, seconds / 20);
  const std::int64_t per_round =
      std::max<std::int64_t>(1, static_cast<std::int64_t>(iterations * round_s / 0.005));
  double best = 0;
  const auto start = clock_type::now();
  do {
    std::vector<std::int64_t> ops(static_cast<std::size_t>(threads));
    const double dt =
        run_team(threads, [&](int t) { ops[static_cast<std::size_t>(t)] = loop(per_round); });
    double total = 0;
    for (std::int64_t o : ops) total += static_cast<double>(o);
    if (dt > 0) best = std::max(best, total / dt);
  } while (seconds_since(start) < seconds && !stop_requested());
  return best;
}

// Slice `index` of `threads` over `bytes`, in whole 4 KiB pages.
void slice(std::int64_t bytes, int threads, int index, std::int64_t& begin, std::int64_t& size) {
  const std::int64_t pages = bytes >> 12;
  const std::int64_t first = pages * index / threads, last = pages * (index + 1) / threads;
  begin = first << 12;
  size = (last - first) << 12;
}

}  // namespace

std::int64_t llc_bytes(const machine_info& m) {
  std::int64_t llc_kib = 0;
  for (const cache_info& c : m.cpu.caches) {
    if (c.type != "Instruction") llc_kib = std::max(llc_kib, c.size_kib);
  }
  return llc_kib * 1024;
}

std::int64_t stream_bytes_for(const machine_info& m, const ceiling_options& o) {
  if (o.stream_bytes > 0) return o.stream_bytes;
  std::int64_t bytes =
      std::clamp<std::int64_t>(2 * llc_bytes(m), std::int64_t{64} << 20, std::int64_t{1} << 30);
  // Never more than a quarter of the memory that is free now.
  if (m.memory.available_mib > 0) {
    bytes = std::min(bytes, (m.memory.available_mib << 20) / 4);
  }
  return bytes & ~std::int64_t{4095};
}

namespace {

struct compute_kind {
  const char* kind;
  const char* isa;
  const char* method;
  compute_loop loop;
  const char* unit;
};

std::vector<compute_kind> compute_kinds(const machine_info& m) {
  std::vector<compute_kind> v;
#if defined(__x86_64__)
  if (m.cpu.has("avx2")) {
    v.push_back({"int8_mac", "avx2",
                 "vpmaddubsw + vpmaddwd + vpaddd, 6 chains (keel's AVX2 sequence)", int8_avx2,
                 "GOPS"});
  }
  if (m.cpu.has("avx512_vnni") && m.cpu.has("avx512f")) {
    v.push_back({"int8_mac", "avx512_vnni", "vpdpbusd zmm, 10 chains", int8_vnni512, "GOPS"});
  }
#if defined(KEEL_GEMM_I8_HAVE_AMX)
  if (m.cpu.has("amx_int8") && keel::kernels::gemm_i8::amx::missing_feature() == nullptr) {
    v.push_back({"int8_mac", "amx_int8", "tdpbusd, 4 tiles of 16 x 16 int32", int8_amx, "GOPS"});
  }
#endif
  if (m.cpu.has("fma")) {
    v.push_back({"f32_fma", "avx2", "vfmadd231ps ymm, 10 chains", f32_fma256, "GFLOPS"});
  }
  if (m.cpu.has("avx512f")) {
    v.push_back({"f32_fma", "avx512f", "vfmadd231ps zmm, 10 chains", f32_fma512, "GFLOPS"});
  }
#else
  (void)m;
#endif
  if (v.empty() || v.front().kind != std::string("int8_mac")) {
    v.insert(v.begin(), {"int8_mac", "portable", "C++ int8 dot product loop (compiler-vectorised)",
                         int8_portable, "GOPS"});
  }
  bool has_f32 = false;
  for (const compute_kind& k : v) has_f32 = has_f32 || k.kind == std::string("f32_fma");
  if (!has_f32) {
    v.push_back({"f32_fma", "portable", "C++ f32 dot product loop (compiler-vectorised)",
                 f32_portable, "GFLOPS"});
  }
  return v;
}

std::vector<int> team_sizes(int threads) {
  return threads > 1 ? std::vector<int>{1, threads} : std::vector<int>{1};
}

}  // namespace

int ceiling_count(const machine_info& m, const ceiling_options& o) {
  const auto teams = static_cast<int>(team_sizes(o.threads).size());
  return (static_cast<int>(compute_kinds(m).size()) + 2) * teams;
}

std::vector<ceiling> measure_ceilings(const machine_info& m, const ceiling_options& o,
                                      const std::function<void(const std::string&)>& on_step) {
  std::vector<ceiling> out;
  const std::vector<int> teams = team_sizes(o.threads);

  // ---- compute ----
  for (const compute_kind& k : compute_kinds(m)) {
    for (int t : teams) {
      if (stop_requested()) return out;
      ceiling c;
      c.kind = k.kind;
      c.isa = k.isa;
      c.method = k.method;
      c.threads = t;
      c.unit = k.unit;
      c.id = fmt::format("{}.{}.{}t", c.kind, c.isa, t);
      on_step(c.id);
      const auto t0 = clock_type::now();
      c.value = measure_compute(k.loop, t, o.seconds_each) * 1e-9;
      c.seconds = seconds_since(t0);
      out.push_back(c);
    }
  }

  // ---- memory: one buffer (two halves for the copy), touched before any timing ----
  const std::int64_t bytes = stream_bytes_for(m, o);
  aligned_bytes buf;
  if (!buf.allocate(bytes)) return out;  // no room: the report says the ceiling is missing
  std::memset(buf.data(), 1, static_cast<std::size_t>(bytes));
#if defined(__x86_64__)
  const bool avx2 = m.cpu.has("avx2");
#else
  const bool avx2 = false;
#endif
  for (const bool copy : {false, true}) {
    for (int t : teams) {
      if (stop_requested()) return out;
      ceiling c;
      c.kind = copy ? "mem_copy" : "mem_read";
      c.isa = copy ? "memcpy" : (avx2 ? "avx2" : "portable");
      c.method = copy ? "memcpy of one half of the buffer into the other, read + write counted"
                      : "sum of 64-bit lanes over the buffer, each thread its own slice";
      c.threads = t;
      c.unit = "GB/s";
      c.buffer_bytes = bytes;
      if (bytes < 2 * llc_bytes(m)) {
        c.method += " (buffer smaller than twice the last-level cache: a cache figure, not DRAM)";
      }
      c.id = fmt::format("{}.{}.{}t", c.kind, c.isa, t);
      on_step(c.id);
      const auto t0 = clock_type::now();
      // Each round streams one window of an eighth of the span, the windows taken in turn: by
      // the time a window comes round again the seven others have pushed it out of the
      // last-level cache (the span is twice its size), and short rounds, like the compute
      // ones, let some run undisturbed on a shared machine.
      const std::int64_t span = copy ? bytes / 2 : bytes;
      const std::int64_t window = std::max<std::int64_t>(4096, (span / 8) & ~std::int64_t{4095});
      const std::int64_t windows = std::max<std::int64_t>(1, span / window);
      std::vector<std::uint64_t> sums(static_cast<std::size_t>(t));
      double best = 0;
      std::int64_t rounds = 0;
      do {
        const std::int64_t base = (rounds % windows) * window;
        const double dt = run_team(t, [&](int i) {
          std::int64_t begin = 0, size = 0;
          slice(window, t, i, begin, size);
          begin += base;
          if (copy) {
            std::memcpy(buf.data() + span + begin, buf.data() + begin,
                        static_cast<std::size_t>(size));
          } else {
#if defined(__x86_64__)
            sums[static_cast<std::size_t>(i)] = avx2 ? read_sum_avx2(buf.data() + begin, size)
                                                     : read_sum_portable(buf.data() + begin, size);
#else
            sums[static_cast<std::size_t>(i)] = read_sum_portable(buf.data() + begin, size);
#endif
          }
        });
        __asm__ volatile("" : : "r"(sums.data()) : "memory");
        const double moved = copy ? 2.0 * static_cast<double>(window) : static_cast<double>(window);
        // The first pass over each window is not timed: it may still find the window cached
        // from the memset that touched the buffer.
        if (dt > 0 && rounds >= windows) best = std::max(best, moved / dt);
        ++rounds;
      } while ((rounds < 2 * windows || seconds_since(t0) < o.seconds_each) && !stop_requested());
      c.value = best * 1e-9;
      c.seconds = seconds_since(t0);
      out.push_back(c);
    }
  }
  return out;
}

roof cpu_roof(const std::vector<ceiling>& c, int threads) {
  // The best over teams of at most `threads`: a team can always leave cores idle, so a smaller
  // team's better round (a noisy machine preempts large teams more often) bounds the roof too.
  roof r;
  for (const ceiling& x : c) {
    if (x.threads > threads) continue;
    if (x.kind == "int8_mac" && x.value > r.int8_gops) {
      r.int8_gops = x.value;
      r.int8_from = x.id;
    } else if (x.kind == "f32_fma" && x.value > r.f32_gflops) {
      r.f32_gflops = x.value;
      r.f32_from = x.id;
    } else if (x.kind == "mem_read" && x.value > r.mem_gbs) {
      r.mem_gbs = x.value;
      r.mem_from = x.id;
    }
  }
  return r;
}

}  // namespace keel::envelope
