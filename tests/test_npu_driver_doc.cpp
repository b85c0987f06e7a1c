// docs/npu-driver.md cannot rot: the skeleton driver it shows is the file compiled here
// (keel/backends/npu/skeleton_driver.hpp), the doc's copy is compared with that file byte for
// byte, and the skeleton, plugged into the adapter, behaves as the doc says: a keel backend that
// declines every op and writes nothing.
#include <doctest/doctest.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "keel/backends/npu/skeleton_driver.hpp"
#include "keel/keel.hpp"
#include "support/testing.hpp"

using namespace keel;

namespace {

// The source tree's root, from this file's path as the build compiled it (Meson passes sources
// relative to the build directory, where `meson test` runs the suites).
std::string source_root() {
  std::string here = __FILE__;
  const std::string tail = "tests/test_npu_driver_doc.cpp";
  if (here.size() >= tail.size() &&
      here.compare(here.size() - tail.size(), tail.size(), tail) == 0) {
    here.resize(here.size() - tail.size());
  }
  return here;
}

bool read_file(const std::string& path, std::string& out) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::ostringstream s;
  s << f.rdbuf();
  out = s.str();
  return true;
}

// The body of the first ```cpp block after `marker` in a markdown text ("" if none).
std::string code_block_after(const std::string& md, const std::string& marker) {
  const std::size_t m = md.find(marker);
  if (m == std::string::npos) return "";
  const std::string open = "```cpp\n";
  const std::size_t start = md.find(open, m);
  if (start == std::string::npos) return "";
  const std::size_t body = start + open.size();
  const std::size_t end = md.find("\n```", body);
  if (end == std::string::npos) return "";
  return md.substr(body, end + 1 - body);
}

}  // namespace

TEST_CASE("the skeleton driver in docs/npu-driver.md is the one that compiles") {
  // From the build directory (meson test), or else from the source root.
  std::string root = source_root();
  std::string doc, header;
  if (!read_file(root + "docs/npu-driver.md", doc)) root = "";
  REQUIRE_MESSAGE(read_file(root + "docs/npu-driver.md", doc),
                  "cannot read docs/npu-driver.md from the build directory or the source root");
  REQUIRE(read_file(root + "backends/keel/backends/npu/skeleton_driver.hpp", header));
  const std::string shown =
      code_block_after(doc, "<!-- skeleton: backends/keel/backends/npu/skeleton_driver.hpp -->");
  REQUIRE_FALSE(shown.empty());
  CHECK(shown == header);
  // Every member of the concept appears in the requirements table.
  for (const char* member :
       {"caps", "command_stream", "capabilities()", "register_input", "register_output",
        "release_buffer", "supports(op)", "build(op, stream)", "submit(stream)",
        "wait(job, timeout_us)", "cancel(job)", "estimate(op)"}) {
    INFO(member);
    CHECK(doc.find(std::string("`") + member) != std::string::npos);
  }
}

TEST_CASE("the skeleton is a keel backend that declines every op and writes nothing") {
  using npu::skeleton::vendor_npu_backend;
  static_assert(npu::npu_driver<npu::skeleton::vendor_npu_driver>);
  static_assert(backend<vendor_npu_backend>);
  static_assert(vendor_npu_backend::caps.kind == backend_kind::npu);
  vendor_npu_backend b;

  keel::testing::rng r(561);
  const std::int64_t m = r.uniform_int(1, 9), n = r.uniform_int(1, 9), k = r.uniform_int(1, 9);
  INFO("seed=" << r.seed() << " m=" << m << " n=" << n << " k=" << k);
  std::vector<std::int8_t> a(static_cast<std::size_t>(m * k)), w(static_cast<std::size_t>(k * n));
  r.fill(a, -128, 127);
  r.fill(w, -128, 127);
  keel::testing::guarded<std::int8_t> out(static_cast<std::size_t>(m * n));
  matmul_i8_desc d;
  d.m = m;
  d.n = n;
  d.k = k;
  d.a_type = dtype::s8;
  d.out.type = dtype::s8;
  const std::vector<float> scale{0.01f};
  matmul_i8_args args;
  args.a = view(static_cast<const std::int8_t*>(a.data()), {m, k});
  args.b = view(static_cast<const std::int8_t*>(w.data()), {k, n});
  args.b_scale = scale;
  args.out = view(out.data(), {m, n});
  CHECK(b.supports(d).code() == status_code::unsupported);
  CHECK(b.run(d, args).code() == status_code::unsupported);
  CHECK(b.pack(d, args).status().code() == status_code::unsupported);
  CHECK(out.untouched());
  // Bad input is still keel's Status, before the driver is asked anything.
  d.k = 0;
  CHECK(b.run(d, args).code() == status_code::invalid_argument);
  CHECK(out.untouched());
}
