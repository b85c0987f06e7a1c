// keel/router/trace.hpp — the router's decision trace: a fixed-size ring of what it did and why.
//
// One entry per attempt: which request, which op and shape, which backend ran it, why that one,
// what came back, and the predicted and measured time. A fault shows as two entries of one
// request (the failed attempt, then the retry on the next candidate). The ring never allocates;
// when full it overwrites the oldest entry, and total() says how many were ever recorded.
// decision_trace<0> is an empty type whose members do nothing: with a policy's trace_capacity of
// 0 the router also skips its clock reads, so a disabled trace costs nothing.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string_view>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#include "keel/ops.hpp"
#include "keel/router/cost_model.hpp"
#include "keel/status.hpp"

namespace keel {

// The clock the router times backends with. std::chrono::steady_clock costs 20-40 ns a read in
// a virtual machine (measured on the development host, a KVM guest), which alone would spend
// most of the 100 ns a traced decision may cost; the CPU's own counter costs a few ns. On x86-64
// that is the TSC, invariant on every CPU with constant_tsc and nonstop_tsc (the last decade's),
// calibrated once against steady_clock over 200 us at the first conversion; on aarch64 the
// generic timer, whose frequency the CPU reports. Elsewhere, steady_clock.
struct trace_clock {
  static std::uint64_t now() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    return __rdtsc();
#elif defined(__aarch64__)
    std::uint64_t t;
    asm volatile("mrs %0, cntvct_el0" : "=r"(t));
    return t;
#else
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now().time_since_epoch())
                                          .count());
#endif
  }

  // Microseconds between two now() readings.
  static float elapsed_us(std::uint64_t from, std::uint64_t to) noexcept {
    return static_cast<float>(static_cast<double>(to - from) / ticks_per_us());
  }

  static double ticks_per_us() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    static const double rate = [] {
      using sc = std::chrono::steady_clock;
      const sc::time_point t0 = sc::now();
      const std::uint64_t c0 = __rdtsc();
      sc::time_point t1 = t0;
      while (t1 - t0 < std::chrono::microseconds(200)) t1 = sc::now();
      const std::uint64_t c1 = __rdtsc();
      const double us = std::chrono::duration<double, std::micro>(t1 - t0).count();
      return static_cast<double>(c1 - c0) / us;
    }();
    return rate;
#elif defined(__aarch64__)
    static const double rate = [] {
      std::uint64_t f;
      asm volatile("mrs %0, cntfrq_el0" : "=r"(f));
      return static_cast<double>(f) / 1e6;
    }();
    return rate;
#else
    return 1e3;  // nanoseconds
#endif
  }
};

// Why the router tried this backend.
enum class trace_reason : std::uint8_t {
  lowest_cost,              // first choice: the policy's best score among eligible candidates
  probe,                    // held out by its breaker, tried again as a probe
  retry_after_fault,        // the previous attempt failed with a backend fault
  retry_after_unsupported,  // the previous backend cannot run this shape or these buffers
  retry_after_error,        // the previous backend reported an internal error
};

constexpr std::string_view to_string(trace_reason r) noexcept {
  switch (r) {
    case trace_reason::lowest_cost: return "lowest cost";
    case trace_reason::probe: return "probe";
    case trace_reason::retry_after_fault: return "retry after fault";
    case trace_reason::retry_after_unsupported: return "retry after unsupported";
    case trace_reason::retry_after_error: return "retry after internal error";
  }
  return "?";
}

// Facts about the decision, OR-ed into trace_entry::flags.
namespace trace_flag {
inline constexpr std::uint8_t held_out = 1u << 0;         // a better-ranked backend was held out
inline constexpr std::uint8_t over_budget = 1u << 1;      // no candidate met the request's budget
inline constexpr std::uint8_t safety_critical = 1u << 2;  // only bit-exact backends considered
inline constexpr std::uint8_t breaker_opened = 1u << 3;   // this failure held the backend out
inline constexpr std::uint8_t breaker_closed = 1u << 4;   // this probe put it back in service
}  // namespace trace_flag

struct trace_entry {
  std::uint64_t request = 0;  // the router's request counter: attempts of one call share it
  op_kind op = op_kind::matmul_i8;
  dtype weights = dtype::s8;
  std::uint8_t rank = 0;
  std::array<std::int64_t, 8> shape{};  // labelled by shape_labels(op)
  std::string_view backend;
  trace_reason reason = trace_reason::lowest_cost;
  std::uint8_t attempt = 1;  // 1 for the first choice
  status_code result = status_code::ok;
  std::uint8_t flags = 0;
  float predicted_us = 0;
  float measured_us = 0;
};

// Writes one entry as one line (no newline) into buf; returns what snprintf returns.
inline int format_trace_entry(const trace_entry& e, char* buf, std::size_t size) {
  if (size == 0) return 0;
  int n = std::snprintf(buf, size, "#%llu %.*s/%.*s [", static_cast<unsigned long long>(e.request),
                        static_cast<int>(to_string(e.op).size()), to_string(e.op).data(),
                        static_cast<int>(to_string(e.weights).size()), to_string(e.weights).data());
  const auto labels = shape_labels(e.op);
  for (int i = 0; i < e.rank && i < 8 && n >= 0 && static_cast<std::size_t>(n) < size; ++i) {
    const std::string_view l = labels[static_cast<std::size_t>(i)];
    n += std::snprintf(buf + n, size - static_cast<std::size_t>(n), "%s%.*s%lld", i ? " " : "",
                       static_cast<int>(l.size()), l.data(),
                       static_cast<long long>(e.shape[static_cast<std::size_t>(i)]));
  }
  if (n < 0 || static_cast<std::size_t>(n) >= size) return n;
  const std::string_view why = to_string(e.reason);
  const std::string_view res = to_string(e.result);
  n += std::snprintf(buf + n, size - static_cast<std::size_t>(n),
                     "] -> %.*s (attempt %u, %.*s): %.*s; predicted %.3g us, measured %.3g us",
                     static_cast<int>(e.backend.size()), e.backend.data(), e.attempt,
                     static_cast<int>(why.size()), why.data(), static_cast<int>(res.size()),
                     res.data(), static_cast<double>(e.predicted_us),
                     static_cast<double>(e.measured_us));
  const struct {
    std::uint8_t bit;
    const char* text;
  } notes[] = {{trace_flag::held_out, "; a better-ranked backend is held out"},
               {trace_flag::over_budget, "; no candidate met the budget"},
               {trace_flag::safety_critical, "; safety-critical: bit-exact backends only"},
               {trace_flag::breaker_opened, "; backend now held out"},
               {trace_flag::breaker_closed, "; probe passed, backend back in service"}};
  for (const auto& note : notes) {
    if ((e.flags & note.bit) && n >= 0 && static_cast<std::size_t>(n) < size) {
      n += std::snprintf(buf + n, size - static_cast<std::size_t>(n), "%s", note.text);
    }
  }
  return n;
}

template <std::size_t Capacity>
class decision_trace {
 public:
  static constexpr bool enabled = true;
  static constexpr std::size_t capacity = Capacity;

  void record(const trace_entry& e) noexcept { next_slot() = e; }
  // The slot the next entry goes to, already counted: the router fills it in place.
  trace_entry& next_slot() noexcept {
    trace_entry& e = ring_[next_];
    next_ = next_ + 1 == Capacity ? 0 : next_ + 1;
    ++total_;
    return e;
  }
  // Entries kept: the last min(total(), Capacity).
  std::size_t size() const noexcept {
    return total_ < Capacity ? static_cast<std::size_t>(total_) : Capacity;
  }
  std::uint64_t total() const noexcept { return total_; }
  // i = 0 is the oldest entry kept, size() - 1 the newest.
  const trace_entry& operator[](std::size_t i) const noexcept {
    const std::size_t oldest = total_ < Capacity ? 0 : next_;
    const std::size_t j = oldest + i;
    return ring_[j >= Capacity ? j - Capacity : j];
  }
  const trace_entry& back() const noexcept { return (*this)[size() - 1]; }
  void clear() noexcept {
    next_ = 0;
    total_ = 0;
  }
  // One line per entry, oldest first, preceded by a line saying how many were dropped.
  void print(std::FILE* out) const {
    if (total_ > Capacity) {
      std::fprintf(out, "(%llu older entries overwritten)\n",
                   static_cast<unsigned long long>(total_ - Capacity));
    }
    char line[512];
    for (std::size_t i = 0; i < size(); ++i) {
      format_trace_entry((*this)[i], line, sizeof line);
      std::fprintf(out, "%s\n", line);
    }
  }

 private:
  std::array<trace_entry, Capacity> ring_{};
  std::size_t next_ = 0;
  std::uint64_t total_ = 0;
};

// The disabled trace: no storage, no work.
template <>
class decision_trace<0> {
 public:
  static constexpr bool enabled = false;
  static constexpr std::size_t capacity = 0;
  void record(const trace_entry&) noexcept {}
  std::size_t size() const noexcept { return 0; }
  std::uint64_t total() const noexcept { return 0; }
  void clear() noexcept {}
  void print(std::FILE*) const {}
};

}  // namespace keel
