// A program outside keel's tree, built against an installed keel found through pkg-config only.
// It includes headers from three component roots, which an install merges into one include/keel.
#include <keel/backends/reference.hpp>
#include <keel/keel.hpp>
#include <keel/kernels/reference/quantize.hpp>

#include <cstdint>
#include <cstdio>

int main() {
  // dequantize_linear: (x - zp) * scale = (7 - 3) * 0.25 = 1 and (-5 - 3) * 0.25 = -2.
  const std::int8_t x[2] = {7, -5};
  const float scale[1] = {0.25f};
  const std::int32_t zp[1] = {3};
  float y[2] = {0, 0};
  keel::dequantize_args args;
  args.x = keel::view(x, {2});
  args.scale = scale;
  args.zero_point = zp;
  args.y = keel::view(y, {2});
  const keel::Status s = keel::reference::dequantize_linear(keel::quantize_desc{}, args);
  if (!s.ok() || y[0] != 1.0f || y[1] != -2.0f) {
    std::fprintf(stderr, "installed keel: %s, y = %g %g\n", s.message(),
                 static_cast<double>(y[0]), static_cast<double>(y[1]));
    return 1;
  }
  std::printf("installed keel %s works\n", KEEL_VERSION_STRING);
  return 0;
}
