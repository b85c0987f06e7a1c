// tools/envelope/routing.hpp — the routing table each shipped policy would choose on this
// machine, from the measured profile.
//
// keel::router<Board, Policy> reads its board at compile time, and the measured board exists only
// at run time (until its generated header is compiled in). So keel-envelope evaluates the
// router's rules at run time on the measured profile: the compile-time candidate list (the
// backends whose caps run the op and dtype and which the board hosts, ranked by the policy's
// score on the router's nominal shape, the reference last) and the run-time choice for each
// workload (candidates within max_dim, predicted by the backend's own model when it has one and
// by the board's roofline otherwise, ranked by the policy's score). It uses the router's own
// pieces for all of it (work_of, nominal_work, roofline, the policies' score functions, the
// backends' estimate hooks); what it restates is the few lines of ranking in router.hpp, and a
// test (tests/envelope/route_check.cpp, through the generated header) compares the two.
#pragma once

#include <string>
#include <vector>

#include "backends.hpp"
#include "keel/boards/profile.hpp"
#include "keel/router/cost_model.hpp"
#include "workloads.hpp"

namespace keel::envelope {

struct route_choice {
  std::string backend;
  double predicted_us = 0;
  double energy_uj = 0;
};

struct route_row {
  std::string policy;               // "latency-first", "energy-first"
  std::string workload;             // workload id
  std::vector<route_choice> order;  // what the router would try, in order; order[0] runs
};

// The shipped policies, by name.
std::vector<std::string> policy_names();

// `policy_backends` are the backends a BSP would list in its policy (every available backend but
// the reference, in make_backends() order); the router appends the reference itself, which is
// `reference` here.
std::vector<route_row> routing_table(const boards::board_profile& board,
                                     const std::vector<const backend_slot*>& policy_backends,
                                     const backend_slot& reference,
                                     const std::vector<workload>& workloads);

// The compile-time candidate list of (op, dtype) under `policy`, best first (names).
std::vector<std::string> candidate_names(const boards::board_profile& board,
                                         const std::vector<const backend_slot*>& policy_backends,
                                         const backend_slot& reference, const std::string& policy,
                                         op_kind k, dtype t);

// The router's unit rates for a backend kind on a (run-time) board: rates_for<Board>() of
// keel/router/cost_model.hpp, which only takes a compile-time board.
unit_rates rates_on(const boards::board_profile& p, backend_kind kind);

}  // namespace keel::envelope
