// A 2x3 by 3x2 int8 matmul on keel's reference backend, int32 output.
#include <cstdint>
#include <cstdio>

#include <keel/keel.hpp>

int main() {
  const std::uint8_t a[2 * 3] = {130, 128, 125, 128, 140, 100};  // u8, [M, K], zero point 128
  const std::int8_t b[3 * 2] = {1, -2, 3, 4, -5, 6};              // s8, [K, N], symmetric
  std::int32_t out[2 * 2] = {};

  keel::matmul_i8_desc desc;  // A u8 and B s8 by default
  desc.m = 2;
  desc.k = 3;
  desc.n = 2;
  desc.a_zero_point = 128;
  desc.out.type = keel::dtype::s32;  // or f32, s8, u8 with desc.out.scale and zero point
  keel::matmul_i8_args args;
  args.a = keel::view(a, {2, 3});
  args.b = keel::view(b, {3, 2});
  args.out = keel::view(out, {2, 2});

  keel::backends::reference_backend backend;
  if (const keel::Status s = backend.run(desc, args); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.message());  // e.g. "matmul_i8: B dim 0 is 4 (must be 3)"
    return 1;
  }
  std::printf("%d %d\n%d %d\n", out[0], out[1], out[2], out[3]);  // 17 -22, 176 -120
  return 0;
}
