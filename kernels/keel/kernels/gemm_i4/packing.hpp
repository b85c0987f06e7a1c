// keel/kernels/gemm_i4/packing.hpp — packing int4 weights into the layout of variant.hpp, and
// preparing activation rows (f32 copied, or quantized to s8 with the reference's quantizer).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "keel/kernels/gemm_i4/variant.hpp"
#include "keel/kernels/reference/matmul_i4.hpp"
#include "keel/ops.hpp"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define KEEL_GEMM_I4_HAVE_AVX2 1
#define KEEL_GEMM_I4_TARGET_AVX2 __attribute__((target("avx2")))
#endif

namespace keel::kernels::gemm_i4 {

// ---- weights ----------------------------------------------------------------------------------

// Packs panels [first, first + count) of the weights of `a` (validated by the caller: shapes,
// and every scale finite and zero point in 0..15) into `dst` (geo.total_bytes() bytes).
inline void pack_panels(const matmul_i4_desc& d, const matmul_i4_args& a,
                        const packed_geometry& geo, std::int64_t first, std::int64_t count,
                        std::uint8_t* dst) noexcept {
  const auto* w = static_cast<const std::uint8_t*>(a.b.data);
  const std::int64_t G = d.group_size;
  const bool s4 = d.b_type == dtype::s4;
  for (std::int64_t pnl = first; pnl < first + count; ++pnl) {
    std::uint8_t* rec = dst + pnl * geo.panel_bytes;
    for (std::int64_t g = 0; g < geo.groups; ++g) {
      const std::int64_t units = geo.units_of(g);
      const std::int64_t k0 = g * G;
      const std::int64_t k1 = std::min(k0 + G, d.k);
      std::uint8_t* wb = rec;
      auto* sc = reinterpret_cast<float*>(rec + units * kUnitBytes);  // 4-aligned: see below
      std::uint8_t* zp = rec + units * kUnitBytes + kScaleBytes;
      std::memset(wb, 0, static_cast<std::size_t>(units * kUnitBytes));
      for (int c = 0; c < kPanelCols; ++c) {
        const std::int64_t n = pnl * kPanelCols + c;
        const bool real = n < d.n;
        // z as the kernels see it (s4 is stored biased by 8, so its z is 8 as well).
        std::int32_t z = kDefaultZeroPoint;
        if (real && !s4) z = reference::detail::i4_zero_point(d, a, n, g);
        const float s = real ? reference::detail::i4_scale(d, a, n, g) : 0.0f;
        std::memcpy(sc + c, &s, sizeof(s));
        if (geo.has_zero_points) zp[c] = static_cast<std::uint8_t>(z);
        for (std::int64_t kk = 0; kk < units * kUnitK; ++kk) {
          const std::int64_t k = k0 + kk;
          std::int32_t u = z;  // padding: weight u - z = 0
          if (real && k < k1) {
            u = load_nibble(w, n * a.b.stride(0) + k, d.b_type);
            if (s4) u += 8;
          }
          const std::int64_t unit = kk / kUnitK;
          const int i = static_cast<int>(kk % kUnitK);
          std::uint8_t& byte = wb[unit * kUnitBytes + c * 4 + (i & 3)];
          byte = static_cast<std::uint8_t>(byte | (i < 4 ? u : u << 4));
        }
      }
      rec += geo.record_bytes_for(units);
    }
  }
}
// Records start at multiples of 8 bytes (32 * units + 32 + 0 or 8), panels too, and the buffer is
// 64-byte aligned, so the scale floats above are 4-byte aligned.
static_assert(kUnitBytes % 8 == 0 && kScaleBytes % 8 == 0 && kZeroPointBytes % 8 == 0);

// ---- activations ------------------------------------------------------------------------------

// Where row m of batch b of A starts, and its K stride, in floats.
struct row_source {
  const float* base = nullptr;
  std::int64_t offset = 0;
  std::int64_t stride = 1;
};

inline row_source a_row(const matmul_i4_args& a, std::int64_t b, std::int64_t m) noexcept {
  const bool batched = a.a.rank == 3;
  const auto* base = static_cast<const float*>(a.a.data);
  return row_source{base, reference::detail::i4_a_offset(a.a, batched, b, m, 0),
                    a.a.stride(batched ? 2 : 1)};
}

// Copies a row of K floats into dst[0..k_padded), zeros past K.
inline void copy_row_f32(const row_source& src, std::int64_t k, std::int64_t k_padded,
                         float* dst) noexcept {
  const float* x = src.base + src.offset;
  if (src.stride == 1) {
    std::memcpy(dst, x, static_cast<std::size_t>(k) * sizeof(float));
  } else {
    for (std::int64_t i = 0; i < k; ++i) dst[i] = x[i * src.stride];
  }
  for (std::int64_t i = k; i < k_padded; ++i) dst[i] = 0.0f;
}

// Whether the f32 kernels' scaled conversion (weights as (u - z) * 2^24, gemm_i4/avx2.hpp) is
// exact for this row: max |x| * k_padded < 2^99, so that every product and partial sum times 2^24
// stays below 2^(99 + 4 + 24) = 2^127 (|u - z| <= 15 < 2^4); NaN and infinities fail. Scaling by
// a power of two changes no rounding while nothing overflows: normal results scale exactly, and
// subnormal x (multiples of 2^-149) times small integers are exact whether scaled or not.
inline bool f32_scaled_conversion_ok(const row_source& src, std::int64_t k,
                                     std::int64_t k_padded) noexcept {
  const float limit = std::ldexp(1.0f, 99 - std::bit_width(static_cast<std::uint64_t>(k_padded)));
  const float* x = src.base + src.offset;
  for (std::int64_t i = 0; i < k; ++i) {
    if (!(std::fabs(x[i * src.stride]) < limit)) return false;  // too large, infinite or NaN
  }
  return true;
}

// Whether a row holds only finite values (the dynamic_s8 precondition). A dense row is checked
// on the bits with no early exit (an all-ones exponent is an infinity or a NaN), so that the
// compiler vectorizes it: the early-exit loop of std::isfinite took 7% of a 512-row GEMM's call.
inline bool row_is_finite(const row_source& src, std::int64_t k) noexcept {
  const float* x = src.base + src.offset;
  if (src.stride != 1) {
    for (std::int64_t i = 0; i < k; ++i) {
      if (!std::isfinite(x[i * src.stride])) return false;
    }
    return true;
  }
  constexpr std::uint32_t kExponent = 0x7F800000u;
  std::uint32_t non_finite = 0;
  for (std::int64_t i = 0; i < k; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, x + i, sizeof(bits));
    non_finite |= static_cast<std::uint32_t>((bits & kExponent) == kExponent);
  }
  return non_finite == 0;
}

#if defined(KEEL_GEMM_I4_HAVE_AVX2)
namespace avx2_detail {

// reference::quantize_row_s8_symmetric for a dense row, 8 lanes at a time, with the same
// operations: |x| and its maximum are exact whatever the order; then one IEEE division, round
// to nearest even with the rounding mode given in the instruction (as round_half_even ignores
// the FP environment), and the same clamp. Requires every x finite.
KEEL_GEMM_I4_TARGET_AVX2 inline float quantize_row(const float* x, std::int64_t k,
                                                   std::int8_t* q) noexcept {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 vmax = _mm256_setzero_ps();
  std::int64_t i = 0;
  for (; i + 8 <= k; i += 8)
    vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vmax);
  float amax = 0.0f;
  for (float v : lanes) amax = v > amax ? v : amax;
  for (; i < k; ++i) {
    const float v = std::fabs(x[i]);
    amax = v > amax ? v : amax;
  }
  const float scale = reference::symmetric_s8_scale(amax);
  if (scale == 0.0f) {
    std::memset(q, 0, static_cast<std::size_t>(k));
    return scale;
  }
  const __m256 vs = _mm256_set1_ps(scale);
  const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
  i = 0;
  for (; i + 8 <= k; i += 8) {
    __m256 r = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x + i), vs),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
    const __m256i v32 = _mm256_cvtps_epi32(r);  // integral already: no rounding here
    const __m128i v16 =
        _mm_packs_epi32(_mm256_castsi256_si128(v32), _mm256_extracti128_si256(v32, 1));
    const __m128i v8 = _mm_packs_epi16(v16, v16);
    _mm_storel_epi64(reinterpret_cast<__m128i*>(q + i), v8);
  }
  for (; i < k; ++i) q[i] = reference::quantize_s8_symmetric(x[i], scale);
  return scale;
}

}  // namespace avx2_detail
#endif

// Quantizes one row (finite values) into q[0..k_padded) with zeros past K, writes its group sums
// qsum[g] (sum of q over group g, exact) and returns the row scale: the bits of
// reference::quantize_row_s8_symmetric, with the AVX2 loop where the CPU has it. `scratch` holds
// K floats when the row is strided (the vector loop reads a dense copy).
inline float quantize_row(const row_source& src, std::int64_t k, std::int64_t k_padded,
                          std::int64_t group_size, std::int64_t groups, bool use_avx2,
                          float* scratch, std::int8_t* q, std::int32_t* qsum) noexcept {
  float scale = 0.0f;
#if defined(KEEL_GEMM_I4_HAVE_AVX2)
  if (use_avx2) {
    const float* x = src.base + src.offset;
    if (src.stride != 1) {
      for (std::int64_t i = 0; i < k; ++i) scratch[i] = x[i * src.stride];
      x = scratch;
    }
    scale = avx2_detail::quantize_row(x, k, q);
  } else {
    scale = reference::quantize_row_s8_symmetric(src.base + src.offset, src.stride, k, q);
  }
#else
  (void)use_avx2;
  (void)scratch;
  scale = reference::quantize_row_s8_symmetric(src.base + src.offset, src.stride, k, q);
#endif
  std::memset(q + k, 0, static_cast<std::size_t>(k_padded - k));
  for (std::int64_t g = 0; g < groups; ++g) {
    const std::int64_t k0 = g * group_size, k1 = std::min(k0 + group_size, k);
    std::int32_t s = 0;
    for (std::int64_t i = k0; i < k1; ++i) s += q[i];
    qsum[g] = s;
  }
  return scale;
}

}  // namespace keel::kernels::gemm_i4
