// keel/kernels/reference/attention.hpp — the oracle for attention.
// PLACEHOLDER: the reference kernel is being written; until then it validates and reports
// unsupported, so nothing builds on it by mistake.
#pragma once

#include "keel/ops.hpp"

namespace keel::reference {

inline Status attention(const attention_desc& d, const attention_args& a) {
  KEEL_RETURN_IF_ERROR(validate(d, a));
  return Status::make(status_code::unsupported, "attention", "reference kernel not yet written");
}

}  // namespace keel::reference
