// keel/kernels/gemm_i8/registry.hpp — the one list of int8 matmul microkernels.
//
// Tests, benchmarks and the cpu backend's chooser all iterate kRegistry; adding a kernel is one
// line here (plus its availability test in `available` when it needs a new ISA). The order is
// the order of preference: the backend takes the first available, exact-for-this-input variant
// of the right op (gemv for M <= its mr, gemm otherwise).
//
// To add a kernel for another ISA: include its header (which defines a KEEL_GEMM_I8_HAVE_* macro
// under its architecture test), add its entries inside an `#if` block like the AVX2 and Arm
// ones, and teach `available` its ISA.
#pragma once

#include <cstdint>
#include <string_view>

#include "keel/kernels/gemm_i8/amx.hpp"
#include "keel/kernels/gemm_i8/avx2.hpp"
#include "keel/kernels/gemm_i8/avx512vnni.hpp"
#include "keel/kernels/gemm_i8/epilogue.hpp"
#include "keel/kernels/gemm_i8/hwy.hpp"
#include "keel/kernels/gemm_i8/neon.hpp"
#include "keel/kernels/gemm_i8/neon_i8mm.hpp"
#include "keel/kernels/gemm_i8/neon_sdot.hpp"
#include "keel/kernels/gemm_i8/scalar.hpp"
#include "keel/kernels/gemm_i8/variant.hpp"

namespace keel::kernels::gemm_i8 {

struct kernel {
  variant v;
  variant_name name;     // make_name(v)
  ukernel_fn fn;         // the microkernel: raw int32 tile
  epilogue_fn epilogue;  // the shared epilogue (epilogue.hpp) compiled for the kernel's ISA
  pack_a_fn pack_a;      // the A packer (packing.hpp) for v.a_layout(), compiled likewise
  prepare_b_fn prepare_b = nullptr;  // a B layout of the kernel's own, or none (variant.hpp)
  bool epilogue_in_kernel = false;    // the kernel calls `epilogue` itself (ukernel_args)
};

// The portable defaults: epilogue and A packer compiled for the build's baseline.
constexpr pack_a_fn portable_pack_a(const variant& v) noexcept {
  return v.a_layout() == a_format::s16 ? &pack_a<std::int16_t> : &pack_a<std::uint8_t>;
}
// Two overloads rather than a null default: under -fsanitize=undefined GCC 12 does not treat
// "function pointer != nullptr" as a constant expression, and kRegistry must be one.
constexpr kernel make_kernel(const variant& v, ukernel_fn fn) noexcept {
  return kernel{v, make_name(v), fn, &apply_epilogue, portable_pack_a(v), nullptr, false};
}
constexpr kernel make_kernel(const variant& v, ukernel_fn fn, epilogue_fn epi,
                             pack_a_fn pa) noexcept {
  return kernel{v, make_name(v), fn, epi, pa, nullptr, false};
}
// The AMX kernel's: its own B preparation, and it runs the epilogue itself.
constexpr kernel make_kernel(const variant& v, ukernel_fn fn, epilogue_fn epi, pack_a_fn pa,
                             prepare_b_fn pb) noexcept {
  return kernel{v, make_name(v), fn, epi, pa, pb, true};
}

namespace registry_detail {
constexpr variant gemm_u8s8(int mr, int np, isa target, technique tech,
                            kernel_op op = kernel_op::gemm) noexcept {
  return variant{op, dtype::u8, dtype::s8, dtype::s32, packing{8, 4}, mr, np, target, tech};
}
// A gemv call covers up to this many panels (128 columns): the raw tile stays on the stack.
inline constexpr int kGemvPanels = 16;
}  // namespace registry_detail

inline constexpr kernel kRegistry[] = {
#if defined(KEEL_GEMM_I8_HAVE_AMX)
    // Exact for all input (tdpbusd: amx.hpp), several times the VNNI rate per core. Its own A
    // panels (64-byte K rows) and B tiles (16 columns), the VNNI kernels' epilogue.
    make_kernel(registry_detail::gemm_u8s8(amx::kGemmRows, amx::kPanelsPerCall, isa::amx,
                                           technique::dp4),
                &amx::gemm_dp4, &avx512vnni::epilogue, &amx::pack_a, &amx::prepare_b),
#endif
#if defined(KEEL_GEMM_I8_HAVE_AVX512VNNI) && defined(KEEL_GEMM_I8_HAVE_AVX2)
    // Exact for all input and about 4x the AVX2 rate per core, so first where the CPU has it.
    // avx512vnni.hpp says which parts of the epilogue and A packing are its own.
    make_kernel(registry_detail::gemm_u8s8(avx512vnni::kGemmRows, 2, isa::avx512vnni,
                                           technique::dp4),
                &avx512vnni::gemm_dp4, &avx512vnni::epilogue, &avx512vnni::pack_a_gemm),
    make_kernel(registry_detail::gemm_u8s8(avx512vnni::kGemvRows, registry_detail::kGemvPanels,
                                           isa::avx512vnni, technique::dp4, kernel_op::gemv),
                &avx512vnni::gemv_dp4<>, &avx512vnni::epilogue, &avx2::pack_a<std::uint8_t>),
#endif
#if defined(KEEL_GEMM_I8_HAVE_AVX2)
    make_kernel(registry_detail::gemm_u8s8(4, 3, isa::avx2, technique::ubs),
                &avx2::gemm_ubs<4, 3>, &avx2::epilogue, &avx2::pack_a<std::uint8_t>),
    make_kernel(registry_detail::gemm_u8s8(6, 1, isa::avx2, technique::w16), &avx2::gemm_w16<6>,
                &avx2::epilogue, &avx2::pack_a<std::int16_t>),
    make_kernel(registry_detail::gemm_u8s8(4, registry_detail::kGemvPanels, isa::avx2,
                                           technique::w16, kernel_op::gemv),
                &avx2::gemv_w16<4>, &avx2::epilogue, &avx2::pack_a<std::int16_t>),
#endif
// Arm, best first: I8MM (usmmla, 32 multiply-adds an instruction), SDOT (16), NEON (4). Each
// with its own A packer (neon*.hpp) and the portable epilogue.
#if defined(KEEL_GEMM_I8_HAVE_I8MM)
    make_kernel(registry_detail::gemm_u8s8(i8mm::kGemmRows, 1, isa::i8mm, technique::mmla),
                &i8mm::gemm_mmla, &apply_epilogue, &i8mm::pack_a_row_pairs),
    make_kernel(registry_detail::gemm_u8s8(i8mm::kGemvRows, registry_detail::kGemvPanels, isa::i8mm,
                                           technique::dp4, kernel_op::gemv),
                &i8mm::gemv_dp4, &apply_epilogue, &pack_a<std::uint8_t>),
#endif
#if defined(KEEL_GEMM_I8_HAVE_SDOT)
    make_kernel(registry_detail::gemm_u8s8(sdot::kGemmRows, 1, isa::sdot, technique::dp4),
                &sdot::gemm_dp4, &apply_epilogue, &sdot::pack_a_flipped),
    make_kernel(registry_detail::gemm_u8s8(sdot::kGemvRows, registry_detail::kGemvPanels, isa::sdot,
                                           technique::dp4, kernel_op::gemv),
                &sdot::gemv_dp4, &apply_epilogue, &sdot::pack_a_flipped),
#endif
#if defined(KEEL_GEMM_I8_HAVE_NEON)
    make_kernel(registry_detail::gemm_u8s8(neon::kGemmRows, 1, isa::neon, technique::w16),
                &neon::gemm_w16, &apply_epilogue, &neon::pack_a_kmajor_s16),
    make_kernel(registry_detail::gemm_u8s8(neon::kGemvRows, registry_detail::kGemvPanels, isa::neon,
                                           technique::w16, kernel_op::gemv),
                &neon::gemv_w16, &apply_epilogue, &pack_a<std::int16_t>),
#endif
    make_kernel(registry_detail::gemm_u8s8(4, 1, isa::hwy, technique::w16),
                &hwy_impl::gemm_w16_mr4),
    make_kernel(registry_detail::gemm_u8s8(4, registry_detail::kGemvPanels, isa::hwy,
                                           technique::w16, kernel_op::gemv),
                &hwy_impl::gemm_w16_mr4),
    make_kernel(registry_detail::gemm_u8s8(4, 1, isa::scalar, technique::i32),
                &scalar::gemm_i32<4>),
};

inline constexpr int kRegistrySize = static_cast<int>(sizeof(kRegistry) / sizeof(kRegistry[0]));

// Whether this CPU can run a variant's instructions (asked once per call; cheap).
inline bool available(const variant& v) noexcept {
  switch (v.target) {
    case isa::scalar:
    case isa::hwy: return true;
#if defined(KEEL_GEMM_I8_HAVE_AVX2)
    case isa::avx2: return __builtin_cpu_supports("avx2");
#endif
#if defined(KEEL_GEMM_I8_HAVE_AVX512VNNI)
    // CPUID for AVX512F, BW, VL and VNNI, and XGETBV for the OS's ZMM state (avx512vnni.hpp).
    case isa::avx512vnni: return avx512vnni::cpu_supported();
#endif
#if defined(KEEL_GEMM_I8_HAVE_AMX)
    // CPUID, XCR0 and the OS's permission for the tile state (amx.hpp).
    case isa::amx: return amx::cpu_supported();
#endif
#if defined(KEEL_GEMM_I8_HAVE_NEON)
    // NEON is part of every aarch64 CPU; dotprod and i8mm from AT_HWCAP/AT_HWCAP2 (neon.hpp).
    case isa::neon: return true;
    case isa::sdot: return neon::features().dotprod;
    case isa::i8mm: return neon::features().i8mm;
#endif
    default: return false;
  }
}

// The B layout pack() uses on this CPU: that of the first available gemm kernel. (Every kernel
// registered so far reads p8k4; an Arm kernel with another layout makes this choice matter.)
inline packing preferred_packing() noexcept {
  for (const kernel& k : kRegistry) {
    if (k.v.op == kernel_op::gemm && available(k.v)) return k.v.pack;
  }
  return packing{8, 4};
}

// Index of the variant with this name, or -1.
constexpr int find_kernel(std::string_view name) noexcept {
  for (int i = 0; i < kRegistrySize; ++i) {
    if (kRegistry[i].name.view() == name) return i;
  }
  return -1;
}

static_assert(find_kernel("gemm_u8s8_s32_p8k4_4x8_scalar_i32") >= 0,
              "the portable kernel is always registered");

}  // namespace keel::kernels::gemm_i8
