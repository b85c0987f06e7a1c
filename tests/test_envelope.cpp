// keel-envelope's pieces (tools/envelope/): verification samples, comparison rules, the routing
// table against keel::router itself, the measured profile and its header text, compare, the
// ceilings and machine detection, and one workload measured end to end with and without the
// wrong-result hook. The program as a whole (quick mode, the JSON schema, the header compiled and
// routing, the HTML in a browser, Ctrl-C) is tested by tests/envelope/*.py.
#include <doctest/doctest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "backends.hpp"
#include "ceilings.hpp"
#include "keel/backends/cpu.hpp"
#include "keel/backends/npu.hpp"
#include "keel/backends/reference.hpp"
#include "keel/boards/all.hpp"
#include "keel/router/router.hpp"
#include "keel/version.hpp"
#include "machine.hpp"
#include "measure.hpp"
#include "profile.hpp"
#include "report.hpp"
#include "routing.hpp"
#include "support/testing.hpp"
#include "verify.hpp"
#include "workloads.hpp"

using namespace keel;
using namespace keel::envelope;

namespace {

std::int64_t out_bytes(const op_desc& d) {
  return output_elements(d) * element_bytes(output_type(d));
}

Status reference_run(const problem& p, void* out) {
  backends::reference_backend ref;
  return std::visit([&](const auto& x) { return ref.run(x.desc, x.args(out)); }, p);
}

matmul_i8_desc small_matmul(std::int64_t m, std::int64_t n, std::int64_t k, dtype out) {
  matmul_i8_desc d;
  d.m = m;
  d.n = n;
  d.k = k;
  d.a_zero_point = 131;
  d.a_scale = 0.02f;
  d.out.type = out;
  d.out.scale = 3.0f;
  d.out.zero_point = 5;
  return d;
}

conv2d_desc small_conv(std::int64_t h, std::int64_t w, std::int64_t cin, std::int64_t cout,
                       std::int64_t k, std::int64_t stride, std::int64_t groups) {
  conv2d_desc d;
  d.in_h = h;
  d.in_w = w;
  d.in_c = cin;
  d.out_c = cout;
  d.kernel_h = d.kernel_w = k;
  d.stride_h = d.stride_w = stride;
  d.groups = groups;
  d.padding = padding_mode::same_upper;
  d.in_zero_point = 7;
  d.out.type = dtype::u8;
  d.out.scale = 2.0f;
  d.out.zero_point = 100;
  return d;
}

attention_desc small_attention(std::int64_t hq, std::int64_t hkv, std::int64_t sq, std::int64_t skv,
                               std::int64_t dim, dtype q, scale_granularity g, mask_kind mask) {
  attention_desc d;
  d.q_heads = hq;
  d.kv_heads = hkv;
  d.q_len = sq;
  d.kv_len = skv;
  d.head_dim = dim;
  d.q_type = q;
  d.kv_type = dtype::s8;
  d.q_scale = g;
  d.kv_scale = g;
  d.mask = mask;
  return d;
}

// The descs the sample tests sweep: every op, odd sizes, every sampling path.
std::vector<op_desc> sample_cases() {
  std::vector<op_desc> v;
  v.emplace_back(small_matmul(13, 97, 61, dtype::s8));
  v.emplace_back(small_matmul(1, 211, 37, dtype::f32));
  v.emplace_back(small_matmul(9, 50, 16, dtype::s32));
  matmul_i4_desc a;
  a.m = 9;
  a.n = 70;
  a.k = 100;  // a partial last group
  a.group_size = 32;
  a.scale_type = dtype::f16;
  v.emplace_back(a);
  matmul_i4_desc b = a;
  b.b_type = dtype::u4;
  b.activation = i4_activation::dynamic_s8;
  b.scale_type = dtype::f32;
  v.emplace_back(b);
  v.emplace_back(small_conv(9, 11, 5, 17, 3, 2, 1));
  v.emplace_back(small_conv(10, 10, 12, 12, 3, 1, 12));  // depthwise
  v.emplace_back(small_conv(7, 6, 6, 9, 3, 1, 3));       // grouped: 2 in, 3 out per group
  v.emplace_back(
      small_attention(6, 3, 5, 9, 8, dtype::s8, scale_granularity::per_token, mask_kind::causal));
  v.emplace_back(
      small_attention(4, 4, 3, 7, 16, dtype::f32, scale_granularity::per_head, mask_kind::none));
  return v;
}

}  // namespace

TEST_CASE("samples: the reference on a sample equals the reference on the whole problem") {
  testing::rng r(0xE1);
  const std::vector<op_desc> cases = sample_cases();
  for (std::size_t c = 0; c < cases.size(); ++c) {
    const op_desc& d = cases[c];
    INFO("seed " << r.seed() << ", case " << c << ": " << shape_text(d) << ", " << dtype_text(d));
    problem full;
    REQUIRE(materialize(d, r.seed(), c, full).ok());
    // u4 weights with a zero-point view, so its gathering is exercised too.
    if (auto* p = std::get_if<matmul_i4_problem>(&full); p && p->desc.b_type == dtype::u4) {
      const std::int64_t n = p->desc.n * p->desc.groups();
      REQUIRE(p->zero_point.allocate(n));
      for (std::int64_t i = 0; i < n; ++i)
        p->zero_point.as<std::uint8_t>()[i] = static_cast<std::uint8_t>(r.uniform_int(0, 15));
    }
    if (auto* p = std::get_if<matmul_i8_problem>(&full)) {
      p->b_zero_point.resize(static_cast<std::size_t>(p->desc.n));
      for (std::int32_t& z : p->b_zero_point) z = static_cast<std::int32_t>(r.uniform_int(-20, 20));
    }
    aligned_bytes whole(out_bytes(d));
    REQUIRE(reference_run(full, whole.data()).ok());

    sample s;
    REQUIRE(make_sample(full, /*mac_budget=*/1, r.seed() + c, s).ok());
    REQUIRE_FALSE(s.whole);
    const op_desc rd = desc_of(s.reduced);
    REQUIRE(static_cast<std::int64_t>(s.map.size()) == output_elements(rd));
    CHECK(s.full_outputs == output_elements(d));
    aligned_bytes part(out_bytes(rd));
    REQUIRE(reference_run(s.reduced, part.data()).ok());
    const std::int64_t eb = element_bytes(output_type(d));
    std::int64_t differ = 0;
    for (std::size_t i = 0; i < s.map.size(); ++i) {
      differ += std::memcmp(part.data() + static_cast<std::int64_t>(i) * eb,
                            whole.data() + s.map[i] * eb, static_cast<std::size_t>(eb)) != 0;
    }
    CHECK(differ == 0);
    // The first output is always sampled (edge tiles), and the map never repeats an element.
    CHECK(s.map.front() == 0);
    std::vector<std::int64_t> sorted = s.map;
    std::sort(sorted.begin(), sorted.end());
    CHECK(std::adjacent_find(sorted.begin(), sorted.end()) == sorted.end());
  }
}

TEST_CASE("samples: matmul samples keep the last row and column; a large budget takes it all") {
  testing::rng r(0xE2);
  const matmul_i8_desc d = small_matmul(30, 200, 40, dtype::s8);
  INFO("seed " << r.seed());
  problem full;
  REQUIRE(materialize(op_desc(d), r.seed(), 0, full).ok());
  sample s;
  REQUIRE(make_sample(full, 1, r.seed(), s).ok());
  CHECK(std::find(s.map.begin(), s.map.end(), 30 * 200 - 1) != s.map.end());
  CHECK(s.map.size() == 8u * 32u);  // 8 rows, at least 32 columns
  REQUIRE(make_sample(full, 30 * 200 * 40, r.seed(), s).ok());
  CHECK(s.whole);
  CHECK(s.map.empty());
}

TEST_CASE("check_output: a changed element is found, with its coordinates") {
  testing::rng r(0xE3);
  const matmul_i8_desc d = small_matmul(12, 90, 33, dtype::s8);
  INFO("seed " << r.seed());
  problem full;
  REQUIRE(materialize(op_desc(d), r.seed(), 0, full).ok());
  aligned_bytes ref(out_bytes(op_desc(d))), got(out_bytes(op_desc(d)));
  REQUIRE(reference_run(full, ref.data()).ok());
  std::memcpy(got.data(), ref.data(), static_cast<std::size_t>(ref.size()));
  check_result c = check_output(full, ref.data(), got.data(), {}, op_desc(d));
  CHECK(c.mismatches == 0);
  CHECK(c.checked == 12 * 90);
  CHECK(c.exact_rule);

  corrupt_output(got.data(), dtype::s8);
  c = check_output(full, ref.data(), got.data(), {}, op_desc(d));
  CHECK(c.mismatches == 1);
  CHECK(c.first_mismatch.find("out[0, 0]") == 0);

  // Through a sample's map: change the full output where sample element 5 lands.
  sample s;
  REQUIRE(make_sample(full, 1, r.seed(), s).ok());
  aligned_bytes part(out_bytes(desc_of(s.reduced)));
  REQUIRE(reference_run(s.reduced, part.data()).ok());
  std::memcpy(got.data(), ref.data(), static_cast<std::size_t>(ref.size()));
  CHECK(check_output(s.reduced, part.data(), got.data(), s.map, op_desc(d)).mismatches == 0);
  const std::int64_t at = s.map[5];
  got.as<std::int8_t>()[at] = static_cast<std::int8_t>(got.as<std::int8_t>()[at] ^ 0x40);
  c = check_output(s.reduced, part.data(), got.data(), s.map, op_desc(d));
  CHECK(c.mismatches == 1);
  const std::string where = "out[" + std::to_string(at / 90) + ", " + std::to_string(at % 90) + "]";
  CHECK(c.first_mismatch.find(where) == 0);
}

TEST_CASE("tolerances: the matmul_i4 bound by hand, and what passes and fails it") {
  // One output, K = 2 in one group (G = K): A = [0.5, -0.25], W = [3, -2], scale 0.5.
  // sum |A s (W - z)| = 0.5*0.5*3 + 0.25*0.5*2 = 1.0; gamma(G + groups + 1) = gamma(4).
  matmul_i4_problem p;
  p.desc.m = 1;
  p.desc.n = 1;
  p.desc.k = 2;
  p.desc.group_size = 2;
  REQUIRE(p.a.allocate(8));
  p.a.as<float>()[0] = 0.5f;
  p.a.as<float>()[1] = -0.25f;
  REQUIRE(p.b.allocate(1));
  p.b.as<std::uint8_t>()[0] = static_cast<std::uint8_t>((3 & 0xF) | ((-2 & 0xF) << 4));
  REQUIRE(p.scale.allocate(4));
  p.scale.as<float>()[0] = 0.5f;
  const double u = std::ldexp(1.0, -24);
  const std::vector<double> tol = tolerances(problem(std::move(p)));
  REQUIRE(tol.size() == 1);
  CHECK(tol[0] == doctest::Approx(4 * u / (1 - 4 * u) * 1.0).epsilon(1e-12));

  // A larger problem: half the bound passes (counted as not bit-identical), twice fails.
  testing::rng r(0xE4);
  matmul_i4_desc d;
  d.m = 3;
  d.n = 40;
  d.k = 96;
  INFO("seed " << r.seed());
  problem full;
  REQUIRE(materialize(op_desc(d), r.seed(), 0, full).ok());
  aligned_bytes ref(out_bytes(op_desc(d))), got(out_bytes(op_desc(d)));
  REQUIRE(reference_run(full, ref.data()).ok());
  const std::vector<double> t = tolerances(full);
  for (double x : t) CHECK(x > 0);
  std::memcpy(got.data(), ref.data(), static_cast<std::size_t>(ref.size()));
  got.as<float>()[7] = static_cast<float>(ref.as<float>()[7] + 0.5 * t[7]);
  check_result c = check_output(full, ref.data(), got.data(), {}, op_desc(d));
  CHECK(c.mismatches == 0);
  CHECK(c.not_identical == (got.as<float>()[7] != ref.as<float>()[7] ? 1 : 0));
  got.as<float>()[7] = static_cast<float>(ref.as<float>()[7] + 2 * t[7] + 1e-6);
  c = check_output(full, ref.data(), got.data(), {}, op_desc(d));
  CHECK(c.mismatches == 1);
  CHECK_FALSE(c.exact_rule);
}

TEST_CASE("tolerances: an attention row that sees no key must be exactly zero") {
  testing::rng r(0xE5);
  attention_desc d =
      small_attention(2, 1, 4, 6, 8, dtype::s8, scale_granularity::per_tensor, mask_kind::causal);
  d.causal_offset = -1;  // query 0 sees keys j <= -1: none
  INFO("seed " << r.seed());
  problem full;
  REQUIRE(materialize(op_desc(d), r.seed(), 0, full).ok());
  const std::vector<double> t = tolerances(full);
  for (std::int64_t h = 0; h < 2; ++h) {
    CHECK(t[static_cast<std::size_t>(h * 4 * 8)] == 0.0);     // row 0 of each head
    CHECK(t[static_cast<std::size_t>(h * 4 * 8 + 8)] > 0.0);  // row 1 sees key 0
  }
  aligned_bytes ref(out_bytes(op_desc(d)));
  REQUIRE(reference_run(full, ref.data()).ok());
  CHECK(ref.as<float>()[0] == 0.0f);
  aligned_bytes got(ref.size());
  std::memcpy(got.data(), ref.data(), static_cast<std::size_t>(ref.size()));
  got.as<float>()[0] = 1e-30f;
  CHECK(check_output(full, ref.data(), got.data(), {}, op_desc(d)).mismatches == 1);
}

namespace {

using vnpu_backend = npu::npu_backend<npu::virtual_npu>;

// The mirror in routing.cpp against keel::router<Board, Policy>::plan() and candidates(), with the
// backends a BSP on that board would compile in (the cpu backend and the virtual NPU configured
// like the board's NPU).
template <class Board, template <class...> class Policy>
void check_routing(const char* npu_profile, const std::vector<workload>& workloads) {
  backend_config bc;
  bc.npu.profile = npu_profile;
  REQUIRE(npu_profile_config(npu_profile, bc.npu.config));
  std::vector<std::unique_ptr<backend_slot>> slots = make_backends(bc);
  REQUIRE(slots.size() == 3);
  const backend_slot& reference = *slots[0];
  const std::vector<const backend_slot*> policy_backends{slots[1].get(), slots[2].get()};

  using R = router<Board, Policy<backends::cpu_backend, vnpu_backend>>;
  R r(backends::cpu_backend{}, vnpu_backend(npu::virtual_npu(bc.npu.config)));
  const std::string policy(Policy<>::name);

  for (const auto& [k, t] :
       {std::pair{op_kind::matmul_i8, dtype::s8}, std::pair{op_kind::matmul_i8, dtype::u8},
        std::pair{op_kind::matmul_i4, dtype::s4}, std::pair{op_kind::conv2d_i8, dtype::s8},
        std::pair{op_kind::attention, dtype::s8}, std::pair{op_kind::attention, dtype::f32}}) {
    const candidate_list& want = R::candidates(k, t);
    const std::vector<std::string> got =
        candidate_names(Board::profile, policy_backends, reference, policy, k, t);
    INFO(Board::profile.name << " " << policy << " " << to_string(k) << "/" << to_string(t));
    REQUIRE(got.size() == want.count);
    for (std::size_t i = 0; i < got.size(); ++i) CHECK(got[i] == R::caps[want.index[i]].name);
  }

  const std::vector<route_row> table =
      routing_table(Board::profile, policy_backends, reference, workloads);
  for (const route_row& row : table) {
    if (row.policy != policy) continue;
    const workload* w = nullptr;
    for (const workload& x : workloads) {
      if (x.id == row.workload) w = &x;
    }
    REQUIRE(w != nullptr);
    const route_plan p = std::visit(
        [&](const auto& d) {
          using D = std::decay_t<decltype(d)>;
          if constexpr (std::is_same_v<D, matmul_i8_desc>) return r.plan(d, matmul_i8_args{});
          if constexpr (std::is_same_v<D, matmul_i4_desc>) return r.plan(d, matmul_i4_args{});
          if constexpr (std::is_same_v<D, conv2d_desc>) return r.plan(d, conv2d_args{});
          if constexpr (std::is_same_v<D, attention_desc>) return r.plan(d, attention_args{});
        },
        w->desc);
    INFO(Board::profile.name << " " << policy << " " << row.workload);
    REQUIRE(row.order.size() == p.count);
    for (std::size_t i = 0; i < row.order.size(); ++i) {
      CHECK(row.order[i].backend == R::caps[p.order[i]].name);
      CHECK(static_cast<float>(row.order[i].predicted_us) == p.predicted_us[i]);
    }
  }
}

}  // namespace

TEST_CASE("routing table: the same choices and predictions as keel::router on shipped boards") {
  std::vector<workload> w = default_workloads(false);
  for (const workload& q : default_workloads(true)) {
    w.push_back(q);
    w.back().id += ".quick";
  }
  check_routing<boards::generic_x86_64_avx2, latency_first>("generic_16x16", w);
  check_routing<boards::generic_x86_64_avx2, energy_first>("generic_16x16", w);
  check_routing<boards::rk3588, latency_first>("rk3588", w);
  check_routing<boards::rk3588, energy_first>("rk3588", w);
  check_routing<boards::imx8m_plus, latency_first>("imx8mp", w);
  check_routing<boards::imx8m_plus, energy_first>("imx8mp", w);
}

TEST_CASE("profile: measured numbers, three digits, and a header with its banner") {
  machine_info m;
  m.cpu.arch = "x86-64";
  m.cpu.model = "Test \"CPU\" 9000";
  m.cpu.features = {{"sse4_2", true}, {"avx2", true}, {"fma", true}, {"avx512f", false}};
  m.cpu.logical_cpus = 4;
  m.cpu.freq_mhz = 2345.6;
  m.cpu.caches = {{1, "Data", 32, 1, 64}, {2, "Unified", 1024, 2, 64}, {3, "Unified", 8192, 4, 64}};
  m.os = {"Linux", "6.1", "testhost"};
  std::vector<ceiling> c;
  c.push_back({"int8_mac.avx2.1t", "int8_mac", "avx2", "", 1, 101.234, "GOPS", 0, 0});
  c.push_back({"int8_mac.avx2.4t", "int8_mac", "avx2", "", 4, 388.88, "GOPS", 0, 0});
  c.push_back({"f32_fma.avx2.4t", "f32_fma", "avx2", "", 4, 190.04, "GFLOPS", 0, 0});
  c.push_back({"mem_read.avx2.4t", "mem_read", "avx2", "", 4, 17.777, "GB/s", 1 << 26, 0});
  c.push_back({"mem_read.avx2.8t", "mem_read", "avx2", "", 8, 99.0, "GB/s", 1 << 26,
               0});  // too many threads
  npu_choice npu;
  npu.profile = "generic_16x16";
  REQUIRE(npu_profile_config(npu.profile, npu.config));
  const measured_profile p = build_profile("test_board", m, c, 4, 3.21, npu, power_options{});
  const boards::board_profile& b = p.profile;
  CHECK(b.cpu.cores == 4);
  CHECK(b.cpu.isa == (boards::isa::sse4_2 | boards::isa::avx2 | boards::isa::fma));  // avx512f off
  CHECK(b.cpu.freq_ghz == 2.35);
  CHECK(b.cpu.peak_int8_gops == 389.0);
  CHECK(b.cpu.peak_f32_gflops == 190.0);
  CHECK(b.cpu.mem_bandwidth_gbs == 17.8);
  CHECK(b.cpu.l1d_kib == 32);
  CHECK(b.cpu.l2_kib == 512);  // 1024 KiB shared by 2 CPUs
  CHECK(b.cpu.l3_kib == 8192);
  CHECK(b.cpu.launch_us == 3.21);
  CHECK(b.npu.present);
  CHECK(b.npu.peak_int8_gops == 512.0);  // 2 x 16 x 16 x 1 GHz
  CHECK(b.npu.mem_bandwidth_gbs == 16.0);
  CHECK(b.name == "measured: Test \"CPU\" 9000 (testhost)");
  const measured_profile copy = p;  // the views follow the copy's strings
  CHECK(copy.profile.name.data() == copy.name.data());

  const std::string h = board_header(p, m, "2030-01-02T03:04:05Z", "keel-envelope --quick");
  CHECK(h.rfind("// keel/boards/test_board.hpp: a board profile GENERATED by keel-envelope.\n",
                0) == 0);
  CHECK(h.find("// Tool: keel-envelope " KEEL_VERSION_STRING "; date: 2030-01-02T03:04:05Z.") !=
        std::string::npos);
  CHECK(h.find("Machine: Test \"CPU\" 9000, 4 online CPUs (Linux 6.1, host testhost)") !=
        std::string::npos);
  CHECK(h.find(".name = \"measured: Test \\\"CPU\\\" 9000 (testhost)\"") != std::string::npos);
  CHECK(h.find(".isa = isa::sse4_2 | isa::avx2 | isa::fma,") != std::string::npos);
  CHECK(h.find(".peak_int8_gops = 389.0,") != std::string::npos);
  CHECK(h.find("static_assert(check_profile<test_board>());") != std::string::npos);
  // Every line within 100 columns, however long the machine's strings and the ISA list.
  const auto longest_line = [](const std::string& text) {
    std::size_t longest = 0;
    for (std::size_t pos = 0, end; pos < text.size(); pos = end + 1) {
      end = text.find('\n', pos);
      if (end == std::string::npos) end = text.size();
      longest = std::max(longest, end - pos);
    }
    return longest;
  };
  CHECK(longest_line(h) <= 100);
  machine_info big = m;
  big.cpu.model.clear();
  for (int i = 0; i < 12; ++i) big.cpu.model += "Extremely Long ";
  for (const char* f : {"avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8"}) {
    big.cpu.features.push_back({f, true});
  }
  const measured_profile bp = build_profile("test_board", big, c, 4, 3.21, npu, power_options{});
  std::string long_command = "keel-envelope";
  for (int i = 0; i < 30; ++i) long_command += " --workloads llm7b.decode";
  const std::string bh = board_header(bp, big, "2030-01-02T03:04:05Z", long_command);
  CHECK(longest_line(bh) <= 100);
  // The long name is split into adjacent literals: joined again, it is the whole name.
  std::string joined;
  const std::size_t name_at = bh.find(".name = ");
  for (std::size_t q = bh.find('"', name_at); q < bh.find(",\n", name_at);
       q = bh.find('"', q + 1)) {
    const std::size_t close = bh.find('"', q + 1);
    joined += bh.substr(q + 1, close - q - 1);
    q = close;
  }
  CHECK(joined == "measured: " + big.cpu.model + " (testhost)");
  for (const char* bit : {"isa::sse4_2", "isa::avx512_vnni", "isa::amx_int8"}) {
    CHECK(bh.find(bit) != std::string::npos);
  }

  CHECK(round3(146.77) == 147.0);
  CHECK(round3(0.012345) == 0.0123);
  CHECK(is_identifier("measured_host"));
  CHECK(is_identifier("_board2"));
  CHECK_FALSE(is_identifier("2board"));
  CHECK_FALSE(is_identifier("my-board"));
  CHECK_FALSE(is_identifier("__reserved"));
  CHECK_FALSE(is_identifier(""));
}

namespace {

// A document in the system's temporary directory, named after this process (suites run in
// parallel), removed by the test case that wrote it.
std::string write_temp(const std::string& name, const nlohmann::json& doc) {
  const std::filesystem::path path =
      std::filesystem::temp_directory_path() /
      ("keel_envelope_test_" + std::to_string(::getpid()) + "_" + name + ".json");
  std::ofstream(path) << doc.dump();
  return path.string();
}

nlohmann::json compare_doc(std::vector<std::tuple<const char*, const char*, double>> entries) {
  nlohmann::json results = nlohmann::json::array();
  for (const auto& [w, b, t] : entries) {
    results.push_back({{"workload", w},
                       {"backend", b},
                       {"outcome", "ok"},
                       {"timed_shape", "full"},
                       {"time_s", {{"best", t}, {"source", "wall clock"}}}});
  }
  return {{"schema", "keel-envelope"}, {"schema_version", kSchemaVersion}, {"results", results}};
}

std::string run_to_text(const std::string& a, const std::string& b, const compare_options& o,
                        int& rc) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  rc = run_compare(a, b, o, out, err);
  std::string text;
  for (std::FILE* f : {out, err}) {
    std::rewind(f);
    char buf[4096];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  return text;
}

}  // namespace

TEST_CASE("compare: faster, slower, unchanged, missing, and its exit statuses") {
  const std::string a = write_temp(
      "a",
      compare_doc(
          {{"w1", "cpu", 2e-3}, {"w2", "cpu", 1e-3}, {"w3", "cpu", 1e-3}, {"w4", "cpu", 1e-3}}));
  const std::string b = write_temp(
      "b",
      compare_doc(
          {{"w1", "cpu", 1e-3}, {"w2", "cpu", 2e-3}, {"w3", "cpu", 1.01e-3}, {"w5", "cpu", 1e-3}}));
  int rc = -1;
  std::string text = run_to_text(a, b, compare_options{}, rc);
  INFO(text);
  CHECK(rc == 0);
  CHECK(text.find("2.00x faster") != std::string::npos);
  CHECK(text.find("2.00x slower") != std::string::npos);
  CHECK(text.find("unchanged (time +1.0%)") != std::string::npos);
  CHECK(text.find("1 faster, 1 slower, 1 unchanged") != std::string::npos);
  CHECK(text.find("1 only in a, 1 only in b") != std::string::npos);

  compare_options strict;
  strict.fail_on_slowdown = 0.5;  // w2 got 100% slower
  run_to_text(a, b, strict, rc);
  CHECK(rc == 4);
  strict.fail_on_slowdown = 1.5;
  run_to_text(a, b, strict, rc);
  CHECK(rc == 0);

  nlohmann::json other = compare_doc({});
  other["schema_version"] = kSchemaVersion + 1;
  text = run_to_text(a, write_temp("c", other), compare_options{}, rc);
  CHECK(rc == 3);
  CHECK(text.find("schema_version") != std::string::npos);
  run_to_text(a, a + ".does_not_exist", compare_options{}, rc);
  CHECK(rc == 3);
  for (const std::string& p : {a, b, write_temp("c", other)}) std::filesystem::remove(p);
}

TEST_CASE("ceilings: every kind is measured and positive on this CPU") {
  const machine_info m = detect_machine();
  ceiling_options o;
  o.threads = 2;
  o.seconds_each = 0.01;
  o.stream_bytes = std::int64_t{8} << 20;
  const std::vector<ceiling> c = measure_ceilings(m, o, [](const std::string&) {});
  CHECK(static_cast<int>(c.size()) == ceiling_count(m, o));
  for (const char* kind : {"int8_mac", "f32_fma", "mem_read", "mem_copy"}) {
    for (int t : {1, 2}) {
      bool found = false;
      for (const ceiling& x : c) {
        if (x.kind == kind && x.threads == t) {
          found = true;
          CHECK(x.value > 0);
        }
      }
      INFO(kind << " " << t << " threads");
      CHECK(found);
    }
  }
  const roof r = cpu_roof(c, 2);
  CHECK(r.int8_gops > 0);
  CHECK(r.mem_gbs > 0);
}

TEST_CASE("machine: detection agrees with the compiler's own CPU checks") {
  const machine_info m = detect_machine();
  CHECK(m.cpu.logical_cpus >= 1);
  CHECK(m.cpu.usable_cpus >= 1);
  CHECK_FALSE(m.cpu.model.empty());
  CHECK(m.memory.total_mib > 0);
#if defined(__x86_64__)
  // __builtin_cpu_supports reads cpuid (and, for AVX, the OS's XCR0) in libgcc: an independent
  // detection of the same facts.
  CHECK(m.cpu.has("avx2") == (__builtin_cpu_supports("avx2") != 0));
  CHECK(m.cpu.has("fma") == (__builtin_cpu_supports("fma") != 0));
  CHECK(m.cpu.has("avx512f") == (__builtin_cpu_supports("avx512f") != 0));
#endif
}

TEST_CASE("measure_workload: every backend verifies; the hook turns a backend's result wrong") {
  backend_config bc;
  bc.npu.profile = "generic_16x16";
  REQUIRE(npu_profile_config(bc.npu.profile, bc.npu.config));
  std::vector<std::unique_ptr<backend_slot>> slots = make_backends(bc);
  run_options o;
  o.quick = true;
  o.target_seconds = 0.001;
  o.max_reps = 2;
  o.verify_macs = 20000;  // forces a sample on the larger quick shapes
  measure_context ctx;
  ctx.options = &o;
  for (const auto& s : slots) ctx.backends.push_back(s.get());
  ctx.roof_of = [](const std::string&) { return static_cast<const roof*>(nullptr); };

  std::vector<workload> chosen;
  for (const workload& w : default_workloads(true)) {
    if (w.id == "minilm.qkv" || w.id == "mbv2.b1.dw" || w.id == "llm7b.decode.attention" ||
        w.id == "llm7b.decode.qkv.q4") {
      chosen.push_back(w);
    }
  }
  REQUIRE(chosen.size() == 4);
  for (const std::string hook : {"", "cpu", "keel_vnpu"}) {
    o.wrong_result_backend = hook;
    for (std::size_t i = 0; i < chosen.size(); ++i) {
      workload_record rec;
      std::vector<result_entry> out;
      REQUIRE(measure_workload(chosen[i], i, ctx, rec, out));
      REQUIRE(out.size() == 3);
      for (const result_entry& e : out) {
        INFO("hook '" << hook << "', " << e.workload << " on " << e.backend << ": " << e.message);
        if (e.backend == "reference") {
          CHECK(e.outcome == "ok");
          CHECK(e.verified_on == "oracle");
        } else if (e.backend == "keel_vnpu" &&
                   (e.op == op_kind::attention || e.op == op_kind::matmul_i4)) {
          CHECK(e.outcome == "unsupported");
        } else if (e.backend == hook) {
          CHECK(e.outcome == "mismatch");
          CHECK(e.check.mismatches >= 1);
        } else {
          CHECK(e.outcome == "ok");
          CHECK(e.time.reps >= 1);
          CHECK(e.check.mismatches == 0);
          CHECK(e.check.checked > 0);
        }
      }
    }
  }
}
