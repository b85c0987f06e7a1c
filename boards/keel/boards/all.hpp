// keel/boards/all.hpp — every board profile keel ships, and a list of them for code that walks
// all boards (the routing-table tests, the envelope profiler's comparisons).
#pragma once

#include "keel/boards/generic_x86_64_avx2.hpp"
#include "keel/boards/imx8m_plus.hpp"
#include "keel/boards/jetson_orin_nano.hpp"
#include "keel/boards/profile.hpp"
#include "keel/boards/raspberry_pi_5.hpp"
#include "keel/boards/rk3588.hpp"
#include "keel/boards/snapdragon_8_gen_2.hpp"
#include "keel/boards/x86_64_avx512_vnni.hpp"

namespace keel::boards {

using shipped_boards = board_list<generic_x86_64_avx2, x86_64_avx512_vnni, raspberry_pi_5, rk3588,
                                  imx8m_plus, jetson_orin_nano, snapdragon_8_gen_2>;

}  // namespace keel::boards
