// python_bindings_optional/src/system.cpp — backends, packed weights, board profiles and the
// router, as the Python module sees them (see system.hpp).
#include "system.hpp"

#include <array>
#include <cstdio>
#include <tuple>

#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/unique_ptr.h>
#include <nanobind/stl/vector.h>

#include "keel/boards/all.hpp"
#include "keel/router/router.hpp"

namespace keel::python {

// ---- backends -----------------------------------------------------------------------------

namespace {

#if defined(KEEL_PY_HAVE_CPU) && KEEL_PY_HAVE_CPU
constexpr bool kHaveCpu = true;
#else
constexpr bool kHaveCpu = false;
#endif

// One instance of each stateful backend, each behind its own lock (system.hpp).
template <class B>
struct guarded_backend {
  B backend;
  std::mutex mutex;
};

backends::reference_backend& reference() {
  static backends::reference_backend b;
  return b;
}
template <class B>
guarded_backend<B>& instance() {
  static guarded_backend<B> g;
  return g;
}
#if defined(KEEL_PY_HAVE_CPU) && KEEL_PY_HAVE_CPU
using cpu_type = backends::cpu_backend;
#endif

const std::vector<backend_info>& backend_table() {
  static const std::vector<backend_info> table = [] {
    std::vector<backend_info> t;
    t.push_back({backend_id::reference, "reference", backends::reference_backend::caps,
                 "scalar oracle kernels: every op, bit-exact by definition, slow on purpose"});
#if defined(KEEL_PY_HAVE_CPU) && KEEL_PY_HAVE_CPU
    t.push_back({backend_id::cpu, "cpu", backends::cpu_backend::caps,
                 "SIMD int8 matmul (packed weights) with dynamic ISA dispatch; other ops on the "
                 "reference kernels split over threads"});
#endif
    t.push_back({backend_id::npu, "npu", npu::generic_vnpu_backend::caps,
                 "virtual NPU, generic 16x16 int8 MAC array: bit-exact functional and timing "
                 "model (matmul_i8, conv2d_i8)"});
    t.push_back({backend_id::npu_rk3588, "npu-rk3588", npu::rk3588_vnpu_backend::caps,
                 "virtual NPU configured like the RK3588's (matmul_i8, conv2d_i8)"});
    t.push_back({backend_id::npu_imx8mp, "npu-imx8mp", npu::imx8mp_vnpu_backend::caps,
                 "virtual NPU configured like the i.MX 8M Plus's (matmul_i8, conv2d_i8)"});
    return t;
  }();
  return table;
}

// Calls f(backend, mutex or nullptr) for backend `id`.
template <class F>
Status with_backend(backend_id id, F&& f) {
  switch (id) {
    case backend_id::reference: return f(reference(), static_cast<std::mutex*>(nullptr));
    case backend_id::cpu:
#if defined(KEEL_PY_HAVE_CPU) && KEEL_PY_HAVE_CPU
    {
      auto& g = instance<cpu_type>();
      return f(g.backend, &g.mutex);
    }
#else
      break;
#endif
    case backend_id::npu: {
      auto& g = instance<npu::generic_vnpu_backend>();
      return f(g.backend, &g.mutex);
    }
    case backend_id::npu_rk3588: {
      auto& g = instance<npu::rk3588_vnpu_backend>();
      return f(g.backend, &g.mutex);
    }
    case backend_id::npu_imx8mp: {
      auto& g = instance<npu::imx8mp_vnpu_backend>();
      return f(g.backend, &g.mutex);
    }
  }
  return Status::make(status_code::unsupported, "keel", "backend %d is not built in",
                      static_cast<int>(id));
}

// Runs `call` with the GIL released and the backend's lock held (if it has one).
template <class Call>
Status released(std::mutex* m, Call&& call) {
  nb::gil_scoped_release unlocked;
  if (m == nullptr) return call();
  std::lock_guard<std::mutex> lock(*m);
  return call();
}

}  // namespace

std::span<const backend_info> available_backends() {
  const auto& t = backend_table();
  return {t.data(), t.size()};
}

std::string_view backend_name(backend_id id) {
  for (const backend_info& b : backend_table()) {
    if (b.id == id) return b.name;
  }
  return "?";
}

backend_id parse_backend(nb::handle h, std::string_view op) {
  if (h.is_none()) return kHaveCpu ? backend_id::cpu : backend_id::reference;
  if (!nb::isinstance<nb::str>(h)) {
    fail(status_code::invalid_argument, op,
         "backend %s (must be a backend name from keel.backends(); packing needs one backend, "
         "not a router)",
         nb::repr(h).c_str());
  }
  const std::string name = nb::cast<std::string>(h);
  if (name == "auto") return kHaveCpu ? backend_id::cpu : backend_id::reference;
  for (const backend_info& b : backend_table()) {
    if (b.name == name) return b.id;
  }
  std::string names;
  for (const backend_info& b : backend_table()) {
    names += names.empty() ? "" : ", ";
    names += b.name;
  }
  fail(status_code::unsupported, op, "backend '%s' is not built in (have: %s)", name.c_str(),
       names.c_str());
}

// ---- the router ---------------------------------------------------------------------------

// A keel::router<Board, Policy> behind a virtual interface, one instantiation per board and
// policy the module offers. Its health and trace are mutable, so calls are serialised.
class router_object {
 public:
  virtual ~router_object() = default;
  virtual Status run(const matmul_i8_desc& d, const matmul_i8_args& a) = 0;
  virtual Status run(const matmul_i4_desc& d, const matmul_i4_args& a) = 0;
  virtual Status run(const conv2d_desc& d, const conv2d_args& a) = 0;
  virtual Status run(const attention_desc& d, const attention_args& a) = 0;
  virtual std::string_view board() const = 0;
  virtual std::string_view policy() const = 0;
  virtual std::vector<std::string_view> backend_names() const = 0;
  virtual std::vector<std::string_view> candidates(op_kind k, dtype t) const = 0;
  virtual nb::list trace() const = 0;
  virtual std::string trace_text() const = 0;
  virtual void clear_trace() = 0;
  virtual nb::list health() const = 0;
  virtual void reset_health() = 0;
  virtual std::uint64_t requests() const = 0;
  // Fault injection on the router's NPU backend; false when the router has none.
  virtual bool set_npu_fault(npu::fault_kind kind, std::uint64_t every_nth) = 0;

  std::mutex mutex;
};

namespace {

// The NPU model a board's router uses: its own profile where keel has one.
template <class Board>
struct board_npu {
  using type = npu::generic_vnpu_backend;
};
template <>
struct board_npu<boards::rk3588> {
  using type = npu::rk3588_vnpu_backend;
};
template <>
struct board_npu<boards::imx8m_plus> {
  using type = npu::imx8mp_vnpu_backend;
};

template <template <class...> class Policy, class Board>
struct policy_for {
#if defined(KEEL_PY_HAVE_CPU) && KEEL_PY_HAVE_CPU
  using type = Policy<backends::cpu_backend, typename board_npu<Board>::type>;
#else
  using type = Policy<typename board_npu<Board>::type>;
#endif
};

nb::dict trace_dict(const trace_entry& e) {
  nb::dict d;
  d["request"] = e.request;
  d["op"] = to_string(e.op);
  d["weights"] = to_string(e.weights);
  nb::dict shape;
  const auto labels = shape_labels(e.op);
  for (int i = 0; i < e.rank && i < 8; ++i) {
    shape[nb::str(labels[static_cast<std::size_t>(i)].data(),
                  labels[static_cast<std::size_t>(i)].size())] =
        e.shape[static_cast<std::size_t>(i)];
  }
  d["shape"] = shape;
  d["backend"] = e.backend;
  d["reason"] = to_string(e.reason);
  d["attempt"] = static_cast<int>(e.attempt);
  d["result"] = to_string(e.result);
  d["predicted_us"] = static_cast<double>(e.predicted_us);
  d["measured_us"] = static_cast<double>(e.measured_us);
  char line[512];
  format_trace_entry(e, line, sizeof line);
  d["text"] = std::string(line);
  return d;
}

template <class Board, template <class...> class Policy>
class router_impl final : public router_object {
  using policy_type = typename policy_for<Policy, Board>::type;
  using router_type = keel::router<Board, policy_type>;
  using npu_type = typename board_npu<Board>::type;

 public:
  Status run(const matmul_i8_desc& d, const matmul_i8_args& a) override { return r_.run(d, a); }
  Status run(const matmul_i4_desc& d, const matmul_i4_args& a) override { return r_.run(d, a); }
  Status run(const conv2d_desc& d, const conv2d_args& a) override { return r_.run(d, a); }
  Status run(const attention_desc& d, const attention_args& a) override { return r_.run(d, a); }
  std::string_view board() const override { return Board::profile.name; }
  std::string_view policy() const override { return policy_type::name; }
  std::vector<std::string_view> backend_names() const override {
    std::vector<std::string_view> v;
    for (const backend_caps& c : router_type::caps) v.push_back(c.name);
    return v;
  }
  std::vector<std::string_view> candidates(op_kind k, dtype t) const override {
    std::vector<std::string_view> v;
    if (!is_routable(k) || !legal_routing_dtype(k, t)) return v;
    const candidate_list& c = router_type::candidates(k, t);
    for (std::uint8_t i = 0; i < c.count; ++i) v.push_back(router_type::caps[c.index[i]].name);
    return v;
  }
  nb::list trace() const override {
    nb::list l;
    const auto& t = r_.trace();
    for (std::size_t i = 0; i < t.size(); ++i) l.append(trace_dict(t[i]));
    return l;
  }
  std::string trace_text() const override {
    std::string s;
    const auto& t = r_.trace();
    char line[512];
    if (t.total() > t.size()) {
      std::snprintf(line, sizeof line, "(%llu older entries overwritten)\n",
                    static_cast<unsigned long long>(t.total() - t.size()));
      s += line;
    }
    for (std::size_t i = 0; i < t.size(); ++i) {
      format_trace_entry(t[i], line, sizeof line);
      s += line;
      s += '\n';
    }
    return s;
  }
  void clear_trace() override { r_.clear_trace(); }
  nb::list health() const override {
    nb::list l;
    for (std::size_t i = 0; i < router_type::backend_count; ++i) {
      const backend_health& h = r_.health(i);
      nb::dict d;
      d["backend"] = router_type::caps[i].name;
      d["held_out"] = h.held_out;
      d["runs"] = h.runs;
      d["faults"] = h.faults;
      d["probes"] = h.probes;
      d["last_fault"] = to_string(h.last_fault);
      l.append(d);
    }
    return l;
  }
  void reset_health() override { r_.reset_health(); }
  std::uint64_t requests() const override { return r_.requests(); }
  bool set_npu_fault(npu::fault_kind kind, std::uint64_t every_nth) override {
    auto& drv = r_.template backend<npu_type>().driver();
    drv.clear_faults();
    drv.reset();
    if (kind != npu::fault_kind::none) {
      npu::fault_rule rule;
      rule.kind = kind;
      rule.every_nth = every_nth;
      drv.set_fault(0, rule);
    }
    return true;
  }

 private:
  router_type r_;
};

using router_factory = std::unique_ptr<router_object> (*)();
struct router_entry {
  std::string_view board_key;   // keel.Router(board=...)
  std::string_view policy_key;  // keel.Router(policy=...)
  router_factory make;
  const boards::board_profile* profile;
};

template <class Board, template <class...> class Policy>
std::unique_ptr<router_object> make_router() {
  return std::make_unique<router_impl<Board, Policy>>();
}

#define KEEL_PY_BOARD(key, type)                                                          \
  router_entry{key, "latency_first", &make_router<boards::type, latency_first>,           \
               &boards::type::profile},                                                   \
      router_entry {                                                                      \
    key, "energy_first", &make_router<boards::type, energy_first>, &boards::type::profile \
  }

const std::array<router_entry, 14> kRouters = {
    KEEL_PY_BOARD("generic_x86_64_avx2", generic_x86_64_avx2),
    KEEL_PY_BOARD("x86_64_avx512_vnni", x86_64_avx512_vnni),
    KEEL_PY_BOARD("raspberry_pi_5", raspberry_pi_5),
    KEEL_PY_BOARD("rk3588", rk3588),
    KEEL_PY_BOARD("imx8m_plus", imx8m_plus),
    KEEL_PY_BOARD("jetson_orin_nano", jetson_orin_nano),
    KEEL_PY_BOARD("snapdragon_8_gen_2", snapdragon_8_gen_2),
};
#undef KEEL_PY_BOARD

// keel.Router: owns one router_object.
struct router_handle {
  std::unique_ptr<router_object> impl;
};

std::string board_keys() {
  std::string s;
  for (std::size_t i = 0; i < kRouters.size(); i += 2) {
    s += s.empty() ? "" : ", ";
    s += kRouters[i].board_key;
  }
  return s;
}

const router_entry& find_router(std::string_view board, std::string_view policy) {
  for (const router_entry& e : kRouters) {
    if (e.board_key == board && e.policy_key == policy) return e;
  }
  bool board_known = false;
  for (const router_entry& e : kRouters) board_known = board_known || e.board_key == board;
  if (!board_known) {
    fail(status_code::unsupported, "router", "board '%.*s' (keel ships %s)",
         static_cast<int>(board.size()), board.data(), board_keys().c_str());
  }
  fail(status_code::unsupported, "router",
       "policy '%.*s' (must be 'latency_first' or 'energy_first')", static_cast<int>(policy.size()),
       policy.data());
}

nb::dict profile_dict(const boards::board_profile& p) {
  nb::dict cpu, gpu, npu_d, power, d;
  cpu["arch"] = to_string(p.cpu.arch);
  cpu["cores"] = p.cpu.cores;
  cpu["freq_ghz"] = p.cpu.freq_ghz;
  cpu["l1d_kib"] = p.cpu.l1d_kib;
  cpu["l2_kib"] = p.cpu.l2_kib;
  cpu["l3_kib"] = p.cpu.l3_kib;
  cpu["mem_bandwidth_gbs"] = p.cpu.mem_bandwidth_gbs;
  cpu["peak_int8_gops"] = p.cpu.peak_int8_gops;
  cpu["peak_f32_gflops"] = p.cpu.peak_f32_gflops;
  cpu["launch_us"] = p.cpu.launch_us;
  gpu["present"] = p.gpu.present;
  gpu["name"] = p.gpu.name;
  gpu["vulkan"] = std::to_string(p.gpu.vulkan_major) + "." + std::to_string(p.gpu.vulkan_minor);
  gpu["int8_dot"] = p.gpu.int8_dot;
  gpu["peak_int8_gops"] = p.gpu.peak_int8_gops;
  gpu["mem_bandwidth_gbs"] = p.gpu.mem_bandwidth_gbs;
  npu_d["present"] = p.npu.present;
  npu_d["name"] = p.npu.name;
  nb::list ops, dts;
  for (int k = 0; k < kOpKindCount; ++k) {
    if (p.npu.ops & op_bit(static_cast<op_kind>(k))) ops.append(to_string(static_cast<op_kind>(k)));
  }
  for (dtype t : {dtype::s8, dtype::u8, dtype::s4, dtype::u4, dtype::s32, dtype::f32, dtype::f16}) {
    if (p.npu.dtypes & dtype_bit(t)) dts.append(to_string(t));
  }
  npu_d["ops"] = ops;
  npu_d["dtypes"] = dts;
  npu_d["sram_kib"] = p.npu.sram_kib;
  npu_d["peak_int8_gops"] = p.npu.peak_int8_gops;
  npu_d["max_dim"] = p.npu.max_dim;
  power["idle_w"] = p.power.idle_w;
  power["cpu_w"] = p.power.cpu_w;
  power["gpu_w"] = p.power.gpu_w;
  power["npu_w"] = p.power.npu_w;
  power["budget_w"] = p.power.budget_w;
  d["name"] = p.name;
  d["soc"] = p.soc;
  d["cpu"] = cpu;
  d["gpu"] = gpu;
  d["npu"] = npu_d;
  d["power"] = power;
  return d;
}

op_kind parse_op(std::string_view s) {
  for (int k = 0; k < kOpKindCount; ++k) {
    if (to_string(static_cast<op_kind>(k)) == s) return static_cast<op_kind>(k);
  }
  fail(status_code::invalid_argument, "router",
       "op '%.*s' (must be an op name such as "
       "'matmul_i8')",
       static_cast<int>(s.size()), s.data());
}

npu::fault_kind parse_fault(std::string_view s) {
  for (npu::fault_kind k : {npu::fault_kind::none, npu::fault_kind::timeout,
                            npu::fault_kind::dma_error, npu::fault_kind::device_lost}) {
    if (npu::to_string(k) == s) return k;
  }
  fail(status_code::invalid_argument, "router",
       "fault '%.*s' (must be 'none', 'timeout', 'dma_error' or 'device_lost')",
       static_cast<int>(s.size()), s.data());
}

}  // namespace

runner parse_runner(nb::handle h, std::string_view op) {
  runner r;
  router_handle* rh = nullptr;
  if (nb::try_cast<router_handle*>(h, rh) && rh != nullptr) {
    r.router = rh->impl.get();
    return r;
  }
  r.id = parse_backend(h, op);
  return r;
}

// ---- running ------------------------------------------------------------------------------

namespace {
template <class Desc, class Args>
Status run_any(const runner& r, const Desc& d, const Args& a) {
  if (r.router != nullptr) {
    router_object* ro = r.router;
    return released(&ro->mutex, [&] { return ro->run(d, a); });
  }
  return with_backend(
      r.id, [&](auto& b, std::mutex* m) { return released(m, [&] { return b.run(d, a); }); });
}
}  // namespace

Status run(const runner& r, const matmul_i8_desc& d, const matmul_i8_args& a) {
  return run_any(r, d, a);
}
Status run(const runner& r, const matmul_i4_desc& d, const matmul_i4_args& a) {
  return run_any(r, d, a);
}
Status run(const runner& r, const conv2d_desc& d, const conv2d_args& a) {
  return run_any(r, d, a);
}
Status run(const runner& r, const attention_desc& d, const attention_args& a) {
  return run_any(r, d, a);
}

// ---- packing ------------------------------------------------------------------------------

Status pack(backend_id id, packed_matmul_i8& p, const matmul_i8_args& a) {
  p.backend = id;
  return with_backend(id, [&](auto& b, std::mutex* m) -> Status {
    using B = std::remove_reference_t<decltype(b)>;
    auto result = released(m, [&]() -> Status {
      auto r = b.pack(p.desc, a);
      if (!r.ok()) return r.status();
      p.packed.template emplace<typename B::packed_matmul_i8>(std::move(r.value()));
      return Status::Ok();
    });
    return result;
  });
}

Status pack(backend_id id, packed_matmul_i4& p, const matmul_i4_args& a) {
  p.backend = id;
  return with_backend(id, [&](auto& b, std::mutex* m) -> Status {
    using B = std::remove_reference_t<decltype(b)>;
    if constexpr (std::is_same_v<B, backends::reference_backend>
#if defined(KEEL_PY_HAVE_CPU) && KEEL_PY_HAVE_CPU
                  || std::is_same_v<B, backends::cpu_backend>
#endif
    ) {
      return released(m, [&]() -> Status {
        auto r = b.pack(p.desc, a);
        if (!r.ok()) return r.status();
        p.packed.template emplace<typename B::packed_matmul_i4>(std::move(r.value()));
        return Status::Ok();
      });
    } else {
      return Status::make(status_code::unsupported, "matmul_i4",
                          "backend %.*s has no int4-weight path",
                          static_cast<int>(B::caps.name.size()), B::caps.name.data());
    }
  });
}

Status run_packed(const packed_matmul_i8& p, const matmul_i8_desc& d, const matmul_i8_args& a) {
  return with_backend(p.backend, [&](auto& b, std::mutex* m) -> Status {
    using B = std::remove_reference_t<decltype(b)>;
    using P = typename B::packed_matmul_i8;
    const P* packed = std::get_if<P>(&p.packed);
    if (packed == nullptr) {
      return Status::make(status_code::internal, "matmul_i8", "packed weights of another backend");
    }
    return released(m, [&] { return b.run(d, *packed, a); });
  });
}

Status run_packed(const packed_matmul_i4& p, const matmul_i4_desc& d, const matmul_i4_args& a) {
  return with_backend(p.backend, [&](auto& b, std::mutex* m) -> Status {
    using B = std::remove_reference_t<decltype(b)>;
    if constexpr (std::is_same_v<B, backends::reference_backend>
#if defined(KEEL_PY_HAVE_CPU) && KEEL_PY_HAVE_CPU
                  || std::is_same_v<B, backends::cpu_backend>
#endif
    ) {
      using P = typename B::packed_matmul_i4;
      const P* packed = std::get_if<P>(&p.packed);
      if (packed == nullptr) {
        return Status::make(status_code::internal, "matmul_i4",
                            "packed weights of another backend");
      }
      return released(m, [&] { return b.run(d, *packed, a); });
    } else {
      return Status::make(status_code::unsupported, "matmul_i4", "no int4-weight path");
    }
  });
}

// ---- Python surface -------------------------------------------------------------------------

void bind_system(nb::module_& m) {
  m.def(
      "set_cpu_threads",
      [](int max_threads) {
        if (max_threads < 0) {
          fail(status_code::invalid_argument, "set_cpu_threads",
               "max_threads = %d (must be >= 0: 0 for all, 1 for serial)", max_threads);
        }
#if defined(KEEL_PY_HAVE_CPU) && KEEL_PY_HAVE_CPU
        auto& g = instance<cpu_type>();
        nb::gil_scoped_release unlocked;
        std::lock_guard<std::mutex> lock(g.mutex);
        backends::cpu_options o = g.backend.options();
        o.max_threads = max_threads;
        g.backend = cpu_type(o);
#else
        fail(status_code::unsupported, "set_cpu_threads", "this module has no cpu backend");
#endif
      },
      nb::arg("max_threads"),
      "Caps the threads of the module's cpu backend: 0 for all that oneTBB offers, 1 for\n"
      "serial. A build without TBB (Meson option threads=none) is always serial.");
  m.def(
      "cpu_threads",
      []() -> int {
#if defined(KEEL_PY_HAVE_CPU) && KEEL_PY_HAVE_CPU
        auto& g = instance<cpu_type>();
        std::lock_guard<std::mutex> lock(g.mutex);
        return backends::cpu_detail::thread_count(g.backend.options().max_threads);
#else
        return 0;
#endif
      },
      "The threads a call on the cpu backend may use now (0 without a cpu backend).");

  m.def(
      "backends",
      []() {
        nb::list l;
        for (const backend_info& b : backend_table()) {
          nb::dict d;
          d["name"] = b.name;
          d["caps_name"] = b.caps.name;
          d["kind"] = to_string(b.caps.kind);
          d["bit_exact"] = b.caps.bit_exact;
          nb::list ops, wts;
          for (int k = 0; k < kOpKindCount; ++k) {
            if (b.caps.runs(static_cast<op_kind>(k)))
              ops.append(to_string(static_cast<op_kind>(k)));
          }
          for (dtype t : {dtype::s8, dtype::u8, dtype::s4, dtype::u4}) {
            if (b.caps.accepts_weights(t)) wts.append(to_string(t));
          }
          d["ops"] = ops;
          d["weight_types"] = wts;
          d["description"] = b.what;
          l.append(d);
        }
        return l;
      },
      "The backends this module was built with, fastest first after the reference: a list of\n"
      "dicts with name (what the `backend` keyword takes), caps_name (the name in traces), kind,\n"
      "bit_exact, ops, weight_types and description.");

  m.def(
      "boards",
      []() {
        nb::list l;
        for (std::size_t i = 0; i < kRouters.size(); i += 2) l.append(kRouters[i].board_key);
        return l;
      },
      "The board profiles keel ships (names for keel.board_profile() and keel.Router).");

  m.def(
      "board_profile",
      [](std::string_view board) {
        for (const router_entry& e : kRouters) {
          if (e.board_key == board) return profile_dict(*e.profile);
        }
        fail(status_code::unsupported, "board_profile", "board '%.*s' (keel ships %s)",
             static_cast<int>(board.size()), board.data(), board_keys().c_str());
      },
      nb::arg("board"),
      "A board's profile as a dict: name, soc, and the cpu, gpu, npu and power sections with\n"
      "the figures the router's cost model reads (rates in GOPS, bandwidth in GB/s, power in W).");

  nb::class_<router_handle>(
      m, "Router",
      "keel::router<Board, Policy> for one of keel's board profiles: pass it as the `backend`\n"
      "of an op and the router chooses the backend (cost model, health, fallback), recording\n"
      "every attempt in its trace. Its backends: the cpu backend (when built in), the board's\n"
      "virtual NPU, and the reference, always last. Calls through one router are serialised.")
      .def(
          "__init__",
          [](router_handle* self, std::string_view board, std::string_view policy) {
            const router_entry& e = find_router(board, policy);
            new (self) router_handle{e.make()};
          },
          nb::arg("board") = "generic_x86_64_avx2", nb::arg("policy") = "latency_first")
      .def_prop_ro(
          "board", [](const router_handle& h) { return std::string(h.impl->board()); },
          "The board profile's name.")
      .def_prop_ro(
          "policy", [](const router_handle& h) { return std::string(h.impl->policy()); },
          "The policy's name.")
      .def_prop_ro(
          "backends",
          [](const router_handle& h) {
            std::vector<std::string> v;
            for (std::string_view s : h.impl->backend_names()) v.emplace_back(s);
            return v;
          },
          "The router's backends by caps name, the reference last.")
      .def(
          "candidates",
          [](const router_handle& h, std::string_view op, nb::handle weights) {
            const op_kind k = parse_op(op);
            const dtype t = parse_dtype(weights, "router", "weight dtype");
            std::vector<std::string> v;
            for (std::string_view s : h.impl->candidates(k, t)) v.emplace_back(s);
            return v;
          },
          nb::arg("op"), nb::arg("weights") = "s8",
          "The compile-time candidate list for an op and weight dtype, best first (empty when\n"
          "the op is not routable with that dtype).")
      .def(
          "trace",
          [](const router_handle& h) {
            std::lock_guard<std::mutex> lock(h.impl->mutex);
            return h.impl->trace();
          },
          "The decision trace, oldest first: one dict per attempt (request, op, weights, shape,\n"
          "backend, reason, attempt, result, predicted_us, measured_us, text).")
      .def(
          "trace_text",
          [](const router_handle& h) {
            std::lock_guard<std::mutex> lock(h.impl->mutex);
            return h.impl->trace_text();
          },
          "The trace as keel prints it, one line per attempt.")
      .def(
          "clear_trace",
          [](router_handle& h) {
            std::lock_guard<std::mutex> lock(h.impl->mutex);
            h.impl->clear_trace();
          },
          "Empties the trace.")
      .def(
          "health",
          [](const router_handle& h) {
            std::lock_guard<std::mutex> lock(h.impl->mutex);
            return h.impl->health();
          },
          "Per backend: held_out (its circuit breaker is open), runs, faults, probes, last_fault.")
      .def(
          "reset_health",
          [](router_handle& h) {
            std::lock_guard<std::mutex> lock(h.impl->mutex);
            h.impl->reset_health();
          },
          "Closes every circuit breaker and zeroes the counters.")
      .def_prop_ro(
          "requests",
          [](const router_handle& h) {
            std::lock_guard<std::mutex> lock(h.impl->mutex);
            return h.impl->requests();
          },
          "Calls routed so far.")
      .def(
          "inject_npu_fault",
          [](router_handle& h, std::string_view kind, std::uint64_t every_nth) {
            std::lock_guard<std::mutex> lock(h.impl->mutex);
            h.impl->set_npu_fault(parse_fault(kind), every_nth);
          },
          nb::arg("kind"), nb::arg("every_nth") = 1,
          "Makes the router's virtual NPU fail: kind 'timeout', 'dma_error' or 'device_lost' on\n"
          "every Nth job submission, or 'none' to stop. The router retries a failed op on its\n"
          "next candidate, and the trace shows both attempts.")
      .def("__repr__", [](const router_handle& h) {
        return "keel.Router(board='" + std::string(h.impl->board()) + "', policy='" +
               std::string(h.impl->policy()) + "')";
      });
}

}  // namespace keel::python
