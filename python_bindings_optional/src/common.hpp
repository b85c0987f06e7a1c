// python_bindings_optional/src/common.hpp — what the binding's translation units share: the
// error path (keel::Status -> keel.KeelError), dtype names, numpy arrays as keel views, and
// the per-call argument helpers.
//
// Error path. Every check the binding makes itself (an array rank keel's views cannot hold, a
// dtype numpy has and keel lacks, a zero point past int32) builds a keel::Status in keel's own
// words ("op: what was wrong (rule)") and throws it as status_error; keel's own validation
// failures are thrown the same way. One translator turns status_error into keel.KeelError, a
// ValueError subclass carrying the Status text as its message and the status code as `code`.
// Nothing is written to an output before the call's Status is known: outputs the binding
// allocates are returned only on success, and keel writes nothing into a caller's `out` on
// failure.
//
// Arrays. Inputs are taken zero-copy: numpy's strides become the view's strides (element
// units). Two layouts keel's views cannot describe are copied first, which is the only copy a
// call makes of an input: a negative stride (a reversed slice) and a non-array (a list). Outputs
// are either allocated here (numpy.empty) or the caller's `out` array, written in place through
// its strides.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>

#include "keel/keel.hpp"

namespace keel::python {

namespace nb = nanobind;

// ---- errors -------------------------------------------------------------------------------

// A failed keel::Status on its way to Python.
struct status_error {
  Status status;
};

// Throws unless `s` is ok.
inline void check(const Status& s) {
  if (!s.ok()) throw status_error{s};
}

// Throws a Status built like keel's own: "op: message".
[[noreturn, gnu::format(printf, 3, 4)]] void fail(status_code code, std::string_view op,
                                                  const char* fmt, ...);

// Registers keel.KeelError and its translator on the module.
void register_errors(nb::module_& m);

// str(h) as UTF-8 ("?" if str() raises).
std::string text_of(nb::handle h);

// ---- dtypes -------------------------------------------------------------------------------

// A dtype argument: keel's names ("s8", "u8", "s4", "u4", "s32", "f32", "f16") or anything
// numpy.dtype() accepts (np.int8, "int8", np.dtype("float32"), ...).
dtype parse_dtype(nb::handle h, std::string_view op, const char* what);

// numpy's name of a keel dtype ("int8", ...); s4/u4 have none and map to "uint8" storage.
const char* numpy_name(dtype t);

// ---- arrays -------------------------------------------------------------------------------

using ro_array = nb::ndarray<nb::ro, nb::device::cpu>;
using rw_array = nb::ndarray<nb::device::cpu>;

// An input operand: the view and the Python object that keeps its memory alive.
struct input {
  nb::object owner;
  const_tensor_view view;
  int ndim() const { return view.rank; }
  std::int64_t dim(int i) const { return view.dim(i); }
  bool present() const { return owner.is_valid() && !owner.is_none(); }
};

// An output operand: either allocated by the binding or the caller's `out`.
struct output {
  nb::object owner;
  tensor_view view;
};

// Views `obj` (any array-like) without copying when numpy's layout allows. Rejects dtypes keel
// lacks and ranks above 4 with a Status naming op and operand.
input as_input(nb::handle obj, std::string_view op, const char* name);
// As as_input, for an operand that may be None (the view stays empty then).
input as_optional_input(nb::handle obj, std::string_view op, const char* name);

// The caller's `out` when given (its dtype must be `type` and its shape `shape`; keel's
// validation reports any mismatch), else a new numpy array of that shape and dtype.
output make_output(nb::handle out, std::span<const std::int64_t> shape, dtype type,
                   std::string_view op);

// Packed int4 storage: a uint8 array [..., ceil(K/2)] viewed as s4/u4 [..., K] (K given, or
// twice the bytes of a row when k < 0). The innermost byte stride must be 1 (checked).
input as_int4_input(nb::handle obj, dtype t, std::int64_t k, std::string_view op, const char* name);

// ---- per-call parameters -------------------------------------------------------------------

// Small per-channel arrays (scales, zero points, bias): a scalar or any 1-D-able array-like,
// copied into a vector the call's spans point into. None gives an empty vector.
std::vector<float> as_float_list(nb::handle obj, std::string_view op, const char* name);
std::vector<std::int32_t> as_int32_list(nb::handle obj, std::string_view op, const char* name);

// A Python int that must fit int32 (zero points, clamps); None gives `absent`.
std::int32_t as_int32(nb::handle obj, std::int32_t absent, std::string_view op, const char* name);

// Requantization mode from "fixed_point" or "float_scale".
requant_mode parse_requant(std::string_view s, std::string_view op);

// The output stage of matmul_i8 and conv2d_i8 from the Python keywords.
output_quant make_output_quant(dtype type, double scale, nb::handle zero_point,
                               nb::handle clamp_min, nb::handle clamp_max, std::string_view requant,
                               std::string_view op);

}  // namespace keel::python
