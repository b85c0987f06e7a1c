// tools/envelope/workloads.cpp — the default workloads, their data, and their samples.
#include "workloads.hpp"

#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <utility>

namespace keel::envelope {

namespace {

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

Status no_memory(std::string_view what, std::int64_t bytes) {
  return Status::make(status_code::out_of_memory, "keel-envelope",
                      "cannot allocate %lld bytes for %.*s", static_cast<long long>(bytes),
                      static_cast<int>(what.size()), what.data());
}

std::int64_t conv_out(std::int64_t in, std::int64_t k, std::int64_t s, std::int64_t dil,
                      const conv2d_desc& d, bool height) {
  std::int64_t p0 = height ? d.pad_top : d.pad_left, p1 = height ? d.pad_bottom : d.pad_right;
  return detail::conv_axis(in, k, s, dil, d.padding, p0, p1);
}

}  // namespace

// ---- desc facts
// ----------------------------------------------------------------------------------

op_kind kind_of(const op_desc& d) {
  return std::visit([](const auto& x) { return std::decay_t<decltype(x)>::kind; }, d);
}

op_work work_of_desc(const op_desc& d) {
  return std::visit([](const auto& x) { return keel::work_of(x); }, d);
}

dtype output_type(const op_desc& d) {
  return std::visit(overloaded{[](const matmul_i8_desc& x) { return x.out.type; },
                               [](const matmul_i4_desc&) { return dtype::f32; },
                               [](const conv2d_desc& x) { return x.out.type; },
                               [](const attention_desc& x) { return x.out_type; }},
                    d);
}

std::int64_t output_elements(const op_desc& d) {
  return std::visit(
      overloaded{
          [](const matmul_i8_desc& x) { return x.batch * x.m * x.n; },
          [](const matmul_i4_desc& x) { return x.batch * x.m * x.n; },
          [](const conv2d_desc& x) {
            const std::int64_t oh = conv_out(x.in_h, x.kernel_h, x.stride_h, x.dilation_h, x, true);
            const std::int64_t ow =
                conv_out(x.in_w, x.kernel_w, x.stride_w, x.dilation_w, x, false);
            return x.batch * oh * ow * x.out_c;
          },
          [](const attention_desc& x) { return x.batch * x.q_heads * x.q_len * x.value_dim(); }},
      d);
}

std::string shape_text(const op_desc& d) {
  return std::visit(
      overloaded{
          [](const matmul_i8_desc& x) { return fmt::format("M{} N{} K{}", x.m, x.n, x.k); },
          [](const matmul_i4_desc& x) {
            return fmt::format("M{} N{} K{} g{}", x.m, x.n, x.k, x.group_size);
          },
          [](const conv2d_desc& x) {
            const std::int64_t oh = conv_out(x.in_h, x.kernel_h, x.stride_h, x.dilation_h, x, true);
            const std::int64_t ow =
                conv_out(x.in_w, x.kernel_w, x.stride_w, x.dilation_w, x, false);
            const char* kind = x.groups == 1 ? "" : (x.groups == x.in_c ? " dw" : " grouped");
            return fmt::format("{}x{}x{} -> {}x{}x{}, {}x{}/{}{}", x.in_h, x.in_w, x.in_c, oh, ow,
                               x.out_c, x.kernel_h, x.kernel_w, x.stride_h, kind);
          },
          [](const attention_desc& x) {
            return fmt::format("Hq{} Hkv{} Sq{} Skv{} D{}{}", x.q_heads, x.kv_heads, x.q_len,
                               x.kv_len, x.head_dim, x.mask == mask_kind::causal ? " causal" : "");
          }},
      d);
}

std::string dtype_text(const op_desc& d) {
  const auto s = [](dtype t) { return std::string(to_string(t)); };
  const auto mode = [](const output_quant& o) {
    if (o.type != dtype::s8 && o.type != dtype::u8) return std::string();
    return std::string(o.mode == requant_mode::fixed_point ? " (fixed point)" : " (float scale)");
  };
  return std::visit(
      overloaded{[&](const matmul_i8_desc& x) {
                   return s(x.a_type) + " x " + s(x.b_type) + " -> " + s(x.out.type) + mode(x.out);
                 },
                 [&](const matmul_i4_desc& x) {
                   return std::string(x.activation == i4_activation::f32 ? "f32" : "f32 (dyn s8)") +
                          " x " + s(x.b_type) + " (" + s(x.scale_type) + " scales) -> f32";
                 },
                 [&](const conv2d_desc& x) {
                   return s(x.in_type) + " x " + s(x.w_type) + " -> " + s(x.out.type) + mode(x.out);
                 },
                 [&](const attention_desc& x) {
                   return "Q " + s(x.q_type) + ", KV " + s(x.kv_type) + " -> " + s(x.out_type);
                 }},
      d);
}

// ---- the default workloads
// -----------------------------------------------------------------------

namespace {

// Output scale that maps about four standard deviations of a uniform-input accumulator onto the
// 8-bit range: few outputs saturate, so the requantization's rounding is exercised.
float output_scale_for(std::int64_t reduction, float in_scale, float w_scale) {
  const float acc_sigma = std::sqrt(static_cast<float>(reduction)) * 74.0f * 74.0f;
  return 4.0f * acc_sigma * in_scale * w_scale / 127.0f;
}

matmul_i8_desc linear_i8(std::int64_t m, std::int64_t n, std::int64_t k, dtype out) {
  matmul_i8_desc d;
  d.m = m;
  d.n = n;
  d.k = k;
  d.a_type = dtype::u8;
  d.b_type = dtype::s8;
  d.a_zero_point = 128;  // asymmetric activations, symmetric per-column weights
  d.a_scale = 0.02f;
  d.out.type = out;
  if (out == dtype::s8) {
    d.out.scale = output_scale_for(k, d.a_scale, 0.01f);
    d.out.zero_point = -3;
  }
  return d;
}

matmul_i4_desc linear_i4(std::int64_t m, std::int64_t n, std::int64_t k, i4_activation act) {
  matmul_i4_desc d;
  d.m = m;
  d.n = n;
  d.k = k;
  d.b_type = dtype::s4;
  d.group_size = 32;          // GGUF Q4_0's block
  d.scale_type = dtype::f16;  // as Q4_0 stores them
  d.activation = act;
  return d;
}

conv2d_desc conv(std::int64_t hw, std::int64_t cin, std::int64_t cout, std::int64_t kernel,
                 std::int64_t stride, bool depthwise, bool relu6, std::int32_t in_zero_point) {
  conv2d_desc d;
  d.in_h = d.in_w = hw;
  d.in_c = cin;
  d.out_c = cout;
  d.kernel_h = d.kernel_w = kernel;
  d.stride_h = d.stride_w = stride;
  d.groups = depthwise ? cin : 1;
  d.padding = padding_mode::same_upper;  // TFLite's SAME, as MobileNetV2 is exported
  d.in_type = dtype::u8;
  d.w_type = dtype::s8;
  d.in_zero_point = in_zero_point;
  d.in_scale = 0.0235f;  // 6 / 255: a ReLU6 activation's scale
  d.out.type = dtype::u8;
  d.out.mode = requant_mode::fixed_point;
  d.out.scale = output_scale_for(kernel * kernel * (cin / d.groups), d.in_scale, 0.01f);
  d.out.zero_point = relu6 ? 0 : 128;
  if (relu6) {  // ReLU6 fused through the clamp: real [0, 6]
    d.out.clamp_min = 0;
    d.out.clamp_max = static_cast<std::int32_t>(std::lround(6.0 / d.out.scale));
  }
  return d;
}

attention_desc attn(std::int64_t hq, std::int64_t hkv, std::int64_t q, std::int64_t kv,
                    std::int64_t dim, dtype q_type, scale_granularity granularity, mask_kind mask) {
  attention_desc d;
  d.q_heads = hq;
  d.kv_heads = hkv;
  d.q_len = q;
  d.kv_len = kv;
  d.head_dim = dim;
  d.q_type = q_type;
  d.kv_type = dtype::s8;
  d.q_scale = granularity;
  d.kv_scale = granularity;
  d.mask = mask;
  d.out_type = dtype::f32;
  return d;
}

}  // namespace

std::vector<workload> default_workloads(bool quick) {
  std::vector<workload> w;
  const auto add = [&](std::string id, std::string model, std::string layer, std::string phase,
                       op_desc d) {
    w.push_back({std::move(id), std::move(model), std::move(layer), std::move(phase), d});
  };

  // ---- a 7B-class decoder layer: Mistral-7B's shapes -------------------------------------------
  // hidden 4096, 32 query heads and 8 KV heads of 128 (grouped-query), FFN 14336 (gate and up
  // fused into one 28672-wide matmul), a 1024-token KV cache at decode, 128-token prefill.
  // Quick: hidden 256, 4 and 2 heads of 64, FFN 896, cache 64, prefill 16.
  const std::int64_t hid = quick ? 256 : 4096, heads = quick ? 4 : 32, kvh = quick ? 2 : 8;
  const std::int64_t hd = quick ? 64 : 128, ffn = quick ? 896 : 14336;
  const std::int64_t cache = quick ? 64 : 1024, prompt = quick ? 16 : 128;
  const std::int64_t qkv = hid + 2 * kvh * hd;
  const std::string llm = "7B-class decoder layer (Mistral-7B shapes)";
  for (const bool decode : {true, false}) {
    const std::string phase = decode ? "decode" : "prefill";
    const std::string p = "llm7b." + phase + ".";
    const std::int64_t m = decode ? 1 : prompt;
    add(p + "qkv", llm, "QKV projection (fused), W8A8", phase, linear_i8(m, qkv, hid, dtype::s8));
    add(p + "o_proj", llm, "attention output projection, W8A8", phase,
        linear_i8(m, hid, hid, dtype::f32));
    add(p + "gate_up", llm, "FFN gate+up (fused), W8A8", phase,
        linear_i8(m, 2 * ffn, hid, dtype::f32));
    add(p + "down", llm, "FFN down projection, W8A8", phase, linear_i8(m, hid, ffn, dtype::f32));
    const i4_activation act = decode ? i4_activation::f32 : i4_activation::dynamic_s8;
    add(p + "qkv.q4", llm, "QKV projection, int4 weights", phase, linear_i4(m, qkv, hid, act));
    add(p + "o_proj.q4", llm, "output projection, int4 weights", phase,
        linear_i4(m, hid, hid, act));
    add(p + "gate_up.q4", llm, "FFN gate+up, int4 weights", phase, linear_i4(m, 2 * ffn, hid, act));
    add(p + "down.q4", llm, "FFN down, int4 weights", phase, linear_i4(m, hid, ffn, act));
    if (decode) {
      add(p + "attention", llm, "attention over the int8 KV cache (GQA)", phase,
          attn(heads, kvh, 1, cache, hd, dtype::f32, scale_granularity::per_token,
               mask_kind::causal));
    } else {
      add(p + "attention", llm, "causal self-attention, int8 Q/K/V (GQA)", phase,
          attn(heads, kvh, prompt, prompt, hd, dtype::s8, scale_granularity::per_token,
               mask_kind::causal));
    }
  }

  // ---- MobileNetV2 (224x224, int8 as TFLite exports it) -----------------------------------------
  // The stem, the first two inverted-residual blocks' layers and the last ones. Quick: the spatial
  // sizes divided by 4 (at least 2), channels unchanged.
  const auto sp = [&](std::int64_t x) { return quick ? std::max<std::int64_t>(x / 4, 2) : x; };
  const std::string mbv2 = "MobileNetV2 (224x224, int8)";
  const std::string inf = "inference";
  add("mbv2.conv0", mbv2, "stem 3x3/2 conv, ReLU6", inf,
      conv(sp(224), 3, 32, 3, 2, false, true, 128));
  add("mbv2.b1.dw", mbv2, "block 1 depthwise 3x3, ReLU6", inf,
      conv(sp(112), 32, 32, 3, 1, true, true, 0));
  add("mbv2.b1.project", mbv2, "block 1 project 1x1 (linear)", inf,
      conv(sp(112), 32, 16, 1, 1, false, false, 0));
  add("mbv2.b2.expand", mbv2, "block 2 expand 1x1, ReLU6", inf,
      conv(sp(112), 16, 96, 1, 1, false, true, 128));
  add("mbv2.b2.dw", mbv2, "block 2 depthwise 3x3/2, ReLU6", inf,
      conv(sp(112), 96, 96, 3, 2, true, true, 0));
  add("mbv2.b16.project", mbv2, "block 16 project 1x1 (linear)", inf,
      conv(sp(7), 960, 320, 1, 1, false, false, 0));
  add("mbv2.conv_last", mbv2, "last 1x1 conv, ReLU6", inf,
      conv(sp(7), 320, 1280, 1, 1, false, true, 128));

  // ---- a MiniLM attention block (all-MiniLM-L6-v2: hidden 384, 12 heads of 32) ----------------
  // 128 tokens; quick: 32.
  const std::int64_t seq = quick ? 32 : 128;
  const std::string minilm = "MiniLM-L6 attention block (384 hidden, 12 heads)";
  add("minilm.qkv", minilm, "QKV projection (fused)", inf, linear_i8(seq, 3 * 384, 384, dtype::s8));
  add("minilm.attention", minilm, "self-attention, int8 Q/K/V", inf,
      attn(12, 12, seq, seq, 32, dtype::s8, scale_granularity::per_tensor, mask_kind::none));
  add("minilm.out_proj", minilm, "attention output projection", inf,
      linear_i8(seq, 384, 384, dtype::f32));
  return w;
}

// ---- problems
// --------------------------------------------------------------------------------------

matmul_i8_args matmul_i8_problem::args(void* out) const {
  matmul_i8_args x;
  x.a = const_tensor_view(a.data(), desc.a_type, {desc.m, desc.k});
  x.b = const_tensor_view(b.data(), desc.b_type, {desc.k, desc.n});
  x.b_scale = b_scale;
  x.b_zero_point = b_zero_point;
  x.bias = bias;
  x.out = tensor_view(out, desc.out.type, {desc.m, desc.n});
  return x;
}

matmul_i4_args matmul_i4_problem::args(void* out) const {
  matmul_i4_args x;
  x.a = const_tensor_view(a.data(), dtype::f32, {desc.m, desc.k});
  x.b = const_tensor_view(b.data(), desc.b_type, {desc.n, desc.k});
  x.scale = const_tensor_view(scale.data(), desc.scale_type, {desc.n, desc.groups()});
  if (zero_point.ok()) {
    x.zero_point = const_tensor_view(zero_point.data(), dtype::u8, {desc.n, desc.groups()});
  }
  x.bias = bias;
  x.out = tensor_view(out, dtype::f32, {desc.m, desc.n});
  return x;
}

conv2d_args conv2d_problem::args(void* out) const {
  const conv2d_geometry g = conv2d_output_geometry(desc).value();
  conv2d_args x;
  x.input =
      const_tensor_view(input.data(), desc.in_type, {desc.batch, desc.in_h, desc.in_w, desc.in_c});
  x.weights =
      const_tensor_view(weights.data(), desc.w_type,
                        {desc.out_c, desc.kernel_h, desc.kernel_w, desc.in_c / desc.groups});
  x.w_scale = w_scale;
  x.w_zero_point = w_zero_point;
  x.bias = bias;
  x.out = tensor_view(out, desc.out.type, {desc.batch, g.out_h, g.out_w, desc.out_c});
  return x;
}

attention_args attention_problem::args(void* out) const {
  const attention_desc& d = desc;
  attention_args x;
  x.q = const_tensor_view(q.data(), d.q_type, {d.batch, d.q_heads, d.q_len, d.head_dim});
  x.k = const_tensor_view(k.data(), d.kv_type, {d.batch, d.kv_heads, d.kv_len, d.head_dim});
  x.v = const_tensor_view(v.data(), d.kv_type, {d.batch, d.kv_heads, d.kv_len, d.value_dim()});
  x.q_scale = q_scale;
  x.k_scale = k_scale;
  x.v_scale = v_scale;
  x.out = tensor_view(out, d.out_type, {d.batch, d.q_heads, d.q_len, d.value_dim()});
  return x;
}

op_desc desc_of(const problem& p) {
  return std::visit([](const auto& x) -> op_desc { return x.desc; }, p);
}

namespace {

std::vector<float> random_scales(fast_rng& r, std::int64_t n, float lo, float hi) {
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = r.uniform(lo, hi);
  return v;
}

bool fill_random(aligned_bytes& buf, std::int64_t bytes, fast_rng& r) {
  if (!buf.allocate(bytes)) return false;
  r.fill_bytes(buf.data(), bytes);
  return true;
}

bool fill_floats(aligned_bytes& buf, std::int64_t count, fast_rng& r, float lo, float hi) {
  if (!buf.allocate(count * 4)) return false;
  float* p = buf.as<float>();
  for (std::int64_t i = 0; i < count; ++i) p[i] = r.uniform(lo, hi);
  return true;
}

Status make(const matmul_i8_desc& d, fast_rng& r, matmul_i8_problem& p) {
  p.desc = d;
  if (!fill_random(p.a, d.m * d.k, r)) return no_memory("A", d.m * d.k);
  if (!fill_random(p.b, d.k * d.n, r)) return no_memory("B", d.k * d.n);
  if (d.out.type != dtype::s32) p.b_scale = random_scales(r, d.n, 0.005f, 0.015f);
  p.bias.resize(static_cast<std::size_t>(d.n));
  for (std::int32_t& b : p.bias) b = static_cast<std::int32_t>(r.between(-20000, 20000));
  return Status::Ok();
}

Status make(const matmul_i4_desc& d, fast_rng& r, matmul_i4_problem& p) {
  p.desc = d;
  if (!fill_floats(p.a, d.m * d.k, r, -1.0f, 1.0f)) return no_memory("A", d.m * d.k * 4);
  const std::int64_t row_bytes = (d.k + 1) / 2;
  if (!fill_random(p.b, d.n * row_bytes, r)) return no_memory("B", d.n * row_bytes);
  const std::int64_t scales = d.n * d.groups();
  if (d.scale_type == dtype::f16) {
    if (!p.scale.allocate(scales * 2)) return no_memory("scales", scales * 2);
    auto* s = p.scale.as<f16>();
    for (std::int64_t i = 0; i < scales; ++i) s[i] = f32_to_f16(r.uniform(0.002f, 0.02f));
  } else if (!fill_floats(p.scale, scales, r, 0.002f, 0.02f)) {
    return no_memory("scales", scales * 4);
  }
  return Status::Ok();
}

Status make(const conv2d_desc& d, fast_rng& r, conv2d_problem& p) {
  p.desc = d;
  const std::int64_t in = d.batch * d.in_h * d.in_w * d.in_c;
  const std::int64_t w = d.out_c * d.kernel_h * d.kernel_w * (d.in_c / d.groups);
  if (!fill_random(p.input, in, r)) return no_memory("input", in);
  if (!fill_random(p.weights, w, r)) return no_memory("weights", w);
  p.w_scale = random_scales(r, d.out_c, 0.005f, 0.015f);
  p.bias.resize(static_cast<std::size_t>(d.out_c));
  for (std::int32_t& b : p.bias) b = static_cast<std::int32_t>(r.between(-5000, 5000));
  return Status::Ok();
}

Status make(const attention_desc& d, fast_rng& r, attention_problem& p) {
  p.desc = d;
  const std::int64_t nq = d.batch * d.q_heads * d.q_len * d.head_dim;
  const std::int64_t nk = d.batch * d.kv_heads * d.kv_len * d.head_dim;
  const std::int64_t nv = d.batch * d.kv_heads * d.kv_len * d.value_dim();
  if (d.q_type == dtype::s8) {
    if (!fill_random(p.q, nq, r)) return no_memory("Q", nq);
  } else if (!fill_floats(p.q, nq, r, -1.0f, 1.0f)) {
    return no_memory("Q", nq * 4);
  }
  if (!fill_random(p.k, nk, r)) return no_memory("K", nk);
  if (!fill_random(p.v, nv, r)) return no_memory("V", nv);
  const auto entries = [&](scale_granularity g, std::int64_t heads, std::int64_t len) {
    switch (g) {
      case scale_granularity::per_tensor: return std::int64_t{1};
      case scale_granularity::per_head: return heads;
      case scale_granularity::per_token: return d.batch * heads * len;
    }
    return std::int64_t{1};
  };
  if (d.q_type == dtype::s8) {
    p.q_scale = random_scales(r, entries(d.q_scale, d.q_heads, d.q_len), 0.01f, 0.03f);
  }
  const std::int64_t kv_scales = entries(d.kv_scale, d.kv_heads, d.kv_len);
  p.k_scale = random_scales(r, kv_scales, 0.01f, 0.03f);
  p.v_scale = random_scales(r, kv_scales, 0.01f, 0.03f);
  return Status::Ok();
}

template <class P, class D>
Status make_into(const D& d, fast_rng& r, problem& out) {
  P p;
  const Status s = make(d, r, p);
  if (s.ok()) out = std::move(p);
  return s;
}

}  // namespace

Status materialize(const op_desc& d, std::uint64_t seed, std::uint64_t stream, problem& out) {
  fast_rng r(seed, stream);
  return std::visit(
      overloaded{[&](const matmul_i8_desc& x) { return make_into<matmul_i8_problem>(x, r, out); },
                 [&](const matmul_i4_desc& x) { return make_into<matmul_i4_problem>(x, r, out); },
                 [&](const conv2d_desc& x) { return make_into<conv2d_problem>(x, r, out); },
                 [&](const attention_desc& x) { return make_into<attention_problem>(x, r, out); }},
      d);
}

// ---- samples -----------------------------------------------------------------------------------

namespace {

// `want` indices of [0, n), sorted: the first `edge` and the last `edge` always, the rest a
// seeded random choice among those in between. All of them when want >= n.
std::vector<std::int64_t> pick(std::int64_t n, std::int64_t want, std::int64_t edge, fast_rng& r) {
  std::vector<std::int64_t> v;
  if (want >= n) {
    v.resize(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = i;
    return v;
  }
  want = std::max<std::int64_t>(want, 1);
  edge = std::min(edge, want / 2);
  for (std::int64_t i = 0; i < edge; ++i) v.push_back(i);
  for (std::int64_t i = n - edge; i < n; ++i) v.push_back(i);
  if (edge == 0) v.push_back(0);  // the first unit is always there
  // The middle: a partial Fisher-Yates over [edge, n - edge) would need O(n) memory for a
  // 28672-column matmul; rejection sampling is cheaper at these densities.
  std::vector<char> taken(static_cast<std::size_t>(n), 0);
  for (std::int64_t i : v) taken[static_cast<std::size_t>(i)] = 1;
  std::int64_t have = static_cast<std::int64_t>(v.size());
  while (have < want) {
    const std::int64_t i = r.below(n);
    if (taken[static_cast<std::size_t>(i)]) continue;
    taken[static_cast<std::size_t>(i)] = 1;
    v.push_back(i);
    ++have;
  }
  std::sort(v.begin(), v.end());
  return v;
}

template <class T>
std::vector<T> gather(const std::vector<T>& src, const std::vector<std::int64_t>& idx) {
  if (src.size() <= 1) return src;  // absent, or one value for all
  std::vector<T> v;
  v.reserve(idx.size());
  for (std::int64_t i : idx) v.push_back(src[static_cast<std::size_t>(i)]);
  return v;
}

std::int64_t clamp_units(std::int64_t budget, std::int64_t per_unit, std::int64_t lo,
                         std::int64_t n) {
  const std::int64_t fit = budget / std::max<std::int64_t>(per_unit, 1);
  return std::clamp<std::int64_t>(fit, std::min(lo, n), n);
}

Status sample_matmul_i8(const matmul_i8_problem& f, std::int64_t budget, fast_rng& r, sample& s) {
  const matmul_i8_desc& d = f.desc;
  // Small enough for the budget: all of it. Otherwise up to 8 rows (decode has 1) and as many
  // columns as the budget allows, at least 32 (a few whole panels of every kernel).
  const bool all = d.m * d.n * d.k <= budget;
  const std::int64_t rows_want = all ? d.m : std::min<std::int64_t>(d.m, 8);
  const std::int64_t cols_want = all ? d.n : clamp_units(budget, rows_want * d.k, 32, d.n);
  const std::vector<std::int64_t> rows = pick(d.m, rows_want, 2, r);
  const std::vector<std::int64_t> cols = pick(d.n, cols_want, 16, r);
  s.full_outputs = d.m * d.n;
  if (static_cast<std::int64_t>(rows.size()) == d.m &&
      static_cast<std::int64_t>(cols.size()) == d.n) {
    s.whole = true;
    s.description = "every output";
    return Status::Ok();
  }
  matmul_i8_problem p;
  p.desc = d;
  p.desc.m = static_cast<std::int64_t>(rows.size());
  p.desc.n = static_cast<std::int64_t>(cols.size());
  if (!p.a.allocate(p.desc.m * d.k) || !p.b.allocate(d.k * p.desc.n)) {
    return no_memory("the sample", p.desc.m * d.k + d.k * p.desc.n);
  }
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(p.a.data() + static_cast<std::int64_t>(i) * d.k, f.a.data() + rows[i] * d.k,
                static_cast<std::size_t>(d.k));
  }
  for (std::int64_t k = 0; k < d.k; ++k) {
    for (std::size_t j = 0; j < cols.size(); ++j) {
      p.b.data()[k * p.desc.n + static_cast<std::int64_t>(j)] = f.b.data()[k * d.n + cols[j]];
    }
  }
  p.b_scale = gather(f.b_scale, cols);
  p.b_zero_point = gather(f.b_zero_point, cols);
  p.bias = gather(f.bias, cols);
  for (std::int64_t row : rows) {
    for (std::int64_t col : cols) s.map.push_back(row * d.n + col);
  }
  s.description =
      fmt::format("{} of {} rows x {} of {} columns", rows.size(), d.m, cols.size(), d.n);
  s.reduced = std::move(p);
  return Status::Ok();
}

Status sample_matmul_i4(const matmul_i4_problem& f, std::int64_t budget, fast_rng& r, sample& s) {
  const matmul_i4_desc& d = f.desc;
  // Small enough for the budget: all of it. Otherwise up to 8 rows (decode has 1) and as many
  // columns as the budget allows, at least 32 (a few whole panels of every kernel).
  const bool all = d.m * d.n * d.k <= budget;
  const std::int64_t rows_want = all ? d.m : std::min<std::int64_t>(d.m, 8);
  const std::int64_t cols_want = all ? d.n : clamp_units(budget, rows_want * d.k, 32, d.n);
  const std::vector<std::int64_t> rows = pick(d.m, rows_want, 2, r);
  const std::vector<std::int64_t> cols = pick(d.n, cols_want, 16, r);
  s.full_outputs = d.m * d.n;
  if (static_cast<std::int64_t>(rows.size()) == d.m &&
      static_cast<std::int64_t>(cols.size()) == d.n) {
    s.whole = true;
    s.description = "every output";
    return Status::Ok();
  }
  matmul_i4_problem p;
  p.desc = d;
  p.desc.m = static_cast<std::int64_t>(rows.size());
  p.desc.n = static_cast<std::int64_t>(cols.size());
  const std::int64_t row_bytes = (d.k + 1) / 2, groups = d.groups();
  const std::int64_t scale_bytes = d.scale_type == dtype::f16 ? 2 : 4;
  if (!p.a.allocate(p.desc.m * d.k * 4) || !p.b.allocate(p.desc.n * row_bytes) ||
      !p.scale.allocate(p.desc.n * groups * scale_bytes)) {
    return no_memory("the sample", p.desc.m * d.k * 4 + p.desc.n * row_bytes);
  }
  for (std::size_t i = 0; i < rows.size(); ++i) {
    std::memcpy(p.a.data() + static_cast<std::int64_t>(i) * d.k * 4, f.a.data() + rows[i] * d.k * 4,
                static_cast<std::size_t>(d.k * 4));
  }
  for (std::size_t j = 0; j < cols.size(); ++j) {
    const auto jj = static_cast<std::int64_t>(j);
    std::memcpy(p.b.data() + jj * row_bytes, f.b.data() + cols[j] * row_bytes,
                static_cast<std::size_t>(row_bytes));
    std::memcpy(p.scale.data() + jj * groups * scale_bytes,
                f.scale.data() + cols[j] * groups * scale_bytes,
                static_cast<std::size_t>(groups * scale_bytes));
  }
  if (f.zero_point.ok()) {
    if (!p.zero_point.allocate(p.desc.n * groups))
      return no_memory("the sample", p.desc.n * groups);
    for (std::size_t j = 0; j < cols.size(); ++j) {
      std::memcpy(p.zero_point.data() + static_cast<std::int64_t>(j) * groups,
                  f.zero_point.data() + cols[j] * groups, static_cast<std::size_t>(groups));
    }
  }
  p.bias = gather(f.bias, cols);
  for (std::int64_t row : rows) {
    for (std::int64_t col : cols) s.map.push_back(row * d.n + col);
  }
  s.description =
      fmt::format("{} of {} rows x {} of {} columns", rows.size(), d.m, cols.size(), d.n);
  s.reduced = std::move(p);
  return Status::Ok();
}

// Convolution: whole groups (for groups == 1, single output channels), every pixel.
Status sample_conv2d(const conv2d_problem& f, std::int64_t budget, fast_rng& r, sample& s) {
  const conv2d_desc& d = f.desc;
  const conv2d_geometry g = conv2d_output_geometry(d).value();
  const std::int64_t cin_g = d.in_c / d.groups, cout_g = d.out_c / d.groups;
  const std::int64_t pixels = d.batch * g.out_h * g.out_w;
  const bool by_group = d.groups > 1;
  const std::int64_t units = by_group ? d.groups : d.out_c;
  const std::int64_t per_unit = pixels * d.kernel_h * d.kernel_w * cin_g * (by_group ? cout_g : 1);
  // At least 8 output channels, or 2 groups; the first and last ones always.
  const std::vector<std::int64_t> picked =
      pick(units, clamp_units(budget, per_unit, by_group ? 2 : 8, units), by_group ? 1 : 4, r);
  s.full_outputs = pixels * d.out_c;
  if (static_cast<std::int64_t>(picked.size()) == units) {
    s.whole = true;
    s.description = "every output";
    return Status::Ok();
  }
  // The output channels of the sample, in order.
  std::vector<std::int64_t> channels;
  for (std::int64_t u : picked) {
    if (!by_group) {
      channels.push_back(u);
    } else {
      for (std::int64_t j = 0; j < cout_g; ++j) channels.push_back(u * cout_g + j);
    }
  }
  conv2d_problem p;
  p.desc = d;
  p.desc.out_c = static_cast<std::int64_t>(channels.size());
  if (by_group) {
    p.desc.groups = static_cast<std::int64_t>(picked.size());
    p.desc.in_c = p.desc.groups * cin_g;
  }
  const std::int64_t w_row = d.kernel_h * d.kernel_w * cin_g;
  const std::int64_t in_pixels = d.batch * d.in_h * d.in_w;
  if (!p.weights.allocate(p.desc.out_c * w_row) || !p.input.allocate(in_pixels * p.desc.in_c)) {
    return no_memory("the sample", p.desc.out_c * w_row + in_pixels * p.desc.in_c);
  }
  for (std::size_t j = 0; j < channels.size(); ++j) {
    std::memcpy(p.weights.data() + static_cast<std::int64_t>(j) * w_row,
                f.weights.data() + channels[j] * w_row, static_cast<std::size_t>(w_row));
  }
  if (!by_group) {
    std::memcpy(p.input.data(), f.input.data(), static_cast<std::size_t>(in_pixels * d.in_c));
  } else {
    for (std::int64_t px = 0; px < in_pixels; ++px) {
      for (std::size_t gi = 0; gi < picked.size(); ++gi) {
        std::memcpy(p.input.data() + px * p.desc.in_c + static_cast<std::int64_t>(gi) * cin_g,
                    f.input.data() + px * d.in_c + picked[gi] * cin_g,
                    static_cast<std::size_t>(cin_g));
      }
    }
  }
  p.w_scale = gather(f.w_scale, channels);
  p.w_zero_point = gather(f.w_zero_point, channels);
  p.bias = gather(f.bias, channels);
  for (std::int64_t px = 0; px < pixels; ++px) {
    for (std::int64_t c : channels) s.map.push_back(px * d.out_c + c);
  }
  s.description =
      by_group ? fmt::format("{} of {} groups ({} of {} channels), every pixel", picked.size(),
                             d.groups, channels.size(), d.out_c)
               : fmt::format("{} of {} output channels, every pixel", channels.size(), d.out_c);
  s.reduced = std::move(p);
  return Status::Ok();
}

// Attention: whole KV heads with every query head that reads them; every row of those heads.
Status sample_attention(const attention_problem& f, std::int64_t budget, fast_rng& r, sample& s) {
  const attention_desc& d = f.desc;
  const std::int64_t group = d.q_heads / d.kv_heads, dv = d.value_dim();
  const std::int64_t per_kv = d.batch * group * d.q_len * d.kv_len * (d.head_dim + dv);
  const std::vector<std::int64_t> kvs =
      pick(d.kv_heads, clamp_units(budget, per_kv, 1, d.kv_heads), 1, r);
  s.full_outputs = d.batch * d.q_heads * d.q_len * dv;
  if (static_cast<std::int64_t>(kvs.size()) == d.kv_heads) {
    s.whole = true;
    s.description = "every output";
    return Status::Ok();
  }
  std::vector<std::int64_t> qs;
  for (std::int64_t kv : kvs) {
    for (std::int64_t j = 0; j < group; ++j) qs.push_back(kv * group + j);
  }
  attention_problem p;
  p.desc = d;
  p.desc.kv_heads = static_cast<std::int64_t>(kvs.size());
  p.desc.q_heads = static_cast<std::int64_t>(qs.size());
  p.desc.causal_offset = d.resolved_causal_offset();
  const std::int64_t qe = d.q_type == dtype::s8 ? 1 : 4, ke = d.kv_type == dtype::s8 ? 1 : 4;
  const std::int64_t q_head = d.q_len * d.head_dim * qe, k_head = d.kv_len * d.head_dim * ke;
  const std::int64_t v_head = d.kv_len * dv * ke;
  const auto nq = static_cast<std::int64_t>(qs.size()), nk = static_cast<std::int64_t>(kvs.size());
  if (!p.q.allocate(d.batch * nq * q_head) || !p.k.allocate(d.batch * nk * k_head) ||
      !p.v.allocate(d.batch * nk * v_head)) {
    return no_memory("the sample", d.batch * (nq * q_head + nk * (k_head + v_head)));
  }
  // Copies whole heads of [B, H, S, D] tensors; `heads` are the full tensor's head indices.
  const auto copy_heads = [&](aligned_bytes& dst, const aligned_bytes& src, std::int64_t full_h,
                              const std::vector<std::int64_t>& heads, std::int64_t head_bytes) {
    const auto n = static_cast<std::int64_t>(heads.size());
    for (std::int64_t b = 0; b < d.batch; ++b) {
      for (std::int64_t i = 0; i < n; ++i) {
        std::memcpy(dst.data() + (b * n + i) * head_bytes,
                    src.data() + (b * full_h + heads[static_cast<std::size_t>(i)]) * head_bytes,
                    static_cast<std::size_t>(head_bytes));
      }
    }
  };
  copy_heads(p.q, f.q, d.q_heads, qs, q_head);
  copy_heads(p.k, f.k, d.kv_heads, kvs, k_head);
  copy_heads(p.v, f.v, d.kv_heads, kvs, v_head);
  // Scales follow their tensor's heads (per_token: [B, H, S] blocks).
  const auto scales = [&](const std::vector<float>& src, scale_granularity g, std::int64_t full_h,
                          const std::vector<std::int64_t>& heads, std::int64_t len) {
    if (src.empty() || g == scale_granularity::per_tensor) return src;
    std::vector<float> v;
    for (std::int64_t b = 0; b < (g == scale_granularity::per_token ? d.batch : 1); ++b) {
      for (std::int64_t h : heads) {
        if (g == scale_granularity::per_head) {
          v.push_back(src[static_cast<std::size_t>(h)]);
        } else {
          const auto first = src.begin() + (b * full_h + h) * len;
          v.insert(v.end(), first, first + len);
        }
      }
    }
    return v;
  };
  p.q_scale = scales(f.q_scale, d.q_scale, d.q_heads, qs, d.q_len);
  p.k_scale = scales(f.k_scale, d.kv_scale, d.kv_heads, kvs, d.kv_len);
  p.v_scale = scales(f.v_scale, d.kv_scale, d.kv_heads, kvs, d.kv_len);
  for (std::int64_t b = 0; b < d.batch; ++b) {
    for (std::int64_t h : qs) {
      for (std::int64_t e = 0; e < d.q_len * dv; ++e) {
        s.map.push_back((b * d.q_heads + h) * d.q_len * dv + e);
      }
    }
  }
  s.description = fmt::format("{} of {} KV heads ({} of {} query heads), every row", kvs.size(),
                              d.kv_heads, qs.size(), d.q_heads);
  s.reduced = std::move(p);
  return Status::Ok();
}

}  // namespace

Status make_sample(const problem& full, std::int64_t mac_budget, std::uint64_t seed, sample& out) {
  out = sample{};
  fast_rng r(seed, 0x5A3B1E);
  return std::visit(
      overloaded{
          [&](const matmul_i8_problem& p) { return sample_matmul_i8(p, mac_budget, r, out); },
          [&](const matmul_i4_problem& p) { return sample_matmul_i4(p, mac_budget, r, out); },
          [&](const conv2d_problem& p) { return sample_conv2d(p, mac_budget, r, out); },
          [&](const attention_problem& p) { return sample_attention(p, mac_budget, r, out); }},
      full);
}

}  // namespace keel::envelope
