// python_bindings_optional/src/module.cpp — the extension module keel._keel. The package `keel`
// (keel/__init__.py) re-exports it; see docs/python.md for the tour.
#include "common.hpp"
#include "keel/version.hpp"
#include "system.hpp"

namespace keel::python {
void bind_ops(nb::module_& m);
}  // namespace keel::python

NB_MODULE(_keel, m) {
  m.doc() =
      "keel's int8/int4 kernels on numpy arrays: matmul_i8, matmul_i4, conv2d_i8, attention and\n"
      "the ONNX quantize ops, on the backends built in (keel.backends()) or through a router\n"
      "(keel.Router), with weights packed once (pack_matmul_i8, pack_matmul_i4). Bad input\n"
      "raises keel.KeelError with keel's Status text and writes nothing.";
  m.attr("__version__") = KEEL_VERSION_STRING;
  keel::python::register_errors(m);
  keel::python::bind_system(m);
  keel::python::bind_ops(m);
}
