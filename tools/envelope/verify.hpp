// tools/envelope/verify.hpp — does a backend's output agree with the reference, by the rule
// docs/semantics.md states for that op and output type?
//
//   integer outputs (s32, s8, u8) of every op, and the f32 outputs of matmul_i8 and conv2d_i8:
//     identical bits;
//   matmul_i4, f32 output: |got - ref| <= gamma(G + groups + 1) * (sum_k |A s (W - z)| + |bias|)
//     with f32 activations, gamma(groups + 2) * (sum_g |isum_g a_scale s| + |bias|) with dynamic
//     int8 activations (the quantized row and the int32 group sums are exact on every backend;
//     only the f32 sum over groups may be ordered differently); gamma(n) = n u / (1 - n u),
//     u = 2^-24;
//   attention, f32 output: |got - ref| <= 1e-5 * max |V| over the keys the row sees; a row that
//     sees no key must be exactly 0;
//   attention, s8 output: within one quantum (x / out_scale may round the other way when x moves
//     within the f32 bound).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "workloads.hpp"

namespace keel::envelope {

struct check_result {
  std::string rule;          // "bit-exact", "f32 bound (semantics.md)", ...
  bool exact_rule = true;    // the rule is bit-exactness
  std::int64_t checked = 0;  // output elements compared
  std::int64_t mismatches = 0;
  std::int64_t not_identical = 0;  // within the bound but not bit-identical (bound rules only)
  double max_abs_diff = 0;
  std::string first_mismatch;  // "out[0, 17] = 12, reference 13"
};

// Compares `got` with `reference`. `oracle` is the problem the reference computed (the sample's
// reduced problem, or the full problem when the sample is whole); `reference` is its output. When
// `map` is empty, `got` is an output of `oracle` itself; otherwise `got` is the full problem's
// output and reference element i is compared with got[map[i]]. `full` names the full problem's
// desc, for the coordinates in `first_mismatch`.
check_result check_output(const problem& oracle, const void* reference, const void* got,
                          const std::vector<std::int64_t>& map, const op_desc& full);

// The tolerance of each output element of `p` under the rule above (0: bit-exact).
std::vector<double> tolerances(const problem& p);

// The coordinates of flat output element `index` of `d`: "[0, 17]" or "[0, 55, 12, 31]".
std::string output_coordinates(const op_desc& d, std::int64_t index);

}  // namespace keel::envelope
