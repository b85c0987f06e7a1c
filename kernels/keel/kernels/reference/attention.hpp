// keel/kernels/reference/attention.hpp — the oracle for attention.
//
// Plain scalar C++, slow on purpose. Other implementations must match it within the bound that
// tests/test_attention.cpp states for f32 outputs; the definition below is docs/semantics.md's
// "attention" section, word for word.
/*
 * attention — definition
 *
 * Shapes: Q [B, Hq, Sq, D], K [B, Hkv, Skv, D], V [B, Hkv, Skv, Dv], out [B, Hq, Sq, Dv]
 * (Dv = v_head_dim, or D when that is 0). Hkv divides Hq; query head h reads kv head
 * h / (Hq / Hkv). Every element is addressed through its view's strides in int64, so offsets
 * past 2^31 elements are exact. Each output row (b, h, i) is computed on its own as follows.
 *
 * 1. Scales. A scale array of granularity per_tensor is read at [0], per_head at [head], and
 *    per_token at [(b * H + head) * S + pos], where H, S and head are those of its own tensor
 *    (Hq, Sq, h for Q; Hkv, Skv, the kv head for K and V) and pos is the query row i or the
 *    key j. qs, ks, vs name the scales of the Q row, key j and value j.
 *    sm = softmax_scale, or 1.0f / sqrtf(float(D)) when softmax_scale is 0.
 *
 * 2. Score of key j, in f32, every product and sum rounded on its own (no fused multiply-add),
 *    the dot products summed in ascending d starting from 0:
 *      s8 Q, s8 K:   dot = the exact int32 sum of q[d] * k[d];  s = float(dot) * (qs * ks) * sm
 *      f32 Q, s8 K:  dot = sum of q[d] * float(k[d]);           s = dot * ks * sm
 *      s8 Q, f32 K:  dot = sum of float(q[d]) * k[d];           s = dot * qs * sm
 *      f32 Q, f32 K: dot = sum of q[d] * k[d];                  s = dot * sm
 *    Products of scales are evaluated left to right as written: (float(dot) * (qs * ks)) * sm.
 *    D is at most 131071 when Q and K are both s8, so the int32 sum cannot overflow.
 *
 * 3. Mask. causal: key j is visible to query i iff j <= i + offset, where offset is
 *    desc.resolved_causal_offset() (by default Skv - Sq: the last query sees every key; a
 *    negative offset hides more). additive: s = s + mask[b or 0][h or 0][i][j] (a mask dim of
 *    size 1 broadcasts), and a key whose mask entry is -inf is hidden. A hidden key takes no
 *    part at all: its K and V are never read.
 *
 * 4. Softmax, online, in f32. The keys are cut into tiles [t * T, (t + 1) * T) of T = kv_tile
 *    keys (the last tile may be shorter). The state starts at m = -inf, l = 0, acc[c] = 0.
 *    For each tile in ascending order:
 *      tile_max = the largest score of the tile's visible keys (-inf if none);
 *      if tile_max is -inf the tile changes nothing (this is what keeps -inf - -inf out);
 *      otherwise m' = max(m, tile_max), alpha = expf(m - m'), l = l * alpha,
 *      acc[c] = acc[c] * alpha, then for each visible key j of the tile, ascending:
 *        p = expf(s_j - m'),  l = l + p,  acc[c] = acc[c] + p * val_j[c];
 *      and m = m'.
 *    The V value is val_j[c] = float(v[c]) * vs for s8 V, v[c] for f32 V.
 *    With T >= Skv this is the plain two-pass softmax: m = max of all scores, l = sum of p,
 *    acc = sum of p * val (the first alpha is expf(-inf) = 0, applied to zeros).
 *
 * 5. Output x[c] = acc[c] / l; a row whose every key is hidden (l == 0) is all zeros, never
 *    NaN. f32 output stores x; s8 output stores saturate(round_half_even(x / out_scale)),
 *    clamped to [-128, 127].
 *
 * Input values are not validated: NaN or +inf in Q, K, V, the scales' products or the mask
 * propagate into the rows that attend them (hidden keys excepted).
 */
//
// Known shortcomings:
// - expf comes from the C library, so f32 outputs may differ by an ulp between libm versions;
//   backends are held to a tolerance on f32 outputs, not to bits, for this reason.
// - Scores are computed twice per tile (once for the tile max, once for the weights) and the
//   whole row again for each chunk of kAccChunk output columns: the reference keeps no heap
//   buffer (no allocation, nothing to throw) and favours clarity over speed.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string_view>

#include "keel/ops.hpp"

namespace keel::reference {

namespace attention_detail {

// Output columns accumulated at once, on the stack (1 KiB). A wider Dv is done in chunks, each
// redoing the same deterministic softmax, so the result does not depend on the chunking.
inline constexpr std::int64_t kAccChunk = 256;

// Entry of a scale array of granularity g for (batch b, head, position pos) of a tensor with
// `heads` heads and `len` positions.
inline float scale_at(std::span<const float> s, scale_granularity g, std::int64_t b,
                      std::int64_t heads, std::int64_t head, std::int64_t len,
                      std::int64_t pos) noexcept {
  std::int64_t idx = 0;
  switch (g) {
    case scale_granularity::per_tensor: idx = 0; break;
    case scale_granularity::per_head: idx = head; break;
    case scale_granularity::per_token: idx = (b * heads + head) * len + pos; break;
  }
  KEEL_DASSERT(idx >= 0 && idx < static_cast<std::int64_t>(s.size()), "validated scale count");
  return s[static_cast<std::size_t>(idx)];
}

// Keys [0, end) are causally visible to query i: j <= i + offset. Written without forming
// i + offset + 1 when it could exceed kv_len, so no intermediate can overflow (|offset| <= 2^62
// is validated; i and kv_len are non-negative).
constexpr std::int64_t causal_end(std::int64_t i, std::int64_t offset,
                                  std::int64_t kv_len) noexcept {
  if (offset >= kv_len - i) return kv_len;  // i + offset + 1 > kv_len
  const std::int64_t end = i + offset + 1;
  return end > 0 ? end : 0;
}

inline float load_f32(const void* base, std::int64_t offset) noexcept {
  return static_cast<const float*>(base)[offset];
}
inline std::int32_t load_s8(const void* base, std::int64_t offset) noexcept {
  return static_cast<const std::int8_t*>(base)[offset];
}

}  // namespace attention_detail

inline Status attention(const attention_desc& d, const attention_args& a,
                        std::int64_t kv_tile = 64) {
  using namespace attention_detail;
  constexpr std::string_view op = "attention";

  // ---- validate: nothing is read or written unless every check passes ----
  KEEL_RETURN_IF_ERROR(keel::detail::require_size(op, "kv_tile", kv_tile));
  KEEL_RETURN_IF_ERROR(validate(d, a));

  // ---- setup: per-call constants ----
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  const std::int64_t group = d.q_heads / d.kv_heads;  // q heads per kv head
  const std::int64_t dv = d.value_dim();
  const bool q_s8 = d.q_type == dtype::s8;
  const bool kv_s8 = d.kv_type == dtype::s8;
  const bool causal = d.mask == mask_kind::causal;
  const bool additive = d.mask == mask_kind::additive;
  const std::int64_t offset = d.resolved_causal_offset();
  const float sm =
      d.softmax_scale != 0.0f ? d.softmax_scale : 1.0f / std::sqrt(static_cast<float>(d.head_dim));
  const auto& q = a.q;
  const auto& k = a.k;
  const auto& v = a.v;
  const auto& mask = a.mask;
  const auto& out = a.out;

  for (std::int64_t b = 0; b < d.batch; ++b) {
    for (std::int64_t h = 0; h < d.q_heads; ++h) {
      const std::int64_t kvh = h / group;
      const std::int64_t k_head = b * k.stride(0) + kvh * k.stride(1);
      const std::int64_t v_head = b * v.stride(0) + kvh * v.stride(1);

      for (std::int64_t i = 0; i < d.q_len; ++i) {
        // ---- row setup: where row (b, h, i) reads and writes, which keys it may see ----
        const std::int64_t q_row = b * q.stride(0) + h * q.stride(1) + i * q.stride(2);
        const std::int64_t o_row = b * out.stride(0) + h * out.stride(1) + i * out.stride(2);
        const std::int64_t mask_row = additive ? (mask.dim(0) == 1 ? 0 : b) * mask.stride(0) +
                                                     (mask.dim(1) == 1 ? 0 : h) * mask.stride(1) +
                                                     i * mask.stride(2)
                                               : 0;
        const std::int64_t key_end = causal ? causal_end(i, offset, d.kv_len) : d.kv_len;
        const float qs = q_s8 ? scale_at(a.q_scale, d.q_scale, b, d.q_heads, h, d.q_len, i) : 1.0f;

        // Score of key j into *s; false when the key is hidden (then K is not read).
        auto score = [&](std::int64_t j, float* s) -> bool {
          float mask_add = 0.0f;
          if (additive) {
            mask_add = load_f32(mask.data, mask_row + j * mask.stride(3));
            if (mask_add == kNegInf) return false;
          }
          const std::int64_t k_row = k_head + j * k.stride(2);
          const float ks =
              kv_s8 ? scale_at(a.k_scale, d.kv_scale, b, d.kv_heads, kvh, d.kv_len, j) : 1.0f;
          float raw;
          if (q_s8 && kv_s8) {
            std::int32_t dot = 0;  // exact: |q*k| <= 2^14 and D <= 131071 (validated)
            for (std::int64_t c = 0; c < d.head_dim; ++c) {
              dot += load_s8(q.data, q_row + c * q.stride(3)) *
                     load_s8(k.data, k_row + c * k.stride(3));
            }
            raw = rounded_product(static_cast<float>(dot) * (qs * ks), sm);
          } else {
            float dot = 0.0f;
            for (std::int64_t c = 0; c < d.head_dim; ++c) {
              const float qv = q_s8 ? static_cast<float>(load_s8(q.data, q_row + c * q.stride(3)))
                                    : load_f32(q.data, q_row + c * q.stride(3));
              const float kv = kv_s8 ? static_cast<float>(load_s8(k.data, k_row + c * k.stride(3)))
                                     : load_f32(k.data, k_row + c * k.stride(3));
              dot += rounded_product(qv, kv);
            }
            raw = rounded_product(q_s8 ? dot * qs : (kv_s8 ? dot * ks : dot), sm);
          }
          *s = additive ? raw + mask_add : raw;
          return true;
        };

        for (std::int64_t c0 = 0; c0 < dv; c0 += kAccChunk) {
          const std::int64_t cn = dv - c0 < kAccChunk ? dv - c0 : kAccChunk;
          float acc[kAccChunk];
          for (std::int64_t c = 0; c < cn; ++c) acc[c] = 0.0f;
          float m = kNegInf;
          float l = 0.0f;

          // ---- main loop: one key tile at a time (tiles past key_end are fully hidden) ----
          // t1 is formed without t0 + kv_tile overflowing, whatever kv_tile is.
          for (std::int64_t t0 = 0, t1 = 0; t0 < key_end; t0 = t1) {
            t1 = kv_tile >= key_end - t0 ? key_end : t0 + kv_tile;

            // Tile max over the visible keys.
            float tile_max = kNegInf;
            for (std::int64_t j = t0; j < t1; ++j) {
              float s;
              if (score(j, &s) && s > tile_max) tile_max = s;
            }
            // Every key hidden (or scored -inf): the tile changes nothing. Skipping it is what
            // keeps expf(-inf - -inf) = NaN out of the state.
            if (tile_max == kNegInf) continue;

            // Rescale the state to the new running max (alpha = 0 on the first live tile,
            // applied to zeros; 1, exactly, when the max did not grow).
            const float m_new = tile_max > m ? tile_max : m;
            const float alpha = std::exp(m - m_new);
            l = rounded_product(l, alpha);
            for (std::int64_t c = 0; c < cn; ++c) acc[c] = rounded_product(acc[c], alpha);

            // Accumulate the tile's weights and weighted values.
            for (std::int64_t j = t0; j < t1; ++j) {
              float s;
              if (!score(j, &s)) continue;
              const float p = std::exp(s - m_new);
              l = l + p;
              const std::int64_t v_row = v_head + j * v.stride(2);
              const float vs =
                  kv_s8 ? scale_at(a.v_scale, d.kv_scale, b, d.kv_heads, kvh, d.kv_len, j) : 1.0f;
              for (std::int64_t c = 0; c < cn; ++c) {
                const std::int64_t at = v_row + (c0 + c) * v.stride(3);
                const float val =
                    kv_s8 ? static_cast<float>(load_s8(v.data, at)) * vs : load_f32(v.data, at);
                acc[c] = acc[c] + rounded_product(p, val);
              }
            }
            m = m_new;
          }  // key tiles

          // ---- store: normalise; a row with no visible key is zeros ----
          for (std::int64_t c = 0; c < cn; ++c) {
            const float x = l == 0.0f ? 0.0f : acc[c] / l;
            const std::int64_t at = o_row + (c0 + c) * out.stride(3);
            if (d.out_type == dtype::f32) {
              static_cast<float*>(out.data)[at] = x;
            } else {
              const std::int32_t qv =
                  clamp_i32(saturate_to_i32(round_half_even(x / d.out_scale)), -128, 127);
              static_cast<std::int8_t*>(out.data)[at] = static_cast<std::int8_t>(qv);
            }
          }
        }  // column chunks
      }    // query rows
    }
  }
  return Status::Ok();
}

}  // namespace keel::reference
