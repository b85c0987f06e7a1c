// tests/support/testing.hpp — shared helpers for keel's doctest suites: seeded random inputs
// (the seed is printed, and KEEL_SEED=<n> replays it), sentinel-guarded output buffers, and a
// misaligned-pointer helper.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <type_traits>
#include <vector>

namespace keel::testing {

// One seed per test process: KEEL_SEED if set, otherwise fresh from the OS. Printed once.
inline std::uint64_t process_seed() {
  static const std::uint64_t seed = [] {
    if (const char* env = std::getenv("KEEL_SEED")) {
      return static_cast<std::uint64_t>(std::strtoull(env, nullptr, 10));
    }
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }();
  static bool printed = false;
  if (!printed) {
    printed = true;
    std::printf("keel test seed: KEEL_SEED=%llu\n", static_cast<unsigned long long>(seed));
  }
  return seed;
}

// A generator for one test case: the process seed mixed with a per-case salt, so cases do not
// share streams and each can be replayed alone.
class rng {
 public:
  explicit rng(std::uint64_t salt = 0) : seed_(process_seed() ^ (salt * 0x9E3779B97F4A7C15ull)),
                                         gen_(seed_) {}
  std::uint64_t seed() const { return seed_; }

  std::int64_t uniform_int(std::int64_t lo, std::int64_t hi) {
    return std::uniform_int_distribution<std::int64_t>(lo, hi)(gen_);
  }
  float uniform_float(float lo, float hi) {
    return std::uniform_real_distribution<float>(lo, hi)(gen_);
  }

  // Fills v with values in [lo, hi]; guarantees at least one non-zero element when the range
  // allows one, so that no test ever runs on all zeros.
  template <class T>
  void fill(std::vector<T>& v, std::int64_t lo, std::int64_t hi) {
    for (T& x : v) x = static_cast<T>(uniform_int(lo, hi));
    ensure_nonzero(v, lo, hi);
  }
  void fill(std::vector<float>& v, float lo, float hi) {
    for (float& x : v) x = uniform_float(lo, hi);
    ensure_nonzero(v, lo, hi);
  }

 private:
  template <class T, class B>
  void ensure_nonzero(std::vector<T>& v, B lo, B hi) {
    if (v.empty() || (lo == 0 && hi == 0)) return;
    for (const T& x : v) {
      if (x != T(0)) return;
    }
    v[0] = static_cast<T>(hi != 0 ? hi : lo);
  }

  std::uint64_t seed_;
  std::mt19937_64 gen_;
};

// An output buffer with guard regions on both sides, all pre-filled with a sentinel byte
// pattern; intact() says whether anything outside [data(), data()+size) or, before a successful
// call, inside it was written.
template <class T>
class guarded {
 public:
  static constexpr std::size_t kGuard = 64;  // elements on each side
  static constexpr unsigned char kPattern = 0xA5;

  explicit guarded(std::size_t n) : storage_(n + 2 * kGuard) {
    std::memset(static_cast<void*>(storage_.data()), kPattern, storage_.size() * sizeof(T));
  }
  T* data() { return storage_.data() + kGuard; }
  const T* data() const { return storage_.data() + kGuard; }
  std::size_t size() const { return storage_.size() - 2 * kGuard; }
  T& operator[](std::size_t i) { return data()[i]; }
  const T& operator[](std::size_t i) const { return data()[i]; }

  bool guards_intact() const { return all_pattern(0, kGuard) && all_pattern(kGuard + size(), kGuard); }
  // Every byte, guards and payload, still holds the sentinel: nothing was written at all.
  bool untouched() const { return all_pattern(0, storage_.size()); }

 private:
  bool all_pattern(std::size_t from, std::size_t count) const {
    const auto* p = reinterpret_cast<const unsigned char*>(storage_.data() + from);
    for (std::size_t i = 0; i < count * sizeof(T); ++i) {
      if (p[i] != kPattern) return false;
    }
    return true;
  }
  std::vector<T> storage_;
};

// A copy of `v` placed at a deliberately odd byte offset (for 1-byte element types), to catch
// kernels that assume alignment they were not promised.
template <class T>
class misaligned_copy {
  static_assert(sizeof(T) == 1, "only byte-sized elements may be misaligned");

 public:
  explicit misaligned_copy(const std::vector<T>& v, std::size_t offset = 3)
      : storage_(v.size() + 64), offset_(offset) {
    // An empty vector's data() may be null, and memcpy from null is undefined even for 0 bytes.
    if (!v.empty()) std::memcpy(storage_.data() + offset_, v.data(), v.size());
  }
  const T* data() const { return storage_.data() + offset_; }

 private:
  std::vector<T> storage_;
  std::size_t offset_;
};

}  // namespace keel::testing
