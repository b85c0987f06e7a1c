// keel/kernels/reference/conv2d_i8.hpp — the oracle for conv2d_i8.
// PLACEHOLDER: the reference kernel is being written; until then it validates and reports
// unsupported, so nothing builds on it by mistake.
#pragma once

#include "keel/ops.hpp"

namespace keel::reference {

inline Status conv2d_i8(const conv2d_desc& d, const conv2d_args& a) {
  KEEL_RETURN_IF_ERROR(validate(d, a));
  return Status::make(status_code::unsupported, "conv2d_i8", "reference kernel not yet written");
}

}  // namespace keel::reference
