// route_model.cpp — routes a two-layer int8 MLP on the Acme X1 and prints where each layer ran.
#include <cstdio>
#include <vector>

#include "acme_x1.hpp"
using keel::dtype, keel::op_kind, keel::op_need, keel::view;

// Checked against the board at compile time: fails to build where the NPU cannot do this.
static_assert(acme_router::require<op_need{op_kind::matmul_i8, dtype::s8, keel::placement::npu}>());

int main() {
  std::vector<std::uint8_t> x(8 * 256, 140), h(8 * 512);
  std::vector<std::int8_t> w1(256 * 512, 3), w2(512 * 10, -2);
  std::vector<float> s1(512, 0.01f), s2(10, 0.02f);
  std::vector<std::int32_t> logits(8 * 10);
  keel::matmul_i8_desc l1, l2;  // u8 activations x s8 weights; layer 2 keeps s32 logits
  l1.m = l2.m = 8, l1.k = 256, l1.n = l2.k = 512, l2.n = 10, l1.a_zero_point = 128;
  l1.a_scale = l2.a_scale = 0.05f, l1.out.type = dtype::u8, l1.out.scale = 0.1f;
  keel::matmul_i8_args a1, a2;
  a1.a = view(x.data(), {8, 256}), a1.b = view(w1.data(), {256, 512}), a1.b_scale = s1;
  a2.a = view(h.data(), {8, 512}), a2.b = view(w2.data(), {512, 10}), a2.b_scale = s2;
  a1.out = view(h.data(), {8, 512}), a2.out = view(logits.data(), {8, 10});
  acme_router router;
  for (int token = 0; token < 3; ++token) {
    if (keel::Status s = router.run(l1, a1); !s) return std::puts(s.message()), 1;
    if (keel::Status s = router.run(l2, a2); !s) return std::puts(s.message()), 1;
  }
  router.trace().print(stdout);
  std::printf("logits[0] = %d\n", logits[0]);  // (140-128)*3*256 * 0.005 = 46; 46*-2*512
}
