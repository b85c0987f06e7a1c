// tools/envelope/backends.cpp — the backend slots: one template over keel's backend concept, and
// the list of backends this binary contains.
#include "backends.hpp"

#include <fmt/core.h>

#include <limits>
#include <optional>
#include <utility>

#include "keel/backends/cpu.hpp"
#include "keel/backends/npu.hpp"
#include "keel/backends/reference.hpp"
#include "keel/kernels/gemm_i4/registry.hpp"
#include "keel/kernels/gemm_i8/registry.hpp"
#include "keel/router/router.hpp"

namespace keel::envelope {

namespace {

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

std::vector<std::string> op_names(const backend_caps& c) {
  std::vector<std::string> v;
  for (op_kind k :
       {op_kind::matmul_i8, op_kind::matmul_i4, op_kind::conv2d_i8, op_kind::attention}) {
    if (c.runs(k)) v.emplace_back(to_string(k));
  }
  return v;
}

// Any keel::backend as a slot. Packed weights live here between prepare() and release().
template <class B>
class slot final : public backend_slot {
 public:
  slot(B backend, backend_info info) : backend_(std::move(backend)), info_(std::move(info)) {
    info_.name = std::string(B::caps.name);
    info_.unit = std::string(to_string(B::caps.kind));
    info_.status = "available";
    info_.bit_exact = B::caps.bit_exact;
    info_.ops = op_names(B::caps);
  }

  const backend_info& info() const override { return info_; }
  const backend_caps& caps() const override { return caps_; }

  Status supports(const op_desc& d) const override {
    return std::visit([&](const auto& x) { return backend_.supports(x); }, d);
  }

  Status prepare(const problem& p) override {
    release();
    return std::visit(overloaded{[&](const matmul_i8_problem& x) {
                                   return keep(backend_.pack(x.desc, x.args(nullptr)), mm8_);
                                 },
                                 [&](const matmul_i4_problem& x) {
                                   return keep(backend_.pack(x.desc, x.args(nullptr)), mm4_);
                                 },
                                 [&](const conv2d_problem& x) {
                                   return keep(backend_.pack(x.desc, x.args(nullptr)), conv_);
                                 },
                                 [&](const attention_problem&) { return Status::Ok(); }},
                      p);
  }

  Status run(const problem& p, void* out) override {
    return std::visit(
        overloaded{[&](const matmul_i8_problem& x) { return run_packed(x, mm8_, out); },
                   [&](const matmul_i4_problem& x) { return run_packed(x, mm4_, out); },
                   [&](const conv2d_problem& x) { return run_packed(x, conv_, out); },
                   [&](const attention_problem& x) { return backend_.run(x.desc, x.args(out)); }},
        p);
  }

  void release() override {
    mm8_.reset();
    mm4_.reset();
    conv_.reset();
  }

  double device_seconds(const op_desc& d) const override {
    return std::visit(
        [&](const auto& x) {
          using D = std::decay_t<decltype(x)>;
          if constexpr (routing_detail::has_device_estimate<B, D>) {
            const auto e = backend_.estimate(x);
            return e.ok() ? static_cast<double>(e.value().seconds)
                          : std::numeric_limits<double>::quiet_NaN();
          } else {
            return std::numeric_limits<double>::quiet_NaN();
          }
        },
        d);
  }

  // The same order of preference as keel::router's predict_us().
  double router_estimate_us(const op_desc& d) const override {
    return std::visit(
        [&](const auto& x) {
          using D = std::decay_t<decltype(x)>;
          if constexpr (routing_detail::has_estimate_us<B, D>) {
            return static_cast<double>(backend_.estimate_us(x));
          } else if constexpr (routing_detail::has_device_estimate<B, D>) {
            const auto e = backend_.estimate(x);
            return e.ok() ? static_cast<double>(e.value().seconds) * 1e6
                          : std::numeric_limits<double>::infinity();
          } else {
            return std::numeric_limits<double>::quiet_NaN();
          }
        },
        d);
  }

 private:
  template <class Packed>
  static Status keep(Result<Packed> r, std::optional<Packed>& into) {
    if (!r.ok()) return r.status();
    into.emplace(std::move(r).value());
    return Status::Ok();
  }

  template <class P, class Packed>
  Status run_packed(const P& x, const std::optional<Packed>& packed, void* out) {
    if (!packed) {
      return Status::make(status_code::internal, "keel-envelope", "run before prepare");
    }
    return backend_.run(x.desc, *packed, x.args(out));
  }

  B backend_;
  backend_info info_;
  backend_caps caps_ = B::caps;
  std::optional<typename B::packed_matmul_i8> mm8_;
  std::optional<typename B::packed_matmul_i4> mm4_;
  std::optional<typename B::packed_conv2d> conv_;
};

// The registered int8 GEMM kernels this CPU can run, by their variant names.
// The names of a registry's kernels this CPU runs, comma-separated.
template <class Registry, class Available>
std::string available_kernels_text(const Registry& registry, Available available) {
  std::string names;
  for (const auto& k : registry) {
    if (!available(k.v)) continue;
    if (!names.empty()) names += ", ";
    names += std::string(k.name.text, static_cast<std::size_t>(k.name.size));
  }
  return names;
}

}  // namespace

bool cpu_backend_has_tbb() {
  return KEEL_CPU_HAVE_TBB != 0;
}

int cpu_backend_threads(int cpu_threads) {
  return backends::cpu_detail::thread_count(cpu_threads);
}

std::vector<std::string> npu_profile_names() {
  return {"generic_16x16", "rk3588", "imx8mp"};
}

bool npu_profile_config(const std::string& name, npu::vnpu_config& out) {
  if (name == "generic_16x16") {
    out = npu::profiles::generic_16x16::config;
  } else if (name == "rk3588") {
    out = npu::profiles::rk3588::config;
  } else if (name == "imx8mp") {
    out = npu::profiles::imx8mp::config;
  } else {
    return false;
  }
  return true;
}

std::vector<std::unique_ptr<backend_slot>> make_backends(const backend_config& c) {
  std::vector<std::unique_ptr<backend_slot>> v;

  backend_info ref;
  ref.detail = "scalar oracle kernels, one thread; timed on the verification sample only";
  v.push_back(
      std::make_unique<slot<backends::reference_backend>>(backends::reference_backend{}, ref));

  backends::cpu_options o;
  o.max_threads = c.cpu_threads;
  backend_info cpu;
  const int threads = cpu_backend_threads(c.cpu_threads);
  cpu.detail = fmt::format(
      "int8 GEMM kernels [{}]; int4 kernels [{}]; conv2d 1x1 as GEMM, other convs and "
      "attention on the reference kernels in parallel; {} thread{} ({})",
      available_kernels_text(kernels::gemm_i8::kRegistry,
                             [](const auto& v) { return kernels::gemm_i8::available(v); }),
      available_kernels_text(kernels::gemm_i4::kRegistry,
                             [](const auto& v) { return kernels::gemm_i4::available(v); }),
      threads, threads == 1 ? "" : "s",
      cpu_backend_has_tbb() ? "oneTBB" : "serial build, no oneTBB");
  v.push_back(std::make_unique<slot<backends::cpu_backend>>(backends::cpu_backend(o), cpu));

  // Vulkan slots in here when keel has a Vulkan backend (see absent_backends()).

  if (!c.npu.profile.empty()) {
    using vnpu_backend = npu::npu_backend<npu::virtual_npu>;
    npu::npu_backend_options no;
    no.timeout_us = std::int64_t{3600} * 1'000'000;  // device time; the envelope never hangs it
    backend_info info;
    info.simulated = true;
    const npu::vnpu_config& k = c.npu.config;
    info.detail = fmt::format(
        "virtual NPU, profile {}: {}x{} int8 MACs at {:g} GHz, {} KiB SRAM, DMA {:g} B/cycle, "
        "launch {} cycles; functional model bit-exact, time from its cycle model",
        c.npu.profile, k.mac_rows, k.mac_cols, k.clock_hz * 1e-9, k.sram_bytes / 1024,
        k.dma_bytes_per_cycle, k.launch_cycles);
    v.push_back(std::make_unique<slot<vnpu_backend>>(
        vnpu_backend(npu::virtual_npu(c.npu.config), no), info));
  }
  return v;
}

std::vector<backend_info> absent_backends() {
  backend_info vk;
  vk.name = "vulkan";
  vk.unit = "gpu";
  vk.status = "not built";
  vk.detail = "keel has no Vulkan backend in this build; GPU devices are not probed";
  return {vk};
}

}  // namespace keel::envelope
