// keel/router/policy.hpp — what a routing policy is, the policies keel ships, and how a model
// states the ops it needs.
//
// A policy is a type with:
//   using backends = keel::backend_list<...>;      the backends compiled into this BSP, best
//                                                  first for ties; the router appends the
//                                                  reference backend itself
//   static constexpr double score(const estimate&); lower is better; the router ranks its
//                                                  candidates for each call by it
//   static constexpr bool allows(const backend_caps&, op_kind, dtype);  a veto, at compile time
//   trace_capacity, probe_interval, probe_interval_max (see policy_defaults)
// Deriving from policy_defaults (or from latency_first / energy_first) supplies all but
// `backends` and `score`. A vendor's own policy is usually three lines: derive from one of the
// shipped ones and override score() or allows().
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "keel/backend.hpp"
#include "keel/dtype.hpp"
#include "keel/ops.hpp"

namespace keel {

// The backends a policy routes over, as a type list.
template <class... Backends>
struct backend_list {};

template <class T>
inline constexpr bool is_backend_list_v = false;
template <class... Bs>
inline constexpr bool is_backend_list_v<backend_list<Bs...>> = true;

// What the router predicts for one candidate on one call; the input of Policy::score().
struct estimate {
  std::string_view backend;
  backend_kind kind = backend_kind::reference;
  bool bit_exact = false;
  double time_us = 0;    // launch + roofline (or the backend's own model)
  double energy_uj = 0;  // time x the unit's active power
};

// The knobs every policy has, with defaults a policy may override.
struct policy_defaults {
  // Trace entries kept (a ring buffer); 0 compiles the trace and its timing out.
  static constexpr std::size_t trace_capacity = 256;
  // A backend held out by its circuit breaker is probed with a real request after it has been
  // passed over this many times; each failed probe doubles the wait, up to probe_interval_max.
  static constexpr std::uint32_t probe_interval = 16;
  static constexpr std::uint32_t probe_interval_max = 1024;
  // Compile-time veto: false removes the backend from the op's candidate list on every board.
  static constexpr bool allows(const backend_caps&, op_kind, dtype) { return true; }
};

// The fastest predicted candidate.
template <class... Backends>
struct latency_first : policy_defaults {
  using backends = backend_list<Backends...>;
  static constexpr std::string_view name = "latency-first";
  static constexpr double score(const estimate& e) { return e.time_us; }
};

// The candidate predicted to spend the least energy; among equals, the faster one.
template <class... Backends>
struct energy_first : policy_defaults {
  using backends = backend_list<Backends...>;
  static constexpr std::string_view name = "energy-first";
  // Energies within 0.1% are a tie that time breaks: estimates are not that precise.
  static constexpr double score(const estimate& e) { return e.energy_uj + 1e-3 * e.time_us; }
};

template <class P>
concept routing_policy = requires(const estimate& e, const backend_caps& c) {
  typename P::backends;
  { P::score(e) } -> std::convertible_to<double>;
  { P::allows(c, op_kind::matmul_i8, dtype::s8) } -> std::convertible_to<bool>;
  { P::trace_capacity } -> std::convertible_to<std::size_t>;
  { P::probe_interval } -> std::convertible_to<std::uint32_t>;
  { P::probe_interval_max } -> std::convertible_to<std::uint32_t>;
}
&&is_backend_list_v<typename P::backends>;

// ---- what a model needs, checked at compile time -------------------------------------------

// Where an op must run.
enum class placement : std::uint8_t { any, cpu, gpu, npu };

constexpr std::string_view to_string(placement p) noexcept {
  switch (p) {
    case placement::any: return "any";
    case placement::cpu: return "CPU";
    case placement::gpu: return "GPU";
    case placement::npu: return "NPU";
  }
  return "?";
}

// One op of a model and the properties it requires of the backend that runs it. A structural
// type, so a model lists its needs as template arguments:
//   static_assert(my_router::require<keel::op_need{keel::op_kind::attention, keel::dtype::s8,
//                                                  keel::placement::npu}>());
struct op_need {
  op_kind op = op_kind::matmul_i8;
  dtype weights = dtype::s8;      // the weight dtype; K/V's for attention
  placement on = placement::any;  // pinned to a unit
  bool accelerated = false;       // the reference backend does not count
  bool bit_exact = false;         // only bit-exact backends (safety-critical ops)
};

// The dtypes each routable op accepts as its routing dtype (ops.hpp's validate()).
constexpr bool legal_routing_dtype(op_kind k, dtype t) noexcept {
  switch (k) {
    case op_kind::matmul_i8:
    case op_kind::conv2d_i8: return t == dtype::s8 || t == dtype::u8;
    case op_kind::matmul_i4: return t == dtype::s4 || t == dtype::u4;
    case op_kind::attention: return t == dtype::s8 || t == dtype::f32;
    default: return false;
  }
}

constexpr bool is_routable(op_kind k) noexcept {
  return k == op_kind::matmul_i8 || k == op_kind::matmul_i4 || k == op_kind::conv2d_i8 ||
         k == op_kind::attention;
}

}  // namespace keel
