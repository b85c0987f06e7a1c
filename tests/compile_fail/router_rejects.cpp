// Compile-fail cases of keel::router: each KEEL_CASE is a model or a policy the router must
// reject at compile time, with a message naming the op (or the rule) and, in the compiler's
// instantiation note, the board. KEEL_CASE 0 compiles: the control. tests/meson.build lists the
// cases with the text each must print.
#include "keel/boards/all.hpp"
#include "keel/router/fault_injection.hpp"
#include "keel/router/router.hpp"

namespace {
using keel::backend_kind;
using keel::dtype;
using keel::op_kind;
using keel::op_need;
using keel::placement;
using ref = keel::backends::reference_backend;

struct as_cpu {
  static constexpr std::string_view name = "cpu-sim";
  static constexpr backend_kind kind = backend_kind::cpu;
};
struct as_npu {  // int8 only
  static constexpr std::string_view name = "npu-sim";
  static constexpr backend_kind kind = backend_kind::npu;
  static constexpr std::uint32_t weight_types =
      keel::dtype_bit(dtype::s8) | keel::dtype_bit(dtype::u8);
};
struct as_npu_int4 {  // the board's only int4-capable backend
  static constexpr std::string_view name = "npu-int4";
  static constexpr backend_kind kind = backend_kind::npu;
};
struct as_loose_gpu {  // not bit-exact
  static constexpr std::string_view name = "loose-gpu";
  static constexpr backend_kind kind = backend_kind::gpu;
  static constexpr bool bit_exact = false;
};
using cpu_sim = keel::faulty_backend<ref, as_cpu>;
using npu_sim = keel::faulty_backend<ref, as_npu>;
using npu_int4 = keel::faulty_backend<ref, as_npu_int4>;
using loose_gpu = keel::faulty_backend<ref, as_loose_gpu>;
using all_units = keel::latency_first<cpu_sim, npu_sim>;

template <class Board, class Policy, op_need N>
constexpr bool needs = keel::router<Board, Policy>::template require<N>();

struct not_a_backend {};
struct not_a_policy {
  using backends = keel::backend_list<cpu_sim>;
};
}  // namespace

#if KEEL_CASE == 0
// Every board runs what it has.
static_assert(
    needs<keel::boards::rk3588, all_units, op_need{op_kind::conv2d_i8, dtype::s8, placement::npu}>);
static_assert(needs<keel::boards::raspberry_pi_5, all_units,
                    op_need{op_kind::attention, dtype::f32, placement::cpu, true}>);
static_assert(needs<keel::boards::jetson_orin_nano, keel::latency_first<loose_gpu>,
                    op_need{op_kind::conv2d_i8, dtype::s8, placement::gpu}>);
static_assert(keel::router<keel::boards::imx8m_plus, all_units>::backend_count == 3);
#elif KEEL_CASE == 1   // pinned to an NPU the board does not have
static_assert(needs<keel::boards::raspberry_pi_5, all_units,
                    op_need{op_kind::attention, dtype::s8, placement::npu}>);
#elif KEEL_CASE == 2   // pinned to a GPU the board does not have
static_assert(needs<keel::boards::generic_x86_64_avx2, all_units,
                    op_need{op_kind::matmul_i8, dtype::u8, placement::gpu}>);
#elif KEEL_CASE == 3   // the board's NPU has no int4 path
static_assert(needs<keel::boards::imx8m_plus, keel::latency_first<cpu_sim, npu_int4>,
                    op_need{op_kind::matmul_i4, dtype::s4, placement::npu}>);
#elif KEEL_CASE == 4   // the board's NPU does not run attention
static_assert(needs<keel::boards::rk3588, keel::latency_first<cpu_sim, npu_int4>,
                    op_need{op_kind::attention, dtype::s8, placement::npu}>);
#elif KEEL_CASE == 5   // the board has an NPU, but no NPU backend of the policy takes int4
static_assert(needs<keel::boards::snapdragon_8_gen_2, all_units,
                    op_need{op_kind::matmul_i4, dtype::u4, placement::npu}>);
#elif KEEL_CASE == 6   // accelerated int4 where the only int4-capable backend (an NPU) is absent
static_assert(needs<keel::boards::raspberry_pi_5, keel::latency_first<npu_int4>,
                    op_need{op_kind::matmul_i4, dtype::s4, placement::any, true}>);
#elif KEEL_CASE == 7   // accelerated, with no accelerator in the policy at all
static_assert(needs<keel::boards::jetson_orin_nano, keel::latency_first<>,
                    op_need{op_kind::conv2d_i8, dtype::s8, placement::any, true}>);
#elif KEEL_CASE == 8   // safety-critical pinned to a GPU whose only backend is not bit-exact
static_assert(needs<keel::boards::jetson_orin_nano, keel::latency_first<cpu_sim, loose_gpu>,
                    op_need{op_kind::conv2d_i8, dtype::s8, placement::gpu, false, true}>);
#elif KEEL_CASE == 9   // int4 attention: no keel op takes it
static_assert(
    needs<keel::boards::snapdragon_8_gen_2, all_units, op_need{op_kind::attention, dtype::s4}>);
#elif KEEL_CASE == 10  // pinned to the CPU with no CPU backend in the policy
static_assert(needs<keel::boards::rk3588, keel::latency_first<npu_sim>,
                    op_need{op_kind::matmul_i8, dtype::s8, placement::cpu}>);
#elif KEEL_CASE == 11  // the board has a GPU, the policy no GPU backend
static_assert(needs<keel::boards::x86_64_avx512_vnni, all_units,
                    op_need{op_kind::matmul_i8, dtype::s8, placement::gpu}>);
#elif KEEL_CASE == 12  // not an op the router routes
static_assert(needs<keel::boards::rk3588, all_units, op_need{op_kind::quantize_linear, dtype::s8}>);
#elif KEEL_CASE == 13  // a policy without score()
keel::router<keel::boards::rk3588, not_a_policy> r;
#elif KEEL_CASE == 14  // a type in the backend list that is not a backend
keel::router<keel::boards::rk3588, keel::latency_first<cpu_sim, not_a_backend> > r;
#elif KEEL_CASE == 15  // eight backends: one too many
struct a1 : as_cpu {};
struct a2 : as_cpu {};
struct a3 : as_cpu {};
struct a4 : as_cpu {};
struct a5 : as_cpu {};
struct a6 : as_cpu {};
struct a7 : as_cpu {};
struct a8 : as_cpu {};
keel::router<keel::boards::rk3588,
             keel::latency_first<keel::faulty_backend<ref, a1>, keel::faulty_backend<ref, a2>,
                                 keel::faulty_backend<ref, a3>, keel::faulty_backend<ref, a4>,
                                 keel::faulty_backend<ref, a5>, keel::faulty_backend<ref, a6>,
                                 keel::faulty_backend<ref, a7>, keel::faulty_backend<ref, a8> > >
    r;
#endif
