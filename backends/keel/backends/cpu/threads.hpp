// keel/backends/cpu/threads.hpp — how the cpu backend spreads work over cores: oneTBB when the
// build defines KEEL_THREADS_TBB=1 (Meson option threads=tbb), a plain serial loop otherwise
// (a BSP without TBB). The choice is made at compile time; at run time a backend may still ask
// for fewer threads (1 = serial).
#pragma once

#include <cstdint>

#if defined(KEEL_THREADS_TBB) && KEEL_THREADS_TBB
#define KEEL_CPU_HAVE_TBB 1
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/partitioner.h>
#include <tbb/task_arena.h>
#else
#define KEEL_CPU_HAVE_TBB 0
#endif

namespace keel::backends::cpu_detail {

// Threads a call may use: `max_threads` if > 0 (capped by the runtime), otherwise all of them.
inline int thread_count(int max_threads) noexcept {
#if KEEL_CPU_HAVE_TBB
  const int available = tbb::this_task_arena::max_concurrency();
  return (max_threads > 0 && max_threads < available) ? max_threads : available;
#else
  (void)max_threads;
  return 1;
#endif
}

// Per-thread scratch for a parallel_for's bodies: worker_slots() slots, sized before the loop,
// and worker_slot() the calling thread's, in [0, worker_slots()). TBB numbers the threads of the
// task arena the caller is in (the body runs there, or in a smaller arena nested in it, or on the
// caller itself when the loop runs serially), so the slot is the thread's index in that arena
// and the count its concurrency. Serial builds: one slot.
inline int worker_slots() noexcept {
#if KEEL_CPU_HAVE_TBB
  return tbb::this_task_arena::max_concurrency();
#else
  return 1;
#endif
}
inline int worker_slot() noexcept {
#if KEEL_CPU_HAVE_TBB
  const int i = tbb::this_task_arena::current_thread_index();
  return i >= 0 ? i : 0;
#else
  return 0;
#endif
}

// Runs body(begin, end) over disjoint ranges covering [0, count). Each index is one task the
// caller sized (a tile block, a panel chunk); TBB steals them dynamically, which matters on a
// shared, noisy machine more than the cost of a few extra task spawns.
template <class Body>
void parallel_for(std::int64_t count, int max_threads, const Body& body) {
  if (count <= 0) return;
#if KEEL_CPU_HAVE_TBB
  if (max_threads != 1 && count > 1) {
    const auto run = [&] {
      tbb::parallel_for(
          tbb::blocked_range<std::int64_t>(0, count, 1),
          [&](const tbb::blocked_range<std::int64_t>& r) { body(r.begin(), r.end()); },
          tbb::simple_partitioner());
    };
    if (max_threads > 1 && max_threads < tbb::this_task_arena::max_concurrency()) {
      tbb::task_arena arena(max_threads);
      arena.execute(run);
    } else {
      run();
    }
    return;
  }
#else
  (void)max_threads;
#endif
  body(0, count);
}

}  // namespace keel::backends::cpu_detail
