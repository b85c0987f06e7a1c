// bench/bench_ceiling.cpp — this machine's ceilings, so every matmul row can be read as a share of
// what the hardware allows:
//
//   int8_mac/ceiling/avx2_<t>t         peak int8 multiply-accumulate rate of the AVX2 sequence
//                                      keel's kernels use (vpmaddubsw, vpmaddwd, vpaddd), ops/s
//   int8_mac/ceiling/avx512vnni_<t>t   the same for AVX-512 VNNI's vpdpbusd, where the CPU has it
//   int8_mac/ceiling/amx_<t>t          the same for AMX-INT8's tdpbusd on full 16 x 16 tiles, where
//                                      the CPU and the OS allow AMX
//   mem_read/ceiling/<method>_<t>t     streaming read bandwidth from memory, bytes/s, by method:
//     avx2                             AVX2 loads, one stream
//     avx512_s8                        AVX-512 loads from eight regions of the slice side by side
//     avx512_b4x32k_pf1k               AVX-512 loads from four adjacent 32 KiB blocks side by
//                                      side, prefetcht0 1 KiB ahead of each (the access pattern
//                                      of keel's AVX-512 VNNI gemv over its weight panels)
//   With KEEL_BENCH_READ_METHODS=all, more methods (kReadMethods below: one stream with and
//   without prefetch, 2 to 8 streams, prefetch distances, prefetchnta). Measured here (Xeon under
//   KVM, 2 vCPUs, 2 GiB buffer, shared machine, GB/s per CPU-second at 1 thread; wall-clock at
//   2): one stream 11.5-12.2 (1t), 19.2 (2t); one stream with a 1 KiB prefetch 11.7-13.3, 23.1;
//   eight streams 12.9-13.2, 25.5; four 32 KiB blocks with a 1 KiB prefetch 12.8-13.3, 25.5;
//   prefetchnta 4.3-7.5 (it bypasses the L2 that the hardware prefetcher fills). One core's read
//   rate is bounded by the misses it keeps in flight, which more streams raise. The default rows
//   are the two fastest and the AVX2 one (for CPUs without AVX-512); make_table.py reads the
//   fastest row of a thread count as the ceiling.
//   mem_copy/ceiling/memcpy_<t>t       copy bandwidth (memcpy), bytes/s counting read + write
//
// <t> is 1 and every core. Multi-thread rows split the work over a team of threads (each core
// runs the same loop, or reads its own slice) and time the whole team by wall clock.
//
// Why register-only inline assembly for the MAC rows: with intrinsics the compiler sees that the
// multiplies of loop-invariant registers are invariant and hoists them out of the loop, leaving a
// loop of adds. In asm each instruction stays; only the accumulators carry a dependency from one
// iteration to the next, so the loop runs at the throughput of the multiply ports.
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "keel/kernels/gemm_i8/amx.hpp"
#include "peers/common.hpp"

namespace keel_bench {
namespace {

// ---- int8 MAC ceiling: AVX2 --------------------------------------------------------------------
// One step: t = vpmaddubsw(a, b) (32 u8 x s8 products, pairwise added into 16 int16),
// t = vpmaddwd(t, ones) (pairs of int16 into 8 int32), acc += t. 32 MACs = 64 ops per step.
// Intel cores run both multiplies on the same two 256-bit vector ports, so the peak is one step
// (32 MACs) per cycle per core (measured here: ~170 GOPS per CPU-second, i.e. ~2.6 GHz; the
// issue's 392 GOPS on both cores is ~3.1 GHz). Eight accumulators: the only loop-carried chain is
// the 1-cycle vpaddd, and eight independent steps in flight cover the multiplies' latencies.
constexpr std::int64_t kAvx2OpsPerBlock = 8 * 64;

__attribute__((target("avx2"))) void avx2_mac_loop(std::int64_t blocks) {
  // clang-format off
  asm volatile(
      "vpcmpeqb %%ymm15, %%ymm15, %%ymm15\n\t"  // ymm15 = all ones bytes
      "vpabsb   %%ymm15, %%ymm13\n\t"           // ymm13 = a: u8 1s
      "vpsrlw   $15, %%ymm15, %%ymm14\n\t"      // ymm14 = int16 1s (the vpmaddwd ones)
      "vmovdqa  %%ymm13, %%ymm12\n\t"           // ymm12 = b
      "vpxor    %%ymm0, %%ymm0, %%ymm0\n\t"
      "vpxor    %%ymm1, %%ymm1, %%ymm1\n\t"
      "vpxor    %%ymm2, %%ymm2, %%ymm2\n\t"
      "vpxor    %%ymm3, %%ymm3, %%ymm3\n\t"
      "vpxor    %%ymm4, %%ymm4, %%ymm4\n\t"
      "vpxor    %%ymm5, %%ymm5, %%ymm5\n\t"
      "vpxor    %%ymm6, %%ymm6, %%ymm6\n\t"
      "vpxor    %%ymm7, %%ymm7, %%ymm7\n\t"
      "1:\n\t"
      "vpmaddubsw %%ymm12, %%ymm13, %%ymm8\n\t"
      "vpmaddwd   %%ymm14, %%ymm8, %%ymm8\n\t"
      "vpaddd     %%ymm8, %%ymm0, %%ymm0\n\t"
      "vpmaddubsw %%ymm12, %%ymm13, %%ymm9\n\t"
      "vpmaddwd   %%ymm14, %%ymm9, %%ymm9\n\t"
      "vpaddd     %%ymm9, %%ymm1, %%ymm1\n\t"
      "vpmaddubsw %%ymm12, %%ymm13, %%ymm10\n\t"
      "vpmaddwd   %%ymm14, %%ymm10, %%ymm10\n\t"
      "vpaddd     %%ymm10, %%ymm2, %%ymm2\n\t"
      "vpmaddubsw %%ymm12, %%ymm13, %%ymm11\n\t"
      "vpmaddwd   %%ymm14, %%ymm11, %%ymm11\n\t"
      "vpaddd     %%ymm11, %%ymm3, %%ymm3\n\t"
      "vpmaddubsw %%ymm12, %%ymm13, %%ymm8\n\t"
      "vpmaddwd   %%ymm14, %%ymm8, %%ymm8\n\t"
      "vpaddd     %%ymm8, %%ymm4, %%ymm4\n\t"
      "vpmaddubsw %%ymm12, %%ymm13, %%ymm9\n\t"
      "vpmaddwd   %%ymm14, %%ymm9, %%ymm9\n\t"
      "vpaddd     %%ymm9, %%ymm5, %%ymm5\n\t"
      "vpmaddubsw %%ymm12, %%ymm13, %%ymm10\n\t"
      "vpmaddwd   %%ymm14, %%ymm10, %%ymm10\n\t"
      "vpaddd     %%ymm10, %%ymm6, %%ymm6\n\t"
      "vpmaddubsw %%ymm12, %%ymm13, %%ymm11\n\t"
      "vpmaddwd   %%ymm14, %%ymm11, %%ymm11\n\t"
      "vpaddd     %%ymm11, %%ymm7, %%ymm7\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(blocks)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc");
  // clang-format on
}

// ---- int8 MAC ceiling: AVX-512 VNNI ------------------------------------------------------------
// One vpdpbusd on zmm: 64 u8 x s8 products summed in fours into 16 int32 accumulators, 128 ops.
// Twelve independent accumulators cover a latency of several cycles at up to two instructions
// per cycle (Xeons with two 512-bit multiply units; measured here: about 4.3x the AVX2 rate per
// core, so this one has two).
constexpr std::int64_t kVnniOpsPerBlock = 12 * 128;

__attribute__((target("avx512f,avx512vnni"))) void vnni_mac_loop(std::int64_t blocks) {
  // clang-format off
  asm volatile(
      "vpternlogd $0xff, %%zmm15, %%zmm15, %%zmm15\n\t"  // all ones
      "vpabsb     %%zmm15, %%zmm13\n\t"                  // a: u8 1s (needs avx512bw: see below)
      "vmovdqa64  %%zmm13, %%zmm14\n\t"                  // b
      "vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
      "vpxord %%zmm1, %%zmm1, %%zmm1\n\t"
      "vpxord %%zmm2, %%zmm2, %%zmm2\n\t"
      "vpxord %%zmm3, %%zmm3, %%zmm3\n\t"
      "vpxord %%zmm4, %%zmm4, %%zmm4\n\t"
      "vpxord %%zmm5, %%zmm5, %%zmm5\n\t"
      "vpxord %%zmm6, %%zmm6, %%zmm6\n\t"
      "vpxord %%zmm7, %%zmm7, %%zmm7\n\t"
      "vpxord %%zmm8, %%zmm8, %%zmm8\n\t"
      "vpxord %%zmm9, %%zmm9, %%zmm9\n\t"
      "vpxord %%zmm10, %%zmm10, %%zmm10\n\t"
      "vpxord %%zmm11, %%zmm11, %%zmm11\n\t"
      "1:\n\t"
      "vpdpbusd %%zmm14, %%zmm13, %%zmm0\n\t"
      "vpdpbusd %%zmm14, %%zmm13, %%zmm1\n\t"
      "vpdpbusd %%zmm14, %%zmm13, %%zmm2\n\t"
      "vpdpbusd %%zmm14, %%zmm13, %%zmm3\n\t"
      "vpdpbusd %%zmm14, %%zmm13, %%zmm4\n\t"
      "vpdpbusd %%zmm14, %%zmm13, %%zmm5\n\t"
      "vpdpbusd %%zmm14, %%zmm13, %%zmm6\n\t"
      "vpdpbusd %%zmm14, %%zmm13, %%zmm7\n\t"
      "vpdpbusd %%zmm14, %%zmm13, %%zmm8\n\t"
      "vpdpbusd %%zmm14, %%zmm13, %%zmm9\n\t"
      "vpdpbusd %%zmm14, %%zmm13, %%zmm10\n\t"
      "vpdpbusd %%zmm14, %%zmm13, %%zmm11\n\t"
      "dec %[n]\n\t"
      "jnz 1b\n\t"
      "vzeroupper\n\t"
      : [n] "+r"(blocks)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10",
        "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "cc");
  // clang-format on
}

bool has_vnni512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vnni");
}

// About 1e8 ops per thread per iteration: a few milliseconds at the expected rates, long enough
// that the two barrier waits of a team run are noise.
constexpr std::int64_t kMacOpsPerIteration = std::int64_t{1} << 27;

// ---- int8 MAC ceiling: AMX --------------------------------------------------------------------
// amx::peak_loop (keel/kernels/gemm_i8/amx.hpp): tdpbusd into four independent 16 x 16 C tiles,
// the operand tiles loaded once. This is the rate of 16-column tiles, which keel's AMX kernel
// runs too (it joins 8-column panels in pairs).
// 32 times kMacOpsPerIteration: about the same wall time per iteration at the AMX rate.
constexpr std::int64_t kAmxOpsPerIteration = std::int64_t{1} << 32;

void amx_ceiling(benchmark::State& state, int threads) {
#if defined(KEEL_GEMM_I8_HAVE_AMX)
  if (const char* why = keel::kernels::gemm_i8::amx::missing_feature()) {
    state.SkipWithError(why);
    return;
  }
  namespace amx = keel::kernels::gemm_i8::amx;
  const std::int64_t iterations = kAmxOpsPerIteration / amx::kPeakOpsPerIteration;
  team t(threads);
  const std::function<void(int)> job = [&](int) { amx::peak_loop(iterations); };
  for (auto _ : state) t.run(job);
  set_counters(state, static_cast<double>(iterations * amx::kPeakOpsPerIteration) * threads, 0.0,
               threads, 1);
#else
  (void)threads;
  state.SkipWithError("keel's AMX kernel is not built here (x86-64 Linux only)");
#endif
}

void mac_ceiling(benchmark::State& state, int threads, bool vnni) {
  if (vnni && !has_vnni512()) {
    state.SkipWithError("this CPU has no AVX-512 VNNI (avx512f + avx512bw + avx512vnni)");
    return;
  }
  if (!vnni && !__builtin_cpu_supports("avx2")) {
    state.SkipWithError("this CPU has no AVX2");
    return;
  }
  const std::int64_t per_block = vnni ? kVnniOpsPerBlock : kAvx2OpsPerBlock;
  // VNNI: 4 times the work, as it runs about 4 times the AVX2 rate (a 0.15 ms iteration let the
  // team's start and barrier show in the two-thread row).
  const std::int64_t blocks = kMacOpsPerIteration * (vnni ? 4 : 1) / per_block;
  team t(threads);
  const std::function<void(int)> job = [&](int) {
    vnni ? vnni_mac_loop(blocks) : avx2_mac_loop(blocks);
  };
  for (auto _ : state) t.run(job);
  const double ops = static_cast<double>(blocks * per_block) * threads;
  set_counters(state, ops, 0.0, threads, 1);
}

// ---- memory bandwidth --------------------------------------------------------------------------
// The buffer is four times the last-level cache (at least 256 MiB), or KEEL_BENCH_STREAM_MIB, so a
// pass finds nothing of itself left in any cache. Each thread reads (or copies) its own contiguous
// slice, as a GEMV's threads read their own columns' weights.
std::int64_t stream_bytes() {
  if (const char* env = std::getenv("KEEL_BENCH_STREAM_MIB")) {
    const long long mib = std::atoll(env);
    if (mib > 0) return static_cast<std::int64_t>(mib) << 20;
  }
  return std::max<std::int64_t>(4 * llc_bytes(), std::int64_t{256} << 20);
}

struct aligned_free {
  void operator()(void* p) const { std::free(p); }
};
using buffer = std::unique_ptr<std::uint8_t, aligned_free>;

buffer make_buffer(std::int64_t bytes) {
  auto* p = static_cast<std::uint8_t*>(std::aligned_alloc(64, static_cast<std::size_t>(bytes)));
  if (p != nullptr) std::memset(p, 1, static_cast<std::size_t>(bytes));  // fault every page in
  return buffer(p);
}

// Sums 64-bit lanes of [p, p + bytes): four independent accumulators, 128 bytes per step. The
// sum is returned so the compiler keeps the loads.
__attribute__((target("avx2"))) std::uint64_t read_sum(const std::uint8_t* p, std::int64_t bytes) {
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  for (std::int64_t i = 0; i + 128 <= bytes; i += 128) {
    s0 = _mm256_add_epi64(s0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    s1 = _mm256_add_epi64(s1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    s2 = _mm256_add_epi64(s2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    s3 = _mm256_add_epi64(s3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  const __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
  alignas(32) std::uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

// AVX-512 read kernels: what the fastest streaming read of this machine needs (see the header:
// the mem_read rows' methods). All of them sum 64-bit lanes into eight zmm accumulators; they
// differ in how many regions of the slice are read at once (Streams: 256 bytes of each per step)
// and where those regions lie, and in a software prefetch Prefetch bytes ahead of each stream (0:
// none; Nta: prefetchnta instead of prefetcht0). Block = 0: the slice cut into Streams contiguous
// parts, read side by side. Block > 0: the slice read in rounds of Streams adjacent blocks of
// Block bytes, side by side, as keel's AVX-512 VNNI gemv reads four adjacent weight panels (32
// KiB each at K = 4096).
// Streams regions of `part` bytes each, `part` apart from `base`, read side by side into s.
template <int Streams, int Prefetch, bool Nta>
__attribute__((target("avx512f"), always_inline)) inline void read_side_by_side(
    const std::uint8_t* base, std::int64_t part, __m512i (&s)[8]) {
  for (std::int64_t i = 0; i < part; i += 256) {
    for (int j = 0; j < Streams; ++j) {
      const std::uint8_t* q = base + j * part + i;
      if constexpr (Prefetch > 0) {
        for (int l = 0; l < 256; l += 64) {
          _mm_prefetch(reinterpret_cast<const char*>(q + Prefetch + l),
                       Nta ? _MM_HINT_NTA : _MM_HINT_T0);
        }
      }
      const int a = (j & 1) * 4;  // two sets of four accumulators
      s[a + 0] = _mm512_add_epi64(s[a + 0], _mm512_load_si512(q));
      s[a + 1] = _mm512_add_epi64(s[a + 1], _mm512_load_si512(q + 64));
      s[a + 2] = _mm512_add_epi64(s[a + 2], _mm512_load_si512(q + 128));
      s[a + 3] = _mm512_add_epi64(s[a + 3], _mm512_load_si512(q + 192));
    }
  }
}

template <int Streams, int Prefetch, bool Nta, std::int64_t Block = 0>
__attribute__((target("avx512f"))) std::uint64_t read_sum512(const std::uint8_t* p,
                                                            std::int64_t bytes) {
  __m512i s[8];
  for (auto& v : s) v = _mm512_setzero_si512();
  std::int64_t done = 0;  // bytes read side by side; the rest is the tail
  if constexpr (Block == 0) {
    const std::int64_t part = (bytes / Streams) & ~std::int64_t{255};  // whole steps per stream
    read_side_by_side<Streams, Prefetch, Nta>(p, part, s);
    done = part * Streams;
  } else {
    static_assert(Block % 256 == 0, "whole steps per block");
    for (; done + Streams * Block <= bytes; done += Streams * Block) {
      read_side_by_side<Streams, Prefetch, Nta>(p + done, Block, s);
    }
  }
  __m512i t = _mm512_setzero_si512();
  for (const auto& v : s) t = _mm512_add_epi64(t, v);
  // Not _mm512_reduce_add_epi64: GCC 12's version trips -Wuninitialized (GCC bug 105593).
  alignas(64) std::uint64_t lanes[8];
  _mm512_store_si512(lanes, t);
  std::uint64_t sum = 0;
  for (std::uint64_t v : lanes) sum += v;
  for (std::int64_t i = done; i < bytes; ++i) sum += p[i];  // the tail
  return sum;
}

// Slice `index` of `threads` over `bytes`, in whole 4 KiB pages.
void slice(std::int64_t bytes, int threads, int index, std::int64_t* begin, std::int64_t* size) {
  const std::int64_t pages = bytes >> 12;
  const std::int64_t first = pages * index / threads, last = pages * (index + 1) / threads;
  *begin = first << 12;
  *size = (last - first) << 12;
}

using read_fn = std::uint64_t (*)(const std::uint8_t*, std::int64_t);

// The read buffer, shared by every mem_read row (faulting in 1 GiB costs more than a row).
std::uint8_t* read_buffer(std::int64_t bytes) {
  static buffer buf;
  static std::int64_t size = 0;
  if (!buf || size != bytes) {
    buf.reset();
    buf = make_buffer(bytes);
    size = buf ? bytes : 0;
  }
  return buf.get();
}

void read_ceiling(benchmark::State& state, int threads, read_fn fn, bool avx512) {
  if (avx512 ? !__builtin_cpu_supports("avx512f") : !__builtin_cpu_supports("avx2")) {
    state.SkipWithError(avx512 ? "this CPU has no AVX-512F" : "this CPU has no AVX2");
    return;
  }
  const std::int64_t bytes = stream_bytes();
  std::uint8_t* buf = read_buffer(bytes);
  if (buf == nullptr) {
    state.SkipWithError("cannot allocate the stream buffer");
    return;
  }
  team t(threads);
  std::vector<std::uint64_t> sums(static_cast<std::size_t>(threads));
  const std::function<void(int)> job = [&](int i) {
    std::int64_t begin = 0, size = 0;
    slice(bytes, threads, i, &begin, &size);
    sums[static_cast<std::size_t>(i)] = fn(buf + begin, size);
  };
  for (auto _ : state) {
    t.run(job);
    benchmark::DoNotOptimize(sums.data());
  }
  set_counters(state, 0.0, static_cast<double>(bytes), threads, 1);
}

void copy_ceiling(benchmark::State& state, int threads) {
  const std::int64_t bytes = stream_bytes() / 2;
  buffer src = make_buffer(bytes), dst = make_buffer(bytes);
  if (!src || !dst) {
    state.SkipWithError("cannot allocate the copy buffers");
    return;
  }
  team t(threads);
  const std::function<void(int)> job = [&](int i) {
    std::int64_t begin = 0, size = 0;
    slice(bytes, threads, i, &begin, &size);
    std::memcpy(dst.get() + begin, src.get() + begin, static_cast<std::size_t>(size));
  };
  for (auto _ : state) {
    t.run(job);
    benchmark::ClobberMemory();
  }
  set_counters(state, 0.0, 2.0 * static_cast<double>(bytes), threads, 1);
}

struct read_method {
  const char* name;
  read_fn fn;
  bool avx512;
  bool always;  // registered by default; the others only with KEEL_BENCH_READ_METHODS=all
};
constexpr read_method kReadMethods[] = {
    {"avx2", &read_sum, false, true},
    {"avx512", &read_sum512<1, 0, false>, true, false},
    {"avx512_s2", &read_sum512<2, 0, false>, true, false},
    {"avx512_s4", &read_sum512<4, 0, false>, true, false},
    {"avx512_s8", &read_sum512<8, 0, false>, true, true},
    {"avx512_pf1k", &read_sum512<1, 1024, false>, true, false},
    {"avx512_pf4k", &read_sum512<1, 4096, false>, true, false},
    {"avx512_pf16k", &read_sum512<1, 16384, false>, true, false},
    {"avx512_nta1k", &read_sum512<1, 1024, true>, true, false},
    {"avx512_nta4k", &read_sum512<1, 4096, true>, true, false},
    {"avx512_s2_pf4k", &read_sum512<2, 4096, false>, true, false},
    {"avx512_s4_pf4k", &read_sum512<4, 4096, false>, true, false},
    {"avx512_s8_pf4k", &read_sum512<8, 4096, false>, true, false},
    {"avx512_s4_pf1k", &read_sum512<4, 1024, false>, true, false},
    {"avx512_s4_nta4k", &read_sum512<4, 4096, true>, true, false},
    {"avx512_b4x32k", &read_sum512<4, 0, false, 32768>, true, false},
    {"avx512_b4x32k_pf1k", &read_sum512<4, 1024, false, 32768>, true, true},
    {"avx512_b4x32k_pf512", &read_sum512<4, 512, false, 32768>, true, false},
    {"avx512_b8x32k_pf1k", &read_sum512<8, 1024, false, 32768>, true, false},
    {"avx512_b4x4k_pf1k", &read_sum512<4, 1024, false, 4096>, true, false},
    {"avx512_b2x32k_pf1k", &read_sum512<2, 1024, false, 32768>, true, false},
};

const bool g_registered = [] {
  const char* methods_env = std::getenv("KEEL_BENCH_READ_METHODS");
  const bool all_read_methods = methods_env != nullptr && std::string(methods_env) == "all";
  for (int t : thread_counts()) {
    // Built by append: GCC 12's -Wrestrict misfires on `"literal" + std::string` (GCC PR 105329).
    std::string tt = "_";
    tt += std::to_string(t);
    tt += "t";
    timing(benchmark::RegisterBenchmark(("int8_mac/ceiling/avx2" + tt).c_str(),
                                        [t](benchmark::State& st) { mac_ceiling(st, t, false); }));
    timing(benchmark::RegisterBenchmark(("int8_mac/ceiling/avx512vnni" + tt).c_str(),
                                        [t](benchmark::State& st) { mac_ceiling(st, t, true); }));
    timing(benchmark::RegisterBenchmark(("int8_mac/ceiling/amx" + tt).c_str(),
                                        [t](benchmark::State& st) { amx_ceiling(st, t); }));
    for (const read_method& m : kReadMethods) {
      if (!m.always && !all_read_methods) continue;
      timing(benchmark::RegisterBenchmark(
          ("mem_read/ceiling/" + std::string(m.name) + tt).c_str(),
          [t, m](benchmark::State& st) { read_ceiling(st, t, m.fn, m.avx512); }));
    }
    timing(benchmark::RegisterBenchmark(("mem_copy/ceiling/memcpy" + tt).c_str(),
                                        [t](benchmark::State& st) { copy_ceiling(st, t); }));
  }
  benchmark::AddCustomContext("stream_buffer_mib", std::to_string(stream_bytes() >> 20));
  benchmark::AddCustomContext("cold_pool_mib", std::to_string(cold_pool_bytes() >> 20));
  benchmark::AddCustomContext("llc_mib", std::to_string(llc_bytes() >> 20));
  return true;
}();

}  // namespace
}  // namespace keel_bench
