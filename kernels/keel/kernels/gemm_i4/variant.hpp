// keel/kernels/gemm_i4/variant.hpp — what a gemm_i4 kernel variant is, its name, the packed
// weight layout every variant reads, and the contract of one kernel call.
//
// Name grammar (one name per variant, built by make_name from the fields below, never typed):
//
//   name      := op '_' inputs '_' out '_' packing '_' tile '_' isa '_' technique
//   op        := 'gemm' | 'gemv'      gemv: streams the weights once for up to `mr` rows (M <= mr);
//                                     gemm: any M, `mr` rows per call, weights re-read from cache
//   inputs    := act-dtype w-dtype    as the kernel sees them: 'f32u4' (f32 activations) or
//                                     's8u4' (dynamic_s8: the quantized rows); the weights are
//                                     always u4 with a zero point (s4 is packed as u4 with z = 8)
//   out       := 'f32'
//   packing   := 'p' panel-cols 'k' unit-k    'p8k8': panels of 8 columns, units of 8 K values
//                                     (see "Packed layout" below)
//   tile      := mr 'x' nr            rows by columns of one call (nr = np * panel-cols)
//   isa       := 'scalar' | 'avx2' | 'avx512vnni'    avx512vnni: AVX512F/BW/VL and AVX512_VNNI
//   technique := 'ord'                f32: each product rounded, each group summed k-ascending,
//                                     scaled and added group-ascending: the reference's order,
//                                     so the reference's bits (one output column per lane)
//              | 'fma'                f32: fused multiply-adds and split partial sums; within the
//                                     bound of docs/semantics.md, not the reference's bits
//              | 'i32'                s8: products in int32 (plain C++); the reference's bits
//              | 'ubs'                s8: vpmaddubsw of u4 (0..15) by s8 (-127..127) into int16
//                                     pairs, exact (|pair| <= 2 * 15 * 127 = 3810); the f32
//                                     group sums in the reference's order: the reference's bits
//              | 'dp4'                s8: vpdpbusd of u4 (0..15, the unsigned operand) by s8
//                                     (-127..127) into int32 lanes, exact; the f32 group sums as
//                                     ubs: the reference's bits
//
// Example: gemv_s8u4_f32_p8k8_4x8_avx2_ubs.
//
// Packed layout (one layout for every variant and both activation kinds):
//
//   panels    the N columns in panels of 8 (the last padded with columns of zero weight and zero
//             scale); panel j holds columns 8j..8j+7, its bytes contiguous, panels back to back.
//   groups    inside a panel, one record per group of G K values, ascending:
//               [units * 32 bytes of weights][8 f32 scales][8 u8 zero points, if any]
//             units = ceil(group length / 8); a partial last group's record is shorter.
//   unit      8 K values (k0..k0+7) of the 8 columns in 32 bytes: byte 4c + i (c the column,
//             i = 0..3) holds w[c, k0 + i] in its low nibble and w[c, k0 + 4 + i] in its high
//             nibble. So `bytes & 0x0F` is the p8k4 block (8 columns x 4 K values, each column's
//             4 bytes side by side) of k0..k0+3, and `bytes >> 4` that of k0+4..k0+7: exactly
//             what a 4-byte-broadcast vpmaddubsw consumes, with no shuffle.
//   values    u = stored nibble, 0..15; the weight is u - z. s4 weights are stored as u = s + 8
//             (nibble ^ 8) with z = 8; u4 without a zero-point view also has z = 8; with one,
//             z is in the record. K values past the end of a group (padding to the unit) hold
//             u = z, and the kernels' activations there are 0.
//   scales    f32 (f16 scales are widened exactly at pack time).
#pragma once

#include <cstdint>
#include <string_view>

#include "keel/dtype.hpp"

namespace keel::kernels::gemm_i4 {

enum class kernel_op : std::uint8_t { gemm, gemv };
enum class activation : std::uint8_t { f32, s8 };
enum class isa : std::uint8_t { scalar, avx2, avx512vnni };
enum class technique : std::uint8_t { ord, fma, i32, ubs, dp4 };

constexpr std::string_view to_string(kernel_op o) noexcept {
  return o == kernel_op::gemm ? "gemm" : "gemv";
}
constexpr std::string_view to_string(activation a) noexcept {
  return a == activation::f32 ? "f32" : "s8";
}
constexpr std::string_view to_string(isa i) noexcept {
  switch (i) {
    case isa::scalar: return "scalar";
    case isa::avx2: return "avx2";
    case isa::avx512vnni: return "avx512vnni";
  }
  return "?";
}
constexpr std::string_view to_string(technique t) noexcept {
  switch (t) {
    case technique::ord: return "ord";
    case technique::fma: return "fma";
    case technique::i32: return "i32";
    case technique::ubs: return "ubs";
    case technique::dp4: return "dp4";
  }
  return "?";
}

// ---- the packed layout's constants ----------------------------------------------------------

inline constexpr int kPanelCols = 8;                // columns per panel
inline constexpr int kUnitK = 8;                    // K values per unit
inline constexpr int kUnitBytes = 32;               // kPanelCols * kUnitK nibbles
inline constexpr int kScaleBytes = kPanelCols * 4;  // one f32 scale per column per group
inline constexpr int kZeroPointBytes = kPanelCols;  // one u8 zero point per column per group
inline constexpr std::int32_t kDefaultZeroPoint = 8;

// The geometry of one packed matrix, derived from (N, K, G, zero points present) only.
struct packed_geometry {
  std::int64_t panels = 0;        // ceil(N / 8)
  std::int64_t groups = 0;        // ceil(K / G)
  std::int64_t group_units = 0;   // units of a full group: ceil(G / 8)
  std::int64_t last_units = 0;    // units of the last group (partial or full)
  std::int64_t k_padded = 0;      // K rounded up so that every group is whole units
  std::int64_t record_bytes = 0;  // bytes of a full group's record
  std::int64_t panel_bytes = 0;   // bytes of one panel (all its records)
  bool has_zero_points = false;

  // Bytes of a group's record with `units` units.
  constexpr std::int64_t record_bytes_for(std::int64_t units) const noexcept {
    return units * kUnitBytes + kScaleBytes + (has_zero_points ? kZeroPointBytes : 0);
  }
  constexpr std::int64_t units_of(std::int64_t g) const noexcept {
    return g + 1 == groups ? last_units : group_units;
  }
  constexpr std::int64_t total_bytes() const noexcept { return panels * panel_bytes; }
};

// The geometry for N x K weights in groups of G (G a power of two >= 16, or K: the desc's rule).
constexpr packed_geometry make_geometry(std::int64_t n, std::int64_t k, std::int64_t g,
                                        bool zero_points) noexcept {
  packed_geometry p;
  p.has_zero_points = zero_points;
  p.panels = (n + kPanelCols - 1) / kPanelCols;
  p.groups = (k + g - 1) / g;
  p.group_units = (g + kUnitK - 1) / kUnitK;
  const std::int64_t last_len = k - (p.groups - 1) * g;
  p.last_units = (last_len + kUnitK - 1) / kUnitK;
  // G = K: one group; otherwise G is a multiple of 8 and only the last group is padded.
  p.k_padded = (p.groups - 1) * p.group_units * kUnitK + p.last_units * kUnitK;
  p.record_bytes = p.record_bytes_for(p.group_units);
  p.panel_bytes = (p.groups - 1) * p.record_bytes + p.record_bytes_for(p.last_units);
  return p;
}

static_assert(make_geometry(9, 37, 16, false).k_padded == 40 &&
                  make_geometry(9, 37, 16, false).last_units == 1 &&
                  make_geometry(9, 37, 16, false).panel_bytes == 2 * (2 * 32 + 32) + (32 + 32) &&
                  make_geometry(9, 13, 13, true).k_padded == 16 &&
                  make_geometry(9, 13, 13, true).panel_bytes == 2 * 32 + 32 + 8,
              "the layout described above");

// ---- variants -------------------------------------------------------------------------------

struct variant {
  kernel_op op = kernel_op::gemm;
  activation act = activation::f32;
  int mr = 1;  // rows per call
  int np = 1;  // most panels per call
  isa target = isa::scalar;
  technique tech = technique::ord;

  constexpr int nr() const noexcept { return np * kPanelCols; }
  // True when the f32 outputs are the reference's bits (false: within the documented bound).
  constexpr bool reference_bits() const noexcept { return tech != technique::fma; }
};

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
  n.append(to_string(v.act));
  n.append("u4_f32_p");
  n.append_int(kPanelCols);
  n.append("k");
  n.append_int(kUnitK);
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

static_assert(make_name(variant{kernel_op::gemv, activation::s8, 4, 1, isa::avx2, technique::ubs})
                      .view() == "gemv_s8u4_f32_p8k8_4x8_avx2_ubs",
              "the name grammar above must match make_name");

// ---- one kernel call ------------------------------------------------------------------------
//
// What a kernel computes, for r < rows and c < panels * 8 (column c of the call is column c % 8
// of panel c / 8), with u, z and s read from the packed records and A' the prepared rows:
//
//   f32:  acc = +0; for g ascending: gsum = +0; for k in g ascending: gsum += A'[r,k] * (u - z);
//         acc += s * gsum                              (technique ord: each operation rounded)
//   s8:   acc = +0; for g ascending: isum = sum_k A'[r,k] * (u - z) (exact int32);
//         acc += float(isum) * (a_scale[r] * s)        (each product rounded, in this order)
//
// and stores acc to out[r * ld_out + c]. The bias is the driver's (added after, as the reference
// does). Padding K values contribute exactly 0 (A' is 0 there); padding columns have scale 0.
struct kernel_args {
  const std::uint8_t* w = nullptr;  // the first panel's first record
  std::int64_t panel_stride = 0;    // bytes from one panel to the next (geometry.panel_bytes)
  const packed_geometry* geo = nullptr;
  // The prepared rows, each k_padded long with zeros past K: f32 (technique ord/fma) or s8.
  const void* a = nullptr;
  std::int64_t lda = 0;                // elements from one row to the next
  const std::int32_t* qsum = nullptr;  // s8: [rows][groups] sum of A' over each group
  std::int64_t ld_qsum = 0;
  const float* a_scale = nullptr;  // s8: [rows] the row scales
  // f32, optional: [rows], nonzero where the row passes f32_scaled_conversion_ok (packing.hpp):
  // kernels may then use a faster exact conversion of the weights (gemm_i4/avx2.hpp).
  const std::uint8_t* f32_scaled_ok = nullptr;
  int rows = 0;          // 1..mr
  int panels = 0;        // 1..np (gemv: any count)
  float* out = nullptr;  // [rows][ld_out]
  std::int64_t ld_out = 0;
};

using kernel_fn = void (*)(const kernel_args&);

}  // namespace keel::kernels::gemm_i4
