// keel-tour: runs every reference op of keel once on model-shaped inputs and prints one line per
// op: the op, its dtypes, the workload and shape, the time, the rate, a checksum of the output
// and the Status. It is the smallest end-to-end proof that the SDK builds, links and computes;
// the envelope profiler (keel-envelope) will replace it as the main program.
//
// Inputs are seeded (--seed): for one seed, a checksum repeats from run to run. The checksums of
// integer outputs (and of matmul_i8's f32 output) are keel's contract: any backend must give the
// same bits. Those of the other f32 outputs (matmul_i4, f32 attention) may differ between
// compilers and math libraries, within the bounds docs/semantics.md states.
//
// Exit status: 0 when every op returned ok, 1 when any did not, 2 on a bad command line.
#include <fmt/core.h>
#include <CLI/CLI.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "keel/keel.hpp"

namespace {

using keel::dtype;
using keel::Status;

// ---- seeded inputs ------------------------------------------------------------------------

// One generator per op, from the run's seed and the op's index, so that adding an op to the tour
// does not change the inputs (and checksums) of the others.
class input_source {
 public:
  input_source(std::uint64_t seed, std::uint64_t op_index)
      : gen_(seed ^ ((op_index + 1) * 0x9E3779B97F4A7C15ull)) {}

  template <class T>
  std::vector<T> ints(std::size_t n, std::int64_t lo, std::int64_t hi) {
    std::uniform_int_distribution<std::int64_t> dist(lo, hi);
    std::vector<T> v(n);
    for (T& x : v) x = static_cast<T>(dist(gen_));
    return v;
  }
  std::vector<float> floats(std::size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (float& x : v) x = dist(gen_);
    return v;
  }
  // n packed 4-bit values in [lo, hi], two a byte, low nibble first (n even).
  std::vector<std::uint8_t> nibbles(std::size_t n, std::int32_t lo, std::int32_t hi) {
    std::uniform_int_distribution<std::int32_t> dist(lo, hi);
    std::vector<std::uint8_t> bytes((n + 1) / 2, 0);
    for (std::size_t i = 0; i < n; ++i) {
      keel::store_nibble(bytes.data(), static_cast<std::int64_t>(i), dist(gen_));
    }
    return bytes;
  }

 private:
  std::mt19937_64 gen_;
};

// FNV-1a, 64 bits, over the output bytes: cheap, order-sensitive, and enough to notice that two
// runs (or two backends, later) disagree.
class checksum {
 public:
  template <class T>
  checksum& add(const std::vector<T>& v) {
    return add_bytes(v.data(), v.size() * sizeof(T));
  }
  checksum& add_bytes(const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) {
      hash_ = (hash_ ^ b[i]) * 0x100000001B3ull;
    }
    return *this;
  }
  std::uint64_t value() const { return hash_; }

 private:
  std::uint64_t hash_ = 0xCBF29CE484222325ull;
};

// ---- one line per op ----------------------------------------------------------------------

struct op_line {
  std::string op;        // keel's op name
  std::string dtypes;    // inputs -> output, with the mode that matters
  std::string workload;  // which model layer the shape comes from
  std::string shape;
  double ops = 0;  // arithmetic operations of one run (2 per multiply-add), or elements
  double seconds = 0;
  std::uint64_t sum = 0;
  Status status;
};

class tour {
 public:
  tour(std::uint64_t seed, bool quick) : seed_(seed), quick_(quick) {}

  bool quick() const { return quick_; }
  input_source inputs() { return input_source(seed_, next_index_++); }

  // Times `run` (a callable returning Status) once and fills the line's time and status.
  template <class Run>
  void time(op_line& line, Run&& run) {
    const auto start = std::chrono::steady_clock::now();
    line.status = run();
    const auto stop = std::chrono::steady_clock::now();
    line.seconds = std::chrono::duration<double>(stop - start).count();
  }

  static void print_header() {
    fmt::print("{:<24} {:<36} {:<14} {:<28} {:>10} {:>8}  {:<16}  {}\n", "op", "dtypes", "workload",
               "shape", "time", "GOPS", "checksum", "status");
  }

  void report(const op_line& l) {
    ++count_;
    total_seconds_ += l.seconds;
    if (!l.status.ok()) ++failed_;
    const double gops = l.seconds > 0 ? l.ops / l.seconds * 1e-9 : 0.0;
    const std::string status =
        l.status.ok() ? std::string("ok")
                      : fmt::format("{}: {}", keel::to_string(l.status.code()), l.status.message());
    fmt::print("{:<24} {:<36} {:<14} {:<28} {:>7.2f} ms {:>8.3f}  {:016x}  {}\n", l.op, l.dtypes,
               l.workload, l.shape, l.seconds * 1e3, gops, l.status.ok() ? l.sum : 0, status);
    std::fflush(stdout);
  }

  int finish() const {
    fmt::print("\n{} ops: {} ok, {} failed; {:.2f} s inside the ops\n", count_, count_ - failed_,
               failed_, total_seconds_);
    return failed_ == 0 ? 0 : 1;
  }

 private:
  std::uint64_t seed_;
  bool quick_;
  std::uint64_t next_index_ = 0;
  int count_ = 0;
  int failed_ = 0;
  double total_seconds_ = 0;
};

op_line make_line(std::string op, std::string dtypes, std::string workload, std::string shape,
                  double ops) {
  op_line l;
  l.op = std::move(op);
  l.dtypes = std::move(dtypes);
  l.workload = std::move(workload);
  l.shape = std::move(shape);
  l.ops = ops;
  return l;
}

std::string str(dtype t) {
  return std::string(keel::to_string(t));
}

// The clamp that fuses ReLU6 into an 8-bit output: real values [0, 6] in the output's scale.
void fuse_relu6(keel::output_quant& o) {
  o.clamp_min = o.zero_point;
  o.clamp_max = o.zero_point + static_cast<std::int32_t>(std::lround(6.0 / o.scale));
}

// ---- matmul_i8: a MiniLM linear layer (hidden 384, 128 tokens) ------------------------------

struct matmul_i8_case {
  dtype a_type, b_type, out_type;
  keel::requant_mode mode;
  bool b_zero_points;  // per-column zero points (asymmetric u8 weights)
  bool relu;
};

void run_matmul_i8(tour& t, const matmul_i8_case& c) {
  const std::int64_t M = t.quick() ? 16 : 128, K = 384, N = t.quick() ? 48 : 384;
  input_source in = t.inputs();
  keel::matmul_i8_desc d;
  d.m = M;
  d.n = N;
  d.k = K;
  d.a_type = c.a_type;
  d.b_type = c.b_type;
  d.a_zero_point = c.a_type == dtype::u8 ? 131 : -3;
  d.a_scale = 0.021f;
  d.out.type = c.out_type;
  d.out.mode = c.mode;
  // Output scale: the accumulator's spread is about sqrt(K) * 74 * 74 for uniform 8-bit inputs,
  // so 4 sigma of the real value maps onto the 8-bit range and few outputs saturate.
  d.out.scale = 4.0f * std::sqrt(static_cast<float>(K)) * 74.0f * 74.0f * 0.021f * 0.01f / 127.0f;
  d.out.zero_point = c.out_type == dtype::u8 ? 128 : (c.out_type == dtype::s8 ? 5 : 0);
  if (c.relu) d.out.clamp_min = d.out.zero_point;

  // Random bytes, read as the requested 8-bit type: every value of its range occurs.
  std::vector<std::uint8_t> a_mem = in.ints<std::uint8_t>(static_cast<std::size_t>(M * K), 0, 255);
  std::vector<std::uint8_t> b_mem = in.ints<std::uint8_t>(static_cast<std::size_t>(K * N), 0, 255);
  if (c.b_type == dtype::s8) {
    for (std::uint8_t& b : b_mem) {
      if (b == 0x80) b = 0x81;  // symmetric s8 weights: -127..127, as quantizers produce them
    }
  }
  std::vector<float> b_scale = in.floats(static_cast<std::size_t>(N), 0.005f, 0.015f);
  std::vector<std::int32_t> b_zp;
  if (c.b_zero_points) b_zp = in.ints<std::int32_t>(static_cast<std::size_t>(N), 100, 156);
  std::vector<std::int32_t> bias =
      in.ints<std::int32_t>(static_cast<std::size_t>(N), -20000, 20000);

  keel::matmul_i8_args a;
  a.a = keel::const_tensor_view(a_mem.data(), c.a_type, {M, K});
  a.b = keel::const_tensor_view(b_mem.data(), c.b_type, {K, N});
  if (c.out_type != dtype::s32) a.b_scale = b_scale;
  a.b_zero_point = b_zp;
  a.bias = bias;
  const std::size_t out_bytes =
      static_cast<std::size_t>(M * N) * static_cast<std::size_t>(keel::bits_of(c.out_type) / 8);
  std::vector<std::uint8_t> out(out_bytes, 0);
  a.out = keel::tensor_view(out.data(), c.out_type, {M, N});

  op_line line;
  line.op = "matmul_i8";
  line.dtypes =
      fmt::format("{} x {}{} -> {}{}{}", str(c.a_type), str(c.b_type),
                  c.b_zero_points ? "(zp)" : "", str(c.out_type),
                  keel::is_quantized_8bit(c.out_type) ? fmt::format(" {}", keel::to_string(c.mode))
                                                      : std::string(),
                  c.relu ? " relu" : "");
  line.workload = "minilm.linear";
  line.shape = fmt::format("M={} K={} N={}", M, K, N);
  line.ops = 2.0 * static_cast<double>(M * N * K);
  keel::backends::reference_backend backend;
  t.time(line, [&] { return backend.run(d, a); });
  line.sum = checksum().add(out).value();
  t.report(line);
}

// ---- matmul_i4: one row of a 7B-class LLM's projection (K = 4096), decoding one token --------

void run_matmul_i4(tour& t, keel::i4_activation act) {
  const bool f32_act = act == keel::i4_activation::f32;
  const std::int64_t M = 1, K = 4096, N = t.quick() ? 64 : 1024;
  input_source in = t.inputs();
  keel::matmul_i4_desc d;
  d.m = M;
  d.n = N;
  d.k = K;
  // f32 activations: symmetric s4, groups of 32, f32 scales (GGUF Q4_0-like). Dynamic int8:
  // asymmetric u4 with zero points, groups of 128, f16 scales (ONNX MatMulNBits-like).
  d.b_type = f32_act ? dtype::s4 : dtype::u4;
  d.group_size = f32_act ? 32 : 128;
  d.scale_type = f32_act ? dtype::f32 : dtype::f16;
  d.activation = act;
  const std::int64_t G = d.groups();

  std::vector<float> a_mem = in.floats(static_cast<std::size_t>(M * K), -2.0f, 2.0f);
  std::vector<std::uint8_t> w = f32_act ? in.nibbles(static_cast<std::size_t>(N * K), -8, 7)
                                        : in.nibbles(static_cast<std::size_t>(N * K), 0, 15);
  std::vector<float> scale_f32 = in.floats(static_cast<std::size_t>(N * G), 0.002f, 0.02f);
  std::vector<keel::f16> scale_f16(scale_f32.size());
  for (std::size_t i = 0; i < scale_f32.size(); ++i) scale_f16[i] = keel::f32_to_f16(scale_f32[i]);
  std::vector<std::uint8_t> zp = in.ints<std::uint8_t>(static_cast<std::size_t>(N * G), 6, 10);
  std::vector<float> bias = in.floats(static_cast<std::size_t>(N), -0.5f, 0.5f);
  std::vector<float> out(static_cast<std::size_t>(M * N), 0.0f);

  keel::matmul_i4_args a;
  a.a = keel::view(static_cast<const float*>(a_mem.data()), {M, K});
  a.b = keel::view_int4(static_cast<const std::uint8_t*>(w.data()), d.b_type, {N, K});
  if (f32_act) {
    a.scale = keel::view(static_cast<const float*>(scale_f32.data()), {N, G});
  } else {
    a.scale = keel::view(static_cast<const keel::f16*>(scale_f16.data()), {N, G});
    a.zero_point = keel::view(static_cast<const std::uint8_t*>(zp.data()), {N, G});
  }
  a.bias = bias;
  a.out = keel::view(out.data(), {M, N});

  op_line line;
  line.op = "matmul_i4";
  line.dtypes = fmt::format("{} x {}{}/g{} {} -> f32", f32_act ? "f32" : "f32(dyn s8)",
                            str(d.b_type), f32_act ? "" : "(zp)", d.group_size, str(d.scale_type));
  line.workload = "llm7b.gemv";
  line.shape = fmt::format("M={} K={} N={}", M, K, N);
  line.ops = 2.0 * static_cast<double>(M * N * K);
  keel::backends::reference_backend backend;
  t.time(line, [&] { return backend.run(d, a); });
  line.sum = checksum().add(out).value();
  t.report(line);
}

// ---- conv2d_i8: the 56x56 stage of MobileNetV2 (expand, depthwise stride 2, project) --------

struct conv_case {
  const char* workload;
  std::int64_t in_hw, in_c, out_c, kernel, stride;
  bool depthwise;
  bool relu6;
  keel::requant_mode mode;
};

void run_conv2d(tour& t, const conv_case& c) {
  const std::int64_t hw = t.quick() ? c.in_hw / 4 : c.in_hw;
  input_source in = t.inputs();
  keel::conv2d_desc d;
  d.in_h = hw;
  d.in_w = hw;
  d.in_c = c.in_c;
  d.out_c = c.out_c;
  d.kernel_h = c.kernel;
  d.kernel_w = c.kernel;
  d.stride_h = c.stride;
  d.stride_w = c.stride;
  d.padding = c.kernel > 1 ? keel::padding_mode::same_upper : keel::padding_mode::explicit_pads;
  d.groups = c.depthwise ? c.in_c : 1;
  d.in_type = dtype::u8;
  d.w_type = dtype::s8;
  d.in_zero_point = 117;
  d.in_scale = 0.0235f;  // a ReLU6 output: [0, 6] over 255 steps
  d.out.type = dtype::u8;
  d.out.mode = c.mode;
  const std::int64_t taps = c.kernel * c.kernel * (c.in_c / d.groups);
  d.out.scale =
      4.0f * std::sqrt(static_cast<float>(taps)) * 74.0f * 73.0f * 0.0235f * 0.01f / 255.0f;
  d.out.zero_point = c.relu6 ? 0 : 121;
  if (c.relu6) fuse_relu6(d.out);

  const keel::conv2d_geometry g = keel::conv2d_output_geometry(d).value();
  const std::int64_t cg = c.in_c / d.groups;
  std::vector<std::uint8_t> x =
      in.ints<std::uint8_t>(static_cast<std::size_t>(hw * hw * c.in_c), 0, 255);
  std::vector<std::int8_t> w =
      in.ints<std::int8_t>(static_cast<std::size_t>(c.out_c * c.kernel * c.kernel * cg), -127, 127);
  std::vector<float> w_scale = in.floats(static_cast<std::size_t>(c.out_c), 0.005f, 0.015f);
  std::vector<std::int32_t> bias =
      in.ints<std::int32_t>(static_cast<std::size_t>(c.out_c), -5000, 5000);
  std::vector<std::uint8_t> out(static_cast<std::size_t>(g.out_h * g.out_w * c.out_c), 0);

  keel::conv2d_args a;
  a.input = keel::view(static_cast<const std::uint8_t*>(x.data()), {1, hw, hw, c.in_c});
  a.weights =
      keel::view(static_cast<const std::int8_t*>(w.data()), {c.out_c, c.kernel, c.kernel, cg});
  a.w_scale = w_scale;
  a.bias = bias;
  a.out = keel::view(out.data(), {1, g.out_h, g.out_w, c.out_c});

  op_line line;
  line.op = c.depthwise ? "conv2d_i8 (depthwise)" : "conv2d_i8";
  line.dtypes = fmt::format("u8 x s8 -> u8 {}{}", keel::to_string(c.mode), c.relu6 ? " relu6" : "");
  line.workload = c.workload;
  line.shape = fmt::format("{}x{}x{} k{} s{} -> {}x{}x{}", hw, hw, c.in_c, c.kernel, c.stride,
                           g.out_h, g.out_w, c.out_c);
  line.ops = 2.0 * static_cast<double>(g.out_h * g.out_w * c.out_c * taps);
  keel::backends::reference_backend backend;
  t.time(line, [&] { return backend.run(d, a); });
  line.sum = checksum().add(out).value();
  t.report(line);
}

// ---- attention: a MiniLM self-attention block (12 heads of 32, 128 tokens) -------------------

void run_attention(tour& t, bool int8_q) {
  const std::int64_t B = 1, H = 12, S = t.quick() ? 16 : 128, D = 32;
  input_source in = t.inputs();
  keel::attention_desc d;
  d.batch = B;
  d.q_heads = H;
  d.kv_heads = H;
  d.q_len = S;
  d.kv_len = S;
  d.head_dim = D;
  d.kv_type = dtype::s8;
  d.kv_scale = keel::scale_granularity::per_token;
  if (int8_q) {
    // Encoder self-attention, all int8: per-head Q scales, s8 output.
    d.q_type = dtype::s8;
    d.q_scale = keel::scale_granularity::per_head;
    d.out_type = dtype::s8;
    d.out_scale = 0.02f;
  } else {
    // Decoder style: f32 queries against an int8 KV cache, causal, f32 output.
    d.q_type = dtype::f32;
    d.mask = keel::mask_kind::causal;
    d.out_type = dtype::f32;
  }
  const std::size_t n_q = static_cast<std::size_t>(B * H * S * D);
  const std::size_t n_kv = static_cast<std::size_t>(B * H * S * D);
  std::vector<std::int8_t> q_s8 = in.ints<std::int8_t>(n_q, -127, 127);
  std::vector<float> q_f32 = in.floats(n_q, -1.5f, 1.5f);
  std::vector<std::int8_t> k = in.ints<std::int8_t>(n_kv, -127, 127);
  std::vector<std::int8_t> v = in.ints<std::int8_t>(n_kv, -127, 127);
  std::vector<float> q_scale = in.floats(static_cast<std::size_t>(H), 0.008f, 0.012f);
  std::vector<float> k_scale = in.floats(static_cast<std::size_t>(B * H * S), 0.008f, 0.012f);
  std::vector<float> v_scale = in.floats(static_cast<std::size_t>(B * H * S), 0.008f, 0.012f);
  std::vector<std::int8_t> out_s8(n_q, 0);
  std::vector<float> out_f32(n_q, 0.0f);

  keel::attention_args a;
  if (int8_q) {
    a.q = keel::view(static_cast<const std::int8_t*>(q_s8.data()), {B, H, S, D});
    a.q_scale = q_scale;
    a.out = keel::view(out_s8.data(), {B, H, S, D});
  } else {
    a.q = keel::view(static_cast<const float*>(q_f32.data()), {B, H, S, D});
    a.out = keel::view(out_f32.data(), {B, H, S, D});
  }
  a.k = keel::view(static_cast<const std::int8_t*>(k.data()), {B, H, S, D});
  a.v = keel::view(static_cast<const std::int8_t*>(v.data()), {B, H, S, D});
  a.k_scale = k_scale;
  a.v_scale = v_scale;

  op_line line;
  line.op = "attention";
  line.dtypes = int8_q ? "s8 Q/head, s8 KV/token -> s8" : "f32 Q, s8 KV/token, causal -> f32";
  line.workload = int8_q ? "minilm.attn" : "kvcache.attn";
  line.shape = fmt::format("B={} H={} S={} D={}", B, H, S, D);
  // Q K^T and P V, counted dense (the causal mask's skipped half included), softmax not counted.
  line.ops = 2.0 * 2.0 * static_cast<double>(B * H * S * S * D);
  keel::backends::reference_backend backend;
  t.time(line, [&] { return backend.run(d, a); });
  line.sum = int8_q ? checksum().add(out_s8).value() : checksum().add(out_f32).value();
  t.report(line);
}

// ---- quantize, dequantize, dynamic quantize: a MiniLM hidden state [tokens, 384] ------------

void run_quantize_ops(tour& t) {
  const std::int64_t rows = t.quick() ? 16 : 128, cols = 384;
  const std::size_t n = static_cast<std::size_t>(rows * cols);
  const std::string shape = fmt::format("{}x{}", rows, cols);

  {  // quantize_linear f32 -> s8, per tensor
    input_source in = t.inputs();
    std::vector<float> x = in.floats(n, -4.0f, 4.0f);
    const float scale[] = {4.0f / 127.0f};
    const std::int32_t zp[] = {0};
    std::vector<std::int8_t> y(n, 0);
    keel::quantize_args a;
    a.x = keel::view(static_cast<const float*>(x.data()), {rows, cols});
    a.scale = scale;
    a.zero_point = zp;
    a.y = keel::view(y.data(), {rows, cols});
    op_line line = make_line("quantize_linear", "f32 -> s8 per tensor", "minilm.hidden", shape,
                             static_cast<double>(n));
    t.time(line, [&] { return keel::reference::quantize_linear(keel::quantize_desc{}, a); });
    line.sum = checksum().add(y).value();
    t.report(line);
  }
  {  // quantize_linear f32 -> u8, per channel (axis 1)
    input_source in = t.inputs();
    std::vector<float> x = in.floats(n, -4.0f, 4.0f);
    std::vector<float> scale = in.floats(static_cast<std::size_t>(cols), 0.02f, 0.04f);
    std::vector<std::int32_t> zp = in.ints<std::int32_t>(static_cast<std::size_t>(cols), 120, 136);
    std::vector<std::uint8_t> y(n, 0);
    keel::quantize_args a;
    a.x = keel::view(static_cast<const float*>(x.data()), {rows, cols});
    a.scale = scale;
    a.zero_point = zp;
    a.y = keel::view(y.data(), {rows, cols});
    keel::quantize_desc d;
    d.axis = 1;
    op_line line = make_line("quantize_linear", "f32 -> u8 per channel", "minilm.hidden", shape,
                             static_cast<double>(n));
    t.time(line, [&] { return keel::reference::quantize_linear(d, a); });
    line.sum = checksum().add(y).value();
    t.report(line);
  }
  {  // dequantize_linear s8 -> f32, per tensor with a zero point
    input_source in = t.inputs();
    std::vector<std::int8_t> x = in.ints<std::int8_t>(n, -128, 127);
    const float scale[] = {0.0315f};
    const std::int32_t zp[] = {-4};
    std::vector<float> y(n, 0.0f);
    keel::dequantize_args a;
    a.x = keel::view(static_cast<const std::int8_t*>(x.data()), {rows, cols});
    a.scale = scale;
    a.zero_point = zp;
    a.y = keel::view(y.data(), {rows, cols});
    op_line line = make_line("dequantize_linear", "s8 -> f32 per tensor", "minilm.hidden", shape,
                             static_cast<double>(n));
    t.time(line, [&] { return keel::reference::dequantize_linear(keel::quantize_desc{}, a); });
    line.sum = checksum().add(y).value();
    t.report(line);
  }
  {  // dequantize_linear s32 -> f32, per channel: an accumulator row back to real values
    input_source in = t.inputs();
    std::vector<std::int32_t> x = in.ints<std::int32_t>(n, -300000, 300000);
    std::vector<float> scale = in.floats(static_cast<std::size_t>(cols), 1e-5f, 3e-5f);
    std::vector<float> y(n, 0.0f);
    keel::dequantize_args a;
    a.x = keel::view(static_cast<const std::int32_t*>(x.data()), {rows, cols});
    a.scale = scale;
    a.y = keel::view(y.data(), {rows, cols});
    keel::quantize_desc d;
    d.axis = 1;
    op_line line = make_line("dequantize_linear", "s32 -> f32 per channel", "minilm.hidden", shape,
                             static_cast<double>(n));
    t.time(line, [&] { return keel::reference::dequantize_linear(d, a); });
    line.sum = checksum().add(y).value();
    t.report(line);
  }
  {  // dynamic_quantize_linear f32 -> u8 with computed scale and zero point
    input_source in = t.inputs();
    std::vector<float> x = in.floats(n, -3.0f, 5.0f);
    std::vector<std::uint8_t> y(n, 0);
    float scale = 0.0f;
    std::uint8_t zp = 0;
    keel::dynamic_quantize_args a;
    a.x = keel::view(static_cast<const float*>(x.data()), {rows, cols});
    a.y = keel::view(y.data(), {rows, cols});
    a.scale = &scale;
    a.zero_point = &zp;
    op_line line = make_line("dynamic_quantize_linear", "f32 -> u8 (scale, zp)", "minilm.hidden",
                             shape, static_cast<double>(n));
    t.time(line, [&] { return keel::reference::dynamic_quantize_linear(a); });
    line.sum = checksum().add(y).add_bytes(&scale, sizeof scale).add_bytes(&zp, 1).value();
    t.report(line);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "keel-tour: runs every reference op of keel once on model-shaped inputs (MiniLM, a 7B LLM's\n"
      "GEMV, MobileNetV2) and prints per op: dtypes, shape, time, rate, output checksum, status.\n"
      "GOPS counts 2 operations per multiply-add (attention: Q*K^T and P*V, dense) and one per\n"
      "element for the (de)quantize ops. Exits 1 if any op does not return ok."};
  std::uint64_t seed = 1;
  bool quick = false;
  app.add_option("--seed", seed, "seed of the random inputs (checksums depend on it)")
      ->capture_default_str();
  app.add_flag("--quick", quick, "small shapes (same ops), for smoke tests and sanitizer builds");
  bool version = false;
  app.add_flag("--version", version, "print keel's version and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  if (version) {
    fmt::print("keel-tour {}\n", KEEL_VERSION_STRING);
    return 0;
  }

  fmt::print("keel-tour {}: the reference backend on model-shaped inputs (seed {}, {} shapes)\n\n",
             KEEL_VERSION_STRING, seed, quick ? "quick" : "full");
  tour t(seed, quick);
  tour::print_header();

  using keel::requant_mode;
  const matmul_i8_case matmuls[] = {
      {dtype::u8, dtype::s8, dtype::s32, requant_mode::fixed_point, false, false},
      {dtype::u8, dtype::s8, dtype::f32, requant_mode::fixed_point, false, false},
      {dtype::u8, dtype::s8, dtype::s8, requant_mode::fixed_point, false, false},
      {dtype::u8, dtype::s8, dtype::s8, requant_mode::float_scale, false, false},
      {dtype::u8, dtype::s8, dtype::u8, requant_mode::fixed_point, false, true},
      {dtype::s8, dtype::u8, dtype::u8, requant_mode::float_scale, true, false},
  };
  for (const matmul_i8_case& c : matmuls) run_matmul_i8(t, c);

  run_matmul_i4(t, keel::i4_activation::f32);
  run_matmul_i4(t, keel::i4_activation::dynamic_s8);

  const conv_case convs[] = {
      {"mbv2.expand", 56, 24, 144, 1, 1, false, true, requant_mode::fixed_point},
      {"mbv2.dw", 56, 144, 144, 3, 2, true, true, requant_mode::fixed_point},
      {"mbv2.project", 28, 144, 32, 1, 1, false, false, requant_mode::float_scale},
  };
  for (const conv_case& c : convs) run_conv2d(t, c);

  run_attention(t, /*int8_q=*/true);
  run_attention(t, /*int8_q=*/false);

  run_quantize_ops(t);
  return t.finish();
}
