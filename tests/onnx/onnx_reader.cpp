// tests/onnx/onnx_reader.cpp — the protobuf side of onnx_reader.hpp.
//
// Uses the classes generated from onnx.proto that libonnx-dev installs (libonnx_proto, built with
// ONNX_ML=1 and ONNX_NAMESPACE=onnx). A TensorProto carries its elements either in raw_data
// (fixed-width little-endian, per onnx.proto) or in one typed repeated field that depends on the
// data type (onnx.proto's table: float_data for FLOAT; int32_data for the integer types of 32
// bits or fewer, BOOL, FLOAT16 and BFLOAT16, the last two as bit patterns; int64_data for INT64;
// double_data for DOUBLE; uint64_data for UINT32 and UINT64). Both forms are handled.
#include "onnx/onnx_reader.hpp"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <bit>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

namespace keel::onnx_test {

namespace fs = std::filesystem;

std::string to_string(onnx_type t) {
  switch (t) {
    case onnx_type::undefined: return "UNDEFINED";
    case onnx_type::float32: return "FLOAT";
    case onnx_type::uint8: return "UINT8";
    case onnx_type::int8: return "INT8";
    case onnx_type::uint16: return "UINT16";
    case onnx_type::int16: return "INT16";
    case onnx_type::int32: return "INT32";
    case onnx_type::int64: return "INT64";
    case onnx_type::string: return "STRING";
    case onnx_type::boolean: return "BOOL";
    case onnx_type::float16: return "FLOAT16";
    case onnx_type::float64: return "DOUBLE";
    case onnx_type::uint32: return "UINT32";
    case onnx_type::uint64: return "UINT64";
    case onnx_type::complex64: return "COMPLEX64";
    case onnx_type::complex128: return "COMPLEX128";
    case onnx_type::bfloat16: return "BFLOAT16";
  }
  return "?";
}

std::size_t element_size(onnx_type t) {
  switch (t) {
    case onnx_type::uint8:
    case onnx_type::int8:
    case onnx_type::boolean: return 1;
    case onnx_type::uint16:
    case onnx_type::int16:
    case onnx_type::float16:
    case onnx_type::bfloat16: return 2;
    case onnx_type::float32:
    case onnx_type::int32:
    case onnx_type::uint32: return 4;
    case onnx_type::int64:
    case onnx_type::uint64:
    case onnx_type::float64: return 8;
    default: return 0;
  }
}

namespace {

bool fail(std::string* error, const std::string& what) {
  if (error != nullptr) *error = what;
  return false;
}

bool read_file(const std::string& path, std::string* bytes, std::string* error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return fail(error, "cannot open " + path);
  std::ostringstream ss;
  ss << in.rdbuf();
  if (!in.good() && !in.eof()) return fail(error, "cannot read " + path);
  *bytes = std::move(ss).str();
  return true;
}

// Appends `v` as `size` bytes of the element, in host order (the low bytes of v on any host).
template <class V>
void append_element(std::vector<unsigned char>* out, V v, std::size_t size) {
  unsigned char tmp[sizeof(V)];
  std::memcpy(tmp, &v, sizeof(V));
  if constexpr (std::endian::native == std::endian::little) {
    out->insert(out->end(), tmp, tmp + size);
  } else {
    out->insert(out->end(), tmp + sizeof(V) - size, tmp + sizeof(V));
  }
}

// Decodes a TensorProto's elements into host-order bytes.
bool decode_tensor(const onnx::TensorProto& p, const std::string& where, tensor* out,
                   std::string* error) {
  out->name = p.name();
  out->type = static_cast<onnx_type>(p.data_type());
  out->dims.assign(p.dims().begin(), p.dims().end());
  out->bytes.clear();
  for (std::int64_t d : out->dims) {
    if (d < 0) return fail(error, where + ": negative dim");
  }
  if (p.has_segment()) return fail(error, where + ": segmented tensors are not supported");
  if (p.data_location() == onnx::TensorProto::EXTERNAL) {
    return fail(error, where + ": external data is not supported");
  }
  const std::size_t size = element_size(out->type);
  if (size == 0) {
    return fail(error, where + ": data type " + to_string(out->type) + " is not decoded");
  }
  const std::int64_t n = out->numel();

  // raw_data: fixed-width little-endian elements.
  if (p.has_raw_data()) {
    const std::string& raw = p.raw_data();
    if (raw.size() != static_cast<std::size_t>(n) * size) {
      return fail(error, where + ": raw_data holds " + std::to_string(raw.size()) + " bytes for " +
                             std::to_string(n) + " elements of " + std::to_string(size) + " bytes");
    }
    out->bytes.assign(raw.begin(), raw.end());
    if constexpr (std::endian::native == std::endian::big) {
      for (std::size_t e = 0; e < out->bytes.size(); e += size) {
        std::reverse(out->bytes.begin() + static_cast<std::ptrdiff_t>(e),
                     out->bytes.begin() + static_cast<std::ptrdiff_t>(e + size));
      }
    }
    return true;
  }

  // Typed fields: pick the one onnx.proto assigns to this data type.
  std::int64_t count = 0;
  out->bytes.reserve(static_cast<std::size_t>(n) * size);
  switch (out->type) {
    case onnx_type::float32:
      count = p.float_data_size();
      for (float v : p.float_data()) append_element(&out->bytes, v, size);
      break;
    case onnx_type::float64:
      count = p.double_data_size();
      for (double v : p.double_data()) append_element(&out->bytes, v, size);
      break;
    case onnx_type::int64:
      count = p.int64_data_size();
      for (std::int64_t v : p.int64_data()) append_element(&out->bytes, v, size);
      break;
    case onnx_type::uint32:
    case onnx_type::uint64:
      count = p.uint64_data_size();
      for (std::uint64_t v : p.uint64_data()) append_element(&out->bytes, v, size);
      break;
    default:  // 8/16/32-bit integers, bool, float16 and bfloat16 bit patterns
      count = p.int32_data_size();
      for (std::int32_t v : p.int32_data()) append_element(&out->bytes, v, size);
      break;
  }
  if (count != n) {
    return fail(error, where + ": " + std::to_string(count) + " typed elements for shape of " +
                           std::to_string(n));
  }
  return true;
}

// Sorted paths of dir's entries whose file name starts with `prefix` (and is a directory when
// `dirs`, a regular file otherwise).
std::vector<fs::path> entries_with_prefix(const fs::path& dir, std::string_view prefix, bool dirs) {
  std::vector<fs::path> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    if (dirs ? it->is_directory(ec) : it->is_regular_file(ec)) found.push_back(it->path());
  }
  std::sort(found.begin(), found.end());
  return found;
}

// input_<i>.pb / output_<i>.pb in numeric order of i (input_10 after input_9).
bool load_numbered(const fs::path& dir, std::string_view prefix, std::vector<tensor>* out,
                   std::string* error) {
  out->clear();
  for (int i = 0;; ++i) {
    const fs::path file = dir / (std::string(prefix) + std::to_string(i) + ".pb");
    std::error_code ec;
    if (!fs::exists(file, ec)) break;
    tensor t;
    if (!load_tensor_file(file.string(), &t, error)) return false;
    out->push_back(std::move(t));
  }
  // A gap in the numbering (input_0, input_2) would silently drop a file: refuse it.
  const std::size_t on_disk = entries_with_prefix(dir, prefix, /*dirs=*/false).size();
  if (on_disk != out->size()) {
    return fail(error, dir.string() + ": " + std::to_string(on_disk) + " " + std::string(prefix) +
                           "*.pb files, but only " + std::to_string(out->size()) +
                           " numbered from 0 without a gap");
  }
  return true;
}

}  // namespace

std::string testdata_root() {
  if (const char* env = std::getenv("KEEL_ONNX_TESTDATA"); env != nullptr && *env != '\0') {
    return env;
  }
  return "/usr/share/libonnx-testdata/data/node";
}

bool list_cases(const std::string& root, std::vector<std::string>* names, std::string* error) {
  names->clear();
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return fail(error, root + " is not a directory");
  for (const fs::path& p : entries_with_prefix(root, "", /*dirs=*/true)) {
    names->push_back(p.filename().string());
  }
  return true;
}

bool load_tensor_file(const std::string& path, tensor* out, std::string* error) {
  std::string bytes;
  if (!read_file(path, &bytes, error)) return false;
  onnx::TensorProto proto;
  if (!proto.ParseFromString(bytes)) return fail(error, path + ": not a TensorProto");
  return decode_tensor(proto, path, out, error);
}

bool load_case(const std::string& root, const std::string& name, test_case* out,
               std::string* error) {
  *out = test_case{};
  out->name = name;
  const fs::path dir = fs::path(root) / name;
  out->dir = dir.string();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return fail(error, out->dir + " is missing");

  // The model: nodes, attributes, graph inputs and outputs.
  const std::string model_path = (dir / "model.onnx").string();
  std::string bytes;
  if (!read_file(model_path, &bytes, error)) return false;
  onnx::ModelProto model;
  if (!model.ParseFromString(bytes)) return fail(error, model_path + ": not a ModelProto");
  for (const onnx::OperatorSetIdProto& o : model.opset_import()) {
    if (o.domain().empty() || o.domain() == "ai.onnx") out->opset = o.version();
  }
  const onnx::GraphProto& g = model.graph();
  for (const onnx::NodeProto& np : g.node()) {
    node n;
    n.op_type = np.op_type();
    n.domain = np.domain();
    n.inputs.assign(np.input().begin(), np.input().end());
    n.outputs.assign(np.output().begin(), np.output().end());
    for (const onnx::AttributeProto& ap : np.attribute()) {
      attribute a;
      a.name = ap.name();
      a.type = static_cast<int>(ap.type());
      a.f = ap.f();
      a.i = ap.i();
      a.s = ap.s();
      a.floats.assign(ap.floats().begin(), ap.floats().end());
      a.ints.assign(ap.ints().begin(), ap.ints().end());
      n.attributes.push_back(std::move(a));
    }
    out->nodes.push_back(std::move(n));
  }
  for (const onnx::TensorProto& tp : g.initializer()) {
    tensor t;
    if (!decode_tensor(tp, model_path + " initializer " + tp.name(), &t, error)) return false;
    out->initializers.push_back(std::move(t));
  }
  // Data sets feed the graph inputs that no initializer provides, in graph order (as ONNX's
  // backend test runner does).
  for (const onnx::ValueInfoProto& v : g.input()) {
    const bool initialized = std::any_of(out->initializers.begin(), out->initializers.end(),
                                         [&](const tensor& t) { return t.name == v.name(); });
    if (!initialized) out->graph_inputs.push_back(v.name());
  }
  for (const onnx::ValueInfoProto& v : g.output()) out->graph_outputs.push_back(v.name());

  // The data sets.
  for (const fs::path& ds_dir : entries_with_prefix(dir, "test_data_set_", /*dirs=*/true)) {
    data_set ds;
    ds.dir = ds_dir.string();
    if (!load_numbered(ds_dir, "input_", &ds.inputs, error)) return false;
    if (!load_numbered(ds_dir, "output_", &ds.outputs, error)) return false;
    if (ds.inputs.size() != out->graph_inputs.size() ||
        ds.outputs.size() != out->graph_outputs.size()) {
      return fail(error, ds.dir + ": " + std::to_string(ds.inputs.size()) + " inputs and " +
                             std::to_string(ds.outputs.size()) + " outputs for a graph of " +
                             std::to_string(out->graph_inputs.size()) + " and " +
                             std::to_string(out->graph_outputs.size()));
    }
    out->data_sets.push_back(std::move(ds));
  }
  if (out->data_sets.empty()) return fail(error, out->dir + " has no test_data_set_* directory");
  return true;
}

}  // namespace keel::onnx_test
