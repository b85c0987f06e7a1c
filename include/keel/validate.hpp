// keel/validate.hpp — checks of user input shared by every op (kind 1 of keel/check.hpp).
//
// Each helper returns a Status naming the op, the operand, the offending value and the rule;
// backends call the op's validate() before touching memory, so bad input writes nothing.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>
#include <utility>

#include "keel/quant.hpp"
#include "keel/status.hpp"
#include "keel/tensor.hpp"

namespace keel::detail {

// Alignment keel promises to read typed elements with: the element's own size.
constexpr std::size_t element_alignment(dtype t) noexcept {
  switch (t) {
    case dtype::s32:
    case dtype::f32: return 4;
    case dtype::f16: return 2;
    default: return 1;
  }
}

// A size the op needs to be >= 1 (`allow_zero` for the batch, where 0 means nothing to do).
inline Status require_size(std::string_view op, const char* name, std::int64_t v,
                           bool allow_zero = false) {
  if (v < 0 || (v == 0 && !allow_zero)) {
    return Status::make(status_code::invalid_argument, op, "%s = %lld (must be %s)", name,
                        static_cast<long long>(v), allow_zero ? ">= 0" : ">= 1");
  }
  return Status::Ok();
}

// An enum field that must hold one of its `count` enumerators (0 .. count - 1): a value cast in
// from an integer (a file, a binding, a bad cast) is rejected rather than run as some default.
template <class Enum>
inline Status require_enum(std::string_view op, const char* name, Enum v, int count) {
  const auto raw = static_cast<long long>(v);
  if (raw < 0 || raw >= count) {
    return Status::make(status_code::invalid_argument, op, "%s = %lld is not one of its %d values",
                        name, raw, count);
  }
  return Status::Ok();
}

// The product of sizes, rejecting overflow of int64 (and so of size_t on 64-bit hosts).
inline Status require_product(std::string_view op, const char* what,
                              std::initializer_list<std::int64_t> dims) {
  if (element_count(std::span<const std::int64_t>(dims.begin(), dims.size())) < 0) {
    return Status::make(status_code::overflow, op, "%s: the product of sizes overflows int64",
                        what);
  }
  return Status::Ok();
}

// A view that must have exactly `dims` and dtype `type`, non-null unless empty, aligned for its
// element type, with an extent that fits in int64 bytes, and 4-bit rows starting on a byte.
template <bool M>
Status require_view(std::string_view op, const char* name, const basic_tensor_view<M>& v,
                    dtype type, std::initializer_list<std::int64_t> dims) {
  if (v.type != type) {
    return Status::make(status_code::invalid_argument, op, "%s has dtype %s (must be %s)", name,
                        to_string(v.type).data(), to_string(type).data());
  }
  if (v.rank != static_cast<int>(dims.size())) {
    return Status::make(status_code::shape_mismatch, op, "%s has rank %d (must be %zu)", name,
                        v.rank, dims.size());
  }
  int i = 0;
  for (std::int64_t d : dims) {
    if (v.dim(i) != d) {
      return Status::make(status_code::shape_mismatch, op, "%s dim %d is %lld (must be %lld)",
                          name, i, static_cast<long long>(v.dim(i)), static_cast<long long>(d));
    }
    if (v.stride(i) < 0) {
      return Status::make(status_code::invalid_argument, op, "%s stride %d is %lld (must be >= 0)",
                          name, i, static_cast<long long>(v.stride(i)));
    }
    ++i;
  }
  const std::int64_t bytes = v.extent_bytes();
  if (bytes < 0) {
    return Status::make(status_code::overflow, op, "%s: its extent in bytes overflows int64",
                        name);
  }
  if (bytes == 0) return Status::Ok();
  if (v.data == nullptr) {
    return Status::make(status_code::invalid_argument, op, "%s is null (%lld bytes expected)",
                        name, static_cast<long long>(bytes));
  }
  const auto addr = reinterpret_cast<std::uintptr_t>(v.data);
  if (addr % element_alignment(type) != 0) {
    return Status::make(status_code::invalid_argument, op,
                        "%s at %p is misaligned (%s needs %zu-byte alignment)", name, v.data,
                        to_string(type).data(), element_alignment(type));
  }
  if (is_4bit(type) && v.rank > 0) {
    if (v.stride(v.rank - 1) != 1) {
      return Status::make(status_code::invalid_argument, op,
                          "%s: the innermost stride of a 4-bit view is %lld (must be 1)", name,
                          static_cast<long long>(v.stride(v.rank - 1)));
    }
    for (int d = 0; d + 1 < v.rank; ++d) {
      if (v.stride(d) % 2 != 0) {
        return Status::make(status_code::invalid_argument, op,
                            "%s: stride %d of a 4-bit view is %lld (must be even: rows start on "
                            "a byte)",
                            name, d, static_cast<long long>(v.stride(d)));
      }
    }
  }
  return Status::Ok();
}

// An output view (checked by require_view first) that every op writes element by element: no
// dim of more than one element may have stride 0 (two results would land in one cell, and
// threads would race on it), and its bytes may not overlap those of any input (an op reads its
// inputs while it writes: the result would depend on the order of the work). Empty views pass.
inline Status require_output(std::string_view op, const basic_tensor_view<true>& out,
                             std::initializer_list<std::pair<const char*, const_tensor_view>> ins) {
  for (int i = 0; i < out.rank; ++i) {
    if (out.dim(i) > 1 && out.stride(i) == 0) {
      return Status::make(status_code::invalid_argument, op,
                          "out stride %d is 0 with %lld elements in that dim (an output cannot "
                          "broadcast)",
                          i, static_cast<long long>(out.dim(i)));
    }
  }
  const std::int64_t out_bytes = out.extent_bytes();
  if (out_bytes <= 0) return Status::Ok();
  const auto o0 = reinterpret_cast<std::uintptr_t>(out.data);
  const auto o1 = o0 + static_cast<std::uintptr_t>(out_bytes);
  for (const auto& [name, in] : ins) {
    const std::int64_t in_bytes = in.extent_bytes();
    if (in_bytes <= 0 || in.data == nullptr) continue;
    const auto i0 = reinterpret_cast<std::uintptr_t>(in.data);
    const auto i1 = i0 + static_cast<std::uintptr_t>(in_bytes);
    if (i0 < o1 && o0 < i1) {
      return Status::make(status_code::invalid_argument, op,
                          "out [%p, +%lld bytes) overlaps %s [%p, +%lld bytes) (outputs may not "
                          "alias inputs)",
                          out.data, static_cast<long long>(out_bytes), name, in.data,
                          static_cast<long long>(in_bytes));
    }
  }
  return Status::Ok();
}

// A span that must hold one of the allowed counts of entries (e.g. 1 or N scales).
template <class T>
Status require_count(std::string_view op, const char* name, std::span<const T> s,
                     std::initializer_list<std::int64_t> allowed) {
  for (std::int64_t a : allowed) {
    if (static_cast<std::int64_t>(s.size()) == a) {
      if (!s.empty() && s.data() == nullptr) {
        return Status::make(status_code::invalid_argument, op, "%s is null", name);
      }
      return Status::Ok();
    }
  }
  char list[64] = {};
  int n = 0;
  for (std::int64_t a : allowed) {
    n += std::snprintf(list + n, sizeof(list) - static_cast<std::size_t>(n), "%s%lld",
                       n ? " or " : "", static_cast<long long>(a));
    if (n >= static_cast<int>(sizeof(list))) break;
  }
  return Status::make(status_code::shape_mismatch, op, "%s has %zu entries (must be %s)", name,
                      s.size(), list);
}

inline Status require_zero_point(std::string_view op, const char* name, std::int32_t zp,
                                 dtype t) {
  if (zp < min_of(t) || zp > max_of(t)) {
    return Status::make(status_code::invalid_argument, op,
                        "%s = %d is outside the %s range [%d, %d]", name, zp,
                        to_string(t).data(), min_of(t), max_of(t));
  }
  return Status::Ok();
}

inline Status require_scale(std::string_view op, const char* name, float s, bool divisor) {
  const bool ok = divisor ? is_valid_divisor_scale(s) : is_valid_scale(s);
  if (!ok) {
    return Status::make(status_code::invalid_argument, op, "%s = %g (must be finite and %s)",
                        name, static_cast<double>(s), divisor ? "> 0" : ">= 0");
  }
  return Status::Ok();
}

}  // namespace keel::detail
