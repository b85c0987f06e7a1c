// keel/backend.hpp — what makes a type a keel backend (cpu, vulkan, npu, reference, ...).
//
// A backend declares its capabilities as a constexpr `caps` member (read by the router at compile
// time), answers supports(desc) for a concrete shape at run time, packs weights once into its own
// layout, and runs ops. Every entry point returns a Status; none throws or aborts on user input.
// A backend that cannot run an op kind still provides the overloads and returns `unsupported`, so
// the router can treat every backend alike.
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>

#include "keel/ops.hpp"

namespace keel {

enum class backend_kind : std::uint8_t { reference, cpu, gpu, npu };

constexpr std::string_view to_string(backend_kind k) noexcept {
  switch (k) {
    case backend_kind::reference: return "reference";
    case backend_kind::cpu: return "cpu";
    case backend_kind::gpu: return "gpu";
    case backend_kind::npu: return "npu";
  }
  return "?";
}

constexpr std::uint32_t op_bit(op_kind k) noexcept { return 1u << static_cast<unsigned>(k); }
constexpr std::uint32_t dtype_bit(dtype t) noexcept { return 1u << static_cast<unsigned>(t); }

// Compile-time facts about a backend. The router derives its candidate lists from these.
struct backend_caps {
  std::string_view name;      // as it appears in traces, reports and benchmark names
  backend_kind kind = backend_kind::reference;
  bool bit_exact = false;     // integer outputs equal the reference's bits for every input
  std::uint32_t ops = 0;      // op_bit() of each op kind it can run
  std::uint32_t weight_types = 0;  // dtype_bit() of each weight dtype it accepts
  std::int64_t max_dim = INT64_MAX;  // largest single dimension it accepts
  std::int64_t alignment = 1;        // byte alignment it needs for every buffer

  constexpr bool runs(op_kind k) const noexcept { return (ops & op_bit(k)) != 0; }
  constexpr bool accepts_weights(dtype t) const noexcept {
    return (weight_types & dtype_bit(t)) != 0;
  }
};

// An op a backend runs: a desc and args type, supports() and run().
template <class B, class Desc, class Args>
concept runs_op = requires(B& b, const B& cb, const Desc& d, const Args& a) {
  { cb.supports(d) } -> std::same_as<Status>;
  { b.run(d, a) } -> std::same_as<Status>;
};

// An op whose weights a backend packs once: pack(desc, args) reads only the weight operands of
// args (B and its scales, zero points and bias) and returns an object the caller keeps;
// run(desc, packed, args) then ignores those fields of args.
template <class B, class Desc, class Args, class Packed>
concept packs_op = requires(B& b, const Desc& d, const Args& a, const Packed& p) {
  { b.pack(d, a) } -> std::same_as<Result<Packed>>;
  { b.run(d, p, a) } -> std::same_as<Status>;
};

template <class B>
concept backend = requires {
  { B::caps } -> std::convertible_to<backend_caps>;
  typename B::packed_matmul_i8;
  typename B::packed_matmul_i4;
  typename B::packed_conv2d;
} && runs_op<B, matmul_i8_desc, matmul_i8_args> &&
    runs_op<B, matmul_i4_desc, matmul_i4_args> &&
    runs_op<B, conv2d_desc, conv2d_args> &&
    runs_op<B, attention_desc, attention_args> &&
    packs_op<B, matmul_i8_desc, matmul_i8_args, typename B::packed_matmul_i8> &&
    packs_op<B, matmul_i4_desc, matmul_i4_args, typename B::packed_matmul_i4> &&
    packs_op<B, conv2d_desc, conv2d_args, typename B::packed_conv2d>;

}  // namespace keel
