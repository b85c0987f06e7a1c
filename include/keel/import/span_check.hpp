// keel/import/span_check.hpp — the size-and-null check every importer applies to its spans.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "keel/status.hpp"

namespace keel::import::detail {

// A span that must hold exactly `want` elements and, when non-empty, point somewhere.
template <class T>
Status check_span(std::string_view fn, const char* name, std::span<T> s, std::int64_t want,
                  const char* rule) {
  if (static_cast<std::int64_t>(s.size()) != want) {
    return Status::make(status_code::shape_mismatch, fn, "%s has %zu elements (must be %lld = %s)",
                        name, s.size(), static_cast<long long>(want), rule);
  }
  if (want > 0 && s.data() == nullptr) {
    return Status::make(status_code::invalid_argument, fn, "%s is null (%lld elements expected)",
                        name, static_cast<long long>(want));
  }
  return Status::Ok();
}

}  // namespace keel::import::detail
