// keel/check.hpp — the three kinds of check keel makes, and nothing else checks anything.
//
//  1. Precondition on user input: validated at the API boundary (op descriptors, backend entry
//     points) and reported as a Status that names the op, the value and the rule. Never aborts.
//     Use the helpers below (`checked_mul`, `element_count`) and Status::make.
//  2. Internal invariant: KEEL_DASSERT. Compiled in only when KEEL_DEBUG is defined (the test
//     builds define it); a failure is a keel bug, reported on stderr before abort().
//  3. Always-on: none. keel has no check that aborts in a release build.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <span>

namespace keel {

#if defined(KEEL_DEBUG)
#define KEEL_DASSERT(cond, what)                                                        \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "keel internal error at %s:%d: %s (%s)\n", __FILE__, __LINE__, \
                   what, #cond);                                                        \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
#else
#define KEEL_DASSERT(cond, what) \
  do {                           \
  } while (0)
#endif

// a*b for non-negative sizes; false when the product does not fit in int64 (and so in the
// address arithmetic of any kernel). keel's shapes are int64 so that index arithmetic past 2^31
// elements is exact.
constexpr bool checked_mul(std::int64_t a, std::int64_t b, std::int64_t* out) noexcept {
  return !__builtin_mul_overflow(a, b, out);
}

constexpr bool checked_add(std::int64_t a, std::int64_t b, std::int64_t* out) noexcept {
  return !__builtin_add_overflow(a, b, out);
}

// The product of `dims`, or -1 when it overflows int64 or any dim is negative.
constexpr std::int64_t element_count(std::span<const std::int64_t> dims) noexcept {
  std::int64_t n = 1;
  for (std::int64_t d : dims) {
    if (d < 0 || !checked_mul(n, d, &n)) return -1;
  }
  return n;
}

}  // namespace keel
