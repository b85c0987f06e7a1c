// keel/backends/cpu/buffer.hpp — owning, 64-byte aligned storage that reports allocation failure
// instead of throwing (the cpu backend turns it into status_code::out_of_memory).
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <type_traits>
#include <utility>

namespace keel::backends::cpu_detail {

template <class T>
class aligned_buffer {
  static_assert(std::is_trivially_copyable_v<T> && std::is_trivially_destructible_v<T>,
                "aligned_buffer holds plain data");

 public:
  static constexpr std::size_t kAlignment = 64;  // a cache line; also any SIMD load's alignment

  aligned_buffer() noexcept = default;
  aligned_buffer(const aligned_buffer&) = delete;
  aligned_buffer& operator=(const aligned_buffer&) = delete;
  aligned_buffer(aligned_buffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  aligned_buffer& operator=(aligned_buffer&& o) noexcept {
    if (this != &o) {
      release();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~aligned_buffer() { release(); }

  // Replaces the contents with `count` uninitialised elements; false (and empty) when the
  // size overflows or the allocation fails. count == 0 succeeds and holds nothing.
  [[nodiscard]] bool allocate(std::int64_t count) noexcept {
    release();
    if (count < 0) return false;
    if (count == 0) return true;
    if (static_cast<std::uint64_t>(count) > SIZE_MAX / sizeof(T)) return false;
    void* p = ::operator new (static_cast<std::size_t>(count) * sizeof(T),
                              std::align_val_t{kAlignment}, std::nothrow);
    if (p == nullptr) return false;
    data_ = static_cast<T*>(p);
    size_ = count;
    return true;
  }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::int64_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  T& operator[](std::int64_t i) noexcept { return data_[i]; }
  const T& operator[](std::int64_t i) const noexcept { return data_[i]; }

 private:
  void release() noexcept {
    if (data_ != nullptr) ::operator delete (data_, std::align_val_t{kAlignment});
    data_ = nullptr;
    size_ = 0;
  }
  T* data_ = nullptr;
  std::int64_t size_ = 0;
};

}  // namespace keel::backends::cpu_detail
