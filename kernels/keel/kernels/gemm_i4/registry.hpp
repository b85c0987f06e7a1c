// keel/kernels/gemm_i4/registry.hpp — the one list of int4 matmul kernels.
//
// Tests, benchmarks and the cpu backend's chooser all iterate kRegistry; adding a kernel is one
// line here (plus its availability test in `available` for a new ISA). The order is the order of
// preference: for a call, the backend takes the first available kernel of the call's activation
// kind, a gemv kernel when M <= its rows, else a gemm kernel.
#pragma once

#include <cstdint>
#include <string_view>

#include "keel/kernels/gemm_i4/avx2.hpp"
#include "keel/kernels/gemm_i4/avx512_gemm.hpp"
#include "keel/kernels/gemm_i4/avx512_gemv.hpp"
#include "keel/kernels/gemm_i4/scalar.hpp"
#include "keel/kernels/gemm_i4/variant.hpp"

namespace keel::kernels::gemm_i4 {

struct kernel {
  variant v;
  variant_name name;  // make_name(v)
  kernel_fn fn;
};

constexpr kernel make_kernel(const variant& v, kernel_fn fn) noexcept {
  return kernel{v, make_name(v), fn};
}

inline constexpr kernel kRegistry[] = {
#if defined(KEEL_GEMM_I4_HAVE_AVX512)
    make_kernel({kernel_op::gemv, activation::s8, 4, 4, isa::avx512vnni, technique::dp4},
                &avx512::gemv_s8_dp4),
    make_kernel({kernel_op::gemv, activation::f32, 1, 2, isa::avx512vnni, technique::ord},
                &avx512::gemv_f32_ord),
    make_kernel({kernel_op::gemm, activation::s8, avx512::kGemmRows, avx512::kGemmPanels,
                 isa::avx512vnni, technique::dp4},
                &avx512::gemm_s8_dp4),
#endif
#if defined(KEEL_GEMM_I4_HAVE_AVX2)
    make_kernel({kernel_op::gemv, activation::s8, 4, 1, isa::avx2, technique::ubs},
                &avx2::gemv_s8_ubs),
    make_kernel({kernel_op::gemm, activation::s8, 4, 2, isa::avx2, technique::ubs},
                &avx2::gemm_s8_ubs),
    make_kernel({kernel_op::gemv, activation::f32, 1, 4, isa::avx2, technique::ord},
                &avx2::gemv_f32<false>),
    make_kernel({kernel_op::gemm, activation::f32, 8, 1, isa::avx2, technique::ord},
                &avx2::gemm_f32<false>),
    make_kernel({kernel_op::gemv, activation::f32, 1, 4, isa::avx2, technique::fma},
                &avx2::gemv_f32<true>),
    make_kernel({kernel_op::gemm, activation::f32, 8, 1, isa::avx2, technique::fma},
                &avx2::gemm_f32<true>),
#endif
    make_kernel({kernel_op::gemm, activation::s8, 1, 1, isa::scalar, technique::i32},
                &scalar::gemm_s8_i32),
    make_kernel({kernel_op::gemm, activation::f32, 1, 1, isa::scalar, technique::ord},
                &scalar::gemm_f32_ord),
};

inline constexpr int kRegistrySize = static_cast<int>(sizeof(kRegistry) / sizeof(kRegistry[0]));

// Whether this CPU can run a variant's instructions.
inline bool available(const variant& v) noexcept {
  switch (v.target) {
    case isa::scalar: return true;
#if defined(KEEL_GEMM_I4_HAVE_AVX2)
    case isa::avx2:
      // The fma technique needs FMA; the others are compiled for AVX2 alone.
      return __builtin_cpu_supports("avx2") &&
             (v.tech != technique::fma || __builtin_cpu_supports("fma"));
#endif
#if defined(KEEL_GEMM_I4_HAVE_AVX512)
    case isa::avx512vnni: return avx512::missing_feature() == nullptr;
#endif
    default: return false;
  }
}

// Index of the variant with this name, or -1.
constexpr int find_kernel(std::string_view name) noexcept {
  for (int i = 0; i < kRegistrySize; ++i) {
    if (kRegistry[i].name.view() == name) return i;
  }
  return -1;
}

static_assert(find_kernel("gemm_s8u4_f32_p8k8_1x8_scalar_i32") >= 0 &&
                  find_kernel("gemm_f32u4_f32_p8k8_1x8_scalar_ord") >= 0,
              "the portable kernels are always registered");

}  // namespace keel::kernels::gemm_i4
