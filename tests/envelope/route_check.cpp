// Compiled by tests/envelope/check_envelope.py against a board header that keel-envelope wrote:
// the header must compile on its own (its first include here; its static_assert(check_profile)
// must hold) and route. The program routes one matmul_i8 through keel::router on that board and
// checks the result against the reference bit for bit, then prints the router's plan for every
// quick workload under both shipped policies, which the script compares with the routing table
// in keel-envelope's JSON ("plan <policy> <workload> <backend>=<us> ...").
//
// KEEL_ENVELOPE_BOARD_HEADER: the header's path, as a string literal; KEEL_ENVELOPE_BOARD: the
// struct's name (keel-envelope --board-name).
#include KEEL_ENVELOPE_BOARD_HEADER

#include <cstdio>
#include <cstring>
#include <vector>

#include "keel/backends/cpu.hpp"
#include "keel/backends/npu.hpp"
#include "keel/backends/reference.hpp"
#include "keel/router/router.hpp"
#include "workloads.hpp"

namespace {

using board = keel::boards::KEEL_ENVELOPE_BOARD;
using vnpu = keel::npu::npu_backend<keel::npu::virtual_npu>;  // keel-envelope's default NPU
template <template <class...> class Policy>
using board_router = keel::router<board, Policy<keel::backends::cpu_backend, vnpu>>;

int route_one() {
  // A small projection: u8 activations with a zero point, s8 per-column weights, s8 output.
  const std::int64_t m = 4, n = 48, k = 64;
  std::vector<std::uint8_t> a(static_cast<std::size_t>(m * k));
  std::vector<std::int8_t> b(static_cast<std::size_t>(k * n));
  for (std::size_t i = 0; i < a.size(); ++i) a[i] = static_cast<std::uint8_t>((i * 37 + 11) % 251);
  for (std::size_t i = 0; i < b.size(); ++i)
    b[i] = static_cast<std::int8_t>((i * 53 + 7) % 255 - 127);
  std::vector<float> scale(static_cast<std::size_t>(n), 0.01f);
  keel::matmul_i8_desc d;
  d.m = m;
  d.n = n;
  d.k = k;
  d.a_zero_point = 128;
  d.a_scale = 0.02f;
  d.out.type = keel::dtype::s8;
  d.out.scale = 0.5f;
  std::vector<std::int8_t> routed(static_cast<std::size_t>(m * n)), expected(routed.size());
  keel::matmul_i8_args args;
  args.a = keel::view(a.data(), {m, k});
  args.b = keel::view(b.data(), {k, n});
  args.b_scale = scale;
  args.out = keel::view(routed.data(), {m, n});

  board_router<keel::latency_first> r;
  keel::route_report report;
  const keel::Status s = r.run(d, args, {}, &report);
  if (!s.ok()) {
    std::printf("route: FAILED: %s\n", s.message());
    return 1;
  }
  args.out = keel::view(expected.data(), {m, n});
  if (!keel::backends::reference_backend{}.run(d, args).ok()) return 1;
  const bool same = std::memcmp(routed.data(), expected.data(), routed.size()) == 0;
  std::printf("route matmul_i8 %s %s\n", std::string(report.backend).c_str(),
              same ? "bit-exact" : "MISMATCH");
  return same ? 0 : 1;
}

template <template <class...> class Policy>
void print_plans() {
  const board_router<Policy> r;
  for (const keel::envelope::workload& w : keel::envelope::default_workloads(true)) {
    const keel::route_plan p = std::visit(
        [&](const auto& d) {
          using D = std::decay_t<decltype(d)>;
          if constexpr (std::is_same_v<D, keel::matmul_i8_desc>)
            return r.plan(d, keel::matmul_i8_args{});
          if constexpr (std::is_same_v<D, keel::matmul_i4_desc>)
            return r.plan(d, keel::matmul_i4_args{});
          if constexpr (std::is_same_v<D, keel::conv2d_desc>) return r.plan(d, keel::conv2d_args{});
          if constexpr (std::is_same_v<D, keel::attention_desc>)
            return r.plan(d, keel::attention_args{});
        },
        w.desc);
    std::printf("plan %s %s", std::string(Policy<>::name).c_str(), w.id.c_str());
    for (std::size_t i = 0; i < p.count; ++i) {
      std::printf(" %s=%.9g", std::string(board_router<Policy>::caps[p.order[i]].name).c_str(),
                  static_cast<double>(p.predicted_us[i]));
    }
    std::printf("\n");
  }
}

}  // namespace

int main() {
  const int rc = route_one();
  print_plans<keel::latency_first>();
  print_plans<keel::energy_first>();
  return rc;
}
