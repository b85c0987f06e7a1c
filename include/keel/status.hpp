// keel/status.hpp — the error type of every keel API.
//
// A Status says what went wrong in one line: which op, which value, which rule. It owns a fixed
// buffer (no allocation, no exceptions) so that kernels and backends can build one anywhere.
#pragma once

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <string_view>
#include <utility>

namespace keel {

// What class of failure a Status reports. The router reads it: invalid_argument and
// unsupported are the caller's or the op's fault and are not retried elsewhere as a
// health problem; device_lost, timeout and out_of_memory mark a backend as degraded.
enum class status_code : std::uint8_t {
  ok = 0,
  invalid_argument,  // a value breaks a documented rule (shape, range, scale, pointer)
  shape_mismatch,    // two operands disagree on a dimension
  overflow,          // a size or an accumulator bound exceeds what the types can hold
  unsupported,       // valid op, but this backend cannot run it
  device_lost,       // the backend's device went away
  timeout,           // the backend did not complete in time
  out_of_memory,     // an allocation on the host or device failed
  internal,          // a bug in keel: an invariant was broken
};

constexpr std::string_view to_string(status_code c) noexcept {
  switch (c) {
    case status_code::ok: return "ok";
    case status_code::invalid_argument: return "invalid argument";
    case status_code::shape_mismatch: return "shape mismatch";
    case status_code::overflow: return "overflow";
    case status_code::unsupported: return "unsupported";
    case status_code::device_lost: return "device lost";
    case status_code::timeout: return "timeout";
    case status_code::out_of_memory: return "out of memory";
    case status_code::internal: return "internal error";
  }
  return "unknown";
}

// True for failures that say the backend, not the request, is at fault.
constexpr bool is_backend_fault(status_code c) noexcept {
  return c == status_code::device_lost || c == status_code::timeout ||
         c == status_code::out_of_memory;
}

class [[nodiscard]] Status {
 public:
  static constexpr std::size_t kMessageCapacity = 200;

  constexpr Status() noexcept = default;

  // Builds "op: message" with printf formatting; the text is truncated to kMessageCapacity-1.
  [[gnu::format(printf, 3, 4)]] static Status make(status_code code, std::string_view op,
                                                   const char* fmt, ...) noexcept {
    Status s;
    s.code_ = code;
    int n = std::snprintf(s.message_, kMessageCapacity, "%.*s: ", static_cast<int>(op.size()),
                          op.data());
    if (n < 0) n = 0;
    if (static_cast<std::size_t>(n) < kMessageCapacity) {
      std::va_list args;
      va_start(args, fmt);
      std::vsnprintf(s.message_ + n, kMessageCapacity - static_cast<std::size_t>(n), fmt, args);
      va_end(args);
    }
    return s;
  }

  static constexpr Status Ok() noexcept { return Status(); }

  constexpr bool ok() const noexcept { return code_ == status_code::ok; }
  constexpr explicit operator bool() const noexcept { return ok(); }
  constexpr status_code code() const noexcept { return code_; }
  // "ok" for success, otherwise "op: what was wrong (rule)".
  const char* message() const noexcept { return ok() ? "ok" : message_; }

 private:
  status_code code_ = status_code::ok;
  char message_[kMessageCapacity] = {};
};

// A value or the Status that explains why there is none. T must be default-constructible.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) noexcept : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) noexcept : status_(status) {}     // NOLINT: implicit by design

  bool ok() const noexcept { return status_.ok(); }
  const Status& status() const noexcept { return status_; }
  T& value() & noexcept { return value_; }
  const T& value() const& noexcept { return value_; }
  T&& value() && noexcept { return std::move(value_); }
  T* operator->() noexcept { return &value_; }
  const T* operator->() const noexcept { return &value_; }

 private:
  T value_{};
  Status status_{};
};

}  // namespace keel

// Returns early from the enclosing function when `expr` yields a failed Status.
#define KEEL_RETURN_IF_ERROR(expr)              \
  do {                                          \
    ::keel::Status keel_status_tmp_ = (expr);   \
    if (!keel_status_tmp_.ok()) return keel_status_tmp_; \
  } while (0)
