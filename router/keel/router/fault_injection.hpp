// keel/router/fault_injection.hpp — a backend wrapper that fails on purpose.
//
// faulty_backend<Inner, Persona> runs every op on Inner, except the calls its fault_plan says
// to fail: every Nth call, every call after the device is "lost" (until revive()), each with the
// status code of a real backend fault (device_lost, timeout, out_of_memory). Before failing it
// can scribble over the output, as a device that dies mid-kernel would, so a test proves the
// router's retry overwrites everything. Persona sets the name and kind it presents to the
// router, so one Inner (the reference) can stand in for a cpu, gpu or npu backend during
// bring-up, before the real one exists. keel's router tests use it; vendors can use it to check
// their own fallback handling.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "keel/backend.hpp"
#include "keel/ops.hpp"

namespace keel {

// When and how a faulty_backend fails. Counts are of run() calls, 1-based.
struct fault_plan {
  std::uint32_t fail_every = 0;                 // call N, 2N, 3N, ... fails (0: never)
  status_code code = status_code::device_lost;  // what those calls return
  std::uint32_t lose_device_after = 0;  // every call after this many fails with device_lost,
                                        // until revive() (0: never)
  std::uint32_t delay_us = 0;           // wait this long before failing (a timeout takes time)
  bool scribble = true;                 // overwrite the output before failing
};

// Persona: `static constexpr std::string_view name` and `static constexpr backend_kind kind`;
// optionally `bit_exact`, `ops`, `weight_types`, `max_dim` and `alignment`, which replace
// Inner's caps (to pose as a backend with a narrower reach than the one it wraps).
template <class Inner, class Persona>
class faulty_backend {
  static_assert(backend<Inner>, "faulty_backend wraps a keel::backend");

 public:
  static constexpr backend_caps caps = [] {
    backend_caps c = Inner::caps;
    c.name = Persona::name;
    c.kind = Persona::kind;
    if constexpr (requires { Persona::bit_exact; }) c.bit_exact = Persona::bit_exact;
    if constexpr (requires { Persona::ops; }) c.ops = Persona::ops;
    if constexpr (requires { Persona::weight_types; }) c.weight_types = Persona::weight_types;
    if constexpr (requires { Persona::max_dim; }) c.max_dim = Persona::max_dim;
    if constexpr (requires { Persona::alignment; }) c.alignment = Persona::alignment;
    return c;
  }();
  using packed_matmul_i8 = typename Inner::packed_matmul_i8;
  using packed_matmul_i4 = typename Inner::packed_matmul_i4;
  using packed_conv2d = typename Inner::packed_conv2d;

  void set_plan(const fault_plan& p) noexcept { plan_ = p; }
  const fault_plan& plan() const noexcept { return plan_; }
  void lose_device() noexcept { lost_ = true; }
  void revive() noexcept {
    lost_ = false;
    plan_.lose_device_after = 0;
  }
  std::uint64_t calls() const noexcept { return calls_; }
  std::uint64_t faults() const noexcept { return faults_; }
  std::uint64_t packs() const noexcept { return packs_; }
  Inner& inner() noexcept { return inner_; }

  template <class Desc>
  Status supports(const Desc& d) const {
    return inner_.supports(d);
  }

  template <class Desc, class Args>
  Status run(const Desc& d, const Args& a) {
    if (const status_code c = next_fault(); c != status_code::ok) return fail(d, a.out, c);
    return inner_.run(d, a);
  }
  template <class Desc, class Args>
  auto pack(const Desc& d, const Args& a) {
    ++packs_;
    return inner_.pack(d, a);
  }
  template <class Desc, class Packed, class Args>
  Status run(const Desc& d, const Packed& p, const Args& a) {
    if (const status_code c = next_fault(); c != status_code::ok) return fail(d, a.out, c);
    return inner_.run(d, p, a);
  }

 private:
  status_code next_fault() noexcept {
    ++calls_;
    if (plan_.lose_device_after != 0 && calls_ > plan_.lose_device_after) lost_ = true;
    if (lost_) return status_code::device_lost;
    if (plan_.fail_every != 0 && calls_ % plan_.fail_every == 0) return plan_.code;
    return status_code::ok;
  }

  template <class Desc>
  Status fail(const Desc&, const tensor_view& out, status_code c) {
    ++faults_;
    // Garbage in a dense output, as a kernel that died halfway would leave. A strided view is
    // left alone: its gaps are not ours to write.
    if (plan_.scribble && out.data != nullptr && out.extent() == out.numel() && out.numel() > 0) {
      std::memset(out.data, 0xEE, static_cast<std::size_t>(out.extent_bytes()));
    }
    if (plan_.delay_us != 0) {
      const auto until =
          std::chrono::steady_clock::now() + std::chrono::microseconds(plan_.delay_us);
      while (std::chrono::steady_clock::now() < until) {
      }
    }
    return Status::make(c, to_string(Desc::kind), "%.*s: injected fault on call %llu",
                        static_cast<int>(caps.name.size()), caps.name.data(),
                        static_cast<unsigned long long>(calls_));
  }

  Inner inner_{};
  fault_plan plan_{};
  bool lost_ = false;
  std::uint64_t calls_ = 0;
  std::uint64_t faults_ = 0;
  std::uint64_t packs_ = 0;
};

}  // namespace keel
