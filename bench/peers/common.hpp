// bench/peers/common.hpp — what every matmul benchmark row shares, so that keel's rows, the
// peers' rows and the ceiling rows line up in one table: the shapes, the row names, the
// counters, the thread counts, the cold-weights pool and a small worker team.
//
// Row names: `op/impl/shape_<threads>t`, e.g. `gemv_u8s8_s32/onednn/M1_N4096_K4096_2t`.
//   op     gemm | gemv, then the dtypes as the impl computes them (A, B), '_', the output:
//          u8s8_s32 (oneDNN, keel), s8s8_s8 (XNNPACK's requantized qs8), s4f32_f32 (int4 weights,
//          f32 activations), ... ; M = 1 rows are `gemv`, all others `gemm`.
//   impl   keel, onednn, onednn_avx2 (oneDNN capped to AVX2), xnnpack, onnxruntime, ceiling
//   shape  M{m}_N{n}_K{k}: A is [M, K], B is [K, N] (or [N, K] where the peer stores it so)
//   <t>t   the threads the impl was allowed (the same for every impl of a row)
// Google Benchmark appends `/real_time` to names that measure wall time; bench/make_table.py
// strips it.
//
// Counters (bench/make_table.py reads them by these names):
//   ops             rate: 2*M*N*K per iteration, per second (one multiply-add is two ops)
//   bytes           rate: bytes_per_iter per second
//   bytes_per_iter  weights (as the impl stores them) + activations + outputs of one iteration
//   nthreads        the thread count of the row (the JSON key "threads" is Google Benchmark's
//                   own: how many timing threads it ran, always 1 here)
//   cold_copies     how many copies of the weights the row rotates through (1: warm)
#pragma once

#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <barrier>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace keel_bench {

struct mm_shape {
  std::int64_t m, n, k;
};

// The shapes of issue 3, from real models: a 7B decoder layer's projections as GEMV (M = 1,
// decoding) and as GEMM (M = 128, 512: prefill), a square reference GEMM, MobileNet's first
// pointwise convolution (56x56 pixels, 144 -> 24 channels) and a BERT-base FFN-sized block.
inline constexpr mm_shape kShapes[] = {
    {1, 4096, 4096},    {1, 11008, 4096},   {1, 4096, 11008},  // GEMV: N x K = 4096x4096 ...
    {128, 4096, 4096},  {128, 11008, 4096}, {128, 4096, 11008},
    {512, 4096, 4096},  {512, 11008, 4096}, {512, 4096, 11008},
    {1024, 1024, 1024}, {3136, 24, 144},    {128, 1536, 384},
};

// Names are built by append: GCC 12's -Wrestrict misfires on `"literal" + std::string` (GCC PR
// 105329), and -Werror turns that into a build failure.
inline std::string shape_name(const mm_shape& s) {
  std::string n = "M";
  n += std::to_string(s.m);
  n += "_N";
  n += std::to_string(s.n);
  n += "_K";
  n += std::to_string(s.k);
  return n;
}

inline std::string row_name(const std::string& op_dtypes, const std::string& impl,
                            const mm_shape& s, int threads) {
  // op_dtypes is the dtype part ("u8s8_s32"); the op is gemv when M = 1.
  std::string n = s.m == 1 ? "gemv_" : "gemm_";
  n += op_dtypes;
  n += '/';
  n += impl;
  n += '/';
  n += shape_name(s);
  n += '_';
  n += std::to_string(threads);
  n += 't';
  return n;
}

// One thread, and every core the process may use.
inline std::vector<int> thread_counts() {
  const int all = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return all > 1 ? std::vector<int>{1, all} : std::vector<int>{1};
}

inline double matmul_ops(const mm_shape& s) {
  return 2.0 * static_cast<double>(s.m) * static_cast<double>(s.n) * static_cast<double>(s.k);
}

inline void set_counters(benchmark::State& state, double ops_per_iter, double bytes_per_iter,
                         int threads, int cold_copies) {
  using benchmark::Counter;
  state.counters["ops"] = Counter(ops_per_iter, Counter::kIsIterationInvariantRate);
  state.counters["bytes"] = Counter(bytes_per_iter, Counter::kIsIterationInvariantRate);
  state.counters["bytes_per_iter"] = Counter(bytes_per_iter);
  state.counters["nthreads"] = Counter(threads);
  state.counters["cold_copies"] = Counter(cold_copies);
}

// Every row's timing options: wall-clock time (the impl runs its own threads, which the calling
// thread's CPU time would miss), and cpu_time as the whole process's CPU time, so that
// cpu_time / (real_time * threads) tells how much of its cores a row actually got on a shared
// machine (bench/make_table.py flags rows that got much less than all).
inline benchmark::internal::Benchmark* timing(benchmark::internal::Benchmark* b) {
  return b->UseRealTime()->MeasureProcessCPUTime()->Unit(benchmark::kMillisecond);
}

// ---- cold weights ----------------------------------------------------------------------------
// A GEMV reads each weight once per call; on this machine the last-level cache (260 MiB reported
// by the VM) holds every GEMV weight matrix of the shape list, so a loop over one copy would
// measure cache, not memory. Rows that must stream from memory rotate through enough copies of
// the weights to cover the pool below, so each call finds its copy evicted by the others.

inline std::int64_t llc_bytes() {
  const long v = sysconf(_SC_LEVEL3_CACHE_SIZE);
  return v > 0 ? static_cast<std::int64_t>(v) : std::int64_t{32} << 20;
}

// Bytes the copies of a cold row's weights cover together: KEEL_BENCH_COLD_MIB if set (run_all.sh
// --quick lowers it), else twice the last-level cache.
inline std::int64_t cold_pool_bytes() {
  if (const char* env = std::getenv("KEEL_BENCH_COLD_MIB")) {
    const long long mib = std::atoll(env);
    if (mib > 0) return static_cast<std::int64_t>(mib) << 20;
  }
  return 2 * llc_bytes();
}

// Copies of `weight_bytes` to rotate through; 1 means warm (no rotation).
inline int cold_copies(std::int64_t weight_bytes, bool cold) {
  if (!cold || weight_bytes <= 0) return 1;
  const std::int64_t n = (cold_pool_bytes() + weight_bytes - 1) / weight_bytes;
  return static_cast<int>(std::clamp<std::int64_t>(n, 1, 256));
}

// Only GEMV rows are memory-bound; GEMM rows reuse each weight M times and run warm.
inline bool wants_cold(const mm_shape& s) {
  return s.m == 1;
}

// ---- setup cache -----------------------------------------------------------------------------
// Google Benchmark calls a row's function several times while it settles the iteration count;
// setting up a row (packing tens of copies of the weights) costs more than timing it. One slot,
// keyed by row name: the previous row's setup is freed before the next one is built, so at most
// one pool of copies is alive.
template <class T>
class one_slot_cache {
 public:
  template <class Make>
  T* get(const std::string& key, Make&& make) {
    if (key_ != key || !value_) {
      value_.reset();
      key_ = key;
      value_ = make();
    }
    return value_.get();
  }
  void clear() {
    value_.reset();
    key_.clear();
  }

 private:
  std::string key_;
  std::unique_ptr<T> value_;
};

// ---- a team of threads for the ceiling rows --------------------------------------------------
// run(fn) calls fn(index) on `size` threads (the caller is index 0) and returns when all are done.
// The workers live as long as the team, so a timed iteration pays two barrier waits, not thread
// creation.
class team {
 public:
  explicit team(int size) : size_(std::max(1, size)), gate_(size_) {
    for (int i = 1; i < size_; ++i) {
      workers_.emplace_back([this, i] {
        for (;;) {
          gate_.arrive_and_wait();  // start
          if (stop_) return;
          (*job_)(i);
          gate_.arrive_and_wait();  // done
        }
      });
    }
  }
  ~team() {
    stop_ = true;
    if (size_ > 1) gate_.arrive_and_wait();
    for (auto& w : workers_) w.join();
  }
  team(const team&) = delete;
  team& operator=(const team&) = delete;

  int size() const { return size_; }
  void run(const std::function<void(int)>& fn) {
    job_ = &fn;
    if (size_ > 1) gate_.arrive_and_wait();
    fn(0);
    if (size_ > 1) gate_.arrive_and_wait();
  }

 private:
  int size_;
  std::barrier<> gate_;
  bool stop_ = false;  // written before a barrier phase, read after it
  const std::function<void(int)>* job_ = nullptr;
  std::vector<std::thread> workers_;
};

}  // namespace keel_bench
