// python_bindings_optional/src/arrays.cpp — numpy arrays as keel views, dtype names, the error
// path, and the small per-call parameter lists (see common.hpp).
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <limits>

#include "common.hpp"

namespace keel::python {

// ---- errors -------------------------------------------------------------------------------

namespace {
PyObject* g_keel_error = nullptr;  // keel.KeelError, owned by the module after registration

// Raises keel.KeelError(message) with `code` set to the status code's name.
void raise_status(const Status& s) {
  PyObject* exc = PyObject_CallFunction(g_keel_error, "s", s.message());
  if (exc == nullptr) return;  // the call itself raised (out of memory): keep that error
  const std::string_view code = to_string(s.code());
  PyObject* code_str =
      PyUnicode_FromStringAndSize(code.data(), static_cast<Py_ssize_t>(code.size()));
  if (code_str != nullptr) {
    PyObject_SetAttrString(exc, "code", code_str);
    Py_DECREF(code_str);
  }
  PyErr_SetObject(g_keel_error, exc);
  Py_DECREF(exc);
}
}  // namespace

void fail(status_code code, std::string_view op, const char* fmt, ...) {
  char text[Status::kMessageCapacity];
  std::va_list args;
  va_start(args, fmt);
  std::vsnprintf(text, sizeof text, fmt, args);
  va_end(args);
  throw status_error{Status::make(code, op, "%s", text)};
}

void register_errors(nb::module_& m) {
  g_keel_error = PyErr_NewExceptionWithDoc(
      "keel.KeelError",
      "A keel op rejected its input. str(e) is keel's Status text, 'op: what was wrong (rule)'; "
      "e.code names the class of failure ('invalid argument', 'shape mismatch', 'overflow', "
      "'unsupported', ...). Nothing was written to any output.",
      PyExc_ValueError, nullptr);
  if (g_keel_error == nullptr) throw nb::python_error();
  m.attr("KeelError") = nb::handle(g_keel_error);
  nb::register_exception_translator(
      [](const std::exception_ptr& p, void*) {
        try {
          std::rethrow_exception(p);
        } catch (const status_error& e) {
          raise_status(e.status);
        }
      },
      nullptr);
}

// ---- dtypes -------------------------------------------------------------------------------

namespace {
// keel dtype of a DLPack dtype, or false for the ones keel lacks.
bool from_dlpack(nb::dlpack::dtype t, dtype* out) {
  using code = nb::dlpack::dtype_code;
  if (t.lanes != 1) return false;
  const auto c = static_cast<code>(t.code);
  if (c == code::Int && t.bits == 8)
    *out = dtype::s8;
  else if (c == code::UInt && t.bits == 8)
    *out = dtype::u8;
  else if (c == code::Int && t.bits == 32)
    *out = dtype::s32;
  else if (c == code::Float && t.bits == 32)
    *out = dtype::f32;
  else if (c == code::Float && t.bits == 16)
    *out = dtype::f16;
  else
    return false;
  return true;
}

nb::module_ numpy() {
  return nb::module_::import_("numpy");
}
}  // namespace

std::string text_of(nb::handle h) {
  // str(h); nb::str(handle) only borrows an object that is already a str.
  const nb::str s = nb::steal<nb::str>(PyObject_Str(h.ptr()));
  if (!s.is_valid()) {
    PyErr_Clear();
    return "?";
  }
  return s.c_str();
}

const char* numpy_name(dtype t) {
  switch (t) {
    case dtype::s8: return "int8";
    case dtype::u8: return "uint8";
    case dtype::s32: return "int32";
    case dtype::f32: return "float32";
    case dtype::f16: return "float16";
    case dtype::s4:
    case dtype::u4: return "uint8";
  }
  return "?";
}

dtype parse_dtype(nb::handle h, std::string_view op, const char* what) {
  if (nb::isinstance<nb::str>(h)) {
    const std::string s = nb::cast<std::string>(h);
    for (dtype t :
         {dtype::s8, dtype::u8, dtype::s4, dtype::u4, dtype::s32, dtype::f32, dtype::f16}) {
      if (s == to_string(t)) return t;
    }
  }
  nb::object np_dtype;
  try {
    np_dtype = numpy().attr("dtype")(h);
  } catch (const nb::python_error&) {
    fail(status_code::invalid_argument, op, "%s %s is not a dtype", what,
         nb::str(nb::repr(h)).c_str());
  }
  const std::string kind = nb::cast<std::string>(np_dtype.attr("kind"));
  const int size = nb::cast<int>(np_dtype.attr("itemsize"));
  if (kind == "i" && size == 1) return dtype::s8;
  if (kind == "u" && size == 1) return dtype::u8;
  if (kind == "i" && size == 4) return dtype::s32;
  if (kind == "f" && size == 4) return dtype::f32;
  if (kind == "f" && size == 2) return dtype::f16;
  fail(status_code::unsupported, op, "%s %s (keel has int8, uint8, int32, float32, float16)", what,
       text_of(np_dtype).c_str());
}

// ---- arrays -------------------------------------------------------------------------------

namespace {
// numpy's view of obj, copied only when a stride is negative (keel's strides are >= 0).
nb::object as_numpy(nb::handle obj) {
  nb::module_ np = numpy();
  nb::object arr = np.attr("asarray")(obj);
  const nb::tuple strides = nb::cast<nb::tuple>(arr.attr("strides"));
  for (nb::handle s : strides) {
    if (nb::cast<std::int64_t>(s) < 0) return np.attr("ascontiguousarray")(arr);
  }
  return arr;
}

std::string dtype_text(nb::handle arr) {
  return text_of(arr.attr("dtype"));
}

// Shape and strides of a DLPack-described array into a view; rank checked by the caller.
template <class View, class Array>
void fill_view(View& v, const Array& a) {
  v.rank = static_cast<int>(a.ndim());
  for (int i = 0; i < v.rank; ++i) {
    v.shape[static_cast<std::size_t>(i)] =
        static_cast<std::int64_t>(a.shape(static_cast<std::size_t>(i)));
    v.strides[static_cast<std::size_t>(i)] = a.stride(static_cast<std::size_t>(i));
  }
}

void require_rank(std::string_view op, const char* name, std::size_t ndim) {
  if (ndim > static_cast<std::size_t>(kMaxRank)) {
    fail(status_code::invalid_argument, op, "%s has rank %zu (keel views hold at most %d)", name,
         ndim, kMaxRank);
  }
}
}  // namespace

input as_input(nb::handle obj, std::string_view op, const char* name) {
  if (obj.is_none()) fail(status_code::invalid_argument, op, "%s is None", name);
  nb::object arr = as_numpy(obj);
  ro_array a;
  if (!nb::try_cast<ro_array>(arr, a)) {
    fail(status_code::unsupported, op, "%s of dtype %s cannot be viewed", name,
         dtype_text(arr).c_str());
  }
  input in;
  in.owner = arr;
  if (!from_dlpack(a.dtype(), &in.view.type)) {
    fail(status_code::unsupported, op,
         "%s has dtype %s (keel has int8, uint8, int32, float32, "
         "float16)",
         name, dtype_text(arr).c_str());
  }
  require_rank(op, name, a.ndim());
  fill_view(in.view, a);
  in.view.data = a.data();
  return in;
}

input as_optional_input(nb::handle obj, std::string_view op, const char* name) {
  if (obj.is_none()) return input{};
  return as_input(obj, op, name);
}

output make_output(nb::handle out, std::span<const std::int64_t> shape, dtype type,
                   std::string_view op) {
  output o;
  if (out.is_none()) {
    nb::list dims;
    for (std::int64_t d : shape) dims.append(d);
    o.owner = numpy().attr("empty")(nb::tuple(dims), numpy_name(type));
  } else {
    o.owner = nb::borrow(out);
  }
  rw_array a;
  if (!nb::try_cast<rw_array>(o.owner, a)) {
    fail(status_code::invalid_argument, op, "out must be a writable numpy array (got %s)",
         nb::repr(out.type()).c_str());
  }
  if (!from_dlpack(a.dtype(), &o.view.type)) {
    fail(status_code::unsupported, op, "out has dtype %s (must be %s)", dtype_text(o.owner).c_str(),
         numpy_name(type));
  }
  require_rank(op, "out", a.ndim());
  fill_view(o.view, a);
  o.view.data = a.data();
  return o;
}

input as_int4_input(nb::handle obj, dtype t, std::int64_t k, std::string_view op,
                    const char* name) {
  input in = as_input(obj, op, name);
  const_tensor_view& v = in.view;
  if (v.type != dtype::u8) {
    fail(status_code::invalid_argument, op,
         "%s has dtype %s (packed int4 is uint8 bytes, two elements a byte, low nibble first)",
         name, dtype_text(in.owner).c_str());
  }
  if (v.rank < 1) fail(status_code::invalid_argument, op, "%s has rank 0", name);
  const int last = v.rank - 1;
  if (v.dim(last) > 1 && v.stride(last) != 1) {
    fail(status_code::invalid_argument, op,
         "%s: the bytes of a row are %lld apart (packed int4 rows must be dense)", name,
         static_cast<long long>(v.stride(last)));
  }
  const std::int64_t bytes = v.dim(last);
  if (k < 0) k = 2 * bytes;
  if ((k + 1) / 2 != bytes) {
    fail(status_code::shape_mismatch, op, "%s rows hold %lld bytes (K = %lld needs %lld)", name,
         static_cast<long long>(bytes), static_cast<long long>(k),
         static_cast<long long>((k + 1) / 2));
  }
  // Bytes -> nibbles: the innermost dim counts K elements, outer strides double.
  v.type = t;
  v.shape[static_cast<std::size_t>(last)] = k;
  v.strides[static_cast<std::size_t>(last)] = 1;
  for (int i = 0; i < last; ++i) v.strides[static_cast<std::size_t>(i)] *= 2;
  return in;
}

// ---- per-call parameters -------------------------------------------------------------------

namespace {
nb::list flat_list(nb::handle obj) {
  return nb::cast<nb::list>(numpy().attr("ravel")(numpy().attr("asarray")(obj)).attr("tolist")());
}
}  // namespace

std::vector<float> as_float_list(nb::handle obj, std::string_view op, const char* name) {
  std::vector<float> v;
  if (obj.is_none()) return v;
  for (nb::handle x : flat_list(obj)) {
    double d = 0;
    if (!nb::try_cast<double>(x, d)) {
      fail(status_code::invalid_argument, op, "%s holds %s (must be numbers)", name,
           nb::str(nb::repr(x)).c_str());
    }
    v.push_back(static_cast<float>(d));
  }
  return v;
}

std::vector<std::int32_t> as_int32_list(nb::handle obj, std::string_view op, const char* name) {
  std::vector<std::int32_t> v;
  if (obj.is_none()) return v;
  for (nb::handle x : flat_list(obj)) v.push_back(as_int32(x, 0, op, name));
  return v;
}

std::int32_t as_int32(nb::handle obj, std::int32_t absent, std::string_view op, const char* name) {
  if (obj.is_none()) return absent;
  if (nb::isinstance<nb::float_>(obj) || nb::isinstance<nb::bool_>(obj)) {
    fail(status_code::invalid_argument, op, "%s = %s (must be an integer)", name,
         nb::str(nb::repr(obj)).c_str());
  }
  std::int64_t v = 0;
  nb::object as_int;
  try {
    as_int = nb::steal(PyNumber_Index(obj.ptr()));
    if (!as_int.is_valid()) throw nb::python_error();
  } catch (const nb::python_error&) {
    fail(status_code::invalid_argument, op, "%s = %s (must be an integer)", name,
         nb::str(nb::repr(obj)).c_str());
  }
  if (!nb::try_cast<std::int64_t>(as_int, v) || v < std::numeric_limits<std::int32_t>::min() ||
      v > std::numeric_limits<std::int32_t>::max()) {
    fail(status_code::invalid_argument, op, "%s = %s is outside int32", name,
         text_of(as_int).c_str());
  }
  return static_cast<std::int32_t>(v);
}

requant_mode parse_requant(std::string_view s, std::string_view op) {
  if (s == "fixed_point") return requant_mode::fixed_point;
  if (s == "float_scale") return requant_mode::float_scale;
  fail(status_code::invalid_argument, op,
       "requant = '%.*s' (must be 'fixed_point' or "
       "'float_scale')",
       static_cast<int>(s.size()), s.data());
}

output_quant make_output_quant(dtype type, double scale, nb::handle zero_point,
                               nb::handle clamp_min, nb::handle clamp_max, std::string_view requant,
                               std::string_view op) {
  output_quant o;
  o.type = type;
  o.mode = parse_requant(requant, op);
  o.scale = static_cast<float>(scale);
  o.zero_point = as_int32(zero_point, 0, op, "output zero point");
  o.clamp_min = as_int32(clamp_min, std::numeric_limits<std::int32_t>::min(), op, "clamp_min");
  o.clamp_max = as_int32(clamp_max, std::numeric_limits<std::int32_t>::max(), op, "clamp_max");
  return o;
}

}  // namespace keel::python
