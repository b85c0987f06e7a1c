// keel/router/router.hpp — keel::router<Board, Policy>: sends each op to the backend that serves
// it best on a board, proves at compile time that the board can run a model, and keeps
// computing when a backend degrades.
//
//   using my_router = keel::router<keel::boards::rk3588,
//                                  keel::latency_first<cpu_backend, npu_backend>>;
//   static_assert(my_router::require<keel::op_need{keel::op_kind::conv2d_i8, keel::dtype::s8,
//                                                  keel::placement::npu}>());
//   my_router r;
//   keel::Status s = r.run(desc, args);          // or run(desc, args, request, &report)
//
// Compile time. For every routable op kind and dtype the router derives the ordered candidate
// list: the policy's backends whose caps run the op with that dtype, that the board can host (a
// GPU backend needs the board's GPU; an NPU backend needs the board's NPU to list the op and the
// dtype), that the policy allows, ranked by the policy's score on a nominal shape, and always
// ending with the reference backend. require<op_need...>() rejects a model the board cannot run
// with a static_assert naming the op; the compiler's instantiation note names the board.
//
// Run time, per call. Among the op's candidates the router drops those that cannot take the
// shape (max_dim), the buffers (alignment) or the request's risk class (safety-critical: bit-exact
// only), predicts each one's time and energy (cost_model.hpp, or the backend's own
// estimate_us(desc)), and ranks them: candidates within the request's latency budget and energy
// envelope first, then by the policy's score. Then it runs the first; on a backend fault
// (is_backend_fault) it opens that backend's circuit breaker and runs the op on the next
// candidate, down to the reference, so no request is lost. A held-out backend is passed over
// until it has been passed over probe_interval times; then a real request probes it (with the
// same fallback), and a success puts it back in service. Every attempt is recorded in the trace.
//
// Thread safety: none. A router holds mutable health and trace state; use one per thread, or
// serialise calls. (Shortcoming: a shared router would need atomics in its health counters.)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <tuple>
#include <type_traits>
#include <utility>

#include "keel/backend.hpp"
#include "keel/backends/reference.hpp"
#include "keel/boards/profile.hpp"
#include "keel/ops.hpp"
#include "keel/router/cost_model.hpp"
#include "keel/router/policy.hpp"
#include "keel/router/trace.hpp"
#include "keel/status.hpp"

namespace keel {

// The policy's backends plus the reference: at most 8, so that sets of them fit in a byte.
inline constexpr std::size_t kMaxRoutedBackends = 8;

enum class risk_class : std::uint8_t {
  normal,
  safety_critical,  // only bit-exact backends: the answer must not depend on where it ran
};

// What the caller asks of one call. Budgets are preferences by default: candidates predicted to
// meet them are ranked first, and if none does the policy's best runs anyway (the report says
// so). hard_budget makes them limits: no candidate within them is an error, and nothing runs.
struct request {
  double latency_budget_us = 0;  // 0: no budget
  double energy_budget_uj = 0;   // 0: no envelope
  risk_class risk = risk_class::normal;
  bool hard_budget = false;
};

// What happened to one call, for a caller that wants to know (run()'s last argument).
struct route_report {
  std::string_view backend;   // the backend whose result the caller got (or the last tried)
  std::uint8_t attempts = 0;  // backends run; 1 when the first choice served it
  bool fell_back = false;     // an earlier attempt failed and a later candidate served it
  bool held_out = false;      // a better-ranked backend was passed over by its breaker
  bool over_budget = false;   // no candidate met the request's budget
  status_code first_failure = status_code::ok;  // what the first failed attempt returned
  float predicted_us = 0;                       // of the backend that served it
  float measured_us = 0;  // 0 unless timed (trace enabled or a report requested)
};

// A backend's health as the router tracks it.
struct backend_health {
  bool held_out = false;             // its breaker is open
  std::uint32_t passed_over = 0;     // calls that skipped it since it was held out or probed
  std::uint32_t probe_interval = 0;  // passes before the next probe
  std::uint64_t runs = 0;            // attempts, successful or not
  std::uint64_t faults = 0;          // attempts that failed with a backend fault
  std::uint64_t probes = 0;
  status_code last_fault = status_code::ok;
};

// An op's candidates on a board, best first; the last is always the reference backend.
struct candidate_list {
  std::uint8_t count = 0;
  std::array<std::uint8_t, kMaxRoutedBackends> index{};
};

// What run() would try for one call, in order.
struct route_plan {
  std::uint8_t count = 0;
  std::array<std::uint8_t, kMaxRoutedBackends> order{};  // backend indices
  std::array<float, kMaxRoutedBackends> predicted_us{};  // by position in order
  std::uint8_t probe_mask = 0;                           // bit i: backend i is tried as a probe
  std::uint8_t held_out_mask = 0;  // bit i: backend i was passed over by its breaker
  bool over_budget = false;
  bool safety_critical = false;
};

namespace routing_detail {

// Policy::backends without the reference, then the reference: the router's backend tuple.
template <class List>
struct routed_tuple;
template <class... Bs>
struct routed_tuple<backend_list<Bs...>> {
  using type = decltype(std::tuple_cat(
      std::declval<std::conditional_t<std::is_same_v<Bs, backends::reference_backend>, std::tuple<>,
                                      std::tuple<Bs>>>()...,
      std::declval<std::tuple<backends::reference_backend>>()));
};

template <class Tuple>
struct all_backends;
template <class... Bs>
struct all_backends<std::tuple<Bs...>> : std::bool_constant<(backend<Bs> && ...)> {};

// A backend's own cost model, in one of two forms: estimate_us(desc), the whole predicted time
// in microseconds; or estimate(desc) returning a Result whose value has `seconds`, the whole
// predicted time of the job, launch included (the NPU driver's cycle model). A failed Result
// means the backend cannot run this desc: the candidate is dropped for this call.
template <class B, class Desc>
concept has_estimate_us = requires(const B& b, const Desc& d) {
  { b.estimate_us(d) } -> std::convertible_to<double>;
};
template <class B, class Desc>
concept has_device_estimate = requires(const B& b, const Desc& d) {
  { b.estimate(d).ok() } -> std::convertible_to<bool>;
  { b.estimate(d).value().seconds } -> std::convertible_to<double>;
};

// Why a model's op_need cannot be met.
enum class need_verdict : std::uint8_t {
  ok,
  not_routable,        // the op kind is not one a backend runs (quantize ops run inline)
  illegal_dtype,       // the op does not take this dtype at all
  unit_absent,         // pinned to a GPU or NPU the board does not have
  no_backend_on_unit,  // the unit is there, but no policy backend of its kind runs the op
  only_reference,      // accelerated, but only the reference runs it
  no_bit_exact,        // bit_exact, but no bit-exact candidate where it is pinned
};

constexpr bool kind_matches(backend_kind k, placement p) noexcept {
  switch (p) {
    case placement::any: return true;
    case placement::cpu: return k == backend_kind::cpu;
    case placement::gpu: return k == backend_kind::gpu;
    case placement::npu: return k == backend_kind::npu;
  }
  return false;
}

constexpr std::size_t table_slot(op_kind k, dtype t) noexcept {
  return static_cast<std::size_t>(k) * 8 + static_cast<std::size_t>(t);
}
inline constexpr std::size_t kTableSize = static_cast<std::size_t>(kOpKindCount) * 8;

// The shapes compile-time ranking uses: a mid-size layer of each op (runtime ranks real shapes).
constexpr op_work nominal_work(op_kind k, dtype t) noexcept {
  switch (k) {
    case op_kind::matmul_i8: {
      matmul_i8_desc d;
      d.m = d.n = d.k = 256;
      d.b_type = t;
      return work_of(d);
    }
    case op_kind::matmul_i4: {  // a decoding GEMV
      matmul_i4_desc d;
      d.m = 1;
      d.n = d.k = 4096;
      d.b_type = t;
      return work_of(d);
    }
    case op_kind::conv2d_i8: {
      conv2d_desc d;
      d.in_h = d.in_w = 56;
      d.in_c = d.out_c = 64;
      d.kernel_h = d.kernel_w = 3;
      d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
      d.w_type = t;
      return work_of(d);
    }
    case op_kind::attention: {
      attention_desc d;
      d.q_heads = d.kv_heads = 8;
      d.q_len = d.kv_len = 256;
      d.head_dim = 64;
      d.kv_type = t;
      d.q_type = t == dtype::s8 ? dtype::s8 : dtype::f32;
      return work_of(d);
    }
    default: return {};
  }
}

// OR of the addresses of an op's tensor operands: its lowest set bit is their common alignment.
inline std::uintptr_t address_bits(const matmul_i8_args& a) noexcept {
  return reinterpret_cast<std::uintptr_t>(a.a.data) | reinterpret_cast<std::uintptr_t>(a.b.data) |
         reinterpret_cast<std::uintptr_t>(a.out.data);
}
inline std::uintptr_t address_bits(const matmul_i4_args& a) noexcept {
  return reinterpret_cast<std::uintptr_t>(a.a.data) | reinterpret_cast<std::uintptr_t>(a.b.data) |
         reinterpret_cast<std::uintptr_t>(a.scale.data) |
         reinterpret_cast<std::uintptr_t>(a.out.data);
}
inline std::uintptr_t address_bits(const conv2d_args& a) noexcept {
  return reinterpret_cast<std::uintptr_t>(a.input.data) |
         reinterpret_cast<std::uintptr_t>(a.weights.data) |
         reinterpret_cast<std::uintptr_t>(a.out.data);
}
inline std::uintptr_t address_bits(const attention_args& a) noexcept {
  return reinterpret_cast<std::uintptr_t>(a.q.data) | reinterpret_cast<std::uintptr_t>(a.k.data) |
         reinterpret_cast<std::uintptr_t>(a.v.data) |
         reinterpret_cast<std::uintptr_t>(a.mask.data) |
         reinterpret_cast<std::uintptr_t>(a.out.data);
}

template <class Desc, class Args>
concept routable_op =
    (std::is_same_v<Desc, matmul_i8_desc> && std::is_same_v<Args, matmul_i8_args>) ||
    (std::is_same_v<Desc, matmul_i4_desc> && std::is_same_v<Args, matmul_i4_args>) ||
    (std::is_same_v<Desc, conv2d_desc> && std::is_same_v<Args, conv2d_args>) ||
    (std::is_same_v<Desc, attention_desc> && std::is_same_v<Args, attention_args>);

// The packed-weights type a backend has for an op (attention has none).
template <class B, class Desc>
struct packed_of;
template <class B>
struct packed_of<B, matmul_i8_desc> {
  using type = typename B::packed_matmul_i8;
  using args = matmul_i8_args;
};
template <class B>
struct packed_of<B, matmul_i4_desc> {
  using type = typename B::packed_matmul_i4;
  using args = matmul_i4_args;
};
template <class B>
struct packed_of<B, conv2d_desc> {
  using type = typename B::packed_conv2d;
  using args = conv2d_args;
};

template <class Desc>
concept packable_op = std::is_same_v<Desc, matmul_i8_desc> ||
    std::is_same_v<Desc, matmul_i4_desc> || std::is_same_v<Desc, conv2d_desc>;

}  // namespace routing_detail

// The messages of require<>(): one set per op kind, so the op's name is in the text itself.
#define KEEL_ROUTER_NEED_MESSAGES(OPNAME)                                                         \
  static_assert(V != routing_detail::need_verdict::illegal_dtype,                                 \
                "keel::router: " OPNAME                                                           \
                " does not take this dtype (op_need.weights; see "                                \
                "keel::legal_routing_dtype)");                                                    \
  static_assert(!(V == routing_detail::need_verdict::unit_absent && On == placement::npu),        \
                "keel::router: " OPNAME " is pinned to the NPU, but this board has no NPU");      \
  static_assert(!(V == routing_detail::need_verdict::unit_absent && On == placement::gpu),        \
                "keel::router: " OPNAME " is pinned to the GPU, but this board has no GPU");      \
  static_assert(!(V == routing_detail::need_verdict::no_backend_on_unit && On == placement::npu), \
                "keel::router: " OPNAME                                                           \
                " is pinned to the NPU, but neither this board's NPU nor "                        \
                "an NPU backend of the policy runs it with this dtype");                          \
  static_assert(!(V == routing_detail::need_verdict::no_backend_on_unit && On == placement::gpu), \
                "keel::router: " OPNAME                                                           \
                " is pinned to the GPU, but no GPU backend of the policy "                        \
                "runs it with this dtype");                                                       \
  static_assert(!(V == routing_detail::need_verdict::no_backend_on_unit && On == placement::cpu), \
                "keel::router: " OPNAME                                                           \
                " is pinned to the CPU, but no CPU backend of the policy "                        \
                "runs it with this dtype");                                                       \
  static_assert(V != routing_detail::need_verdict::only_reference,                                \
                "keel::router: " OPNAME                                                           \
                " must be accelerated, but on this board only the "                               \
                "reference backend runs it with this dtype");                                     \
  static_assert(V != routing_detail::need_verdict::no_bit_exact,                                  \
                "keel::router: " OPNAME                                                           \
                " is safety-critical (bit_exact), but no bit-exact "                              \
                "backend runs it where it is pinned on this board")

template <boards::board Board, class Policy>
class router {
  static_assert(routing_policy<Policy>,
                "keel::router: Policy is not a routing policy: it needs `using backends = "
                "keel::backend_list<...>` and static score(const keel::estimate&); derive it "
                "from keel::latency_first<...>, keel::energy_first<...> or "
                "keel::policy_defaults");
  static_assert(boards::check_profile<Board>());

 public:
  using board_type = Board;
  using policy_type = Policy;
  using backend_tuple = typename routing_detail::routed_tuple<typename Policy::backends>::type;
  static constexpr std::size_t backend_count = std::tuple_size_v<backend_tuple>;
  static constexpr std::size_t reference_index = backend_count - 1;

  static_assert(routing_detail::all_backends<backend_tuple>::value,
                "keel::router: every type in Policy::backends must satisfy keel::backend "
                "(keel/backend.hpp); the compiler's notes say which requirement fails");
  static_assert(backend_count <= kMaxRoutedBackends,
                "keel::router: a policy may list at most 7 backends (the router adds the "
                "reference backend as the 8th)");

 private:
  template <std::size_t I>
  using backend_at = std::tuple_element_t<I, backend_tuple>;

  template <std::size_t... I>
  static constexpr std::array<backend_caps, backend_count> make_caps(std::index_sequence<I...>) {
    return {backend_caps(backend_at<I>::caps)...};
  }

 public:
  // Every backend's caps and its unit's rates on this board, by backend index.
  static constexpr std::array<backend_caps, backend_count> caps =
      make_caps(std::make_index_sequence<backend_count>{});

 private:
  static constexpr std::array<unit_rates, backend_count> make_rates() {
    std::array<unit_rates, backend_count> r{};
    for (std::size_t i = 0; i < backend_count; ++i) r[i] = rates_for<Board>(caps[i].kind);
    return r;
  }

 public:
  static constexpr std::array<unit_rates, backend_count> rates = make_rates();

 private:
  // The roofline of each backend with its divisions done at compile time: the run-time
  // prediction is two multiplies, a max and an add (bench_router: the decision's hot loop).
  struct inverse_rates {
    double us_per_int_op, us_per_float_op, us_per_byte, launch_us;
  };
  static constexpr std::array<inverse_rates, backend_count> make_inverse() {
    constexpr double inf = std::numeric_limits<double>::infinity();
    std::array<inverse_rates, backend_count> v{};
    for (std::size_t i = 0; i < backend_count; ++i) {
      const unit_rates& r = rates[i];
      v[i] = {r.int_ops_per_us > 0 ? 1 / r.int_ops_per_us : inf,
              r.float_ops_per_us > 0 ? 1 / r.float_ops_per_us : inf,
              r.bytes_per_us > 0 ? 1 / r.bytes_per_us : inf, r.launch_us};
    }
    return v;
  }
  static constexpr std::array<inverse_rates, backend_count> kInverse = make_inverse();

 public:
  // Can the board host backend i for (k, t)? The unit must exist, and an NPU must list the op
  // kind and the dtype (f32 math on an NPU runs in its f16 path).
  static constexpr bool board_hosts(std::size_t i, op_kind k, dtype t) {
    const boards::board_profile& p = Board::profile;
    switch (caps[i].kind) {
      case backend_kind::reference:
      case backend_kind::cpu: return true;
      case backend_kind::gpu: return p.gpu.present;
      case backend_kind::npu: {
        if (!p.npu.present || (p.npu.ops & op_bit(k)) == 0) return false;
        const std::uint32_t want =
            is_integer(t) ? dtype_bit(t) : (dtype_bit(dtype::f16) | dtype_bit(dtype::f32));
        return (p.npu.dtypes & want) != 0;
      }
    }
    return false;
  }

  // Does backend i's caps accept (k, t)? Float operands (attention's f32 K/V) are not weights:
  // every backend that runs the op is asked, and supports() or run() answers for the shape.
  static constexpr bool caps_accept(std::size_t i, op_kind k, dtype t) {
    return caps[i].runs(k) && (!is_integer(t) || caps[i].accepts_weights(t));
  }

 private:
  static constexpr double nominal_score(std::size_t i, op_kind k, dtype t) {
    const op_work w = routing_detail::nominal_work(k, t);
    const double time = roofline_us(rates[i], w);
    return static_cast<double>(Policy::score(
        estimate{caps[i].name, caps[i].kind, caps[i].bit_exact, time, time * rates[i].watts}));
  }

  static constexpr candidate_list make_candidates(op_kind k, dtype t) {
    candidate_list c;
    if (is_routable(k) && legal_routing_dtype(k, t)) {
      for (std::size_t i = 0; i < reference_index; ++i) {
        if (!caps_accept(i, k, t) || !board_hosts(i, k, t) || !Policy::allows(caps[i], k, t)) {
          continue;
        }
        // Insert by nominal score; equal scores keep the policy's order.
        const double s = nominal_score(i, k, t);
        std::size_t pos = c.count;
        while (pos > 0 && nominal_score(c.index[pos - 1], k, t) > s) {
          c.index[pos] = c.index[pos - 1];
          --pos;
        }
        c.index[pos] = static_cast<std::uint8_t>(i);
        ++c.count;
      }
    }
    c.index[c.count++] = static_cast<std::uint8_t>(reference_index);
    return c;
  }

  static constexpr std::array<candidate_list, routing_detail::kTableSize> make_table() {
    std::array<candidate_list, routing_detail::kTableSize> table{};
    for (int k = 0; k < kOpKindCount; ++k) {
      for (int t = 0; t < 8; ++t) {
        table[routing_detail::table_slot(static_cast<op_kind>(k), static_cast<dtype>(t))] =
            make_candidates(static_cast<op_kind>(k), static_cast<dtype>(t));
      }
    }
    return table;
  }

  static constexpr std::array<candidate_list, routing_detail::kTableSize> kTable = make_table();

 public:
  // The compile-time candidate list of (k, t); an illegal pair lists only the reference, which
  // rejects it with a Status naming the op and the dtype.
  static constexpr const candidate_list& candidates(op_kind k, dtype t) {
    return kTable[routing_detail::table_slot(k, t)];
  }

  // ---- compile-time model check ------------------------------------------------------------

  static constexpr routing_detail::need_verdict judge(const op_need& n) {
    using routing_detail::need_verdict;
    if (!is_routable(n.op)) return need_verdict::not_routable;
    if (!legal_routing_dtype(n.op, n.weights)) return need_verdict::illegal_dtype;
    const boards::board_profile& p = Board::profile;
    if (n.on == placement::npu && !p.npu.present) return need_verdict::unit_absent;
    if (n.on == placement::gpu && !p.gpu.present) return need_verdict::unit_absent;
    const candidate_list& c = candidates(n.op, n.weights);
    bool placed = false, accelerated = false, exact = false;
    for (std::size_t j = 0; j < c.count; ++j) {
      const backend_caps& b = caps[c.index[j]];
      if (!routing_detail::kind_matches(b.kind, n.on)) continue;
      placed = true;
      if (n.accelerated && b.kind == backend_kind::reference) continue;
      accelerated = true;
      if (n.bit_exact && !b.bit_exact) continue;
      exact = true;
    }
    if (!placed) return need_verdict::no_backend_on_unit;
    if (!accelerated) return need_verdict::only_reference;
    if (!exact) return need_verdict::no_bit_exact;
    return need_verdict::ok;
  }

 private:
  template <op_kind K, routing_detail::need_verdict V, placement On>
  static consteval void report_need() {
    static_assert(V != routing_detail::need_verdict::not_routable,
                  "keel::router: only matmul_i8, matmul_i4, conv2d_i8 and attention are routed; "
                  "the quantize ops run inline on the CPU");
    if constexpr (K == op_kind::matmul_i8) {
      KEEL_ROUTER_NEED_MESSAGES("matmul_i8");
    } else if constexpr (K == op_kind::matmul_i4) {
      KEEL_ROUTER_NEED_MESSAGES("matmul_i4");
    } else if constexpr (K == op_kind::conv2d_i8) {
      KEEL_ROUTER_NEED_MESSAGES("conv2d_i8");
    } else if constexpr (K == op_kind::attention) {
      KEEL_ROUTER_NEED_MESSAGES("attention");
    }
  }

  template <op_need N>
  static consteval bool require_one() {
    constexpr routing_detail::need_verdict v = judge(N);
    report_need<N.op, v, N.on>();
    return v == routing_detail::need_verdict::ok;
  }

 public:
  // true when the board, with this policy's backends, can run every op the model needs; a
  // static_assert naming the op (the instantiation note names the board) otherwise.
  template <op_need... Needs>
  static consteval bool require() {
    return (require_one<Needs>() && ...);
  }

  // ---- construction and access ----------------------------------------------------------------

  router() = default;
  // Takes the policy's backends (in Policy::backends order, reference excluded) by value, for
  // backends that need constructor arguments (a driver handle, a device).
  template <class... Bs>
  requires std::is_same_v<std::tuple<std::remove_cvref_t<Bs>..., backends::reference_backend>,
                          backend_tuple>
  explicit router(Bs&&... policy_backends)
      : backends_(std::forward<Bs>(policy_backends)..., backends::reference_backend{}) {}

  template <class B>
  B& backend() noexcept {
    return std::get<B>(backends_);
  }
  template <std::size_t I>
  backend_at<I>& backend() noexcept {
    return std::get<I>(backends_);
  }

  const backend_health& health(std::size_t i) const noexcept { return health_[i]; }
  void reset_health() noexcept {
    for (backend_health& h : health_) h = backend_health{.probe_interval = Policy::probe_interval};
  }
  const auto& trace() const noexcept { return trace_; }
  void clear_trace() noexcept { trace_.clear(); }
  std::uint64_t requests() const noexcept { return requests_; }

  // ---- packed weights ---------------------------------------------------------------------------

  // One layer's weights, packed by each backend the first time the router sends it the layer and
  // kept for every later call: a model holds one of these per matmul or conv layer. It keeps the
  // caller's weight views (B or the conv weights, their scales, zero points and bias), which
  // must stay alive and unchanged while it is used; the packed copies it owns.
  template <routing_detail::packable_op Desc>
  class weights {
   public:
    using args_type = typename routing_detail::packed_of<backends::reference_backend, Desc>::args;
    weights() = default;
    const Desc& desc() const noexcept { return desc_; }
    // Whether backend i has packed this layer yet.
    bool packed_by(std::size_t i) const noexcept { return (packed_mask_ >> i) & 1u; }

   private:
    friend class router;
    template <class>
    struct slots;
    template <class... Bs>
    struct slots<std::tuple<Bs...>> {
      using type = std::tuple<std::optional<typename routing_detail::packed_of<Bs, Desc>::type>...>;
    };
    Desc desc_{};
    args_type args_{};
    typename slots<backend_tuple>::type packed_{};
    std::uint8_t packed_mask_ = 0;
  };

  // Takes a layer's weights for packed routing; nothing is packed yet. Fails on a desc that no
  // backend could run (validate()).
  template <routing_detail::packable_op Desc>
  static Result<weights<Desc>> pack(const Desc& d, const typename weights<Desc>::args_type& a) {
    KEEL_RETURN_IF_ERROR(validate(d));
    weights<Desc> w;
    w.desc_ = d;
    w.args_ = a;
    return w;
  }

  // run() with packed weights: the weight fields of `a` are ignored; each backend runs from its
  // own packed copy, packing it first on its first call. A pack that fails counts as that
  // attempt's result (unsupported: the next candidate; a backend fault: its breaker opens).
  template <routing_detail::packable_op Desc>
  Status run(const Desc& d, weights<Desc>& w, const typename weights<Desc>::args_type& a,
             const request& req = {}, route_report* report = nullptr) {
    return route(d, a, req, report, [&](std::size_t i) { return dispatch_packed<0>(i, d, w, a); });
  }

  // ---- routing ----------------------------------------------------------------------------------

  // What run() would try for this call, without running anything or touching health state.
  template <class Desc, class Args>
  requires routing_detail::routable_op<Desc, Args> route_plan plan(const Desc& d, const Args& a,
                                                                   const request& req = {})
  const { return decide(d, a, req, work_of(d)); }

  template <class Desc, class Args>
  requires routing_detail::routable_op<Desc, Args> Status run(const Desc& d, const Args& a,
                                                              const request& req = {},
                                                              route_report* report = nullptr) {
    return route(d, a, req, report, [&](std::size_t i) { return dispatch<0>(i, d, a); });
  }

 private:
  // Decides, then attempts: `run_on(i)` runs the op on backend i and returns its Status.
  template <class Desc, class Args, class RunOn>
  Status route(const Desc& d, const Args& a, const request& req, route_report* report,
               RunOn&& run_on) {
    const op_work w = work_of(d);
    const route_plan p = decide(d, a, req, w);
    ++requests_;
    // Held-out backends this call passed over move toward their probe; probed ones start over.
    if ((p.held_out_mask | p.probe_mask) != 0) {
      for (std::size_t i = 0; i < backend_count; ++i) {
        if ((p.held_out_mask >> i) & 1u) ++health_[i].passed_over;
        if ((p.probe_mask >> i) & 1u) health_[i].passed_over = 0;
      }
    }
    if (report) {
      *report = route_report{};
      report->over_budget = p.over_budget;
    }
    if (p.count == 0) return no_candidate<Desc>(req);
    return attempt(w, p, report, run_on);
  }

  template <class Desc>
  static Status no_candidate(const request& req) {
    return Status::make(status_code::unsupported, to_string(Desc::kind),
                        "no backend is predicted to meet the hard budget (latency %g us, "
                        "energy %g uJ)",
                        req.latency_budget_us, req.energy_budget_uj);
  }

  // Runs the plan's candidates in order until one serves the call, the request is found wrong,
  // or none is left; every attempt updates health and the trace. Every return is `s`, so the
  // Status (200 bytes of message) is built once, in place.
  template <class RunOn>
  Status attempt(const op_work& w, const route_plan& p, route_report* report, RunOn& run_on) {
    constexpr bool kTraced = decltype(trace_)::enabled;
    const bool timed = kTraced || report != nullptr;
    trace_reason reason = trace_reason::lowest_cost;
    for (std::uint8_t pos = 0;; ++pos) {
      const std::size_t i = p.order[pos];
      const bool probing = (p.probe_mask >> i) & 1u;
      if (probing) reason = trace_reason::probe;

      // ---- run it ----
      const std::uint64_t t0 = timed ? trace_clock::now() : 0;
      Status s = run_on(i);
      const float measured = timed ? trace_clock::elapsed_us(t0, trace_clock::now()) : 0.0f;

      // ---- classify and update health ----
      backend_health& h = health_[i];
      ++h.runs;
      std::uint8_t flags = (p.held_out_mask ? trace_flag::held_out : 0) |
                           (p.over_budget ? trace_flag::over_budget : 0) |
                           (p.safety_critical ? trace_flag::safety_critical : 0);
      const bool fault = is_backend_fault(s.code());
      if (s.ok() && h.held_out) {  // a probe passed
        h.held_out = false;
        h.passed_over = 0;
        h.probe_interval = Policy::probe_interval;
        flags |= trace_flag::breaker_closed;
      } else if (fault) {
        ++h.faults;
        h.last_fault = s.code();
        if (i != reference_index) {
          // A failed probe waits twice as long for the next one.
          if (h.held_out) {
            h.probe_interval = h.probe_interval * 2 > Policy::probe_interval_max
                                   ? Policy::probe_interval_max
                                   : h.probe_interval * 2;
          }
          h.held_out = true;
          h.passed_over = 0;
          flags |= trace_flag::breaker_opened;
        }
      }
      if (probing) ++h.probes;

      if constexpr (kTraced) {
        trace_entry& e = trace_.next_slot();
        e.request = requests_;
        e.op = w.kind;
        e.weights = w.weights;
        e.rank = w.rank;
        e.shape = w.shape;
        e.backend = caps[i].name;
        e.reason = reason;
        e.attempt = static_cast<std::uint8_t>(pos + 1);
        e.result = s.code();
        e.flags = flags;
        e.predicted_us = p.predicted_us[pos];
        e.measured_us = measured;
      }
      if (report) {
        report->backend = caps[i].name;
        report->attempts = static_cast<std::uint8_t>(pos + 1);
        report->held_out = p.held_out_mask != 0;
        report->predicted_us = p.predicted_us[pos];
        report->measured_us = measured;
        if (!s.ok() && report->first_failure == status_code::ok) report->first_failure = s.code();
        report->fell_back = s.ok() && pos > 0;
      }

      // ---- done, or the next candidate ----
      if (s.ok() || pos + 1 == p.count) return s;
      if (fault) {
        reason = trace_reason::retry_after_fault;
      } else if (s.code() == status_code::unsupported) {
        reason = trace_reason::retry_after_unsupported;
      } else if (s.code() == status_code::internal) {
        reason = trace_reason::retry_after_error;  // a keel bug in that backend: try another
      } else {
        return s;  // the request itself is wrong: every backend would say so
      }
    }
  }

  // Backend i's predicted time for this call.
  template <class Desc>
  double predict_us(std::size_t i, const Desc& d, const op_work& w) const {
    // roofline_us(), with the divisions precomputed (the same value to a rounding).
    const inverse_rates& v = kInverse[i];
    const double compute = w.ops * (w.float_math ? v.us_per_float_op : v.us_per_int_op);
    const double memory = w.bytes * v.us_per_byte;
    double t = v.launch_us + (compute > memory ? compute : memory);
    with_index(i, [&]<std::size_t I>() {
      const backend_at<I>& b = std::get<I>(backends_);
      if constexpr (routing_detail::has_estimate_us<backend_at<I>, Desc>) {
        t = static_cast<double>(b.estimate_us(d));
      } else if constexpr (routing_detail::has_device_estimate<backend_at<I>, Desc>) {
        const auto e = b.estimate(d);
        t = e.ok() ? static_cast<double>(e.value().seconds) * 1e6
                   : std::numeric_limits<double>::infinity();
      }
    });
    return t;
  }

  template <class F>
  static void with_index(std::size_t i, F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (void)((i == I ? (f.template operator()<I>(), true) : false) || ...);
    }
    (std::make_index_sequence<backend_count>{});
  }

  // Backend i runs the op from its packed copy of w, packing it first if it has none.
  template <std::size_t I, class Desc, class Args>
  Status dispatch_packed(std::size_t i, const Desc& d, weights<Desc>& w, const Args& a) {
    if constexpr (I + 1 < backend_count) {
      if (i != I) return dispatch_packed<I + 1>(i, d, w, a);
    }
    KEEL_DASSERT(i == I, "a plan holds backend indices only");
    auto& slot = std::get<I>(w.packed_);
    if (!slot) {
      auto packed = std::get<I>(backends_).pack(w.desc_, w.args_);
      if (!packed.ok()) return packed.status();
      slot.emplace(std::move(packed).value());
      w.packed_mask_ |= static_cast<std::uint8_t>(1u << I);
    }
    return std::get<I>(backends_).run(d, *slot, a);
  }

  // Backend i runs the op; the Status comes back by guaranteed copy elision.
  template <std::size_t I, class Desc, class Args>
  Status dispatch(std::size_t i, const Desc& d, const Args& a) {
    if constexpr (I + 1 == backend_count) {
      KEEL_DASSERT(i == I, "a plan holds backend indices only");
      return std::get<I>(backends_).run(d, a);
    } else {
      if (i == I) return std::get<I>(backends_).run(d, a);
      return dispatch<I + 1>(i, d, a);
    }
  }

  // Ranks the op's candidates for this call; reads health, changes nothing.
  template <class Desc, class Args>
  route_plan decide(const Desc& d, const Args& a, const request& req, const op_work& w) const {
    const candidate_list& cl = candidates(Desc::kind, routing_dtype(d));
    const std::uintptr_t bits = routing_detail::address_bits(a);
    const std::uintptr_t alignment =
        bits == 0 ? std::numeric_limits<std::uintptr_t>::max() : (bits & (~bits + 1));
    const bool safety = req.risk == risk_class::safety_critical;

    // ---- filter and rank: within budget first, then by score, then by static position ----
    struct ranked {
      std::uint8_t index;
      bool fits;
      double score;
      double time_us;
    };
    std::array<ranked, kMaxRoutedBackends> r{};
    std::size_t n = 0;
    bool any_fits = false;
    for (std::size_t pos = 0; pos < cl.count; ++pos) {
      const std::uint8_t i = cl.index[pos];
      const backend_caps& c = caps[i];
      if (w.largest_dim > c.max_dim || w.largest_dim > rates[i].max_dim) continue;
      if (static_cast<std::uintptr_t>(c.alignment) > alignment) continue;
      if (safety && !c.bit_exact) continue;
      const double time = predict_us(i, d, w);
      if (!(time < std::numeric_limits<double>::infinity())) continue;
      const double energy = time * rates[i].watts;
      const bool fits = (req.latency_budget_us <= 0 || time <= req.latency_budget_us) &&
                        (req.energy_budget_uj <= 0 || energy <= req.energy_budget_uj);
      if (req.hard_budget && !fits) continue;
      any_fits = any_fits || fits;
      const ranked e{
          i, fits,
          static_cast<double>(Policy::score(estimate{c.name, c.kind, c.bit_exact, time, energy})),
          time};
      std::size_t k = n++;
      while (k > 0 && ((e.fits && !r[k - 1].fits) ||
                       (e.fits == r[k - 1].fits && e.score < r[k - 1].score))) {
        r[k] = r[k - 1];
        --k;
      }
      r[k] = e;
    }

    // ---- health: pass over held-out backends unless a probe is due ----
    route_plan p;
    p.over_budget = n > 0 && !any_fits;
    p.safety_critical = safety;
    bool healthy_seen = false;
    for (std::size_t k = 0; k < n; ++k) {
      const std::uint8_t i = r[k].index;
      const backend_health& h = health_[i];
      if (h.held_out) {
        if (healthy_seen) continue;  // not needed for this call: no pass, no probe
        if (h.passed_over < h.probe_interval) {
          p.held_out_mask |= static_cast<std::uint8_t>(1u << i);
          continue;
        }
        p.probe_mask |= static_cast<std::uint8_t>(1u << i);
      } else {
        healthy_seen = true;
      }
      p.order[p.count] = i;
      p.predicted_us[p.count] = static_cast<float>(r[k].time_us);
      ++p.count;
    }
    return p;
  }

  backend_tuple backends_{};
  std::array<backend_health, backend_count> health_ = initial_health();
  [[no_unique_address]] decision_trace<Policy::trace_capacity> trace_{};
  std::uint64_t requests_ = 0;

  static constexpr std::array<backend_health, backend_count> initial_health() {
    std::array<backend_health, backend_count> h{};
    for (backend_health& x : h) x.probe_interval = Policy::probe_interval;
    return h;
  }
};

#undef KEEL_ROUTER_NEED_MESSAGES

}  // namespace keel
