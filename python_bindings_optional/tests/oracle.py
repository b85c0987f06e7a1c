"""numpy implementations of keel's op semantics (docs/semantics.md), written from the text of
that page, not from keel's C++: the tests compare every op of the module with these.

Integer results (int32 accumulators, requantized int8/uint8) and the float results that
docs/semantics.md defines bit for bit (matmul_i8/conv2d_i8 f32 output, matmul_i4 with dynamic
int8 activations, the quantize ops) are computed with the same float32 roundings in the same
order, so the tests compare them exactly. Attention and matmul_i4 with f32 activations are
computed in float64 and compared within the bounds the page states.
"""

from __future__ import annotations

import math

import numpy as np

I32_MIN, I32_MAX = -(2**31), 2**31 - 1
RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int32": (I32_MIN, I32_MAX)}


def f32(x) -> np.float32:
    return np.float32(x)


# ---- requantization (semantics.md, "Requantization") -------------------------------------


def quantize_multiplier(real: float) -> tuple[int, int]:
    """real = M * 2^(shift - 31) with M a Q31 integer; TFLite's QuantizeMultiplier."""
    if not (real > 0.0) or not math.isfinite(real):
        return 0, 0
    q, shift = math.frexp(real)
    scaled = q * 2147483648.0
    m = int(math.floor(scaled + 0.5))  # half away from zero; scaled > 0
    if m == 2**31:
        m //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    if shift > 30:
        return 2**31 - 1, 30
    return m, shift


def multiply_by_quantized_multiplier(acc: np.ndarray, m: int, shift: int) -> np.ndarray:
    """(acc * M + 2^(30 - shift)) >> (31 - shift), arithmetic shift, saturated to int32."""
    total = 31 - shift
    # |acc| <= 2^31 and M < 2^31: the product and the rounding term stay below 2^63.
    prod = acc.astype(np.int64) * np.int64(m) + np.int64(1 << (total - 1))
    return np.clip(prod >> np.int64(total), I32_MIN, I32_MAX)


def output_stage(acc, in_scale, w_scale, out_dtype, out_scale=1.0, out_zero_point=0,
                 clamp_min=None, clamp_max=None, requant="fixed_point"):
    """The output stage of matmul_i8 and conv2d_i8 applied to int64 acc [..., C] (already the
    saturated int32 sum plus bias); w_scale has one entry per channel C (broadcast)."""
    out_dtype = np.dtype(out_dtype).name
    c = acc.shape[-1]
    w = np.broadcast_to(np.asarray(w_scale, np.float32).ravel(), (c,)) if out_dtype != "int32" else None
    if out_dtype == "int32":
        return acc.astype(np.int32)
    if out_dtype == "float32":
        d = (f32(in_scale) * w).astype(np.float32)  # one rounding per channel
        return (acc.astype(np.float32) * d).astype(np.float32)
    lo, hi = RANGES[out_dtype]
    if clamp_min is not None:
        lo = max(lo, clamp_min)
    if clamp_max is not None:
        hi = min(hi, clamp_max)
    y = np.empty(acc.shape, np.int64)
    for n in range(c):
        col = acc[..., n]
        if requant == "fixed_point":
            real = float(f32(in_scale)) * float(w[n]) / float(f32(out_scale))
            m, shift = quantize_multiplier(real)
            v = multiply_by_quantized_multiplier(col, m, shift)
        else:
            mult = f32(f32(f32(in_scale) * w[n]) / f32(out_scale))
            scaled = (col.astype(np.float32) * mult).astype(np.float32)
            r = np.rint(scaled).astype(np.float64)  # rint: half to even
            v = np.clip(np.nan_to_num(r, nan=0.0), I32_MIN, I32_MAX).astype(np.int64)
        y[..., n] = np.clip(v + out_zero_point, lo, hi)
    return y.astype(out_dtype)


# ---- matmul_i8 ----------------------------------------------------------------------------


def matmul_i8(a, b, *, a_zero_point=0, a_scale=1.0, b_scale=None, b_zero_point=None, bias=None,
              out_dtype="int32", **stage):
    a64 = a.astype(np.int64) - a_zero_point
    n = b.shape[-1]
    zb = np.zeros(n, np.int64) if b_zero_point is None else np.broadcast_to(
        np.asarray(b_zero_point, np.int64).ravel(), (n,))
    b64 = b.astype(np.int64) - zb
    acc = np.matmul(a64, b64)  # exact: |terms| < 2^16, K small
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    acc = np.clip(acc, I32_MIN, I32_MAX)
    return output_stage(acc, a_scale, b_scale if b_scale is not None else [0.0], out_dtype, **stage)


# ---- conv2d_i8 ----------------------------------------------------------------------------


def same_pads(size, k, stride, dilation, lower):
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    lead = total - total // 2 if lower else total // 2
    return lead, total - lead


def conv2d_i8(x, w, *, stride=(1, 1), dilation=(1, 1), pads=(0, 0, 0, 0), groups=1,
              in_zero_point=0, in_scale=1.0, w_scale=None, w_zero_point=None, bias=None,
              out_dtype="int32", **stage):
    """pads = (top, bottom, left, right), already resolved."""
    n, h, wd, cin = x.shape
    cout, kh, kw, cg = w.shape
    sh, sw = stride
    dh, dw = dilation
    top, bottom, left, right = pads
    xz = np.zeros((n, h + top + bottom, wd + left + right, cin), np.int64)  # padding reads zi
    xz[:, top:top + h, left:left + wd, :] = x.astype(np.int64) - in_zero_point
    oh = (h + top + bottom - ((kh - 1) * dh + 1)) // sh + 1
    ow = (wd + left + right - ((kw - 1) * dw + 1)) // sw + 1
    zw = np.zeros(cout, np.int64) if w_zero_point is None else np.broadcast_to(
        np.asarray(w_zero_point, np.int64).ravel(), (cout,))
    w64 = w.astype(np.int64) - zw[:, None, None, None]
    per_group = cout // groups
    acc = np.zeros((n, oh, ow, cout), np.int64)
    for ky in range(kh):
        for kx in range(kw):
            ys = ky * dh
            xs = kx * dw
            patch = xz[:, ys:ys + (oh - 1) * sh + 1:sh, xs:xs + (ow - 1) * sw + 1:sw, :]
            for g in range(groups):
                xin = patch[..., g * cg:(g + 1) * cg]
                wg = w64[g * per_group:(g + 1) * per_group, ky, kx, :]
                acc[..., g * per_group:(g + 1) * per_group] += np.einsum("nhwc,oc->nhwo", xin, wg)
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    acc = np.clip(acc, I32_MIN, I32_MAX)
    return output_stage(acc, in_scale, w_scale if w_scale is not None else [0.0], out_dtype, **stage)


# ---- matmul_i4 ----------------------------------------------------------------------------


def pack_int4(values):
    """Two nibbles a byte, low nibble first (semantics.md, int4 storage)."""
    v = np.asarray(values, np.int64) & 0xF
    k = v.shape[-1]
    if k % 2:
        v = np.concatenate([v, np.zeros(v.shape[:-1] + (1,), np.int64)], axis=-1)
    return (v[..., 0::2] | (v[..., 1::2] << 4)).astype(np.uint8)


def group_bounds(k, g):
    return [(s, min(s + g, k)) for s in range(0, k, g)]


def matmul_i4_f32(a, w, scale, *, group_size, zero_point=None, signed=True, bias=None):
    """f32 activations, in float64; w int [N, K] values, scale [N, groups]."""
    n, k = w.shape
    s = np.asarray(scale, np.float64)
    z = np.zeros_like(s) if signed else (np.full(s.shape, 8.0) if zero_point is None
                                         else np.asarray(zero_point, np.float64))
    out = np.zeros(a.shape[:-1] + (n,), np.float64)
    bound = np.zeros_like(out)
    for g, (lo, hi) in enumerate(group_bounds(k, group_size)):
        wg = (w[:, lo:hi] - z[:, g:g + 1]) * s[:, g:g + 1]
        out += a[..., lo:hi].astype(np.float64) @ wg.T
        bound += np.abs(a[..., lo:hi]).astype(np.float64) @ np.broadcast_to(
            np.abs(s[:, g:g + 1]) * 15.0, (n, hi - lo)).T
    if bias is not None:
        out += np.asarray(bias, np.float64)
    return out, k * 2.0**-22 * bound  # semantics.md: the f32 tolerance


def quantize_rows_s8(x):
    """Symmetric per-row int8: scale = max|x| / 127 (f32), q = clamp(rint(x / scale), +-127)."""
    x = np.asarray(x, np.float32)
    amax = np.max(np.abs(x), axis=-1)
    scale = (amax / f32(127)).astype(np.float32)
    safe = np.where(scale == 0, f32(1), scale).astype(np.float32)
    q = np.rint((x / safe[..., None]).astype(np.float32))
    q = np.where(scale[..., None] == 0, 0, np.clip(q, -127, 127)).astype(np.int8)
    return q, scale


def matmul_i4_dynamic(a, w, scale, *, group_size, zero_point=None, signed=True, bias=None):
    """dynamic_s8 activations, bit for bit: exact int group sums, f32 sum over groups ascending."""
    n, k = w.shape
    s = np.asarray(scale).astype(np.float32)
    z = np.zeros(s.shape, np.int64) if signed else (np.full(s.shape, 8, np.int64) if zero_point is None
                                                    else np.asarray(zero_point, np.int64))
    q, a_scale = quantize_rows_s8(a)
    out = np.zeros(a.shape[:-1] + (n,), np.float32)
    for g, (lo, hi) in enumerate(group_bounds(k, group_size)):
        isum = q[..., lo:hi].astype(np.int64) @ (w[:, lo:hi].astype(np.int64) - z[:, g:g + 1]).T
        factor = (a_scale[..., None] * s[:, g]).astype(np.float32)  # a_scale * s[n, g], in f32
        out = (out + (isum.astype(np.float32) * factor).astype(np.float32)).astype(np.float32)
    if bias is not None:
        out = (out + np.asarray(bias, np.float32)).astype(np.float32)
    return out


# ---- attention ----------------------------------------------------------------------------


def attention(q, k, v, *, q_scale=None, k_scale=None, v_scale=None, softmax_scale=0.0,
              causal_offset=None, mask=None):
    """float64; scales already broadcast to [B, H, S] arrays (or None for f32 operands)."""
    b, hq, sq, d = q.shape
    _, hkv, skv, _ = k.shape
    qf = q.astype(np.float64) * (1.0 if q_scale is None else q_scale[..., None])
    kf = k.astype(np.float64) * (1.0 if k_scale is None else k_scale[..., None])
    vf = v.astype(np.float64) * (1.0 if v_scale is None else v_scale[..., None])
    sm = float(softmax_scale) if softmax_scale else 1.0 / math.sqrt(d)
    group = hq // hkv
    kf = np.repeat(kf, group, axis=1)
    vf = np.repeat(vf, group, axis=1)
    scores = np.einsum("bhqd,bhkd->bhqk", qf, kf) * sm
    visible = np.ones(scores.shape, bool)
    if causal_offset is not None:
        i = np.arange(sq)[:, None]
        j = np.arange(skv)[None, :]
        visible &= (j <= i + causal_offset)[None, None]
    if mask is not None:
        m = np.broadcast_to(mask.astype(np.float64), scores.shape)
        scores = scores + m
        visible &= ~np.isneginf(m)
    scores = np.where(visible, scores, -np.inf)
    top = np.max(scores, axis=-1, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    p = np.where(visible, np.exp(scores - top), 0.0)
    l = p.sum(axis=-1, keepdims=True)
    out = np.einsum("bhqk,bhkd->bhqd", p, vf) / np.where(l == 0, 1.0, l)
    return np.where(l == 0, 0.0, out)


# ---- quantize ops -------------------------------------------------------------------------


def quantize_linear(x, scale, zero_point, out_dtype, axis=None):
    lo, hi = RANGES[np.dtype(out_dtype).name]
    shape = [1] * x.ndim
    if axis is not None:
        shape[axis] = -1
    s = np.asarray(scale, np.float32).reshape(shape)
    z = np.asarray(0 if zero_point is None else zero_point, np.int64).reshape(shape)
    r = np.rint((x.astype(np.float32) / s).astype(np.float32)).astype(np.float64)
    r = np.clip(np.nan_to_num(r, nan=0.0), I32_MIN, I32_MAX).astype(np.int64)
    return np.clip(r + z, lo, hi).astype(out_dtype)


def dequantize_linear(x, scale, zero_point, axis=None):
    shape = [1] * x.ndim
    if axis is not None:
        shape[axis] = -1
    s = np.asarray(scale, np.float32).reshape(shape)
    z = np.asarray(0 if zero_point is None else zero_point, np.int64).reshape(shape)
    return ((x.astype(np.int64) - z).astype(np.float32) * s).astype(np.float32)


def dynamic_quantize_linear(x):
    x = x.astype(np.float32)
    lo = min(f32(x.min()), f32(0))
    hi = max(f32(x.max()), f32(0))
    scale = f32(f32(hi - lo) / f32(255))
    if scale == 0:
        return np.zeros(x.shape, np.uint8), scale, 0
    zp = int(np.clip(np.rint(f32(f32(0) - f32(lo / scale))), 0, 255))
    y = np.clip(np.rint((x / scale).astype(np.float32)) + zp, 0, 255).astype(np.uint8)
    return y, scale, zp
