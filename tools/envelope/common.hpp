// tools/envelope/common.hpp — small pieces every part of keel-envelope uses: 64-byte aligned
// storage, a fast seeded generator for large inputs, the stop flag Ctrl-C sets, and a clock.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

namespace keel::envelope {

// ---- aligned storage ---------------------------------------------------------------------------

// Bytes at a 64-byte boundary (a cache line; the virtual NPU registers such buffers in place
// instead of staging a copy), allocated without exceptions: data() is null when the allocation
// failed, and the caller reports that as out of memory.
class aligned_bytes {
 public:
  static constexpr std::size_t kAlignment = 64;

  aligned_bytes() = default;
  explicit aligned_bytes(std::int64_t bytes) { allocate(bytes); }

  bool allocate(std::int64_t bytes) {
    size_ = 0;
    storage_.reset();
    if (bytes < 0) return false;
    const auto rounded =
        (static_cast<std::size_t>(bytes) + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, rounded == 0 ? kAlignment : rounded);
    if (p == nullptr) return false;
    storage_.reset(static_cast<std::byte*>(p));
    size_ = bytes;
    return true;
  }
  // A copy of `bytes` bytes from `src`.
  bool assign(const void* src, std::int64_t bytes) {
    if (!allocate(bytes)) return false;
    if (bytes > 0) std::memcpy(storage_.get(), src, static_cast<std::size_t>(bytes));
    return true;
  }

  std::byte* data() noexcept { return storage_.get(); }
  const std::byte* data() const noexcept { return storage_.get(); }
  std::int64_t size() const noexcept { return size_; }
  bool ok() const noexcept { return storage_ != nullptr; }

  template <class T>
  T* as() noexcept {
    return reinterpret_cast<T*>(storage_.get());
  }
  template <class T>
  const T* as() const noexcept {
    return reinterpret_cast<const T*>(storage_.get());
  }

 private:
  struct free_deleter {
    void operator()(std::byte* p) const noexcept { std::free(p); }
  };
  std::unique_ptr<std::byte, free_deleter> storage_;
  std::int64_t size_ = 0;
};

// ---- seeded inputs -----------------------------------------------------------------------------

// SplitMix64: one add and three multiply-xorshifts per 64 random bits, so filling the 117 MB of
// a 7B-class FFN weight takes a tenth of a second (std::mt19937_64 through a distribution takes
// seconds). Statistical quality is ample for test inputs; every stream is reproducible from
// (seed, stream).
class fast_rng {
 public:
  fast_rng(std::uint64_t seed, std::uint64_t stream)
      : state_(seed ^ (stream + 1) * 0x9E3779B97F4A7C15ull) {}

  std::uint64_t next() noexcept {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) (n >= 1); the modulo bias is below 2^-40 for the n used here.
  std::int64_t below(std::int64_t n) noexcept {
    return static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(n));
  }
  std::int64_t between(std::int64_t lo, std::int64_t hi) noexcept {
    return lo + below(hi - lo + 1);
  }
  // Uniform in [lo, hi).
  float uniform(float lo, float hi) noexcept {
    const float unit = static_cast<float>(next() >> 40) * (1.0f / 16777216.0f);
    return lo + (hi - lo) * unit;
  }
  // Fills `bytes` bytes with random bits.
  void fill_bytes(void* dst, std::int64_t bytes) noexcept {
    auto* p = static_cast<unsigned char*>(dst);
    std::int64_t i = 0;
    for (; i + 8 <= bytes; i += 8) {
      const std::uint64_t v = next();
      std::memcpy(p + i, &v, 8);
    }
    if (i < bytes) {
      const std::uint64_t v = next();
      std::memcpy(p + i, &v, static_cast<std::size_t>(bytes - i));
    }
  }

 private:
  std::uint64_t state_;
};

// ---- stopping ----------------------------------------------------------------------------------

// Set by the SIGINT/SIGTERM handler (main.cpp); every loop that can take long checks it between
// steps, so Ctrl-C stops within one kernel call and the outputs keep what was measured.
inline std::atomic<bool>& stop_flag() {
  static std::atomic<bool> flag{false};
  return flag;
}
inline bool stop_requested() {
  return stop_flag().load(std::memory_order_relaxed);
}

// ---- time --------------------------------------------------------------------------------------

using clock_type = std::chrono::steady_clock;
inline double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

}  // namespace keel::envelope
