// keel/kernels/gemm_i8/variant.hpp — what a gemm_i8 kernel variant is, and its name.
//
// Every int8 matmul microkernel is described by one constexpr `variant`. The packer, the thread
// driver, the router, the tests and the benches all read the same fields, and the variant's name
// is built from them (never typed by hand), so a name in a trace, a test and a benchmark row
// always means the same kernel.
//
// Name grammar (one name per variant; fields joined by '_'):
//
//   name      := op '_' inputs '_' acc '_' packing '_' tile '_' isa '_' technique
//   op        := 'gemm' | 'gemv'             gemv: streams B once for up to `mr` rows (M <= mr)
//   inputs    := a-dtype b-dtype             as the microkernel sees them, e.g. 'u8s8'
//   acc       := 's32'                       the raw accumulator the microkernel produces; every
//                                            output mode (s32, f32, s8, u8) is the shared epilogue
//   packing   := 'p' panel-cols 'k' k-group  B in panels of panel-cols columns, each column's
//                                            k-group consecutive K values side by side ('p8k4')
//   tile      := mr 'x' nr                   register tile: rows of A by columns of B
//   isa       := 'scalar' | 'hwy' | 'avx2' | 'avx512vnni' | 'amx' | 'neon' | 'sdot' | 'i8mm'
//                                            amx: AMX-TILE and AMX-INT8 (tdpbusd), with
//                                            AVX-512 VNNI for its epilogue and A packer
//   technique := 'i32'                       products widened to int32 (plain C++)
//              | 'w16'                       operands widened to int16, pairwise multiply-add
//                                            into int32 (vpmaddwd and kin): exact for all input
//              | 'ubs'                       u8 x s8 pairwise multiply-add into saturating int16
//                                            (vpmaddubsw), then into int32: exact only when the
//                                            B pairs and the A range pass the check in
//                                            docs/cpu-backend.md ("the ubs range check")
//              | 'dp4'                       u8 x s8, 4 products summed into int32 with no
//                                            narrower intermediate (vpdpbusd): exact for all
//                                            input; A panels stored as u8 (Arm: sudot, or
//                                            sdot on A' - 128 plus a correction: neon_sdot.hpp;
//                                            amx: tdpbusd, the same sums a tile at a time)
//              | 'mmla'                      u8 x s8 2x8 by 8x2 matrix multiply-accumulate into
//                                            a 2x2 int32 block (usmmla): exact for all input;
//                                            A panels stored as u8 (in row pairs: neon_i8mm.hpp)
//
// Example: gemm_u8s8_s32_p8k4_6x8_avx2_w16.
#pragma once

#include <cstdint>
#include <string_view>

#include "keel/dtype.hpp"

namespace keel::kernels::gemm_i8 {

enum class kernel_op : std::uint8_t { gemm, gemv };
enum class isa : std::uint8_t { scalar, hwy, avx2, neon, sdot, i8mm, avx512vnni, amx };
enum class technique : std::uint8_t { i32, w16, ubs, dp4, mmla };

constexpr std::string_view to_string(kernel_op o) noexcept {
  return o == kernel_op::gemm ? "gemm" : "gemv";
}
constexpr std::string_view to_string(isa i) noexcept {
  switch (i) {
    case isa::scalar: return "scalar";
    case isa::hwy: return "hwy";
    case isa::avx2: return "avx2";
    case isa::neon: return "neon";
    case isa::sdot: return "sdot";
    case isa::i8mm: return "i8mm";
    case isa::avx512vnni: return "avx512vnni";
    case isa::amx: return "amx";
  }
  return "?";
}
constexpr std::string_view to_string(technique t) noexcept {
  switch (t) {
    case technique::i32: return "i32";
    case technique::w16: return "w16";
    case technique::ubs: return "ubs";
    case technique::dp4: return "dp4";
    case technique::mmla: return "mmla";
  }
  return "?";
}

// How packed B is laid out: panels of `panel_cols` columns; inside a panel, for each group of
// `k_group` consecutive K values, each column's k_group bytes side by side. One panel-group is
// therefore panel_cols * k_group bytes, and a panel is ceil(K / k_group) of them.
struct packing {
  int panel_cols = 8;
  int k_group = 4;
  constexpr bool operator==(const packing&) const = default;
  constexpr int group_bytes() const noexcept { return panel_cols * k_group; }
};

// How the driver hands A to a microkernel: an A panel holds `mr` rows (zero-padded), k_group
// values of each row side by side per K group, as u8 (ubs, dp4) or as int16 (w16, i32).
enum class a_format : std::uint8_t { u8, s16 };

struct variant {
  kernel_op op = kernel_op::gemm;
  dtype a = dtype::u8;    // the microkernel's A (keel maps s8 A onto u8 exactly: see packing.hpp)
  dtype b = dtype::s8;    // the microkernel's B (u8 B is mapped onto s8 exactly)
  dtype acc = dtype::s32;
  packing pack{};
  int mr = 1;             // rows of A per call (the A panel height)
  int np = 1;             // most B panels per call; nr = np * panel_cols
  isa target = isa::scalar;
  technique tech = technique::i32;

  constexpr int nr() const noexcept { return np * pack.panel_cols; }
  constexpr a_format a_layout() const noexcept {
    return tech == technique::ubs || tech == technique::dp4 || tech == technique::mmla
               ? a_format::u8
               : a_format::s16;
  }
  // True when the variant is exact for every input; false when the driver must prove the
  // ubs range check first.
  constexpr bool exact_for_all_inputs() const noexcept { return tech != technique::ubs; }
};

// K groups that one A panel of variant `v` holds for a call of kq groups: kq, but for the AMX
// kernel, whose A tile rows are 64 bytes (16 groups), kq rounded up to whole tile rows
// (amx.hpp). The driver allocates mr * a_panel_groups * k_group elements per A panel.
constexpr std::int64_t a_panel_groups(const variant& v, std::int64_t kq) noexcept {
  return v.target == isa::amx ? (kq + 15) / 16 * 16 : kq;
}

// A name built at compile time: a fixed buffer, no allocation.
struct variant_name {
  static constexpr int kCapacity = 64;
  char text[kCapacity] = {};
  int size = 0;

  constexpr void append(std::string_view s) noexcept {
    for (char c : s) {
      if (size < kCapacity - 1) text[size++] = c;
    }
  }
  constexpr void append_int(int v) noexcept {
    char digits[12] = {};
    int n = 0;
    if (v == 0) digits[n++] = '0';
    while (v > 0 && n < 11) {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
    while (n > 0) append(std::string_view(&digits[--n], 1));
  }
  constexpr std::string_view view() const noexcept {
    return {text, static_cast<std::size_t>(size)};
  }
  const char* c_str() const noexcept { return text; }
};

constexpr variant_name make_name(const variant& v) noexcept {
  variant_name n;
  n.append(to_string(v.op));
  n.append("_");
  n.append(to_string(v.a));
  n.append(to_string(v.b));
  n.append("_");
  n.append(to_string(v.acc));
  n.append("_p");
  n.append_int(v.pack.panel_cols);
  n.append("k");
  n.append_int(v.pack.k_group);
  n.append("_");
  n.append_int(v.mr);
  n.append("x");
  n.append_int(v.nr());
  n.append("_");
  n.append(to_string(v.target));
  n.append("_");
  n.append(to_string(v.tech));
  return n;
}

static_assert(make_name(variant{kernel_op::gemm, dtype::u8, dtype::s8, dtype::s32, {8, 4}, 6, 1,
                                isa::avx2, technique::w16})
                  .view() == "gemm_u8s8_s32_p8k4_6x8_avx2_w16",
              "the name grammar above must match make_name");

// What a microkernel computes, for every variant:
//
//   raw[r][c] = sum over k < 4*kq of A'[r][k] * B'[k][c]      (int32, wrapping)
//
// for r < rows and c < panels * panel_cols, where A' is the packed A panel (u8 values 0..255
// whether stored as u8 or int16) and B' the packed B panels (s8). Rows >= `rows` of the A panel
// are zero padding and are neither computed into raw nor stored. The sum wraps modulo 2^32; the
// epilogue's zero-point corrections are also modulo 2^32, and validation guarantees the true
// result fits int32, so the wrapped arithmetic gives it exactly.
struct ukernel_args {
  const void* a = nullptr;          // A panel: [kq][mr][k_group] of u8 or int16 (a_layout())
  const std::int8_t* b = nullptr;   // first B panel: [kq][panel_cols][k_group] s8
  std::int64_t b_panel_stride = 0;  // bytes from one B panel to the next (kq * group_bytes)
  std::int64_t kq = 0;              // K groups (K rounded up to k_group, divided by it)
  int rows = 0;                     // 1..mr valid rows
  int panels = 0;                   // 1..np panels (gemv: any count the driver chooses)
  std::int32_t* raw = nullptr;      // [rows][ld_raw] int32 results
  std::int64_t ld_raw = 0;          // elements between rows of raw (>= panels * panel_cols)
  // The call's epilogue, for a kernel that runs it itself (kernel::epilogue_in_kernel in
  // registry.hpp: the AMX kernel, which overlaps it with its tile unit's work): the driver's
  // epilogue for rows [out_m0, out_m0 + rows) and columns [out_n0, out_n0 + out_cols) of out,
  // column c of raw being column out_n0 + c. Other kernels ignore these; the driver then calls
  // the epilogue after the kernel.
  const void* epilogue_params = nullptr;  // gemm_i8::epilogue_params (epilogue.hpp)
  std::int64_t out_m0 = 0;
  std::int64_t out_n0 = 0;
  int out_cols = 0;
};

using ukernel_fn = void (*)(const ukernel_args&);

// A kernel's optional B preparation: rewrites the call's B panels (a.b, a.b_panel_stride, a.kq,
// a.panels) into a layout of the kernel's own at dst, which the driver then hands to the kernel
// as `b` in every call of the same panel group (once per group and task, reused across the
// task's A panels). dst holds np * a_panel_groups(v, kq) * group_bytes bytes, 64-byte aligned.
// Only the AMX kernel has one (amx.hpp: 16-column tiles from two 8-column panels).
using prepare_b_fn = void (*)(const ukernel_args& a, std::int8_t* dst);

}  // namespace keel::kernels::gemm_i8
