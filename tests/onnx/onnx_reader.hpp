// tests/onnx/onnx_reader.hpp — reads one ONNX backend test case (model.onnx plus its
// test_data_set_*/{input,output}_*.pb) into plain C++ values, so the conformance cases never
// see protobuf types (only the reader's own test writes TensorProto files).
//
// The files are parsed with the protobuf classes that libonnx-dev ships (onnx::ModelProto,
// onnx::TensorProto); this header exposes only what the cases need: the nodes with their
// attributes, the graph's input and output names, and every tensor decoded into host-order bytes.
// No exceptions: each loader returns false and says why in *error.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace keel::onnx_test {

// ONNX TensorProto.DataType codes (onnx.proto), for the types the quantized ops use.
enum class onnx_type : int {
  undefined = 0,
  float32 = 1,
  uint8 = 2,
  int8 = 3,
  uint16 = 4,
  int16 = 5,
  int32 = 6,
  int64 = 7,
  string = 8,
  boolean = 9,
  float16 = 10,
  float64 = 11,
  uint32 = 12,
  uint64 = 13,
  complex64 = 14,
  complex128 = 15,
  bfloat16 = 16,
};

std::string to_string(onnx_type t);  // a std::string: doctest prints a char* as a pointer
// Bytes per element, or 0 for types this reader does not decode (string, complex).
std::size_t element_size(onnx_type t);

// A decoded tensor: `bytes` holds numel() elements in host byte order, densely, row-major.
struct tensor {
  std::string name;
  onnx_type type = onnx_type::undefined;
  std::vector<std::int64_t> dims;  // empty for a scalar
  std::vector<unsigned char> bytes;

  std::int64_t numel() const {
    std::int64_t n = 1;
    for (std::int64_t d : dims) n *= d;
    return n;
  }
  // A typed copy of the elements. The caller checks `type` first; a size mismatch gives {}.
  template <class T>
  std::vector<T> values() const {
    if (bytes.size() % sizeof(T) != 0) return {};
    std::vector<T> v(bytes.size() / sizeof(T));
    if (!v.empty()) std::memcpy(v.data(), bytes.data(), bytes.size());
    return v;
  }
};

struct attribute {
  std::string name;
  int type = 0;  // onnx AttributeProto.AttributeType: 1 FLOAT, 2 INT, 3 STRING, 6 FLOATS, 7 INTS
  float f = 0.0f;
  std::int64_t i = 0;
  std::string s;
  std::vector<float> floats;
  std::vector<std::int64_t> ints;
};

struct node {
  std::string op_type;
  std::string domain;
  std::vector<std::string> inputs;  // "" marks an omitted optional input
  std::vector<std::string> outputs;
  std::vector<attribute> attributes;

  const attribute* find(std::string_view attr_name) const {
    for (const attribute& a : attributes) {
      if (a.name == attr_name) return &a;
    }
    return nullptr;
  }
};

// One test_data_set_<k> directory: input_<i>.pb feed graph input i, output_<i>.pb are the
// expected values of graph output i.
struct data_set {
  std::string dir;
  std::vector<tensor> inputs;
  std::vector<tensor> outputs;
};

struct test_case {
  std::string name;        // the directory name, e.g. test_qlinearmatmul_2D
  std::string dir;         // its full path
  std::int64_t opset = 0;  // version of the default ("" or "ai.onnx") domain
  std::vector<node> nodes;
  std::vector<std::string> graph_inputs;   // names of the graph inputs that data sets feed
  std::vector<std::string> graph_outputs;  // names of the graph outputs, in order
  std::vector<tensor> initializers;
  std::vector<data_set> data_sets;  // sorted by directory name
};

// The directory that holds the node tests: $KEEL_ONNX_TESTDATA if set and non-empty, otherwise
// /usr/share/libonnx-testdata/data/node (where Debian's libonnx-testdata puts them).
std::string testdata_root();

// Names of the sub-directories of `root` (the test case names), sorted; false if unreadable.
bool list_cases(const std::string& root, std::vector<std::string>* names, std::string* error);

// Reads root/name/model.onnx and every root/name/test_data_set_*/ directory.
bool load_case(const std::string& root, const std::string& name, test_case* out,
               std::string* error);

// Decodes one serialized TensorProto file (input_*.pb or output_*.pb).
bool load_tensor_file(const std::string& path, tensor* out, std::string* error);

}  // namespace keel::onnx_test
