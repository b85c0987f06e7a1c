// keel/tensor.hpp — non-owning tensor views: a pointer, a dtype, a shape and strides.
//
// Shapes and strides are int64 and counted in elements (nibbles for s4/u4), so offsets past
// 2^31 elements are exact. A view never owns or frees memory. Strides may be any non-negative
// value, including 0 to broadcast a dimension. For s4/u4 the innermost dimension must be dense
// (stride 1) and every other stride even, so each row starts on a byte.
#pragma once

#include <array>
#include <cstdint>
#include <initializer_list>
#include <type_traits>

#include "keel/check.hpp"
#include "keel/dtype.hpp"

namespace keel {

inline constexpr int kMaxRank = 4;

template <bool Mutable>
struct basic_tensor_view {
  using pointer = std::conditional_t<Mutable, void*, const void*>;

  pointer data = nullptr;
  dtype type = dtype::f32;
  int rank = 0;
  std::array<std::int64_t, kMaxRank> shape{};
  std::array<std::int64_t, kMaxRank> strides{};  // elements, not bytes

  constexpr basic_tensor_view() = default;
  constexpr basic_tensor_view(pointer p, dtype t, std::initializer_list<std::int64_t> dims) noexcept
      : data(p), type(t) {
    rank = 0;
    for (std::int64_t d : dims) {
      if (rank < kMaxRank) shape[static_cast<std::size_t>(rank)] = d;
      ++rank;
    }
    set_dense_strides();
  }
  // A mutable view converts to a const one.
  template <bool M = Mutable, std::enable_if_t<!M, int> = 0>
  constexpr basic_tensor_view(const basic_tensor_view<true>& v) noexcept  // NOLINT: implicit
      : data(v.data), type(v.type), rank(v.rank), shape(v.shape), strides(v.strides) {}

  constexpr void set_dense_strides() noexcept {
    std::int64_t s = 1;
    for (int i = (rank < kMaxRank ? rank : kMaxRank) - 1; i >= 0; --i) {
      strides[static_cast<std::size_t>(i)] = s;
      std::int64_t d = shape[static_cast<std::size_t>(i)];
      // Rows of s4/u4 start on a byte: round the innermost extent up to even.
      if (i == rank - 1 && is_4bit(type)) d += d & 1;
      (void)checked_mul(s, d < 1 ? 1 : d, &s);
    }
  }

  constexpr std::int64_t dim(int i) const noexcept { return shape[static_cast<std::size_t>(i)]; }
  constexpr std::int64_t stride(int i) const noexcept {
    return strides[static_cast<std::size_t>(i)];
  }
  // Product of the dims, or -1 when it overflows or a dim is negative.
  constexpr std::int64_t numel() const noexcept {
    if (rank < 0 || rank > kMaxRank) return -1;
    return element_count(std::span<const std::int64_t>(shape.data(), static_cast<std::size_t>(rank)));
  }
  // One past the largest element offset the view reaches, or -1 on overflow. 0 when empty.
  constexpr std::int64_t extent() const noexcept {
    std::int64_t last = 0;
    for (int i = 0; i < rank; ++i) {
      const std::int64_t d = dim(i);
      if (d < 0 || stride(i) < 0) return -1;
      if (d == 0) return 0;
      std::int64_t step = 0;
      if (!checked_mul(d - 1, stride(i), &step) || !checked_add(last, step, &last)) return -1;
    }
    return last + 1;
  }
  // Bytes spanned by extent(), or -1 on overflow.
  constexpr std::int64_t extent_bytes() const noexcept {
    const std::int64_t e = extent();
    if (e < 0) return -1;
    std::int64_t bits = 0;
    if (!checked_mul(e, bits_of(type), &bits)) return -1;
    return (bits + 7) / 8;
  }

  // Typed element pointer at a flat element offset (not for s4/u4).
  template <class T>
  auto at(std::int64_t offset) const noexcept {
    using Q = std::conditional_t<Mutable, T, const T>;
    return static_cast<Q*>(data) + offset;
  }
};

using tensor_view = basic_tensor_view<true>;
using const_tensor_view = basic_tensor_view<false>;

// Dense views from typed pointers: view(ptr, {M, K}).
template <class T>
constexpr tensor_view view(T* p, std::initializer_list<std::int64_t> dims) noexcept {
  return tensor_view(static_cast<void*>(p), dtype_of_v<T>, dims);
}
template <class T>
constexpr const_tensor_view view(const T* p, std::initializer_list<std::int64_t> dims) noexcept {
  return const_tensor_view(static_cast<const void*>(p), dtype_of_v<T>, dims);
}
// Dense view of packed int4 storage (two elements a byte, low nibble first).
constexpr const_tensor_view view_int4(const std::uint8_t* bytes, dtype t,
                                      std::initializer_list<std::int64_t> dims) noexcept {
  return const_tensor_view(static_cast<const void*>(bytes), t, dims);
}
constexpr tensor_view view_int4(std::uint8_t* bytes, dtype t,
                                std::initializer_list<std::int64_t> dims) noexcept {
  return tensor_view(static_cast<void*>(bytes), t, dims);
}

// ---- packed int4 storage ------------------------------------------------------------------
// Element i of a dense nibble stream lives in byte i/2: the low nibble when i is even, the high
// nibble when i is odd. s4 is two's complement (-8..7); u4 is 0..15.

constexpr std::int32_t load_nibble(const std::uint8_t* bytes, std::int64_t i, dtype t) noexcept {
  const std::uint8_t b = bytes[i >> 1];
  const std::int32_t n = (i & 1) ? (b >> 4) : (b & 0x0F);
  return t == dtype::s4 ? ((n ^ 8) - 8) : n;  // sign-extend bit 3 for s4
}

// Writes the low 4 bits of v at nibble i, leaving the other nibble of the byte untouched.
constexpr void store_nibble(std::uint8_t* bytes, std::int64_t i, std::int32_t v) noexcept {
  const std::uint8_t n = static_cast<std::uint8_t>(v & 0x0F);
  std::uint8_t& b = bytes[i >> 1];
  b = (i & 1) ? static_cast<std::uint8_t>((b & 0x0F) | (n << 4))
              : static_cast<std::uint8_t>((b & 0xF0) | n);
}

}  // namespace keel
