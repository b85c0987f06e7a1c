// python_bindings_optional/src/system.hpp — the backends the module can run ops on, the packed
// weights objects, and the router.
//
// A call's `backend` keyword is a name ("reference", "cpu", "npu", ...) or a keel.Router; each
// names one runner below. Every run releases the GIL around the kernel: the operands' Python
// objects are held by the caller's frame for the whole call, so their memory stays put. Backends
// with mutable state (the virtual NPU's device model, a router's health and trace) are
// serialised by a mutex of their own, and so is the cpu backend, whose instance
// keel.set_cpu_threads replaces (a call still uses the backend's own threads). The reference
// backend is stateless and runs concurrently. (Shortcoming: concurrent cpu-backend calls from
// several Python threads wait for each other; a reader-writer lock would let them overlap.)
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common.hpp"
#include "keel/backends/npu.hpp"
#include "keel/backends/reference.hpp"

#if defined(KEEL_PY_HAVE_CPU) && KEEL_PY_HAVE_CPU
#include "keel/backends/cpu.hpp"
#endif

namespace keel::python {

enum class backend_id : std::uint8_t { reference, cpu, npu, npu_rk3588, npu_imx8mp };

// What the module was built with, as listed by keel.backends().
struct backend_info {
  backend_id id;
  std::string_view name;  // as the `backend` keyword takes it
  backend_caps caps;
  std::string_view what;  // one line for people
};
std::span<const backend_info> available_backends();

class router_object;  // keel.Router: defined in system.cpp

// Where one call runs: a backend, or a router that chooses one.
struct runner {
  backend_id id = backend_id::reference;
  router_object* router = nullptr;  // not owned: the Python object is held by the caller
};

// `backend` keyword: None or "auto" (the fastest backend built in), a name, or a keel.Router.
runner parse_runner(nb::handle h, std::string_view op);
// As parse_runner, for packing, which needs one backend: a router is rejected.
backend_id parse_backend(nb::handle h, std::string_view op);
std::string_view backend_name(backend_id id);

// Runs one op; the GIL is released while it runs.
Status run(const runner& r, const matmul_i8_desc& d, const matmul_i8_args& a);
Status run(const runner& r, const matmul_i4_desc& d, const matmul_i4_args& a);
Status run(const runner& r, const conv2d_desc& d, const conv2d_args& a);
Status run(const runner& r, const attention_desc& d, const attention_args& a);

// ---- packed weights -----------------------------------------------------------------------

// Weights packed once by one backend, reused by every call. The object owns a copy of the
// weight operands the backend read (the reference backend and the cpu's int4 path keep views
// into them; the others pack their own layout), so later changes to the caller's arrays do not
// change a packed object.
struct packed_matmul_i8 {
  backend_id backend = backend_id::reference;
  matmul_i8_desc desc{};  // n, k, b_type, b_batched (and batch when b_batched)
  nb::object b_copy;      // the weights as packed (kept for views and for .weights)
  std::vector<float> scale;
  std::vector<std::int32_t> zero_point, bias;
  std::variant<std::monostate, backends::reference_backend::packed_matmul_i8,
#if defined(KEEL_PY_HAVE_CPU) && KEEL_PY_HAVE_CPU
               backends::cpu_backend::packed_matmul_i8,
#endif
               npu::generic_vnpu_backend::packed_matmul_i8,
               npu::rk3588_vnpu_backend::packed_matmul_i8,
               npu::imx8mp_vnpu_backend::packed_matmul_i8>
      packed;
};

struct packed_matmul_i4 {
  backend_id backend = backend_id::reference;
  matmul_i4_desc desc{};
  nb::object b_copy, scale_copy, zero_point_copy;
  std::vector<float> bias;
  std::variant<std::monostate, backends::reference_backend::packed_matmul_i4
#if defined(KEEL_PY_HAVE_CPU) && KEEL_PY_HAVE_CPU
               ,
               backends::cpu_backend::packed_matmul_i4
#endif
               >
      packed;
};

// Packs with `backend`; the args' weight fields must point into the object's own copies.
Status pack(backend_id backend, packed_matmul_i8& p, const matmul_i8_args& a);
Status pack(backend_id backend, packed_matmul_i4& p, const matmul_i4_args& a);
// Runs with packed weights on the backend that packed them; GIL released.
Status run_packed(const packed_matmul_i8& p, const matmul_i8_desc& d, const matmul_i8_args& a);
Status run_packed(const packed_matmul_i4& p, const matmul_i4_desc& d, const matmul_i4_args& a);

// Binds keel.backends(), keel.boards(), keel.board_profile() and keel.Router.
void bind_system(nb::module_& m);

}  // namespace keel::python
