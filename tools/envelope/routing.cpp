// tools/envelope/routing.cpp — the router's ranking, evaluated on a run-time board (routing.hpp).
#include "routing.hpp"

#include <cmath>
#include <limits>

#include "keel/router/policy.hpp"
#include "keel/router/router.hpp"

namespace keel::envelope {

namespace {

using score_fn = double (*)(const estimate&);

double latency_score(const estimate& e) {
  return latency_first<>::score(e);
}
double energy_score(const estimate& e) {
  return energy_first<>::score(e);
}

score_fn score_of(const std::string& policy) {
  return policy == "energy-first" ? energy_score : latency_score;
}

// The backends as the router numbers them: the policy's, then the reference.
struct routed {
  std::vector<const backend_slot*> slots;
  std::vector<unit_rates> rates;
};

routed route_set(const boards::board_profile& board, const std::vector<const backend_slot*>& pb,
                 const backend_slot& reference) {
  routed r;
  r.slots = pb;
  r.slots.push_back(&reference);
  for (const backend_slot* s : r.slots) r.rates.push_back(rates_on(board, s->caps().kind));
  return r;
}

// router::board_hosts and router::caps_accept.
bool eligible(const boards::board_profile& p, const backend_caps& c, op_kind k, dtype t) {
  if (!c.runs(k) || (is_integer(t) && !c.accepts_weights(t))) return false;
  switch (c.kind) {
    case backend_kind::reference:
    case backend_kind::cpu: return true;
    case backend_kind::gpu: return p.gpu.present;
    case backend_kind::npu: {
      if (!p.npu.present || (p.npu.ops & op_bit(k)) == 0) return false;
      const std::uint32_t want =
          is_integer(t) ? dtype_bit(t) : (dtype_bit(dtype::f16) | dtype_bit(dtype::f32));
      return (p.npu.dtypes & want) != 0;
    }
  }
  return false;
}

// router::make_candidates: indices into r.slots, the reference last.
std::vector<std::size_t> candidates(const boards::board_profile& p, const routed& r, score_fn score,
                                    op_kind k, dtype t) {
  std::vector<std::size_t> c;
  const std::size_t ref = r.slots.size() - 1;
  if (is_routable(k) && legal_routing_dtype(k, t)) {
    const op_work w = routing_detail::nominal_work(k, t);
    const auto nominal = [&](std::size_t i) {
      const double time = roofline_us(r.rates[i], w);
      const backend_caps& caps = r.slots[i]->caps();
      return score(estimate{caps.name, caps.kind, caps.bit_exact, time, time * r.rates[i].watts});
    };
    for (std::size_t i = 0; i < ref; ++i) {
      if (!eligible(p, r.slots[i]->caps(), k, t)) continue;
      const double s = nominal(i);
      std::size_t pos = c.size();
      c.push_back(i);
      while (pos > 0 && nominal(c[pos - 1]) > s) {
        c[pos] = c[pos - 1];
        --pos;
      }
      c[pos] = i;
    }
  }
  c.push_back(ref);
  return c;
}

// router::predict_us: the backend's own model, else the roofline with precomputed inverses.
double predict_us(const routed& r, std::size_t i, const op_desc& d, const op_work& w) {
  const double own = r.slots[i]->router_estimate_us(d);
  if (!std::isnan(own)) return own;
  constexpr double inf = std::numeric_limits<double>::infinity();
  const unit_rates& u = r.rates[i];
  const double us_per_int = u.int_ops_per_us > 0 ? 1 / u.int_ops_per_us : inf;
  const double us_per_float = u.float_ops_per_us > 0 ? 1 / u.float_ops_per_us : inf;
  const double us_per_byte = u.bytes_per_us > 0 ? 1 / u.bytes_per_us : inf;
  const double compute = w.ops * (w.float_math ? us_per_float : us_per_int);
  const double memory = w.bytes * us_per_byte;
  return u.launch_us + (compute > memory ? compute : memory);
}

dtype routing_dtype_of(const op_desc& d) {
  return std::visit([](const auto& x) { return routing_dtype(x); }, d);
}

}  // namespace

unit_rates rates_on(const boards::board_profile& p, backend_kind kind) {
  unit_rates r;
  switch (kind) {
    case backend_kind::reference:
      r.int_ops_per_us = p.cpu.freq_ghz * 1e3 * kReferenceOpsPerCycle;
      r.float_ops_per_us = r.int_ops_per_us;
      r.bytes_per_us = p.cpu.mem_bandwidth_gbs * 1e3;
      r.watts = p.power.cpu_w / p.cpu.cores;
      break;
    case backend_kind::cpu:
      r.int_ops_per_us = p.cpu.peak_int8_gops * 1e3;
      r.float_ops_per_us = p.cpu.peak_f32_gflops * 1e3;
      r.bytes_per_us = p.cpu.mem_bandwidth_gbs * 1e3;
      r.launch_us = p.cpu.launch_us;
      r.watts = p.power.cpu_w;
      break;
    case backend_kind::gpu:
      r.int_ops_per_us = p.gpu.peak_int8_gops * 1e3;
      r.float_ops_per_us = p.gpu.peak_f32_gflops * 1e3;
      r.bytes_per_us = p.gpu.mem_bandwidth_gbs * 1e3;
      r.launch_us = p.gpu.launch_us;
      r.watts = p.power.gpu_w;
      break;
    case backend_kind::npu:
      r.int_ops_per_us = p.npu.peak_int8_gops * 1e3;
      r.float_ops_per_us = p.npu.peak_f16_gflops * 1e3;
      r.bytes_per_us = p.npu.mem_bandwidth_gbs * 1e3;
      r.launch_us = p.npu.launch_us;
      r.watts = p.power.npu_w;
      r.max_dim = p.npu.max_dim;
      break;
  }
  return r;
}

std::vector<std::string> policy_names() {
  return {"latency-first", "energy-first"};
}

std::vector<std::string> candidate_names(const boards::board_profile& board,
                                         const std::vector<const backend_slot*>& policy_backends,
                                         const backend_slot& reference, const std::string& policy,
                                         op_kind k, dtype t) {
  const routed r = route_set(board, policy_backends, reference);
  std::vector<std::string> names;
  for (std::size_t i : candidates(board, r, score_of(policy), k, t)) {
    names.emplace_back(r.slots[i]->caps().name);
  }
  return names;
}

std::vector<route_row> routing_table(const boards::board_profile& board,
                                     const std::vector<const backend_slot*>& policy_backends,
                                     const backend_slot& reference,
                                     const std::vector<workload>& workloads) {
  const routed r = route_set(board, policy_backends, reference);
  std::vector<route_row> table;
  for (const std::string& policy : policy_names()) {
    const score_fn score = score_of(policy);
    for (const workload& wl : workloads) {
      const op_work w = work_of_desc(wl.desc);
      const std::vector<std::size_t> cl =
          candidates(board, r, score, w.kind, routing_dtype_of(wl.desc));
      // router::decide without budgets, risk class or health (every backend healthy).
      struct ranked {
        std::size_t index;
        double score, time, energy;
      };
      std::vector<ranked> order;
      for (std::size_t i : cl) {
        const backend_caps& c = r.slots[i]->caps();
        if (w.largest_dim > c.max_dim || w.largest_dim > r.rates[i].max_dim) continue;
        const double time = predict_us(r, i, wl.desc, w);
        if (!(time < std::numeric_limits<double>::infinity())) continue;
        const double energy = time * r.rates[i].watts;
        const ranked e{i, score(estimate{c.name, c.kind, c.bit_exact, time, energy}), time, energy};
        std::size_t k = order.size();
        order.push_back(e);
        while (k > 0 && e.score < order[k - 1].score) {
          order[k] = order[k - 1];
          --k;
        }
        order[k] = e;
      }
      route_row row;
      row.policy = policy;
      row.workload = wl.id;
      for (const ranked& e : order) {
        row.order.push_back({std::string(r.slots[e.index]->caps().name), e.time, e.energy});
      }
      table.push_back(std::move(row));
    }
  }
  return table;
}

}  // namespace keel::envelope
