// The reference attention kernel (keel/kernels/reference/attention.hpp) against an independent
// oracle written here: double precision, a plain two-pass softmax over the keys each query sees,
// scales applied to the operands rather than to the dot product. Beside it, checks that need no
// tolerance: structural identities (grouped-query = per-head MHA, broadcast mask = expanded mask,
// strided = dense, far offsets = near offsets, hidden keys poisoned with NaN = not poisoned),
// hand-computed s8 outputs, and an f32 two-pass written from the definition, which the tiled
// kernel must equal bit for bit once one tile covers every key.
#include <doctest/doctest.h>
#include <sys/mman.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "keel/keel.hpp"
#include "support/testing.hpp"

using namespace keel;
using keel::testing::guarded;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr std::int64_t kAlignEnd = attention_desc::kAlignEnd;

// ---- the float tolerance --------------------------------------------------------------------
//
// |kernel - oracle| <= kRelTol * (the largest |V value| among the keys the row sees).
//
// Why relative to max|V|: an output row is a convex combination of the V rows it attends (the
// weights are positive and sum to 1), so every error in it, from the scores, the exponentials or
// the sums, is a perturbation of those weights or of the weighted sum and scales with max|V|.
// The oracle runs in double (errors near 1e-16, negligible); the kernel in f32, u = 2^-24 =
// 6.0e-8. Its roundings on one output element: each score (a D-term dot product, the scale
// products, the mask add: D + 3), the exponent argument s - m and expf (glibc: under 1 ulp),
// the per-tile rescale alpha and the products acc * alpha, l * alpha (at most 3 per tile), the
// products p * val, the running sums of l and acc (Skv terms each) and one division. For the
// largest case below (D = 16, Skv = 100, 100 tiles of one key) that is n < 700 roundings; a
// worst-case bound adds them linearly (n u ~ 4e-5) but real roundings do not align. The
// probabilistic analysis of Higham and Mary (SIAM J. Sci. Comput. 41(5), 2019) bounds such an
// error by lambda * sqrt(n) * u except with probability about 2n * exp(-lambda^2 / 2): here
// sqrt(n) * u ~ 1.6e-6, so 1e-5 is lambda ~ 6, a chance near 1e-5 per element under a model
// that is itself pessimistic (most of the n terms are much smaller than max|V|). Measured: the
// worst ratio over this suite is printed at the end (about 2e-7 when this was written, 50x
// inside the bound). Any semantic fault (a lost rescale, a key off by one, a wrong head or
// scale index) moves outputs by 1e-3 of max|V| or more on these inputs, far outside it.
constexpr double kRelTol = 1e-5;
double g_worst_ratio = 0.0;

std::string describe(const attention_desc& d) {
  std::ostringstream o;
  o << "B=" << d.batch << " Hq=" << d.q_heads << " Hkv=" << d.kv_heads << " Sq=" << d.q_len
    << " Skv=" << d.kv_len << " D=" << d.head_dim << " Dv=" << d.value_dim()
    << " Q=" << to_string(d.q_type) << " KV=" << to_string(d.kv_type) << " mask="
    << (d.mask == mask_kind::none     ? "none"
        : d.mask == mask_kind::causal ? "causal"
                                      : "additive")
    << " offset="
    << (d.causal_offset == kAlignEnd ? std::string("end") : std::to_string(d.causal_offset))
    << " out=" << to_string(d.out_type);
  return o.str();
}

std::int64_t scale_count(scale_granularity g, std::int64_t b, std::int64_t h, std::int64_t s) {
  switch (g) {
    case scale_granularity::per_tensor: return 1;
    case scale_granularity::per_head: return h;
    case scale_granularity::per_token: return b * h * s;
  }
  return 1;
}

// The scale of (batch b, head, pos) in a tensor of `heads` heads and `len` positions.
double scale_of(const std::vector<float>& s, scale_granularity g, std::int64_t b,
                std::int64_t heads, std::int64_t head, std::int64_t len, std::int64_t pos) {
  if (g == scale_granularity::per_tensor) return s.at(0);
  if (g == scale_granularity::per_head) return s.at(static_cast<std::size_t>(head));
  return s.at(static_cast<std::size_t>((b * heads + head) * len + pos));
}

// Host storage of one problem, every tensor dense [B, H, S, D]; the mask [mask_b, mask_h, Sq,
// Skv] where mask_b is B or 1 and mask_h is Hq or 1.
struct problem {
  attention_desc d;
  std::vector<float> qf, kf, vf;
  std::vector<std::int8_t> q8, k8, v8;
  std::vector<float> q_scale, k_scale, v_scale;
  std::vector<float> mask;
  std::int64_t mask_b = 0, mask_h = 0;

  std::size_t out_size() const {
    return static_cast<std::size_t>(d.batch * d.q_heads * d.q_len * d.value_dim());
  }
  std::size_t row(std::int64_t b, std::int64_t h, std::int64_t i) const {
    return static_cast<std::size_t>(((b * d.q_heads + h) * d.q_len + i) * d.value_dim());
  }
  float& mask_at(std::int64_t b, std::int64_t h, std::int64_t i, std::int64_t j) {
    return mask[static_cast<std::size_t>(((b * mask_h + h) * d.q_len + i) * d.kv_len + j)];
  }

  attention_args args(void* out) const {
    const std::int64_t B = d.batch, dv = d.value_dim();
    attention_args a;
    a.q = d.q_type == dtype::s8 ? view(q8.data(), {B, d.q_heads, d.q_len, d.head_dim})
                                : view(qf.data(), {B, d.q_heads, d.q_len, d.head_dim});
    a.k = d.kv_type == dtype::s8 ? view(k8.data(), {B, d.kv_heads, d.kv_len, d.head_dim})
                                 : view(kf.data(), {B, d.kv_heads, d.kv_len, d.head_dim});
    a.v = d.kv_type == dtype::s8 ? view(v8.data(), {B, d.kv_heads, d.kv_len, dv})
                                 : view(vf.data(), {B, d.kv_heads, d.kv_len, dv});
    a.q_scale = q_scale;
    a.k_scale = k_scale;
    a.v_scale = v_scale;
    if (d.mask == mask_kind::additive) {
      a.mask = view(mask.data(), {mask_b, mask_h, d.q_len, d.kv_len});
    }
    a.out = tensor_view(out, d.out_type, {B, d.q_heads, d.q_len, dv});
    return a;
  }
};

std::vector<float> random_scales(keel::testing::rng& r, std::int64_t n) {
  // Around 1/128, so that s8 operands times their scale span about [-1, 1] like the f32 ones.
  std::vector<float> s(static_cast<std::size_t>(n));
  for (float& x : s) x = r.uniform_float(0.5f, 1.5f) / 128.0f;
  return s;
}

// Random operands in about [-1, 1] (s8: [-128, 127] times ~1/128); an additive mask in [-2, 2]
// with each entry -inf with probability `hide`.
problem make_problem(const attention_desc& d, keel::testing::rng& r, double hide = 0.0) {
  problem p;
  p.d = d;
  const std::int64_t B = d.batch, dv = d.value_dim();
  const auto nq = static_cast<std::size_t>(B * d.q_heads * d.q_len * d.head_dim);
  const auto nk = static_cast<std::size_t>(B * d.kv_heads * d.kv_len * d.head_dim);
  const auto nv = static_cast<std::size_t>(B * d.kv_heads * d.kv_len * dv);
  if (d.q_type == dtype::s8) {
    p.q8.resize(nq);
    r.fill(p.q8, -128, 127);
    p.q_scale = random_scales(r, scale_count(d.q_scale, B, d.q_heads, d.q_len));
  } else {
    p.qf.resize(nq);
    r.fill(p.qf, -1.0f, 1.0f);
  }
  if (d.kv_type == dtype::s8) {
    p.k8.resize(nk);
    p.v8.resize(nv);
    r.fill(p.k8, -128, 127);
    r.fill(p.v8, -128, 127);
    p.k_scale = random_scales(r, scale_count(d.kv_scale, B, d.kv_heads, d.kv_len));
    p.v_scale = random_scales(r, scale_count(d.kv_scale, B, d.kv_heads, d.kv_len));
  } else {
    p.kf.resize(nk);
    p.vf.resize(nv);
    r.fill(p.kf, -1.0f, 1.0f);
    r.fill(p.vf, -1.0f, 1.0f);
  }
  if (d.mask == mask_kind::additive) {
    p.mask_b = B;
    p.mask_h = d.q_heads;
    p.mask.resize(static_cast<std::size_t>(B * d.q_heads * d.q_len * d.kv_len));
    r.fill(p.mask, -2.0f, 2.0f);
    for (float& m : p.mask) {
      if (r.uniform_float(0.0f, 1.0f) < hide) m = -kInf;
    }
  }
  return p;
}

// The dequantized operands, in double.
double q_value(const problem& p, std::int64_t b, std::int64_t h, std::int64_t i, std::int64_t c) {
  const auto& d = p.d;
  const auto at = static_cast<std::size_t>(((b * d.q_heads + h) * d.q_len + i) * d.head_dim + c);
  if (d.q_type == dtype::f32) return p.qf[at];
  return p.q8[at] * scale_of(p.q_scale, d.q_scale, b, d.q_heads, h, d.q_len, i);
}
double k_value(const problem& p, std::int64_t b, std::int64_t g, std::int64_t j, std::int64_t c) {
  const auto& d = p.d;
  const auto at = static_cast<std::size_t>(((b * d.kv_heads + g) * d.kv_len + j) * d.head_dim + c);
  if (d.kv_type == dtype::f32) return p.kf[at];
  return p.k8[at] * scale_of(p.k_scale, d.kv_scale, b, d.kv_heads, g, d.kv_len, j);
}
double v_value(const problem& p, std::int64_t b, std::int64_t g, std::int64_t j, std::int64_t c) {
  const auto& d = p.d;
  const auto at =
      static_cast<std::size_t>(((b * d.kv_heads + g) * d.kv_len + j) * d.value_dim() + c);
  if (d.kv_type == dtype::f32) return p.vf[at];
  return p.v8[at] * scale_of(p.v_scale, d.kv_scale, b, d.kv_heads, g, d.kv_len, j);
}

// Key j visible to query i, and the mask term it adds (0 without an additive mask).
bool visible(const problem& p, std::int64_t b, std::int64_t h, std::int64_t i, std::int64_t j,
             double* add) {
  const auto& d = p.d;
  *add = 0.0;
  if (d.mask == mask_kind::causal) {
    const std::int64_t off = d.causal_offset == kAlignEnd ? d.kv_len - d.q_len : d.causal_offset;
    return j <= i + off;
  }
  if (d.mask == mask_kind::additive) {
    const std::int64_t mb = p.mask_b == 1 ? 0 : b, mh = p.mask_h == 1 ? 0 : h;
    const float m =
        p.mask[static_cast<std::size_t>(((mb * p.mask_h + mh) * d.q_len + i) * d.kv_len + j)];
    *add = m;
    return m != -kInf;
  }
  return true;
}

struct oracle_out {
  std::vector<double> x;           // [B, Hq, Sq, Dv]
  std::vector<double> vmax;        // per row: max |V value| over the keys the row sees
  std::vector<std::int64_t> seen;  // per row: how many keys it sees
};

// Double precision, two passes: max of the visible scores, then weights and the weighted sum.
oracle_out oracle(const problem& p) {
  const auto& d = p.d;
  const std::int64_t dv = d.value_dim(), group = d.q_heads / d.kv_heads;
  const double sm =
      d.softmax_scale != 0.0f ? d.softmax_scale : 1.0 / std::sqrt(static_cast<double>(d.head_dim));
  oracle_out r;
  r.x.assign(p.out_size(), 0.0);
  for (std::int64_t b = 0; b < d.batch; ++b) {
    for (std::int64_t h = 0; h < d.q_heads; ++h) {
      const std::int64_t g = h / group;
      for (std::int64_t i = 0; i < d.q_len; ++i) {
        std::vector<double> s(static_cast<std::size_t>(d.kv_len));
        std::vector<bool> vis(static_cast<std::size_t>(d.kv_len));
        double mx = -std::numeric_limits<double>::infinity(), vmax = 0.0;
        std::int64_t seen = 0;
        for (std::int64_t j = 0; j < d.kv_len; ++j) {
          double add = 0.0;
          const auto J = static_cast<std::size_t>(j);
          vis[J] = visible(p, b, h, i, j, &add);
          if (!vis[J]) continue;
          double dot = 0.0;
          for (std::int64_t c = 0; c < d.head_dim; ++c)
            dot += q_value(p, b, h, i, c) * k_value(p, b, g, j, c);
          s[J] = dot * sm + add;
          mx = std::max(mx, s[J]);
          ++seen;
          for (std::int64_t c = 0; c < dv; ++c)
            vmax = std::max(vmax, std::fabs(v_value(p, b, g, j, c)));
        }
        r.vmax.push_back(vmax);
        r.seen.push_back(seen);
        if (seen == 0) continue;
        double denom = 0.0;
        std::vector<double> num(static_cast<std::size_t>(dv), 0.0);
        for (std::int64_t j = 0; j < d.kv_len; ++j) {
          const auto J = static_cast<std::size_t>(j);
          if (!vis[J]) continue;
          const double w = std::exp(s[J] - mx);
          denom += w;
          for (std::int64_t c = 0; c < dv; ++c)
            num[static_cast<std::size_t>(c)] += w * v_value(p, b, g, j, c);
        }
        for (std::int64_t c = 0; c < dv; ++c) {
          r.x[p.row(b, h, i) + static_cast<std::size_t>(c)] =
              num[static_cast<std::size_t>(c)] / denom;
        }
      }
    }
  }
  return r;
}

// a * b rounded to f32 (no FMA under any -ffp-contract: the volatile store cannot be fused).
float product_f32(float a, float b) {
  const volatile float p = a * b;
  return p;
}

// The definition's f32 score (header comment, step 2), written from the text.
float spec_score(const problem& p, std::int64_t b, std::int64_t h, std::int64_t i, std::int64_t j) {
  const auto& d = p.d;
  const std::int64_t g = h / (d.q_heads / d.kv_heads), D = d.head_dim;
  const auto qi = static_cast<std::size_t>(((b * d.q_heads + h) * d.q_len + i) * D);
  const auto ki = static_cast<std::size_t>(((b * d.kv_heads + g) * d.kv_len + j) * D);
  const float sm =
      d.softmax_scale != 0.0f ? d.softmax_scale : 1.0f / std::sqrt(static_cast<float>(D));
  const bool qs8 = d.q_type == dtype::s8, ks8 = d.kv_type == dtype::s8;
  const float qs =
      qs8 ? static_cast<float>(scale_of(p.q_scale, d.q_scale, b, d.q_heads, h, d.q_len, i)) : 1;
  const float ks =
      ks8 ? static_cast<float>(scale_of(p.k_scale, d.kv_scale, b, d.kv_heads, g, d.kv_len, j)) : 1;
  if (qs8 && ks8) {
    std::int32_t dot = 0;
    for (std::int64_t c = 0; c < D; ++c) {
      dot += std::int32_t{p.q8[qi + static_cast<std::size_t>(c)]} *
             std::int32_t{p.k8[ki + static_cast<std::size_t>(c)]};
    }
    return product_f32(static_cast<float>(dot) * (qs * ks), sm);
  }
  float dot = 0.0f;
  for (std::int64_t c = 0; c < D; ++c) {
    const auto C = static_cast<std::size_t>(c);
    const float qv = qs8 ? static_cast<float>(p.q8[qi + C]) : p.qf[qi + C];
    const float kv = ks8 ? static_cast<float>(p.k8[ki + C]) : p.kf[ki + C];
    dot += product_f32(qv, kv);
  }
  if (qs8) return product_f32(dot * qs, sm);
  if (ks8) return product_f32(dot * ks, sm);
  return product_f32(dot, sm);
}

// The definition with one tile over every key: the plain two-pass softmax in f32.
std::vector<float> two_pass_f32(const problem& p) {
  const auto& d = p.d;
  const std::int64_t dv = d.value_dim(), group = d.q_heads / d.kv_heads;
  std::vector<float> out(p.out_size(), 0.0f);
  for (std::int64_t b = 0; b < d.batch; ++b) {
    for (std::int64_t h = 0; h < d.q_heads; ++h) {
      for (std::int64_t i = 0; i < d.q_len; ++i) {
        std::vector<float> s(static_cast<std::size_t>(d.kv_len));
        std::vector<bool> vis(static_cast<std::size_t>(d.kv_len));
        float m = -kInf;
        for (std::int64_t j = 0; j < d.kv_len; ++j) {
          const auto J = static_cast<std::size_t>(j);
          double add = 0.0;
          vis[J] = visible(p, b, h, i, j, &add);
          if (!vis[J]) continue;
          const float raw = spec_score(p, b, h, i, j);
          s[J] = d.mask == mask_kind::additive ? raw + static_cast<float>(add) : raw;
          m = std::max(m, s[J]);
        }
        if (m == -kInf) continue;  // nothing visible: zeros
        float l = 0.0f;
        std::vector<float> acc(static_cast<std::size_t>(dv), 0.0f);
        for (std::int64_t j = 0; j < d.kv_len; ++j) {
          if (!vis[static_cast<std::size_t>(j)]) continue;
          const float e = std::exp(s[static_cast<std::size_t>(j)] - m);
          l = l + e;
          for (std::int64_t c = 0; c < dv; ++c) {
            const float val = static_cast<float>(v_value(p, b, h / group, j, c));
            acc[static_cast<std::size_t>(c)] =
                acc[static_cast<std::size_t>(c)] + product_f32(e, val);
          }
        }
        for (std::int64_t c = 0; c < dv; ++c) {
          out[p.row(b, h, i) + static_cast<std::size_t>(c)] = acc[static_cast<std::size_t>(c)] / l;
        }
      }
    }
  }
  return out;
}

// Runs the kernel with f32 output into a guarded buffer.
std::vector<float> run(const problem& p, std::int64_t tile = 64) {
  REQUIRE(p.d.out_type == dtype::f32);
  guarded<float> out(p.out_size());
  const Status s = reference::attention(p.d, p.args(out.data()), tile);
  INFO("status: " << s.message() << ", kv_tile = " << tile);
  REQUIRE(s.ok());
  CHECK(out.guards_intact());
  return std::vector<float>(out.data(), out.data() + out.size());
}

std::vector<std::int8_t> run_s8(const problem& p, std::int64_t tile = 64) {
  REQUIRE(p.d.out_type == dtype::s8);
  guarded<std::int8_t> out(p.out_size());
  const Status s = reference::attention(p.d, p.args(out.data()), tile);
  INFO("status: " << s.message() << ", kv_tile = " << tile);
  REQUIRE(s.ok());
  CHECK(out.guards_intact());
  return std::vector<std::int8_t>(out.data(), out.data() + out.size());
}

bool same_bits(const float* a, const float* b, std::size_t n) {
  return std::memcmp(a, b, n * sizeof(float)) == 0;
}
bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && same_bits(a.data(), b.data(), a.size());
}

// Every element within the tolerance of the oracle; rows that see no key are +0.0 exactly.
void check_close(const problem& p, const std::vector<float>& got, const oracle_out& ref) {
  REQUIRE(got.size() == ref.x.size());
  const auto dv = static_cast<std::size_t>(p.d.value_dim());
  std::size_t bad = 0;
  std::string first;
  for (std::size_t row = 0; row < ref.seen.size(); ++row) {
    for (std::size_t c = 0; c < dv; ++c) {
      const float g = got[row * dv + c];
      const double want = ref.x[row * dv + c];
      bool ok;
      if (ref.seen[row] == 0) {
        ok = g == 0.0f && !std::signbit(g);
      } else {
        const double err = std::fabs(static_cast<double>(g) - want);
        ok = !std::isnan(g) && err <= kRelTol * ref.vmax[row];
        if (ref.vmax[row] > 0) g_worst_ratio = std::max(g_worst_ratio, err / ref.vmax[row]);
      }
      if (!ok && bad++ == 0) {
        std::ostringstream o;
        o.precision(9);
        o << "row " << row << " col " << c << ": got " << g << ", oracle " << want << ", max|V| "
          << ref.vmax[row] << ", keys seen " << ref.seen[row];
        first = o.str();
      }
    }
  }
  INFO("first mismatch: " << first);
  CHECK(bad == 0);
}

// A dense copy of batch b, query head h (reading kv head g), query rows [i0, i1) and keys
// [j0, j1) of p, as a problem of its own (B = Hq = Hkv = 1).
problem sub_problem(const problem& p, std::int64_t b, std::int64_t h, std::int64_t g,
                    std::int64_t i0, std::int64_t i1, std::int64_t j0, std::int64_t j1) {
  const auto& d = p.d;
  problem s;
  s.d = d;
  s.d.batch = s.d.q_heads = s.d.kv_heads = 1;
  s.d.q_len = i1 - i0;
  s.d.kv_len = j1 - j0;
  const std::int64_t D = d.head_dim, dv = d.value_dim();
  auto qat = [&](std::int64_t i) {
    return static_cast<std::size_t>(((b * d.q_heads + h) * d.q_len + i) * D);
  };
  auto kat = [&](std::int64_t j, std::int64_t w) {
    return static_cast<std::size_t>(((b * d.kv_heads + g) * d.kv_len + j) * w);
  };
  for (std::int64_t i = i0; i < i1; ++i) {
    for (std::int64_t c = 0; c < D; ++c) {
      if (d.q_type == dtype::s8)
        s.q8.push_back(p.q8[qat(i) + static_cast<std::size_t>(c)]);
      else
        s.qf.push_back(p.qf[qat(i) + static_cast<std::size_t>(c)]);
    }
  }
  for (std::int64_t j = j0; j < j1; ++j) {
    for (std::int64_t c = 0; c < D; ++c) {
      if (d.kv_type == dtype::s8)
        s.k8.push_back(p.k8[kat(j, D) + static_cast<std::size_t>(c)]);
      else
        s.kf.push_back(p.kf[kat(j, D) + static_cast<std::size_t>(c)]);
    }
    for (std::int64_t c = 0; c < dv; ++c) {
      if (d.kv_type == dtype::s8)
        s.v8.push_back(p.v8[kat(j, dv) + static_cast<std::size_t>(c)]);
      else
        s.vf.push_back(p.vf[kat(j, dv) + static_cast<std::size_t>(c)]);
    }
  }
  auto slice_scales = [](const std::vector<float>& all, scale_granularity gr,
                         std::int64_t first_token, std::int64_t head, std::int64_t n) {
    if (all.empty()) return all;
    if (gr == scale_granularity::per_tensor) return all;
    if (gr == scale_granularity::per_head)
      return std::vector<float>{all.at(static_cast<std::size_t>(head))};
    return std::vector<float>(all.begin() + first_token, all.begin() + first_token + n);
  };
  s.q_scale = slice_scales(p.q_scale, d.q_scale, (b * d.q_heads + h) * d.q_len + i0, h, i1 - i0);
  s.k_scale = slice_scales(p.k_scale, d.kv_scale, (b * d.kv_heads + g) * d.kv_len + j0, g, j1 - j0);
  s.v_scale = slice_scales(p.v_scale, d.kv_scale, (b * d.kv_heads + g) * d.kv_len + j0, g, j1 - j0);
  if (d.mask == mask_kind::additive) {
    s.mask_b = s.mask_h = 1;
    const std::int64_t mb = p.mask_b == 1 ? 0 : b, mh = p.mask_h == 1 ? 0 : h;
    for (std::int64_t i = i0; i < i1; ++i) {
      for (std::int64_t j = j0; j < j1; ++j) {
        s.mask.push_back(
            p.mask[static_cast<std::size_t>(((mb * p.mask_h + mh) * d.q_len + i) * d.kv_len + j)]);
      }
    }
  }
  return s;
}

attention_desc base_desc() {
  attention_desc d;
  d.batch = 2;
  d.q_heads = 4;
  d.kv_heads = 2;
  d.q_len = 7;
  d.kv_len = 41;
  d.head_dim = 16;
  d.v_head_dim = 12;
  d.q_type = dtype::f32;
  d.kv_type = dtype::f32;
  return d;
}

}  // namespace

TEST_CASE("attention: every kv_tile agrees with the double two-pass oracle") {
  attention_desc d = base_desc();
  double hide = 0.0;
  std::uint64_t salt = 0;
  SUBCASE("f32 Q/K/V, no mask") {
    salt = 1;
  }
  SUBCASE("f32 Q/K/V, causal, Sq < Skv") {
    salt = 2;
    d.mask = mask_kind::causal;
  }
  SUBCASE("f32 Q/K/V, causal with a negative offset") {
    salt = 3;
    d.mask = mask_kind::causal;
    d.causal_offset = -3;  // rows 0..2 see nothing, row 6 sees keys 0..3
  }
  SUBCASE("f32 Q/K/V, additive mask with scattered -inf") {
    salt = 4;
    d.mask = mask_kind::additive;
    hide = 0.3;
  }
  SUBCASE("s8 Q/K/V, per-token scales, causal") {
    salt = 5;
    d.q_type = d.kv_type = dtype::s8;
    d.q_scale = d.kv_scale = scale_granularity::per_token;
    d.mask = mask_kind::causal;
  }
  SUBCASE("f32 Q, s8 KV cache, per-head scales, explicit softmax scale") {
    salt = 6;
    d.kv_type = dtype::s8;
    d.kv_scale = scale_granularity::per_head;
    d.softmax_scale = 0.4f;
  }
  keel::testing::rng r(0xA770 + salt);
  INFO("seed " << r.seed() << ", " << describe(d));
  const problem p = make_problem(d, r, hide);
  const oracle_out ref = oracle(p);
  const std::vector<float> one_tile = two_pass_f32(p);
  std::vector<std::int64_t> tiles;
  for (std::int64_t t = 1; t <= d.kv_len + 1; ++t) tiles.push_back(t);
  tiles.push_back(std::numeric_limits<std::int64_t>::max());  // t0 + kv_tile must not overflow
  for (std::int64_t t : tiles) {
    INFO("kv_tile = " << t);
    const std::vector<float> got = run(p, t);
    check_close(p, got, ref);
    // One tile over every key is the two-pass softmax of the definition, bit for bit.
    if (t >= d.kv_len) CHECK(same_bits(got, one_tile));
  }
}

TEST_CASE("attention: fully hidden rows give exact zeros, hidden tiles change nothing") {
  keel::testing::rng r(0xA771);
  INFO("seed " << r.seed());

  SUBCASE("an additive row of -inf gives +0.0, f32 and s8 output") {
    attention_desc d = base_desc();
    d.q_heads = d.kv_heads = 2;
    d.q_len = 5;
    d.kv_len = 20;
    d.mask = mask_kind::additive;
    INFO(describe(d));
    problem p = make_problem(d, r, 0.1);
    for (std::int64_t j = 0; j < d.kv_len; ++j) {
      p.mask_at(1, 0, 2, j) = -kInf;
      p.mask_at(0, 1, 0, j) = -kInf;
    }
    const oracle_out ref = oracle(p);
    CHECK(ref.seen[p.row(1, 0, 2) / 12] == 0);
    for (std::int64_t t : {1, 3, 64}) {
      INFO("kv_tile = " << t);
      const std::vector<float> got = run(p, t);
      for (std::size_t c = 0; c < 12; ++c) {
        CHECK(std::bit_cast<std::uint32_t>(got[p.row(1, 0, 2) + c]) == 0u);
        CHECK(std::bit_cast<std::uint32_t>(got[p.row(0, 1, 0) + c]) == 0u);
      }
      check_close(p, got, ref);
    }
    problem q = p;
    q.d.out_type = dtype::s8;
    q.d.out_scale = 0.01f;
    const std::vector<std::int8_t> got8 = run_s8(q, 4);
    for (std::size_t c = 0; c < 12; ++c) {
      CHECK(got8[p.row(1, 0, 2) + c] == 0);
      CHECK(got8[p.row(0, 1, 0) + c] == 0);
    }
  }

  SUBCASE("causal with a very negative offset hides every key of every row") {
    attention_desc d = base_desc();
    d.mask = mask_kind::causal;
    for (std::int64_t off :
         {-d.kv_len - d.q_len, -(std::int64_t{1} << 40), -(std::int64_t{1} << 62)}) {
      d.causal_offset = off;
      INFO(describe(d));
      const problem p = make_problem(d, r);
      for (std::int64_t t : {1, 7, 64}) {
        const std::vector<float> got = run(p, t);
        std::vector<float> zeros(got.size(), 0.0f);
        CHECK(same_bits(got, zeros));
      }
    }
  }

  SUBCASE("leading tiles fully hidden: no NaN, equal to attending only the visible keys") {
    attention_desc d = base_desc();
    d.q_heads = 2;
    d.kv_heads = 1;
    d.q_len = 3;
    d.kv_len = 100;
    d.v_head_dim = 8;
    d.mask = mask_kind::additive;
    INFO(describe(d));
    for (std::int64_t hidden : {70, 64}) {
      INFO("first " << hidden << " keys hidden from every row");
      problem p = make_problem(d, r);
      for (std::int64_t b = 0; b < d.batch; ++b)
        for (std::int64_t h = 0; h < d.q_heads; ++h)
          for (std::int64_t i = 0; i < d.q_len; ++i)
            for (std::int64_t j = 0; j < hidden; ++j) p.mask_at(b, h, i, j) = -kInf;
      const std::vector<float> got = run(p, 32);
      // Poisoned hidden keys: never read, so the bits cannot change.
      problem poisoned = p;
      for (std::int64_t bg = 0; bg < d.batch * d.kv_heads; ++bg) {
        for (std::int64_t j = 0; j < hidden; ++j) {
          for (std::int64_t c = 0; c < d.head_dim; ++c)
            poisoned.kf[static_cast<std::size_t>((bg * d.kv_len + j) * d.head_dim + c)] =
                (c & 1) ? kInf : std::numeric_limits<float>::quiet_NaN();
          for (std::int64_t c = 0; c < d.value_dim(); ++c)
            poisoned.vf[static_cast<std::size_t>((bg * d.kv_len + j) * d.value_dim() + c)] =
                std::numeric_limits<float>::quiet_NaN();
        }
      }
      CHECK(same_bits(got, run(poisoned, 32)));
      for (std::int64_t b = 0; b < d.batch; ++b) {
        for (std::int64_t h = 0; h < d.q_heads; ++h) {
          INFO("b = " << b << ", h = " << h);
          const problem vis = sub_problem(p, b, h, 0, 0, d.q_len, hidden, d.kv_len);
          const oracle_out ref = oracle(vis);
          const std::vector<float> row_block(
              got.begin() + static_cast<std::ptrdiff_t>(p.row(b, h, 0)),
              got.begin() + static_cast<std::ptrdiff_t>(p.row(b, h, d.q_len)));
          check_close(vis, row_block, ref);
          if (hidden % 32 == 0) {
            // Tile boundaries line up with the visible keys: the same arithmetic exactly.
            CHECK(same_bits(row_block, run(vis, 32)));
          }
        }
      }
      // Every tile size: no NaN, and within the oracle's bound.
      const oracle_out ref = oracle(p);
      for (std::int64_t t = 1; t <= d.kv_len; ++t) {
        INFO("kv_tile = " << t);
        check_close(p, run(p, t), ref);
      }
    }
  }

  SUBCASE("keys past the causal end are never read") {
    attention_desc d = base_desc();
    d.q_len = 4;
    d.kv_len = 10;
    d.mask = mask_kind::causal;
    d.causal_offset = 0;  // row 3 sees keys 0..3: keys 4..9 are hidden from every row
    INFO(describe(d));
    const problem p = make_problem(d, r);
    problem poisoned = p;
    for (std::int64_t bg = 0; bg < d.batch * d.kv_heads; ++bg) {
      for (std::int64_t j = 4; j < d.kv_len; ++j) {
        for (std::int64_t c = 0; c < d.head_dim; ++c)
          poisoned.kf[static_cast<std::size_t>((bg * d.kv_len + j) * d.head_dim + c)] = kInf;
        for (std::int64_t c = 0; c < d.value_dim(); ++c)
          poisoned.vf[static_cast<std::size_t>((bg * d.kv_len + j) * d.value_dim() + c)] =
              std::numeric_limits<float>::quiet_NaN();
      }
    }
    for (std::int64_t t : {1, 3, 64}) CHECK(same_bits(run(p, t), run(poisoned, t)));
    check_close(p, run(p, 3), oracle(p));
  }
}

TEST_CASE("attention: causal alignment and explicit offsets") {
  keel::testing::rng r(0xA772);
  INFO("seed " << r.seed());

  SUBCASE("Sq < Skv: the last query sees every key, the first sees Skv - Sq + 1") {
    attention_desc d = base_desc();
    d.batch = 1;
    d.q_heads = d.kv_heads = 2;
    d.q_len = 4;
    d.kv_len = 11;
    d.mask = mask_kind::causal;
    INFO(describe(d));
    const problem p = make_problem(d, r);
    problem unmasked = p;
    unmasked.d.mask = mask_kind::none;
    const oracle_out ref = oracle(p);
    const std::vector<float> got = run(p, 4), all = run(unmasked, 4);
    const auto dv = static_cast<std::size_t>(d.value_dim());
    for (std::int64_t h = 0; h < d.q_heads; ++h) {
      INFO("h = " << h);
      // Hand count: 11 - 4 + 1 = 8 keys for the first query, all 11 for the last.
      CHECK(ref.seen[p.row(0, h, 0) / dv] == 8);
      CHECK(ref.seen[p.row(0, h, 3) / dv] == 11);
      CHECK(same_bits(&got[p.row(0, h, 3)], &all[p.row(0, h, 3)], dv));
      CHECK_FALSE(same_bits(&got[p.row(0, h, 0)], &all[p.row(0, h, 0)], dv));
      problem first = sub_problem(p, 0, h, h, 0, 1, 0, 8);
      first.d.mask = mask_kind::none;
      CHECK(same_bits(&got[p.row(0, h, 0)], run(first, 4).data(), dv));
    }
    check_close(p, got, ref);
  }

  SUBCASE("Sq > Skv: the first Sq - Skv queries see nothing") {
    attention_desc d = base_desc();
    d.batch = 1;
    d.q_heads = d.kv_heads = 1;
    d.q_len = 6;
    d.kv_len = 3;
    d.mask = mask_kind::causal;  // default offset 3 - 6 = -3
    INFO(describe(d));
    const problem p = make_problem(d, r);
    const std::vector<float> got = run(p, 2);
    const auto dv = static_cast<std::size_t>(d.value_dim());
    for (std::int64_t i = 0; i < 3; ++i) {
      for (std::size_t c = 0; c < dv; ++c)
        CHECK(std::bit_cast<std::uint32_t>(got[p.row(0, 0, i) + c]) == 0u);
    }
    // Row 3 sees key 0 alone: weight expf(0) = 1, so it is V[key 0] exactly.
    CHECK(same_bits(&got[p.row(0, 0, 3)], p.vf.data(), dv));
    check_close(p, got, oracle(p));
  }

  SUBCASE("explicit offsets") {
    attention_desc d = base_desc();
    d.q_len = 5;
    d.kv_len = 9;
    d.mask = mask_kind::causal;
    d.causal_offset = 4;  // = Skv - Sq: the default alignment
    const problem aligned = make_problem(d, r);
    problem by_default = aligned;
    by_default.d.causal_offset = kAlignEnd;
    CHECK(same_bits(run(aligned, 3), run(by_default, 3)));
    problem unmasked = aligned;
    unmasked.d.mask = mask_kind::none;
    const std::vector<float> all = run(unmasked, 3);
    for (std::int64_t off :
         {-(std::int64_t{1} << 62), std::int64_t{-6}, std::int64_t{-2}, std::int64_t{0},
          std::int64_t{3}, std::int64_t{8}, std::int64_t{100}, std::int64_t{1} << 62}) {
      problem p = aligned;
      p.d.causal_offset = off;
      INFO(describe(p.d));
      const std::vector<float> got = run(p, 3);
      check_close(p, got, oracle(p));
      // From offset Skv - 1 = 8 on, the first query already sees every key.
      if (off >= 8) CHECK(same_bits(got, all));
    }
  }
}

TEST_CASE("attention: grouped-query heads read kv head h / (Hq / Hkv)") {
  attention_desc d = base_desc();
  d.q_heads = 8;
  d.kv_heads = 2;
  d.q_len = 5;
  d.kv_len = 13;
  d.head_dim = 8;
  d.v_head_dim = 6;
  std::uint64_t salt = 0;
  SUBCASE("f32 Q/K/V") {
    salt = 1;
  }
  SUBCASE("f32 Q, s8 KV cache with per-head scales") {
    salt = 2;
    d.kv_type = dtype::s8;
    d.kv_scale = scale_granularity::per_head;
  }
  SUBCASE("s8 Q/K/V with per-token scales, causal") {
    salt = 3;
    d.q_type = d.kv_type = dtype::s8;
    d.q_scale = d.kv_scale = scale_granularity::per_token;
    d.mask = mask_kind::causal;
  }
  SUBCASE("s8 Q per-head, s8 KV per-token, additive mask") {
    salt = 4;
    d.q_type = d.kv_type = dtype::s8;
    d.q_scale = scale_granularity::per_head;
    d.kv_scale = scale_granularity::per_token;
    d.mask = mask_kind::additive;
  }
  keel::testing::rng r(0xA773 + salt);
  INFO("seed " << r.seed() << ", " << describe(d));
  const problem p = make_problem(d, r, 0.2);
  const std::vector<float> got = run(p, 4);
  check_close(p, got, oracle(p));
  const std::int64_t kv_of[8] = {0, 0, 0, 0, 1, 1, 1, 1};  // 8 / 2 = 4 query heads per kv head
  const auto n = static_cast<std::size_t>(d.q_len * d.value_dim());
  for (std::int64_t b = 0; b < d.batch; ++b) {
    for (std::int64_t h = 0; h < d.q_heads; ++h) {
      INFO("b = " << b << ", h = " << h);
      const problem mha = sub_problem(p, b, h, kv_of[h], 0, d.q_len, 0, d.kv_len);
      CHECK(same_bits(&got[p.row(b, h, 0)], run(mha, 4).data(), n));
    }
  }
}

TEST_CASE("attention: quantized operands") {
  attention_desc d = base_desc();
  d.q_len = 6;
  d.kv_len = 29;
  std::uint64_t salt = 0;
  bool zero_scale = false;
  SUBCASE("s8 Q/K/V, per-head scales") {
    salt = 1;
    d.q_type = d.kv_type = dtype::s8;
    d.q_scale = d.kv_scale = scale_granularity::per_head;
  }
  SUBCASE("s8 Q/K/V, per-token scales, some zero") {
    salt = 2;
    d.q_type = d.kv_type = dtype::s8;
    d.q_scale = d.kv_scale = scale_granularity::per_token;
    d.mask = mask_kind::causal;
    zero_scale = true;
  }
  SUBCASE("s8 Q/K/V, per-tensor scales, additive mask") {
    salt = 3;
    d.q_type = d.kv_type = dtype::s8;
    d.mask = mask_kind::additive;
  }
  SUBCASE("f32 Q with an s8 KV cache, per-token scales") {
    salt = 4;
    d.kv_type = dtype::s8;
    d.kv_scale = scale_granularity::per_token;
    d.mask = mask_kind::causal;
  }
  SUBCASE("s8 Q with f32 K/V, per-token Q scales") {
    salt = 5;
    d.q_type = dtype::s8;
    d.q_scale = scale_granularity::per_token;
  }
  keel::testing::rng r(0xA774 + salt);
  INFO("seed " << r.seed() << ", " << describe(d));
  problem p = make_problem(d, r, 0.2);
  if (zero_scale) {  // 0 is a legal scale: that key scores 0 and its value is 0, still visible
    p.k_scale[3] = 0.0f;
    p.v_scale[5] = 0.0f;
    p.q_scale[1] = 0.0f;
  }
  const oracle_out ref = oracle(p);
  for (std::int64_t t : {1, 5, 64}) {
    INFO("kv_tile = " << t);
    check_close(p, run(p, t), ref);
  }
}

TEST_CASE("attention: the s8 dot product is exact in int32 and rounded to f32 once") {
  // q = k = (-128 x 1024, 1 x 4096): the exact dot is 2^24 + 4096. Summed in f32, the first 1024
  // terms reach 2^24 exactly and each +1 after it is a tie that rounds back to 2^24, so an f32
  // accumulation would lose the 4096 (score 1 instead of 1 + 2^-12, output off by 5e-5).
  attention_desc d;
  d.q_len = 1;
  d.kv_len = 2;
  d.head_dim = 1024 + 4096;
  d.q_type = d.kv_type = dtype::s8;
  d.softmax_scale = 1.0f / 16777216.0f;  // 2^-24
  INFO(describe(d));
  problem p;
  p.d = d;
  p.q8.assign(1024, -128);
  p.q8.resize(static_cast<std::size_t>(d.head_dim), 1);
  p.k8 = p.q8;                                               // key 0: the same vector
  p.k8.resize(2 * static_cast<std::size_t>(d.head_dim), 0);  // key 1: zeros, score 0
  p.v8.assign(static_cast<std::size_t>(d.head_dim) * 2, 0);
  p.v8[0] = 100;  // V[key 0][0] = 100 * 0.01 = 1, V[key 1] = 0
  p.q_scale = {1.0f};
  p.k_scale = {1.0f};
  p.v_scale = {0.01f};
  const oracle_out ref = oracle(p);
  const std::vector<float> got = run(p);
  check_close(p, got, ref);
  // The oracle itself, by hand: sigmoid(1 + 2^-12) * 0.01f * 100.
  const double s = 1.0 + 1.0 / 4096.0;
  CHECK(ref.x[0] == doctest::Approx(100.0 * double{0.01f} / (1.0 + std::exp(-s))).epsilon(1e-12));
}

TEST_CASE("attention: wide value heads (Dv beyond one accumulator chunk)") {
  attention_desc d = base_desc();
  d.q_len = 3;
  d.kv_len = 9;
  d.head_dim = 4;
  d.v_head_dim = 300;
  d.mask = mask_kind::causal;
  keel::testing::rng r(0xA775);
  INFO("seed " << r.seed() << ", " << describe(d));
  const problem p = make_problem(d, r);
  const oracle_out ref = oracle(p);
  for (std::int64_t t : {2, 64}) check_close(p, run(p, t), ref);
}

TEST_CASE("attention: s8 output") {
  SUBCASE("ties round to even and saturate: f32 V, hand-computed") {
    // Causal with Sq = Skv: row 0 sees key 0 alone, so x = V[key 0] exactly (weight expf(0) = 1).
    attention_desc d;
    d.q_len = d.kv_len = 2;
    d.head_dim = 4;
    d.v_head_dim = 12;
    d.q_type = d.kv_type = dtype::f32;
    d.mask = mask_kind::causal;
    d.out_type = dtype::s8;
    keel::testing::rng r(0xA776);
    INFO("seed " << r.seed() << ", " << describe(d));
    problem p = make_problem(d, r);
    const float v0[12] = {2.5f, 3.5f,   -2.5f,   -3.5f,  0.5f,    -0.5f,
                          1.5f, 300.0f, -300.0f, 127.5f, -128.5f, 126.49f};
    const std::int8_t want[12] = {2, 4, -2, -4, 0, 0, 2, 127, -128, 127, -128, 126};
    for (float out_scale : {1.0f, 0.5f}) {
      INFO("out_scale = " << out_scale);
      p.d.out_scale = out_scale;
      for (std::size_t c = 0; c < 12; ++c) p.vf[c] = v0[c] * out_scale;  // exact: powers of 2
      const std::vector<std::int8_t> got = run_s8(p, 1);
      for (std::size_t c = 0; c < 12; ++c) {
        INFO("c = " << c << ", x = " << p.vf[c]);
        CHECK(int{got[c]} == int{want[c]});
      }
    }
  }

  SUBCASE("ties round to even and saturate: s8 V with a V scale, hand-computed") {
    attention_desc d;
    d.q_len = d.kv_len = 3;
    d.head_dim = 4;
    d.v_head_dim = 9;
    d.q_type = d.kv_type = dtype::s8;
    d.mask = mask_kind::causal;
    d.out_type = dtype::s8;
    keel::testing::rng r(0xA777);
    INFO("seed " << r.seed() << ", " << describe(d));
    problem p = make_problem(d, r);
    const std::int8_t v0[9] = {5, 7, -5, -7, 1, -1, 3, 127, -128};
    for (std::size_t c = 0; c < 9; ++c) p.v8[c] = v0[c];
    p.v_scale = {0.5f};  // x = {2.5, 3.5, -2.5, -3.5, 0.5, -0.5, 1.5, 63.5, -64}
    const std::int8_t want_1[9] = {2, 4, -2, -4, 0, 0, 2, 64, -64};
    const std::int8_t want_q[9] = {10, 14, -10, -14, 2, -2, 6, 127, -128};  // x / 0.25
    p.d.out_scale = 1.0f;
    std::vector<std::int8_t> got = run_s8(p, 2);
    for (std::size_t c = 0; c < 9; ++c) CHECK(int{got[c]} == int{want_1[c]});
    p.d.out_scale = 0.25f;
    got = run_s8(p, 2);
    for (std::size_t c = 0; c < 9; ++c) CHECK(int{got[c]} == int{want_q[c]});
  }

  SUBCASE("random rows: the rounding of the f32 output, and of the oracle away from ties") {
    attention_desc d = base_desc();
    d.mask = mask_kind::causal;
    d.causal_offset = 0;  // row i sees i + 1 keys: early rows average few values, so |x| is
                          // large and saturates at the small output scale
    keel::testing::rng r(0xA778);
    INFO("seed " << r.seed() << ", " << describe(d));
    const problem pf = make_problem(d, r);
    const std::vector<float> xf = run(pf, 8);
    const oracle_out ref = oracle(pf);
    for (float out_scale : {1.0f / 64.0f, 1.0f / 400.0f}) {
      INFO("out_scale = " << out_scale);
      problem p = pf;
      p.d.out_type = dtype::s8;
      p.d.out_scale = out_scale;
      const std::vector<std::int8_t> got = run_s8(p, 8);
      std::size_t saturated = 0, checked_exact = 0;
      for (std::size_t e = 0; e < got.size(); ++e) {
        INFO("element " << e << ", x = " << xf[e] << ", oracle " << ref.x[e]);
        // The s8 stage applied to the same x the f32 output holds.
        const float tq = xf[e] / out_scale;
        const long near = std::lrint(std::nearbyint(tq));  // the FP env rounds half to even
        CHECK(int{got[e]} == std::clamp<long>(near, -128, 127));
        // Against the oracle: exact where x / out_scale is not within 0.01 of a tie (the f32
        // error, 1e-5 * 400 = 4e-3 in these units at most, cannot cross it), else a neighbour.
        const double t = ref.x[e] / static_cast<double>(out_scale);
        const double frac = t - std::floor(t);
        if (std::fabs(frac - 0.5) > 0.01) {
          const auto want = std::clamp<long>(static_cast<long>(std::floor(t + 0.5)), -128, 127);
          CHECK(int{got[e]} == want);
          ++checked_exact;
        } else {
          CHECK(std::fabs(std::clamp(t, -128.0, 127.0) - got[e]) <= 0.51);
        }
        if (got[e] == 127 || got[e] == -128) ++saturated;
      }
      CHECK(checked_exact > got.size() / 2);
      if (out_scale < 0.01f) CHECK(saturated > 0);  // the case does exercise saturation
    }
  }
}

TEST_CASE("attention: an additive mask broadcasts over batch and heads") {
  attention_desc d = base_desc();
  d.q_len = 3;
  d.kv_len = 10;
  d.head_dim = 8;
  d.mask = mask_kind::additive;
  std::int64_t mb = 0, mh = 0;
  bool zero_strides = false;
  SUBCASE("[1, Hq, Sq, Skv]") {
    mb = 1, mh = d.q_heads;
  }
  SUBCASE("[B, 1, Sq, Skv]") {
    mb = d.batch, mh = 1;
  }
  SUBCASE("[1, 1, Sq, Skv]") {
    mb = 1, mh = 1;
  }
  SUBCASE("[B, Hq, Sq, Skv] view with zero strides over one [Sq, Skv] plane") {
    mb = 1, mh = 1;
    zero_strides = true;
  }
  keel::testing::rng r(0xA779 + static_cast<std::uint64_t>(mb * 16 + mh + zero_strides));
  INFO("seed " << r.seed() << ", " << describe(d) << ", mask [" << mb << ", " << mh << "]"
               << (zero_strides ? " zero strides" : ""));
  const problem full = make_problem(d, r);
  problem small = full;
  small.mask_b = mb;
  small.mask_h = mh;
  small.mask.resize(static_cast<std::size_t>(mb * mh * d.q_len * d.kv_len));
  r.fill(small.mask, -2.0f, 2.0f);
  for (std::size_t e = 0; e < small.mask.size(); e += 4) small.mask[e] = -kInf;
  problem expanded = full;
  for (std::int64_t b = 0; b < d.batch; ++b)
    for (std::int64_t h = 0; h < d.q_heads; ++h)
      for (std::int64_t i = 0; i < d.q_len; ++i)
        for (std::int64_t j = 0; j < d.kv_len; ++j)
          expanded.mask_at(b, h, i, j) = small.mask_at(mb == 1 ? 0 : b, mh == 1 ? 0 : h, i, j);
  const std::vector<float> want = run(expanded, 4);
  check_close(expanded, want, oracle(expanded));
  if (!zero_strides) {
    CHECK(same_bits(run(small, 4), want));
  } else {
    guarded<float> out(full.out_size());
    attention_args a = full.args(out.data());
    a.mask = view(small.mask.data(), {d.batch, d.q_heads, d.q_len, d.kv_len});
    a.mask.strides = {0, 0, d.kv_len, 1};
    const Status s = reference::attention(d, a, 4);
    INFO(s.message());
    REQUIRE(s.ok());
    CHECK(out.guards_intact());
    CHECK(same_bits(out.data(), want.data(), want.size()));
  }
}

TEST_CASE("attention: strided views (BSHD layout, padded rows) equal dense ones") {
  attention_desc d = base_desc();
  d.q_len = 5;
  d.kv_len = 12;
  d.head_dim = 8;
  d.v_head_dim = 6;
  d.mask = mask_kind::causal;
  std::uint64_t salt = 0;
  SUBCASE("f32 Q/K/V") {
    salt = 1;
  }
  SUBCASE("s8 Q/K/V, per-token scales") {
    salt = 2;
    d.q_type = d.kv_type = dtype::s8;
    d.q_scale = d.kv_scale = scale_granularity::per_token;
  }
  keel::testing::rng r(0xA77A + salt);
  INFO("seed " << r.seed() << ", " << describe(d));
  const problem p = make_problem(d, r);
  const std::vector<float> want = run(p, 5);

  // Every tensor stored [B, S, H, X] with each row padded by 3 elements; the views keep the
  // logical [B, H, S, X] order through their strides.
  constexpr std::int64_t kPad = 3;
  const std::int64_t B = d.batch;
  auto bshd_strides = [&](std::int64_t heads, std::int64_t len, std::int64_t width) {
    const std::int64_t row = width + kPad;
    return std::array<std::int64_t, 4>{len * heads * row, row, heads * row, 1};
  };
  auto scatter = [&](const auto& src, auto& dst, std::int64_t heads, std::int64_t len,
                     std::int64_t width) {
    const auto st = bshd_strides(heads, len, width);
    dst.assign(static_cast<std::size_t>(B * st[0]), {});
    for (std::int64_t b = 0; b < B; ++b)
      for (std::int64_t h = 0; h < heads; ++h)
        for (std::int64_t s = 0; s < len; ++s)
          for (std::int64_t x = 0; x < width; ++x)
            dst[static_cast<std::size_t>(b * st[0] + h * st[1] + s * st[2] + x)] =
                src[static_cast<std::size_t>(((b * heads + h) * len + s) * width + x)];
  };
  const bool s8 = d.q_type == dtype::s8;
  std::vector<float> qf, kf, vf;
  std::vector<std::int8_t> q8, k8, v8;
  if (s8) {
    scatter(p.q8, q8, d.q_heads, d.q_len, d.head_dim);
    scatter(p.k8, k8, d.kv_heads, d.kv_len, d.head_dim);
    scatter(p.v8, v8, d.kv_heads, d.kv_len, d.value_dim());
  } else {
    scatter(p.qf, qf, d.q_heads, d.q_len, d.head_dim);
    scatter(p.kf, kf, d.kv_heads, d.kv_len, d.head_dim);
    scatter(p.vf, vf, d.kv_heads, d.kv_len, d.value_dim());
  }
  const auto ost = bshd_strides(d.q_heads, d.q_len, d.value_dim());
  guarded<float> out(static_cast<std::size_t>(B * ost[0]));
  attention_args a = p.args(out.data());
  a.q = s8 ? view(q8.data(), {B, d.q_heads, d.q_len, d.head_dim})
           : view(qf.data(), {B, d.q_heads, d.q_len, d.head_dim});
  a.k = s8 ? view(k8.data(), {B, d.kv_heads, d.kv_len, d.head_dim})
           : view(kf.data(), {B, d.kv_heads, d.kv_len, d.head_dim});
  a.v = s8 ? view(v8.data(), {B, d.kv_heads, d.kv_len, d.value_dim()})
           : view(vf.data(), {B, d.kv_heads, d.kv_len, d.value_dim()});
  a.q.strides = bshd_strides(d.q_heads, d.q_len, d.head_dim);
  a.k.strides = bshd_strides(d.kv_heads, d.kv_len, d.head_dim);
  a.v.strides = bshd_strides(d.kv_heads, d.kv_len, d.value_dim());
  a.out.strides = ost;
  const Status s = reference::attention(d, a, 5);
  INFO(s.message());
  REQUIRE(s.ok());
  CHECK(out.guards_intact());
  std::size_t mismatched = 0, pad_written = 0;
  const unsigned char sentinel[4] = {guarded<float>::kPattern, guarded<float>::kPattern,
                                     guarded<float>::kPattern, guarded<float>::kPattern};
  for (std::int64_t b = 0; b < B; ++b)
    for (std::int64_t h = 0; h < d.q_heads; ++h)
      for (std::int64_t i = 0; i < d.q_len; ++i) {
        const float* row = out.data() + b * ost[0] + h * ost[1] + i * ost[2];
        if (!same_bits(row, &want[p.row(b, h, i)], static_cast<std::size_t>(d.value_dim())))
          ++mismatched;
        for (std::int64_t x = d.value_dim(); x < d.value_dim() + kPad; ++x)
          if (std::memcmp(row + x, sentinel, 4) != 0) ++pad_written;  // padding is not output
      }
  CHECK(mismatched == 0);
  CHECK(pad_written == 0);
}

TEST_CASE("attention: element offsets past 2^31 are exact") {
  attention_desc d;
  d.q_heads = 4;
  d.kv_heads = 2;
  d.q_len = 3;
  d.kv_len = 24;
  d.head_dim = 16;
  d.v_head_dim = 8;
  d.q_type = d.kv_type = dtype::s8;
  d.q_scale = scale_granularity::per_head;
  d.kv_scale = scale_granularity::per_token;
  d.mask = mask_kind::causal;
  keel::testing::rng r(0xA77B);
  INFO("seed " << r.seed() << ", " << describe(d));
  const problem p = make_problem(d, r);
  const std::vector<float> want = run(p, 8);

  // One private anonymous mapping of 3 GiB + 192 KiB, never backed except for the few pages
  // written below. s8 elements are bytes, so byte offsets are element offsets:
  //   Q head h at 192 KiB + h * 768 MiB  (head 3 at 2.25 GiB + 192 KiB, past 2^31)
  //   K head g at  64 KiB + g * 3 GiB    (head 1 past 2^31)
  //   V head g at 128 KiB + g * 3 GiB
  constexpr std::int64_t kKvHeadStride = std::int64_t{3} << 30;
  constexpr std::int64_t kQHeadStride = kKvHeadStride / 4;
  constexpr std::int64_t kKBase = 64 << 10, kVBase = 128 << 10, kQBase = 192 << 10;
  const auto bytes = static_cast<std::size_t>(kKvHeadStride + (256 << 10));
  void* mem = mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mem == MAP_FAILED) {
    MESSAGE("skipped: mmap of " << bytes << " bytes with MAP_NORESERVE failed ("
                                << std::strerror(errno) << ")");
    return;
  }
  struct unmapper {
    void* p;
    std::size_t n;
    ~unmapper() { munmap(p, n); }
  } unmap{mem, bytes};
  auto* base = static_cast<std::int8_t*>(mem);
  const std::int64_t D = d.head_dim, dv = d.value_dim();
  for (std::int64_t h = 0; h < d.q_heads; ++h) {
    std::memcpy(base + kQBase + h * kQHeadStride, p.q8.data() + h * d.q_len * D,
                static_cast<std::size_t>(d.q_len * D));
  }
  for (std::int64_t g = 0; g < d.kv_heads; ++g) {
    std::memcpy(base + kKBase + g * kKvHeadStride, p.k8.data() + g * d.kv_len * D,
                static_cast<std::size_t>(d.kv_len * D));
    std::memcpy(base + kVBase + g * kKvHeadStride, p.v8.data() + g * d.kv_len * dv,
                static_cast<std::size_t>(d.kv_len * dv));
  }
  guarded<float> out(p.out_size());
  attention_args a = p.args(out.data());
  a.q = const_tensor_view(base + kQBase, dtype::s8, {1, d.q_heads, d.q_len, D});
  a.q.strides = {d.q_heads * kQHeadStride, kQHeadStride, D, 1};
  a.k = const_tensor_view(base + kKBase, dtype::s8, {1, d.kv_heads, d.kv_len, D});
  a.k.strides = {d.kv_heads * kKvHeadStride, kKvHeadStride, D, 1};
  a.v = const_tensor_view(base + kVBase, dtype::s8, {1, d.kv_heads, d.kv_len, dv});
  a.v.strides = {d.kv_heads * kKvHeadStride, kKvHeadStride, dv, 1};
  // The premise: the last head of each starts past the int32 range.
  CHECK(kQBase + 3 * kQHeadStride > std::int64_t{INT32_MAX});
  CHECK(kKBase + kKvHeadStride > std::int64_t{INT32_MAX});
  const Status s = reference::attention(d, a, 8);
  INFO(s.message());
  REQUIRE(s.ok());
  CHECK(out.guards_intact());
  CHECK(same_bits(out.data(), want.data(), want.size()));
}

TEST_CASE("attention: batch 0 is valid and writes nothing") {
  attention_desc d = base_desc();
  d.batch = 0;
  d.q_type = d.kv_type = dtype::s8;
  d.q_scale = d.kv_scale = scale_granularity::per_token;  // 0 entries each
  d.out_type = dtype::s8;
  guarded<std::int8_t> out(16);
  attention_args a;
  a.q = const_tensor_view(nullptr, dtype::s8, {0, d.q_heads, d.q_len, d.head_dim});
  a.k = const_tensor_view(nullptr, dtype::s8, {0, d.kv_heads, d.kv_len, d.head_dim});
  a.v = const_tensor_view(nullptr, dtype::s8, {0, d.kv_heads, d.kv_len, d.value_dim()});
  a.out = tensor_view(out.data(), dtype::s8, {0, d.q_heads, d.q_len, d.value_dim()});
  const Status s = reference::attention(d, a);
  INFO(s.message());
  CHECK(s.ok());
  CHECK(out.untouched());
}

namespace {
template <class T>
void expect_rejected(const attention_desc& d, const attention_args& a, const guarded<T>& out,
                     status_code code, const char* needle, std::int64_t tile = 64) {
  const Status s = reference::attention(d, a, tile);
  const std::string msg = s.message();
  INFO("status: " << msg);
  CHECK_FALSE(s.ok());
  CHECK(to_string(s.code()) == to_string(code));
  CHECK(msg.rfind("attention: ", 0) == 0);
  CHECK(msg.find(needle) != std::string::npos);
  CHECK(out.untouched());
}
}  // namespace

TEST_CASE("attention: bad input returns a Status naming the problem and writes nothing") {
  attention_desc d = base_desc();
  d.q_len = 3;
  d.kv_len = 5;
  d.head_dim = 8;
  d.v_head_dim = 6;
  d.q_type = d.kv_type = dtype::s8;
  d.q_scale = scale_granularity::per_head;
  d.kv_scale = scale_granularity::per_token;
  d.mask = mask_kind::additive;
  keel::testing::rng r(0xA77C);
  INFO("seed " << r.seed() << ", " << describe(d));
  problem p = make_problem(d, r, 0.2);
  {  // The unmodified problem is accepted, so each rejection below is the modification's.
    guarded<float> ok_out(p.out_size());
    REQUIRE(reference::attention(p.d, p.args(ok_out.data())).ok());
  }
  guarded<float> out(p.out_size());
  attention_args a = p.args(out.data());
  attention_desc bd = d;
  using sc = status_code;

  SUBCASE("head counts that do not divide") {
    bd.kv_heads = 3;
    expect_rejected(bd, a, out, sc::invalid_argument, "kv_heads = 3 does not divide q_heads = 4");
  }
  SUBCASE("zero and negative sizes") {
    SUBCASE("q_len") {
      bd.q_len = 0;
      expect_rejected(bd, a, out, sc::invalid_argument, "q_len = 0");
    }
    SUBCASE("kv_len") {
      bd.kv_len = 0;
      expect_rejected(bd, a, out, sc::invalid_argument, "kv_len = 0");
    }
    SUBCASE("head_dim") {
      bd.head_dim = 0;
      expect_rejected(bd, a, out, sc::invalid_argument, "head_dim = 0");
    }
    SUBCASE("kv_heads") {
      bd.kv_heads = 0;
      expect_rejected(bd, a, out, sc::invalid_argument, "kv_heads = 0");
    }
    SUBCASE("batch") {
      bd.batch = -1;
      expect_rejected(bd, a, out, sc::invalid_argument, "batch = -1");
    }
    SUBCASE("v_head_dim") {
      bd.v_head_dim = -2;
      expect_rejected(bd, a, out, sc::invalid_argument, "v_head_dim = -2");
    }
  }
  SUBCASE("mismatched shapes") {
    SUBCASE("K length") {
      a.k = view(p.k8.data(), {d.batch, d.kv_heads, d.kv_len - 1, d.head_dim});
      expect_rejected(bd, a, out, sc::shape_mismatch, "K dim 2 is 4 (must be 5)");
    }
    SUBCASE("V width") {
      a.v = view(p.v8.data(), {d.batch, d.kv_heads, d.kv_len, 5});
      expect_rejected(bd, a, out, sc::shape_mismatch, "V dim 3 is 5 (must be 6)");
    }
    SUBCASE("out width") {
      a.out = view(out.data(), {d.batch, d.q_heads, d.q_len, 5});
      expect_rejected(bd, a, out, sc::shape_mismatch, "out dim 3 is 5 (must be 6)");
    }
    SUBCASE("Q rank") {
      a.q = view(p.q8.data(), {d.batch * d.q_heads, d.q_len, d.head_dim});
      expect_rejected(bd, a, out, sc::shape_mismatch, "Q has rank 3 (must be 4)");
    }
    SUBCASE("Q dtype") {
      std::vector<float> qf(p.q8.size(), 0.5f);
      a.q = view(qf.data(), {d.batch, d.q_heads, d.q_len, d.head_dim});
      expect_rejected(bd, a, out, sc::invalid_argument, "Q has dtype f32 (must be s8)");
    }
    SUBCASE("mask batch neither 1 nor B") {
      std::vector<float> m(static_cast<std::size_t>(3 * d.q_heads * d.q_len * d.kv_len), 0.0f);
      a.mask = view(m.data(), {3, d.q_heads, d.q_len, d.kv_len});
      expect_rejected(bd, a, out, sc::shape_mismatch, "mask dim 0 is 3 (must be 2)");
    }
    SUBCASE("mask missing") {
      a.mask = const_tensor_view{};
      expect_rejected(bd, a, out, sc::shape_mismatch, "additive mask has rank 0");
    }
  }
  SUBCASE("wrong scale counts") {
    SUBCASE("Q per head") {
      a.q_scale = std::span<const float>(p.q_scale).first(3);
      expect_rejected(bd, a, out, sc::shape_mismatch, "Q scale has 3 entries (must be 4)");
    }
    SUBCASE("K per token") {
      a.k_scale = std::span<const float>(p.k_scale).first(p.k_scale.size() - 1);
      expect_rejected(bd, a, out, sc::shape_mismatch, "K scale has 19 entries (must be 20)");
    }
    SUBCASE("V missing") {
      a.v_scale = {};
      expect_rejected(bd, a, out, sc::shape_mismatch, "V scale has 0 entries (must be 20)");
    }
  }
  SUBCASE("bad scale values") {
    SUBCASE("negative K scale") {
      p.k_scale[2] = -1.0f;
      expect_rejected(bd, a, out, sc::invalid_argument, "K scale = -1");
    }
    SUBCASE("NaN V scale") {
      p.v_scale[7] = std::numeric_limits<float>::quiet_NaN();
      expect_rejected(bd, a, out, sc::invalid_argument, "V scale = nan");
    }
    SUBCASE("infinite Q scale") {
      p.q_scale[1] = kInf;
      expect_rejected(bd, a, out, sc::invalid_argument, "Q scale = inf");
    }
  }
  SUBCASE("null and misaligned buffers") {
    SUBCASE("Q") {
      a.q.data = nullptr;
      expect_rejected(bd, a, out, sc::invalid_argument, "Q is null");
    }
    SUBCASE("out") {
      a.out.data = nullptr;
      expect_rejected(bd, a, out, sc::invalid_argument, "out is null");
    }
    SUBCASE("mask") {
      a.mask.data = nullptr;
      expect_rejected(bd, a, out, sc::invalid_argument, "mask is null");
    }
    SUBCASE("misaligned f32 out") {
      a.out.data = reinterpret_cast<char*>(out.data()) + 1;
      expect_rejected(bd, a, out, sc::invalid_argument, "misaligned");
    }
  }
  SUBCASE("sizes that overflow") {
    SUBCASE("the element count of Q") {
      bd.batch = std::int64_t{1} << 40;
      bd.q_len = std::int64_t{1} << 30;
      expect_rejected(bd, a, out, sc::overflow, "Q: the product of sizes overflows int64");
    }
    SUBCASE("the extent of a strided K") {
      a.k.strides[0] = std::numeric_limits<std::int64_t>::max() / 2;
      expect_rejected(bd, a, out, sc::overflow, "K: its extent in bytes overflows int64");
    }
    SUBCASE("head_dim past the exact int32 range of s8 dot products") {
      bd.head_dim = 131072;
      expect_rejected(bd, a, out, sc::overflow, "head_dim 131072 exceeds 131071");
    }
  }
  SUBCASE("bad output scale") {
    guarded<std::int8_t> out8(p.out_size());
    a.out = view(out8.data(), {d.batch, d.q_heads, d.q_len, d.value_dim()});
    bd.out_type = dtype::s8;
    for (float s : {0.0f, -1.0f, kInf, std::numeric_limits<float>::quiet_NaN()}) {
      INFO("out_scale = " << s);
      bd.out_scale = s;
      expect_rejected(bd, a, out8, sc::invalid_argument, "output scale");
    }
  }
  SUBCASE("bad kv_tile") {
    expect_rejected(bd, a, out, sc::invalid_argument, "kv_tile = 0 (must be >= 1)", 0);
    expect_rejected(bd, a, out, sc::invalid_argument, "kv_tile = -7 (must be >= 1)", -7);
  }
  SUBCASE("bad softmax scale, dtypes and causal offset") {
    SUBCASE("NaN softmax scale") {
      bd.softmax_scale = std::numeric_limits<float>::quiet_NaN();
      expect_rejected(bd, a, out, sc::invalid_argument, "softmax scale");
    }
    SUBCASE("negative softmax scale") {
      bd.softmax_scale = -0.5f;
      expect_rejected(bd, a, out, sc::invalid_argument, "softmax scale");
    }
    SUBCASE("u8 Q") {
      bd.q_type = dtype::u8;
      expect_rejected(bd, a, out, sc::unsupported, "Q dtype u8");
    }
    SUBCASE("s32 output") {
      bd.out_type = dtype::s32;
      expect_rejected(bd, a, out, sc::unsupported, "output dtype s32");
    }
    SUBCASE("causal offset beyond 2^62") {
      bd.mask = mask_kind::causal;
      bd.causal_offset = (std::int64_t{1} << 62) + 1;
      expect_rejected(bd, a, out, sc::invalid_argument, "causal offset");
    }
  }
}

TEST_CASE("attention: report the worst float error seen") {
  // Runs last (doctest orders by file and line): the margin under kRelTol, for the record.
  MESSAGE("worst |kernel - oracle| / max|V| over this suite: " << g_worst_ratio << " (bound "
                                                               << kRelTol << ")");
  CHECK(g_worst_ratio <= kRelTol);
}
