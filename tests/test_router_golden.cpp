// The routing table of every shipped board, compared with tests/golden/<board>.txt.
//
// For each board the table lists, under the latency-first and the energy-first policies, the
// compile-time candidates of each op and dtype and the run-time choice for model-shaped calls
// (an LLM's decode and prefill matmuls, MobileNet's convolutions, attention for decode and
// prefill) with every candidate's predicted time and energy. The backends are those a BSP would
// compile in today: keel's cpu backend, the board's NPU (the virtual NPU configured like it, or
// the board's numbers where keel has no virtual NPU profile for it) and a stand-in for the
// Vulkan backend (the reference posing as one; it has a GPU's caps, so the table shows where the
// board's GPU numbers would send work; replace it when the Vulkan backend lands).
//
// The golden files were generated once, reviewed by hand, and are compared on every run. After
// a reviewed change to a board, a backend's caps or the cost model, regenerate them with
// KEEL_UPDATE_GOLDEN=1 and review the diff.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "keel/backends/cpu.hpp"
#include "keel/backends/npu/profiles.hpp"
#include "keel/boards/all.hpp"
#include "keel/router/fault_injection.hpp"
#include "keel/router/router.hpp"

#ifndef KEEL_GOLDEN_DIR
#error "KEEL_GOLDEN_DIR must name tests/golden (tests/meson.build defines it)"
#endif

using namespace keel;

namespace {

struct as_vulkan_standin {
  static constexpr std::string_view name = "vulkan-standin";
  static constexpr backend_kind kind = backend_kind::gpu;
};
using vulkan_standin = faulty_backend<backends::reference_backend, as_vulkan_standin>;

// An NPU backend without its own cost model: the router predicts it from the board's numbers.
struct as_board_npu {
  static constexpr std::string_view name = "npu (board roofline)";
  static constexpr backend_kind kind = backend_kind::npu;
};
using board_roofline_npu = faulty_backend<npu::generic_vnpu_backend, as_board_npu>;

// The NPU backend each board is routed with.
template <class Board>
struct npu_for {
  using type = board_roofline_npu;  // boards without an NPU drop it anyway
};
template <>
struct npu_for<boards::rk3588> {
  using type = npu::rk3588_vnpu_backend;
};
template <>
struct npu_for<boards::imx8m_plus> {
  using type = npu::imx8mp_vnpu_backend;
};

// ---- model-shaped calls ----------------------------------------------------------------------

matmul_i8_desc mm(std::int64_t m, std::int64_t n, std::int64_t k) {
  matmul_i8_desc d;
  d.m = m;
  d.n = n;
  d.k = k;
  d.a_type = dtype::u8;
  d.b_type = dtype::s8;
  d.out.type = dtype::s8;
  d.out.scale = 0.05f;
  return d;
}
matmul_i4_desc mm4(std::int64_t m, std::int64_t n, std::int64_t k, i4_activation act) {
  matmul_i4_desc d;
  d.m = m;
  d.n = n;
  d.k = k;
  d.group_size = 32;
  d.activation = act;
  return d;
}
conv2d_desc conv(std::int64_t hw, std::int64_t cin, std::int64_t cout, std::int64_t kernel,
                 std::int64_t stride, std::int64_t groups) {
  conv2d_desc d;
  d.in_h = d.in_w = hw;
  d.in_c = cin;
  d.out_c = cout;
  d.kernel_h = d.kernel_w = kernel;
  d.stride_h = d.stride_w = stride;
  d.padding = padding_mode::same_upper;
  d.groups = groups;
  d.out.type = dtype::u8;
  d.out.scale = 0.05f;
  return d;
}
attention_desc attn(std::int64_t hq, std::int64_t hkv, std::int64_t q, std::int64_t kv,
                    std::int64_t dim, dtype q_type, dtype kv_type) {
  attention_desc d;
  d.q_heads = hq;
  d.kv_heads = hkv;
  d.q_len = q;
  d.kv_len = kv;
  d.head_dim = dim;
  d.q_type = q_type;
  d.kv_type = kv_type;
  d.q_scale = scale_granularity::per_tensor;
  d.mask = mask_kind::causal;
  return d;
}

// Three significant digits, without exponents: 0.182, 27.3, 505, 8950.
std::string number(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, x >= 1000 ? "%.0f" : "%.3g", x);
  return buf;
}

template <class R, class Desc, class Args>
void plan_line(std::ostringstream& os, const R& r, const char* what, const Desc& d) {
  const Args none{};  // plan() reads only the operands' addresses (alignment): all null
  const route_plan p = r.plan(d, none);
  const op_work w = work_of(d);
  char head[160];
  int n = std::snprintf(head, sizeof head, "%s/%s [", to_string(w.kind).data(),
                        to_string(w.weights).data());
  const auto labels = shape_labels(w.kind);
  for (int i = 0; i < w.rank; ++i) {
    n += std::snprintf(head + n, sizeof head - static_cast<std::size_t>(n), "%s%s%lld",
                       i ? " " : "", labels[static_cast<std::size_t>(i)].data(),
                       static_cast<long long>(w.shape[static_cast<std::size_t>(i)]));
  }
  std::snprintf(head + n, sizeof head - static_cast<std::size_t>(n), "] %s", what);
  os << head << "\n   ";
  for (std::size_t i = 0; i < p.count; ++i) {
    const std::size_t b = p.order[i];
    const double us = static_cast<double>(p.predicted_us[i]);
    os << (i ? " > " : "") << R::caps[b].name << " " << number(us) << " us "
       << number(us * R::rates[b].watts) << " uJ";
  }
  os << "\n";
}

template <class R>
void candidates_line(std::ostringstream& os, op_kind k, dtype t) {
  const candidate_list& c = R::candidates(k, t);
  for (std::size_t i = 0; i < c.count; ++i) {
    os << (i ? " > " : "") << R::caps[c.index[i]].name;
  }
}

template <class R>
void choices(std::ostringstream& os, const R& r) {
  plan_line<R, matmul_i8_desc, matmul_i8_args>(os, r, "LLM decode GEMV", mm(1, 4096, 4096));
  plan_line<R, matmul_i8_desc, matmul_i8_args>(os, r, "LLM prefill", mm(128, 4096, 4096));
  plan_line<R, matmul_i8_desc, matmul_i8_args>(os, r, "small projection", mm(16, 64, 64));
  plan_line<R, matmul_i4_desc, matmul_i4_args>(os, r, "int4 decode GEMV",
                                               mm4(1, 4096, 4096, i4_activation::f32));
  plan_line<R, matmul_i4_desc, matmul_i4_args>(os, r, "int4 prefill, int8 activations",
                                               mm4(64, 4096, 4096, i4_activation::dynamic_s8));
  plan_line<R, conv2d_desc, conv2d_args>(os, r, "MobileNet stem 3x3/2", conv(224, 3, 32, 3, 2, 1));
  plan_line<R, conv2d_desc, conv2d_args>(os, r, "MobileNet depthwise 3x3",
                                         conv(112, 32, 32, 3, 1, 32));
  plan_line<R, conv2d_desc, conv2d_args>(os, r, "MobileNet pointwise 1x1",
                                         conv(56, 64, 128, 1, 1, 1));
  plan_line<R, attention_desc, attention_args>(os, r, "decode, GQA, int8 KV cache",
                                               attn(32, 8, 1, 2048, 128, dtype::f32, dtype::s8));
  plan_line<R, attention_desc, attention_args>(os, r, "prefill, int8",
                                               attn(8, 8, 512, 512, 64, dtype::s8, dtype::s8));
  plan_line<R, attention_desc, attention_args>(os, r, "prefill, f32",
                                               attn(8, 8, 128, 128, 64, dtype::f32, dtype::f32));
}

template <class Board>
std::string routing_table() {
  using npu_backend_t = typename npu_for<Board>::type;
  using L = router<Board, latency_first<backends::cpu_backend, npu_backend_t, vulkan_standin>>;
  using E = router<Board, energy_first<backends::cpu_backend, npu_backend_t, vulkan_standin>>;
  constexpr const boards::board_profile& p = Board::profile;
  std::ostringstream os;
  os << "# keel routing table: " << p.name << " (" << p.soc << ")\n"
     << "# Generated by tests/test_router_golden.cpp, reviewed, compared on every test run.\n"
     << "# Backends compiled in: " << L::caps[0].name << ", " << L::caps[1].name << ", "
     << L::caps[2].name << " (the reference posing as the Vulkan backend), " << L::caps[3].name
     << ".\n"
     << "# Units: cpu " << (p.cpu.cores) << " cores; gpu "
     << (p.gpu.present ? p.gpu.name : std::string_view("none")) << "; npu "
     << (p.npu.present ? p.npu.name : std::string_view("none")) << ".\n\n"
     << "## Compile-time candidates (nominal shapes), best first\n";
  for (int k = 0; k < kOpKindCount; ++k) {
    for (int t = 0; t < 7; ++t) {
      const op_kind ok = static_cast<op_kind>(k);
      const dtype dt = static_cast<dtype>(t);
      if (!is_routable(ok) || !legal_routing_dtype(ok, dt)) continue;
      os << to_string(ok) << "/" << to_string(dt) << "\n   latency-first: ";
      candidates_line<L>(os, ok, dt);
      os << "\n   energy-first:  ";
      candidates_line<E>(os, ok, dt);
      os << "\n";
    }
  }
  const L l;
  const E e;
  os << "\n## Run-time choice, latency-first: predicted time and energy, in the order tried\n";
  choices(os, l);
  os << "\n## Run-time choice, energy-first\n";
  choices(os, e);
  return os.str();
}

template <class Board>
void check_golden(const char* file) {
  const std::string path = std::string(KEEL_GOLDEN_DIR) + "/" + file;
  const std::string table = routing_table<Board>();
  if (const char* update = std::getenv("KEEL_UPDATE_GOLDEN"); update && *update == '1') {
    std::ofstream(path) << table;
    MESSAGE("wrote " << path);
    return;
  }
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "missing " << path << " (generate it with KEEL_UPDATE_GOLDEN=1)");
  std::stringstream golden;
  golden << in.rdbuf();
  INFO("board " << Board::profile.name << ", golden file " << path);
  // Line by line, so that a failure shows the first line that differs.
  std::istringstream a(golden.str()), b(table);
  std::string la, lb;
  int line = 0;
  while (true) {
    const bool ga = static_cast<bool>(std::getline(a, la));
    const bool gb = static_cast<bool>(std::getline(b, lb));
    ++line;
    if (!ga && !gb) break;
    INFO("line " << line);
    REQUIRE(ga == gb);
    REQUIRE(la == lb);
  }
}

}  // namespace

TEST_CASE("routing table: generic x86-64 AVX2") {
  check_golden<boards::generic_x86_64_avx2>("generic_x86_64_avx2.txt");
}
TEST_CASE("routing table: x86-64 AVX-512 VNNI") {
  check_golden<boards::x86_64_avx512_vnni>("x86_64_avx512_vnni.txt");
}
TEST_CASE("routing table: Raspberry Pi 5") {
  check_golden<boards::raspberry_pi_5>("raspberry_pi_5.txt");
}
TEST_CASE("routing table: RK3588") {
  check_golden<boards::rk3588>("rk3588.txt");
}
TEST_CASE("routing table: i.MX 8M Plus") {
  check_golden<boards::imx8m_plus>("imx8m_plus.txt");
}
TEST_CASE("routing table: Jetson Orin Nano") {
  check_golden<boards::jetson_orin_nano>("jetson_orin_nano.txt");
}
TEST_CASE("routing table: Snapdragon 8 Gen 2") {
  check_golden<boards::snapdragon_8_gen_2>("snapdragon_8_gen_2.txt");
}
TEST_CASE("routing tables are deterministic") {
  CHECK(routing_table<boards::rk3588>() == routing_table<boards::rk3588>());
}
