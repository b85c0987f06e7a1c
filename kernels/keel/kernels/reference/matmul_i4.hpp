// keel/kernels/reference/matmul_i4.hpp — the oracle for matmul_i4.
// PLACEHOLDER: the reference kernel is being written; until then it validates and reports
// unsupported, so nothing builds on it by mistake.
#pragma once

#include "keel/ops.hpp"

namespace keel::reference {

inline Status matmul_i4(const matmul_i4_desc& d, const matmul_i4_args& a) {
  KEEL_RETURN_IF_ERROR(validate(d, a));
  return Status::make(status_code::unsupported, "matmul_i4", "reference kernel not yet written");
}

}  // namespace keel::reference
