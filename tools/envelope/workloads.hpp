// tools/envelope/workloads.hpp — the model-shaped workloads keel-envelope runs, the data they run
// on, and the sampled sub-problems the reference verifies them with.
//
// A *workload* is a name and an op desc: one layer of a real model (a 7B-class decoder layer at
// decode and prefill, MobileNetV2's convolutions, a MiniLM attention block). A *problem* is a
// workload with its operands allocated and filled from the run's seed. A *sample* is a smaller
// problem whose outputs are a subset of the full problem's outputs, element for element: the rows
// and columns of a matmul, the output channels (or groups) of a convolution, the KV heads of an
// attention. The scalar reference is far too slow for the full shapes (a 7B prefill layer is 56
// GOPs; the reference runs at tens of MMAC/s), so it computes the sample and every backend's
// full output is compared at the sample's positions.
#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "common.hpp"
#include "keel/ops.hpp"
#include "keel/router/cost_model.hpp"

namespace keel::envelope {

// ---- workloads (no data) -----------------------------------------------------------------------

using op_desc = std::variant<matmul_i8_desc, matmul_i4_desc, conv2d_desc, attention_desc>;

struct workload {
  std::string id;     // "llm7b.decode.qkv": model.phase.layer, unique
  std::string model;  // "7B-class decoder layer (Mistral-7B shapes)"
  std::string layer;  // "QKV projection (fused)"
  std::string phase;  // "decode", "prefill" or "inference"
  op_desc desc;
};

op_kind kind_of(const op_desc& d);
op_work work_of_desc(const op_desc& d);
dtype output_type(const op_desc& d);
std::int64_t output_elements(const op_desc& d);
// "M1 N6144 K4096", "112x112x32 -> 32, 3x3/1 dw", "Hq32 Hkv8 Sq1 Skv1024 D128 causal"
std::string shape_text(const op_desc& d);
// "u8 x s8 -> s8 (fixed point)", "f32 x s4 g32 f16 scales -> f32"
std::string dtype_text(const op_desc& d);

// The default set. quick: the same workloads (same ids) with shapes scaled down, for smoke tests
// and the sanitizer build.
std::vector<workload> default_workloads(bool quick);

// ---- problems (data) ---------------------------------------------------------------------------

struct matmul_i8_problem {
  matmul_i8_desc desc;
  aligned_bytes a, b;  // A [M, K] (batch 1), B [K, N]
  std::vector<float> b_scale;
  std::vector<std::int32_t> b_zero_point, bias;
  matmul_i8_args args(void* out) const;
};

struct matmul_i4_problem {
  matmul_i4_desc desc;
  aligned_bytes a;           // f32 [M, K]
  aligned_bytes b;           // nibbles [N, K], rows start on a byte (K rounded up to even)
  aligned_bytes scale;       // f32 or f16 [N, groups]
  aligned_bytes zero_point;  // u4 only, optional: u8 [N, groups]; empty when absent
  std::vector<float> bias;
  matmul_i4_args args(void* out) const;
};

struct conv2d_problem {
  conv2d_desc desc;
  aligned_bytes input;    // NHWC
  aligned_bytes weights;  // OHWI
  std::vector<float> w_scale;
  std::vector<std::int32_t> w_zero_point, bias;
  conv2d_args args(void* out) const;
};

struct attention_problem {
  attention_desc desc;  // mask none or causal (additive masks are not used by the workloads)
  aligned_bytes q, k, v;
  std::vector<float> q_scale, k_scale, v_scale;
  attention_args args(void* out) const;
};

using problem =
    std::variant<matmul_i8_problem, matmul_i4_problem, conv2d_problem, attention_problem>;

op_desc desc_of(const problem& p);

// Allocates and fills the operands of `d` from (seed, stream). Fails (out_of_memory) when an
// allocation fails; nothing is left allocated then.
Status materialize(const op_desc& d, std::uint64_t seed, std::uint64_t stream, problem& out);

// ---- samples -----------------------------------------------------------------------------------

struct sample {
  bool whole = false;  // the sample is the whole problem: `reduced` is empty, use the full one
  problem reduced;     // owns gathered copies of the sampled operands
  // reduced output element i is full output element map[i] (empty when whole)
  std::vector<std::int64_t> map;
  std::string description;  // "8 of 128 rows x 96 of 28672 columns"
  std::int64_t full_outputs = 0;
};

// Chooses rows/columns/channels/heads such that the reference's work on the sample is at most
// about `mac_budget` multiply-accumulates (never less than one of each unit), always keeping the
// first and the last unit (edge tiles) and a seeded random choice in between.
Status make_sample(const problem& full, std::int64_t mac_budget, std::uint64_t seed, sample& out);

// Bytes of one output element (s32/f32: 4; s8/u8: 1).
inline std::int64_t element_bytes(dtype t) {
  return t == dtype::s8 || t == dtype::u8 ? 1 : 4;
}

}  // namespace keel::envelope
