// tools/envelope/verify.cpp — the comparison rules of verify.hpp.
#include "verify.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "keel/kernels/reference/matmul_i4.hpp"

namespace keel::envelope {

namespace {

constexpr double kUnitRoundoff = 1.0 / 16777216.0;  // 2^-24, binary32

double gamma(double n) {
  return n * kUnitRoundoff / (1.0 - n * kUnitRoundoff);
}

float load_scale(const matmul_i4_problem& p, std::int64_t i) {
  return p.desc.scale_type == dtype::f16 ? f16_to_f32(p.scale.as<f16>()[i])
                                         : p.scale.as<float>()[i];
}

std::vector<double> matmul_i4_tolerances(const matmul_i4_problem& p) {
  const matmul_i4_desc& d = p.desc;
  const std::int64_t groups = d.groups(), G = d.group_size;
  const auto* w = p.b.as<std::uint8_t>();
  const std::int64_t row_nibbles = (d.k + 1) / 2 * 2;
  const float* a = p.a.as<float>();
  const bool dynamic = d.activation == i4_activation::dynamic_s8;
  std::vector<double> tol(static_cast<std::size_t>(d.m * d.n));
  std::vector<std::int8_t> q(static_cast<std::size_t>(d.k));
  for (std::int64_t m = 0; m < d.m; ++m) {
    const float a_scale =
        dynamic ? reference::quantize_row_s8_symmetric(a + m * d.k, 1, d.k, q.data()) : 0.0f;
    for (std::int64_t n = 0; n < d.n; ++n) {
      double magnitude = p.bias.empty() ? 0.0 : std::fabs(p.bias[static_cast<std::size_t>(n)]);
      for (std::int64_t g = 0; g < groups; ++g) {
        const std::int64_t k1 = std::min(d.k, (g + 1) * G);
        const std::int32_t z =
            d.b_type == dtype::s4
                ? 0
                : (p.zero_point.ok() ? p.zero_point.as<std::uint8_t>()[n * groups + g] : 8);
        const double s = std::fabs(static_cast<double>(load_scale(p, n * groups + g)));
        if (dynamic) {
          std::int64_t isum = 0;
          for (std::int64_t k = g * G; k < k1; ++k) {
            isum += q[static_cast<std::size_t>(k)] *
                    (load_nibble(w, n * row_nibbles + k, d.b_type) - z);
          }
          magnitude += std::fabs(static_cast<double>(isum)) * static_cast<double>(a_scale) * s;
        } else {
          for (std::int64_t k = g * G; k < k1; ++k) {
            const double wv = load_nibble(w, n * row_nibbles + k, d.b_type) - z;
            magnitude += std::fabs(static_cast<double>(a[m * d.k + k]) * wv) * s;
          }
        }
      }
      const double n_roundings =
          dynamic ? static_cast<double>(groups + 2) : static_cast<double>(G + groups + 1);
      tol[static_cast<std::size_t>(m * d.n + n)] = gamma(n_roundings) * magnitude;
    }
  }
  return tol;
}

// 1e-5 * max |V| over the keys each row sees (causal: j <= i + offset; otherwise every key).
std::vector<double> attention_tolerances(const attention_problem& p) {
  const attention_desc& d = p.desc;
  const std::int64_t dv = d.value_dim(), group = d.q_heads / d.kv_heads;
  const bool s8_out = d.out_type == dtype::s8;
  std::vector<double> tol(static_cast<std::size_t>(d.batch * d.q_heads * d.q_len * dv));
  std::vector<double> prefix_max(static_cast<std::size_t>(d.kv_len));
  const std::int64_t offset = d.resolved_causal_offset();
  for (std::int64_t b = 0; b < d.batch; ++b) {
    for (std::int64_t hk = 0; hk < d.kv_heads; ++hk) {
      // ---- the largest |value| among keys 0..j, for every j ----
      double running = 0;
      for (std::int64_t j = 0; j < d.kv_len; ++j) {
        const std::int64_t base = ((b * d.kv_heads + hk) * d.kv_len + j) * dv;
        double vs = 1.0;
        if (d.kv_type == dtype::s8) {
          switch (d.kv_scale) {
            case scale_granularity::per_tensor: vs = p.v_scale[0]; break;
            case scale_granularity::per_head: vs = p.v_scale[static_cast<std::size_t>(hk)]; break;
            case scale_granularity::per_token:
              vs = p.v_scale[static_cast<std::size_t>((b * d.kv_heads + hk) * d.kv_len + j)];
              break;
          }
        }
        for (std::int64_t c = 0; c < dv; ++c) {
          const double v = d.kv_type == dtype::s8 ? p.v.as<std::int8_t>()[base + c] * vs
                                                  : p.v.as<float>()[base + c];
          running = std::max(running, std::fabs(v));
        }
        prefix_max[static_cast<std::size_t>(j)] = running;
      }
      // ---- each row of the query heads that read this KV head ----
      for (std::int64_t h = hk * group; h < (hk + 1) * group; ++h) {
        for (std::int64_t i = 0; i < d.q_len; ++i) {
          std::int64_t last = d.kv_len - 1;
          if (d.mask == mask_kind::causal) last = std::min(last, i + offset);
          const double t =
              s8_out ? 1.0 : (last < 0 ? 0.0 : 1e-5 * prefix_max[static_cast<std::size_t>(last)]);
          const std::int64_t row = ((b * d.q_heads + h) * d.q_len + i) * dv;
          std::fill_n(tol.begin() + row, dv, t);
        }
      }
    }
  }
  return tol;
}

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

double load_as_double(const void* p, dtype t, std::int64_t i) {
  switch (t) {
    case dtype::s8: return static_cast<const std::int8_t*>(p)[i];
    case dtype::u8: return static_cast<const std::uint8_t*>(p)[i];
    case dtype::s32: return static_cast<const std::int32_t*>(p)[i];
    case dtype::f32: return static_cast<const float*>(p)[i];
    default: return 0;
  }
}

std::string value_text(double v, dtype t) {
  return t == dtype::f32 ? fmt::format("{:.9g}", v) : fmt::format("{}", static_cast<long long>(v));
}

}  // namespace

std::vector<double> tolerances(const problem& p) {
  return std::visit(
      overloaded{[](const matmul_i8_problem& x) {
                   return std::vector<double>(static_cast<std::size_t>(x.desc.m * x.desc.n), 0.0);
                 },
                 [](const matmul_i4_problem& x) { return matmul_i4_tolerances(x); },
                 [](const conv2d_problem& x) {
                   return std::vector<double>(
                       static_cast<std::size_t>(output_elements(op_desc(x.desc))), 0.0);
                 },
                 [](const attention_problem& x) { return attention_tolerances(x); }},
      p);
}

std::string output_coordinates(const op_desc& d, std::int64_t index) {
  return std::visit(
      overloaded{[&](const matmul_i8_desc& x) {
                   return fmt::format("[{}, {}]", index / x.n, index % x.n);
                 },
                 [&](const matmul_i4_desc& x) {
                   return fmt::format("[{}, {}]", index / x.n, index % x.n);
                 },
                 [&](const conv2d_desc& x) {
                   const conv2d_geometry g = conv2d_output_geometry(x).value();
                   const std::int64_t c = index % x.out_c, px = index / x.out_c;
                   const std::int64_t ox = px % g.out_w, oy = (px / g.out_w) % g.out_h;
                   return fmt::format("[{}, {}, {}, {}]", px / (g.out_w * g.out_h), oy, ox, c);
                 },
                 [&](const attention_desc& x) {
                   const std::int64_t dv = x.value_dim();
                   const std::int64_t c = index % dv, i = (index / dv) % x.q_len;
                   const std::int64_t h = (index / (dv * x.q_len)) % x.q_heads;
                   return fmt::format("[{}, {}, {}, {}]", index / (dv * x.q_len * x.q_heads), h, i,
                                      c);
                 }},
      d);
}

check_result check_output(const problem& oracle, const void* reference, const void* got,
                          const std::vector<std::int64_t>& map, const op_desc& full) {
  const op_desc od = desc_of(oracle);
  const dtype t = output_type(od);
  const std::int64_t n = output_elements(od);
  const std::int64_t eb = element_bytes(t);
  check_result r;
  const op_kind kind = kind_of(od);
  r.exact_rule = !(t == dtype::f32 && (kind == op_kind::matmul_i4 || kind == op_kind::attention)) &&
                 !(kind == op_kind::attention && t == dtype::s8);
  std::vector<double> tol;
  if (r.exact_rule) {
    r.rule = "bit-exact";
  } else {
    tol = tolerances(oracle);
    r.rule = kind == op_kind::matmul_i4 ? "f32 rounding bound (gamma)"
                                        : (t == dtype::s8 ? "one quantum" : "1e-5 max|V| bound");
  }
  const auto* ref = static_cast<const unsigned char*>(reference);
  const auto* out = static_cast<const unsigned char*>(got);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t j = map.empty() ? i : map[static_cast<std::size_t>(i)];
    ++r.checked;
    const bool same_bits =
        std::memcmp(ref + i * eb, out + j * eb, static_cast<std::size_t>(eb)) == 0;
    if (same_bits) continue;
    const double rv = load_as_double(reference, t, i), gv = load_as_double(got, t, j);
    const double diff = std::fabs(rv - gv);
    bool ok = false;
    if (!r.exact_rule) {
      if (std::isnan(rv) || std::isnan(gv)) {
        ok = std::isnan(rv) && std::isnan(gv);
      } else {
        ok = diff <= tol[static_cast<std::size_t>(i)];
      }
      if (ok) ++r.not_identical;
    }
    if (!std::isnan(diff)) r.max_abs_diff = std::max(r.max_abs_diff, diff);
    if (ok) continue;
    if (r.mismatches == 0) {
      r.first_mismatch = fmt::format("out{} = {}, reference {}{}", output_coordinates(full, j),
                                     value_text(gv, t), value_text(rv, t),
                                     r.exact_rule ? std::string()
                                                  : fmt::format(" (allowed difference {:.3g})",
                                                                tol[static_cast<std::size_t>(i)]));
    }
    ++r.mismatches;
  }
  return r;
}

}  // namespace keel::envelope
