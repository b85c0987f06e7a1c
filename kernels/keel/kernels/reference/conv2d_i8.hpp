// keel/kernels/reference/conv2d_i8.hpp — the oracle for conv2d_i8 (NHWC input, OHWI weights).
//
// Plain scalar C++, clarity over speed: every other implementation must produce the same bits on
// s32/s8/u8 outputs, and on f32 outputs too (one float multiply of an exact int32). See
// docs/semantics.md, "conv2d_i8", and the comments of conv2d_desc in keel/ops.hpp.
//
//   out[n, oh, ow, oc] = stage( bias[oc] + sum over kh, kw, ci of
//                          (x[n, ih, iw, g*Cg + ci] - in_zp) * (w[oc, kh, kw, ci] - w_zp[oc]) )
//   ih = oh*stride_h - pad_top + kh*dilation_h,   iw = ow*stride_w - pad_left + kw*dilation_w,
//   Cg = C_in / groups,  g = oc / (C_out / groups)   (depthwise: Cg = 1, g = oc / multiplier).
//
// A tap that lands in the padding reads x = in_zp, so it contributes exactly 0: the kernel skips
// it instead of materialising the pad. The sum is exact in int64 and, for every shape validate()
// accepts, fits int32 (validate_accumulator); the bias is then added with saturation and the
// shared output stage of matmul_i8 (keel/quant.hpp) turns it into s32, f32, s8 or u8.
#pragma once

#include <cstdint>

#include "keel/kernels/reference/matmul_i8.hpp"
#include "keel/ops.hpp"

namespace keel::reference {

inline Status conv2d_i8(const conv2d_desc& d, const conv2d_args& a) {
  // Validate everything before the first store: bad input writes nothing.
  KEEL_RETURN_IF_ERROR(validate(d, a));

  // ---- setup: resolved pads, group sizes, the strides of the three views --------------------
  const conv2d_geometry g = conv2d_output_geometry(d).value();
  const std::int64_t in_per_group = d.in_c / d.groups;
  const std::int64_t out_per_group = d.out_c / d.groups;
  const std::int64_t xs_n = a.input.stride(0), xs_h = a.input.stride(1);
  const std::int64_t xs_w = a.input.stride(2), xs_c = a.input.stride(3);
  const std::int64_t ws_o = a.weights.stride(0), ws_h = a.weights.stride(1);
  const std::int64_t ws_w = a.weights.stride(2), ws_c = a.weights.stride(3);
  const std::int64_t os_n = a.out.stride(0), os_h = a.out.stride(1);
  const std::int64_t os_w = a.out.stride(2), os_c = a.out.stride(3);

  // ---- per output channel: its group, weight zero point, bias and requantization constants ---
  for (std::int64_t oc = 0; oc < d.out_c; ++oc) {
    const std::int64_t first_in_c = (oc / out_per_group) * in_per_group;
    const std::int32_t zw = detail::pick(a.w_zero_point, oc, 0);
    const std::int32_t bias = detail::pick(a.bias, oc, 0);
    const channel_requant c =
        d.out.type == dtype::s32
            ? channel_requant{}
            : make_channel_requant(d.in_scale, detail::pick(a.w_scale, oc, 0.0f), d.out.scale);

    for (std::int64_t n = 0; n < d.batch; ++n) {
      for (std::int64_t oh = 0; oh < g.out_h; ++oh) {
        for (std::int64_t ow = 0; ow < g.out_w; ++ow) {
          // ---- reduction over the receptive field; padded taps add 0 and are skipped -------
          std::int64_t sum = 0;
          for (std::int64_t kh = 0; kh < d.kernel_h; ++kh) {
            const std::int64_t ih = oh * d.stride_h - g.pad_top + kh * d.dilation_h;
            if (ih < 0 || ih >= d.in_h) continue;
            for (std::int64_t kw = 0; kw < d.kernel_w; ++kw) {
              const std::int64_t iw = ow * d.stride_w - g.pad_left + kw * d.dilation_w;
              if (iw < 0 || iw >= d.in_w) continue;
              const std::int64_t x_base = n * xs_n + ih * xs_h + iw * xs_w + first_in_c * xs_c;
              const std::int64_t w_base = oc * ws_o + kh * ws_h + kw * ws_w;
              for (std::int64_t ci = 0; ci < in_per_group; ++ci) {
                const std::int32_t xv =
                    detail::load_8bit(a.input.data, x_base + ci * xs_c, d.in_type);
                const std::int32_t wv =
                    detail::load_8bit(a.weights.data, w_base + ci * ws_c, d.w_type);
                sum += static_cast<std::int64_t>(xv - d.in_zero_point) * (wv - zw);
              }
            }
          }
          KEEL_DASSERT(sum >= INT32_MIN && sum <= INT32_MAX,
                       "validated reduction length keeps the sum in int32");

          // ---- store: bias with saturation, then the shared output stage --------------------
          detail::store_output(a.out.data, n * os_n + oh * os_h + ow * os_w + oc * os_c,
                               detail::add_bias(sum, bias), c, d.out);
        }
      }
    }
  }
  return Status::Ok();
}

}  // namespace keel::reference
