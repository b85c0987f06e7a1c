// tools/envelope/ceilings.hpp — what this machine's CPU can do at best: the int8 multiply-
// accumulate rate, the f32 FMA rate, and the memory read and copy bandwidth, on one core and on
// all the cores keel-envelope uses. Every op's achieved rate is reported as a share of these.
//
// How (ceilings.cpp): register-only loops in inline assembly for the arithmetic ceilings (the
// compiler cannot hoist or drop an instruction it does not see), with enough independent
// accumulators to cover the latency of each instruction on today's cores; streaming sums and
// memcpy over a buffer larger than the last-level cache for bandwidth. Each team of threads runs
// the same loop (or its own slice of the buffer) and is timed by wall clock from a common start;
// the best of several rounds is kept, as a noisy machine only ever makes a round slower.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "machine.hpp"

namespace keel::envelope {

struct ceiling {
  std::string id;      // "int8_mac.avx2.2t": kind.method.threads
  std::string kind;    // "int8_mac", "f32_fma", "mem_read", "mem_copy"
  std::string isa;     // "avx2", "avx512_vnni", "portable"
  std::string method;  // what the loop does, in words
  int threads = 1;
  double value = 0;  // GOPS (an int8 MAC is 2 ops), GFLOPS (an FMA is 2), GB/s
  std::string unit;
  std::int64_t buffer_bytes = 0;  // memory ceilings: the streamed buffer
  double seconds = 0;             // spent measuring it
};

struct ceiling_options {
  int threads = 1;                // the all-core team
  double seconds_each = 0.25;     // measuring time per ceiling
  std::int64_t stream_bytes = 0;  // 0: twice the last-level cache, 64 MiB .. 1 GiB
};

// Runs every ceiling this CPU supports; `on_step(label)` is called before each (for progress).
// Stops early (returning what it has) when stop_requested().
std::vector<ceiling> measure_ceilings(const machine_info& m, const ceiling_options& o,
                                      const std::function<void(const std::string&)>& on_step);

// How many ceilings measure_ceilings() will run, for a progress total.
int ceiling_count(const machine_info& m, const ceiling_options& o);

// The size of the last-level cache (one instance), 0 when unknown.
std::int64_t llc_bytes(const machine_info& m);

// The bytes streamed for the bandwidth ceilings under `o` on `m`.
std::int64_t stream_bytes_for(const machine_info& m, const ceiling_options& o);

// The roof of one unit: its best compute rates and bandwidth, and where each came from.
struct roof {
  double int8_gops = 0;
  double f32_gflops = 0;
  double mem_gbs = 0;
  std::string int8_from, f32_from, mem_from;  // ceiling ids, or the model's parameter
};

// The CPU's roof at `threads` threads: the best int8 and f32 ceilings and read bandwidth measured
// with at most that many threads.
roof cpu_roof(const std::vector<ceiling>& c, int threads);

}  // namespace keel::envelope
