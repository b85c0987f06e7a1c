"""Every op of the module against the numpy oracle (oracle.py) on seeded random inputs, on every
backend built in that runs it and through the router. Integer outputs, and the float outputs
docs/semantics.md defines exactly, are compared bit for bit."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import keel
import oracle
from conftest import all_runners, backends_running, is_npu, runner

PRIMES = [1, 2, 3, 5, 7, 13, 17, 31, 37, 67]


def rand_int(rng, dtype, shape):
    lo, hi = oracle.RANGES[np.dtype(dtype).name]
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64).astype(dtype)


def run_or_unsupported(name, fn):
    """Runs fn(); an NPU may answer 'unsupported' for a configuration its device lacks."""
    try:
        return fn()
    except keel.KeelError as e:
        if is_npu(name) and e.code == "unsupported":
            return None
        raise


# ---- matmul_i8 ----------------------------------------------------------------------------

MATMUL_CASES = list(itertools.product(
    ["uint8", "int8"],                   # A
    ["int8", "uint8"],                   # B
    ["int32", "float32", "int8", "uint8"],  # out
    ["fixed_point", "float_scale"],
))


@pytest.mark.parametrize("name", all_runners("matmul_i8"))
def test_matmul_i8_matches_oracle(name, seed):
    rng = np.random.default_rng(seed)
    ran = 0
    for i, (at, bt, ot, mode) in enumerate(MATMUL_CASES):
        if ot in ("int32", "float32") and mode == "float_scale":
            continue  # the mode only matters for 8-bit outputs
        m, k, n = (int(rng.choice(PRIMES)) for _ in range(3))
        batch = int(rng.integers(0, 3))  # 0: no batch dim
        a = rand_int(rng, at, (batch, m, k) if batch else (m, k))
        b = rand_int(rng, bt, (k, n))
        za = int(rng.integers(*oracle.RANGES[at])) if i % 2 else 0
        zb = rand_int(rng, bt, (n,)).astype(np.int32) if i % 3 == 1 else None
        bias = rng.integers(-5000, 5000, size=n).astype(np.int32) if i % 4 != 3 else None
        a_scale = float(rng.uniform(0.01, 0.1))
        b_scale = rng.uniform(0.001, 0.05, size=n).astype(np.float32)
        out_scale = float(rng.uniform(0.5, 40.0))
        ozp = int(rng.integers(*oracle.RANGES[ot])) if ot in ("int8", "uint8") else None
        kw = dict(a_zero_point=za, a_scale=a_scale, b_scale=b_scale, b_zero_point=zb, bias=bias,
                  out_dtype=ot, out_scale=out_scale, out_zero_point=ozp, requant=mode)
        want = oracle.matmul_i8(a, b, a_zero_point=za, a_scale=a_scale, b_scale=b_scale,
                                b_zero_point=zb, bias=bias, out_dtype=ot, out_scale=out_scale,
                                out_zero_point=ozp or 0, requant=mode)
        got = run_or_unsupported(name, lambda: keel.matmul_i8(a, b, backend=runner(name), **kw))
        if got is None:
            continue
        ran += 1
        info = f"seed {seed} case {i} {at}x{bt}->{ot} {mode} batch {batch} M{m} K{k} N{n}"
        assert got.dtype == np.dtype(ot), info
        assert got.shape == want.shape, info
        assert np.array_equal(got, want), info
    assert ran > 0, f"{name} ran no matmul_i8 case"


def test_matmul_i8_clamp_and_batched_b(seed):
    rng = np.random.default_rng(seed)
    a = rand_int(rng, "uint8", (3, 5, 17))
    b = rand_int(rng, "int8", (3, 17, 7))
    bs = rng.uniform(0.001, 0.02, size=7).astype(np.float32)
    got = keel.matmul_i8(a, b, a_zero_point=120, a_scale=0.05, b_scale=bs, out_dtype=np.int8,
                         out_scale=0.3, out_zero_point=-3, clamp_min=-3, clamp_max=60)
    want = oracle.matmul_i8(a, b, a_zero_point=120, a_scale=0.05, b_scale=bs, out_dtype="int8",
                            out_scale=0.3, out_zero_point=-3, clamp_min=-3, clamp_max=60)
    assert np.array_equal(got, want), f"seed {seed}"
    assert got.min() >= -3 and got.max() <= 60


def test_matmul_i8_strided_views_zero_copy(seed):
    """Transposed, sliced and reversed operands give the same result as dense copies; the
    output is written in place into a strided `out`."""
    rng = np.random.default_rng(seed)
    base_a = rand_int(rng, "int8", (19, 40))
    base_b = rand_int(rng, "int8", (23, 30))
    a = base_a[::2, 3:33]      # [10, 30]: every other row, a column window
    b = base_b.T[:, ::3]       # [30, 8]: a transposed view, every third column
    assert not a.flags.c_contiguous and not b.flags.c_contiguous
    want = oracle.matmul_i8(a, b)
    assert np.array_equal(keel.matmul_i8(a, b), want), f"seed {seed}"
    assert np.array_equal(keel.matmul_i8(np.ascontiguousarray(a), np.ascontiguousarray(b)), want)
    # A reversed view has negative strides: the module copies it (keel's strides are >= 0).
    assert np.array_equal(keel.matmul_i8(a[::-1], b), want[::-1])
    # out: every other column of a wider int32 buffer, written through its strides.
    buf = np.full((want.shape[0], 2 * want.shape[1]), 7, np.int32)
    res = keel.matmul_i8(a, b, out=buf[:, ::2])
    assert np.shares_memory(res, buf)
    assert np.array_equal(buf[:, ::2], want)
    assert np.all(buf[:, 1::2] == 7), "a stray write between the output's columns"


@pytest.mark.parametrize("name", backends_running("matmul_i8"))
def test_pack_matmul_i8_matches_unpacked(name, seed):
    rng = np.random.default_rng(seed)
    k, n = 37, 13
    b = rand_int(rng, "int8", (k, n))
    bs = rng.uniform(0.001, 0.05, size=n).astype(np.float32)
    zb = rand_int(rng, "int8", (n,)).astype(np.int32)
    bias = rng.integers(-1000, 1000, size=n).astype(np.int32)
    b_original = b.copy()
    cases = [(1, "float32"), (5, "int32"), (9, "float32"), (4, "uint8"), (3, "int8")]
    ran = 0
    for zero_points in (zb, None):  # an NPU may lack weight zero points
        for m, ot in cases:
            packed = run_or_unsupported(name, lambda: keel.pack_matmul_i8(
                b, b_scale=bs, b_zero_point=zero_points, bias=bias, out_dtype=ot, backend=name))
            if packed is None:
                continue
            assert (packed.k, packed.n, packed.weight_dtype, packed.backend) == (k, n, "s8", name)
            b[:] = 0  # the packed object owns its copy
            a = rand_int(rng, "uint8", (m, k))
            za = int(rng.integers(0, 256))
            a_scale = float(rng.uniform(0.01, 0.2))
            ozp = {"uint8": 128, "int8": -2}.get(ot)
            got = keel.matmul_i8(a, packed, a_zero_point=za, a_scale=a_scale, out_dtype=ot,
                                 out_scale=2.0, out_zero_point=ozp)
            want = oracle.matmul_i8(a, b_original, a_zero_point=za, a_scale=a_scale, b_scale=bs,
                                    b_zero_point=zero_points, bias=bias, out_dtype=ot,
                                    out_scale=2.0, out_zero_point=ozp or 0)
            b[:] = b_original
            ran += 1
            assert np.array_equal(got, want), f"seed {seed} {name} M{m} {ot} zb {zero_points}"
    assert ran > 0, f"{name} packed nothing"


# ---- matmul_i4 ----------------------------------------------------------------------------

I4_CASES = [
    # (weight dtype, K, group size, scale dtype, zero points, activation)
    ("s4", 64, 32, "float32", False, "f32"),
    ("s4", 100, 32, "float16", False, "f32"),       # partial last group
    ("u4", 96, 16, "float32", True, "f32"),
    ("u4", 45, 45, "float32", False, "f32"),         # one group of K (odd K)
    ("s4", 128, 64, "float32", False, "dynamic_s8"),
    ("u4", 77, 16, "float16", True, "dynamic_s8"),
    ("s4", 33, 33, "float16", False, "dynamic_s8"),
]


def make_i4(rng, wt, n, k, g, st, zp):
    lo, hi = (-8, 7) if wt == "s4" else (0, 15)
    w = rng.integers(lo, hi + 1, size=(n, k))
    groups = -(-k // g)
    scale = rng.uniform(0.005, 0.05, size=(n, groups)).astype(st)
    z = rng.integers(0, 16, size=(n, groups)).astype(np.uint8) if zp else None
    return w, oracle.pack_int4(w), scale, z


@pytest.mark.parametrize("name", all_runners("matmul_i4", "s4"))
@pytest.mark.parametrize("case", I4_CASES, ids=lambda c: "-".join(map(str, c)))
def test_matmul_i4_matches_oracle(name, case, seed):
    wt, k, g, st, zp, act = case
    rng = np.random.default_rng(seed)
    n = int(rng.choice([3, 7, 13]))
    w, packed_bytes, scale, z = make_i4(rng, wt, n, k, g, st, zp)
    bias = rng.uniform(-1, 1, size=n).astype(np.float32)
    for batch in (0, 2):
        m = int(rng.choice([1, 3, 5]))
        a = rng.standard_normal((batch, m, k) if batch else (m, k)).astype(np.float32)
        got = keel.matmul_i4(a, packed_bytes, scale=scale, zero_point=z, bias=bias,
                             weight_dtype=wt, group_size=g, activation=act, backend=runner(name))
        info = f"seed {seed} {case} batch {batch} M{m} N{n}"
        assert got.dtype == np.float32 and got.shape == a.shape[:-1] + (n,), info
        if act == "dynamic_s8":
            want = oracle.matmul_i4_dynamic(a, w, scale, group_size=g, zero_point=z,
                                            signed=wt == "s4", bias=bias)
            assert np.array_equal(got, want), info
        else:
            want, bound = oracle.matmul_i4_f32(a, w, scale, group_size=g, zero_point=z,
                                               signed=wt == "s4", bias=bias)
            assert np.all(np.abs(got - want) <= bound + 1e-7), info


@pytest.mark.parametrize("name", backends_running("matmul_i4", "s4"))
def test_pack_matmul_i4_matches_unpacked(name, seed):
    rng = np.random.default_rng(seed)
    n, k, g = 11, 96, 32
    w, packed_bytes, scale, _ = make_i4(rng, "s4", n, k, g, "float32", False)
    packed = keel.pack_matmul_i4(packed_bytes, k=k, scale=scale, group_size=g, backend=name)
    assert (packed.k, packed.n, packed.group_size, packed.weight_dtype) == (k, n, g, "s4")
    packed_bytes[:] = 0  # the packed object owns its copy
    a = rng.standard_normal((4, k)).astype(np.float32)
    got = keel.matmul_i4(a, packed, activation="dynamic_s8")
    want = oracle.matmul_i4_dynamic(a, w, scale, group_size=g)
    assert np.array_equal(got, want), f"seed {seed}"


def test_int4_pack_unpack_round_trip(seed):
    rng = np.random.default_rng(seed)
    for wt, lo, hi in (("s4", -8, 7), ("u4", 0, 15)):
        for k in (1, 2, 7, 32, 33):
            v = rng.integers(lo, hi + 1, size=(3, k))
            packed = keel.pack_int4(v, wt)
            assert np.array_equal(packed, oracle.pack_int4(v)), f"seed {seed} {wt} K{k}"
            assert np.array_equal(keel.unpack_int4(packed, k, wt), v), f"seed {seed} {wt} K{k}"


def test_quantize_rows_s8(seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((6, 50)) * rng.uniform(0.1, 10, size=(6, 1))).astype(np.float32)
    x[2] = 0  # an all-zero row: scale 0, q 0
    q, s = keel.quantize_rows_s8(x)
    wq, ws = oracle.quantize_rows_s8(x)
    assert np.array_equal(q, wq) and np.array_equal(s, ws), f"seed {seed}"


# ---- conv2d_i8 ----------------------------------------------------------------------------

CONV_CASES = [
    # (N, H, W, Cin, Cout, KH, KW, stride, dilation, padding, groups, out dtype)
    (1, 7, 9, 3, 4, 3, 3, (1, 1), (1, 1), "valid", 1, "int32"),
    (2, 8, 8, 4, 6, 3, 3, (2, 2), (1, 1), "same", 1, "float32"),
    (1, 9, 7, 6, 6, 3, 3, (1, 2), (2, 1), (1, 2, 0, 1), 6, "int8"),   # depthwise
    (1, 6, 6, 4, 8, 1, 1, (1, 1), (1, 1), "valid", 2, "uint8"),       # grouped 1x1
    (1, 5, 11, 2, 4, 3, 2, (1, 1), (1, 1), "same_lower", 2, "int32"),
    (1, 10, 10, 8, 8, 1, 1, (1, 1), (1, 1), 0, 1, "float32"),          # a 1x1 GEMM
]


def resolve_pads(case):
    n, h, w, cin, cout, kh, kw, s, d, pad, g, ot = case
    if pad == "valid":
        return (0, 0, 0, 0)
    if isinstance(pad, int):
        return (pad,) * 4
    if isinstance(pad, str):
        lower = pad == "same_lower"
        t, b = oracle.same_pads(h, kh, s[0], d[0], lower)
        l, r = oracle.same_pads(w, kw, s[1], d[1], lower)
        return (t, b, l, r)
    return pad


@pytest.mark.parametrize("name", all_runners("conv2d_i8"))
@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[3]}to{c[4]}k{c[5]}x{c[6]}g{c[10]}-{c[9]}")
def test_conv2d_i8_matches_oracle(name, case, seed):
    n, h, w, cin, cout, kh, kw, s, d, pad, g, ot = case
    rng = np.random.default_rng(seed)
    x = rand_int(rng, "uint8", (n, h, w, cin))
    wt = rand_int(rng, "int8", (cout, kh, kw, cin // g))
    ws = rng.uniform(0.001, 0.02, size=cout).astype(np.float32)
    bias = rng.integers(-3000, 3000, size=cout).astype(np.int32)
    zi = int(rng.integers(0, 256))
    ozp = 5 if ot in ("int8", "uint8") else None
    got = run_or_unsupported(name, lambda: keel.conv2d_i8(
        x, wt, stride=s, dilation=d, padding=pad, groups=g, in_zero_point=zi, in_scale=0.05,
        w_scale=ws, bias=bias, out_dtype=ot, out_scale=0.7, out_zero_point=ozp,
        backend=runner(name)))
    if got is None:
        pytest.skip(f"{name} does not run this conv (its virtual device lacks the feature)")
    want = oracle.conv2d_i8(x, wt, stride=s, dilation=d, pads=resolve_pads(case), groups=g,
                            in_zero_point=zi, in_scale=0.05, w_scale=ws, bias=bias, out_dtype=ot,
                            out_scale=0.7, out_zero_point=ozp or 0)
    assert got.shape == want.shape and np.array_equal(got, want), f"seed {seed} {case}"


# ---- attention ----------------------------------------------------------------------------

ATTN_CASES = [
    # (B, Hq, Hkv, Sq, Skv, D, Dv, q dtype, kv dtype, granularity, mask)
    (1, 2, 2, 5, 5, 8, 8, "float32", "float32", None, None),
    (2, 4, 2, 3, 7, 16, 8, "float32", "int8", "tensor", "causal"),
    (1, 4, 1, 6, 6, 8, 8, "int8", "int8", "head", "additive"),
    (2, 2, 2, 4, 9, 32, 32, "int8", "int8", "token", "causal"),
    (1, 3, 3, 1, 70, 16, 16, "float32", "int8", "token", None),   # a decode row, 2 kv tiles
]


def scale_for(rng, granularity, b, h, s):
    if granularity == "tensor":
        return np.float32(rng.uniform(0.01, 0.05)), np.full((b, h, s), 0.0)
    if granularity == "head":
        v = rng.uniform(0.01, 0.05, size=h).astype(np.float32)
        return v, np.broadcast_to(v[None, :, None], (b, h, s))
    v = rng.uniform(0.01, 0.05, size=(b, h, s)).astype(np.float32)
    return v, v


@pytest.mark.parametrize("name", all_runners("attention"))
@pytest.mark.parametrize("case", ATTN_CASES, ids=lambda c: f"{c[7]}-{c[8]}-{c[9]}-{c[10]}")
def test_attention_matches_oracle(name, case, seed):
    b, hq, hkv, sq, skv, d, dv, qt, kvt, gran, mask = case
    rng = np.random.default_rng(seed)

    def operand(dtype, shape):
        if dtype == "float32":
            return rng.standard_normal(shape).astype(np.float32), None, None
        arg, full = scale_for(rng, gran, shape[0], shape[1], shape[2])
        if gran == "tensor":
            full = np.full(shape[:3], arg, np.float64)
        return rand_int(rng, "int8", shape), arg, np.asarray(full, np.float64)

    q, qs, qs_full = operand(qt, (b, hq, sq, d))
    k, ks, ks_full = operand(kvt, (b, hkv, skv, d))
    v, vs, vs_full = operand(kvt, (b, hkv, skv, dv))
    if kvt == "int8" and gran != "token":
        vs, vs_full = ks, ks_full  # one granularity for K and V; same values are fine
    kw = dict(q_scale=qs, k_scale=ks, v_scale=vs)
    additive = None
    offset = None
    if mask == "causal":
        kw["causal"] = True
        offset = skv - sq
    elif mask == "additive":
        additive = rng.uniform(-2, 2, size=(1, hq, sq, skv)).astype(np.float32)
        additive[0, 0, 0, :] = -np.inf  # a row with every key hidden: zeros
        additive[0, 1, 2, ::2] = -np.inf
        kw["mask"] = additive
    got = keel.attention(q, k, v, backend=runner(name), **kw)
    want = oracle.attention(q, k, v, q_scale=qs_full, k_scale=ks_full, v_scale=vs_full,
                            causal_offset=offset, mask=additive)
    info = f"seed {seed} {case}"
    assert got.shape == (b, hq, sq, dv) and got.dtype == np.float32, info
    assert np.all(np.isfinite(got)), info
    scale = max(1.0, float(np.max(np.abs(want))))
    assert np.max(np.abs(got - want)) <= 2e-5 * scale, info
    if mask == "additive":
        assert np.all(got[0, 0, 0] == 0), info


def test_attention_strided_projection_views(seed):
    """Q/K/V as transposed views of [S, H*D] projections, as a transformer layer has them."""
    rng = np.random.default_rng(seed)
    s, h, d = 7, 4, 8
    proj = rng.standard_normal((s, 3 * h * d)).astype(np.float32)
    views = [proj[:, i * h * d:(i + 1) * h * d].reshape(s, h, d).transpose(1, 0, 2)[None]
             for i in range(3)]
    assert not views[0].flags.c_contiguous
    got = keel.attention(*views)
    want = oracle.attention(*[np.ascontiguousarray(x) for x in views])
    assert np.max(np.abs(got - want)) <= 2e-5 * max(1.0, np.max(np.abs(want))), f"seed {seed}"


def test_attention_int8_output(seed):
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((1, 2, 3, 8)).astype(np.float32)
    k = rng.standard_normal((1, 2, 5, 8)).astype(np.float32)
    v = rng.standard_normal((1, 2, 5, 8)).astype(np.float32)
    f = keel.attention(q, k, v)
    y = keel.attention(q, k, v, out_dtype=np.int8, out_scale=0.01)
    want = np.clip(np.rint((f / np.float32(0.01)).astype(np.float32)), -128, 127)
    assert y.dtype == np.int8 and np.array_equal(y, want.astype(np.int8)), f"seed {seed}"


# ---- quantize ops -------------------------------------------------------------------------


def test_quantize_linear_per_tensor_and_axis(seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((3, 4, 5)) * 20).astype(np.float32)
    x[0, 0, :3] = [0.5, 1.5, -2.5]  # ties go to even
    for dt in ("int8", "uint8"):
        zp = 3 if dt == "int8" else 128
        got = keel.quantize_linear(x, 0.25, zp, dtype=dt)
        assert np.array_equal(got, oracle.quantize_linear(x, 0.25, zp, dt)), f"seed {seed} {dt}"
    scales = rng.uniform(0.05, 0.5, size=4).astype(np.float32)
    zps = rng.integers(-10, 10, size=4).astype(np.int32)
    got = keel.quantize_linear(x, scales, zps, axis=1)
    assert np.array_equal(got, oracle.quantize_linear(x, scales, zps, "int8", axis=1))
    got = keel.quantize_linear(x, scales[:1].repeat(5), None, axis=-1)
    assert np.array_equal(got, oracle.quantize_linear(x, scales[:1].repeat(5), None, "int8", axis=2))


def test_dequantize_linear(seed):
    rng = np.random.default_rng(seed)
    for dt in ("int8", "uint8", "int32"):
        x = rand_int(rng, dt, (4, 6)) if dt != "int32" else rng.integers(-2**31, 2**31, size=(4, 6)).astype(np.int32)
        zp = {"int8": -5, "uint8": 130, "int32": 1000}[dt]
        got = keel.dequantize_linear(x, 0.125, zp)
        assert np.array_equal(got, oracle.dequantize_linear(x, 0.125, zp)), f"seed {seed} {dt}"
    x = rand_int(rng, "int8", (4, 6))
    s = rng.uniform(0.01, 1, size=6).astype(np.float32)
    assert np.array_equal(keel.dequantize_linear(x, s, axis=1), oracle.dequantize_linear(x, s, None, axis=1))


def test_dynamic_quantize_linear(seed):
    rng = np.random.default_rng(seed)
    for x in [(rng.standard_normal((5, 7)) * 3).astype(np.float32),
              rng.uniform(0.5, 2.0, size=(9,)).astype(np.float32),      # all positive: lo = 0
              -rng.uniform(0.5, 2.0, size=(2, 3, 4)).astype(np.float32),  # all negative: hi = 0
              np.zeros((3, 3), np.float32)]:
        y, s, z = keel.dynamic_quantize_linear(x)
        wy, ws, wz = oracle.dynamic_quantize_linear(x)
        assert np.array_equal(y, wy) and s == ws and z == wz, f"seed {seed} shape {x.shape}"
        assert isinstance(z, int) and y.dtype == np.uint8


# ---- the router ---------------------------------------------------------------------------


def test_router_trace_and_fallback(seed):
    rng = np.random.default_rng(seed)
    r = keel.Router("rk3588")
    assert r.backends[-1] == "reference"
    assert "rk3588_npu" in r.candidates("matmul_i8", "s8")
    assert r.candidates("attention", "f32")[-1] == "reference"
    a = rand_int(rng, "uint8", (64, 256))
    b = rand_int(rng, "int8", (256, 256))
    want = oracle.matmul_i8(a, b, a_zero_point=128)
    assert np.array_equal(keel.matmul_i8(a, b, a_zero_point=128, backend=r), want)
    first = r.trace()
    assert len(first) == 1 and first[0]["op"] == "matmul_i8" and first[0]["result"] == "ok"
    assert first[0]["shape"] == {"B": 1, "M": 64, "N": 256, "K": 256}
    # The NPU loses its device on every job: each call that chose it is retried elsewhere,
    # with the same bits, and the trace shows why.
    r.inject_npu_fault("device_lost")
    r.clear_trace()
    for _ in range(3):
        assert np.array_equal(keel.matmul_i8(a, b, a_zero_point=128, backend=r), want)
    entries = r.trace()
    assert all(e["result"] in ("ok", "device lost") for e in entries)
    assert entries[-1]["result"] == "ok"
    if any(e["backend"] == "rk3588_npu" for e in entries):
        assert any(e["reason"] == "retry after fault" for e in entries), r.trace_text()
        health = {h["backend"]: h for h in r.health()}
        assert health["rk3588_npu"]["faults"] >= 1
    assert r.trace_text().count("\n") == len(entries)
    r.inject_npu_fault("none")
    r.reset_health()


def test_board_profiles():
    names = keel.boards()
    assert "rk3588" in names and "generic_x86_64_avx2" in names
    p = keel.board_profile("rk3588")
    assert p["npu"]["present"] and "matmul_i8" in p["npu"]["ops"]
    assert p["cpu"]["cores"] == 8
    for n in names:
        assert keel.board_profile(n)["name"]
