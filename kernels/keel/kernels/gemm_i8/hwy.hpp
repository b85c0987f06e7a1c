// keel/kernels/gemm_i8/hwy.hpp — the Highway microkernel with dynamic dispatch: compiled for
// every target Highway attains on this architecture (SSSE3, SSE4, AVX2, AVX-512 and the emulated
// baseline on x86; NEON and SVE on Arm) and run on the best one the CPU has. Needs libhwy at link
// time (hwy::SupportedTargets). The per-target code is keel/kernels/gemm_i8/hwy-inl.hpp.
#pragma once

#include <cstdint>

#include "keel/kernels/gemm_i8/variant.hpp"

// foreach_target.h re-includes HWY_TARGET_INCLUDE once per target; keep whatever a caller had.
#pragma push_macro("HWY_TARGET_INCLUDE")
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "keel/kernels/gemm_i8/hwy-inl.hpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>
#include "keel/kernels/gemm_i8/hwy-inl.hpp"
#pragma pop_macro("HWY_TARGET_INCLUDE")

#if HWY_ONCE
namespace keel::kernels::gemm_i8 {
// The dispatch table: a static array, one per translation unit.
HWY_EXPORT(HwyGemmW16Mr4);

namespace hwy_impl {
inline constexpr packing kPacking{8, 4};

// The registry's entry: runs the best Highway target of this CPU (hwy::GetChosenTarget()).
inline void gemm_w16_mr4(const ukernel_args& p) {
  HWY_DYNAMIC_DISPATCH(HwyGemmW16Mr4)(p);
}
}  // namespace hwy_impl
}  // namespace keel::kernels::gemm_i8
#endif  // HWY_ONCE
