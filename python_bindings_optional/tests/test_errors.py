"""Bad input: keel.KeelError with keel's Status text (op, value, rule) and a status code, and
nothing written to the caller's `out`."""

from __future__ import annotations

import numpy as np
import pytest

import keel

SENTINEL = 77


def sentinel_out(shape, dtype):
    return np.full(shape, SENTINEL, dtype)


def expect_error(fn, code, *fragments):
    with pytest.raises(keel.KeelError) as info:
        fn()
    text = str(info.value)
    assert info.value.code == code, text
    for f in fragments:
        assert f in text, text
    return text


def test_keel_error_is_a_value_error():
    assert issubclass(keel.KeelError, ValueError)


def test_matmul_i8_shape_mismatch_writes_nothing():
    a = np.ones((2, 3), np.uint8)
    b = np.ones((4, 5), np.int8)
    out = sentinel_out((2, 5), np.int32)
    expect_error(lambda: keel.matmul_i8(a, b, out=out), "shape mismatch", "matmul_i8:",
                 "B dim 0 is 4 (must be 3)")
    assert np.all(out == SENTINEL)


@pytest.mark.parametrize("kwargs, code, fragment", [
    (dict(a_zero_point=300), "invalid argument", "A zero point = 300"),
    (dict(a_zero_point=2**40), "invalid argument", "outside int32"),
    (dict(a_zero_point=1.5), "invalid argument", "must be an integer"),
    (dict(b_scale=[0.1, 0.2], out_dtype="float32"), "shape mismatch", "weight scale has 2 entries"),
    (dict(b_scale=-1.0, out_dtype="float32"), "invalid argument", "weight scale = -1"),
    (dict(b_scale=float("nan"), out_dtype="float32"), "invalid argument", "weight scale = nan"),
    (dict(b_scale=0.1, out_dtype="int8", out_scale=0.0), "invalid argument", "output scale = 0"),
    (dict(b_scale=0.1, out_dtype="int8", out_zero_point=200), "invalid argument",
     "output zero point = 200"),
    (dict(b_scale=0.1, out_dtype="int8", clamp_min=10, clamp_max=5), "invalid argument",
     "clamp [10, 5] is empty"),
    (dict(bias=[1, 2]), "shape mismatch", "bias has 2 entries"),
    (dict(b_zero_point=[1, 2]), "shape mismatch", "weight zero point has 2 entries"),
    (dict(out_dtype="float64"), "unsupported", "out_dtype float64"),
    (dict(requant="nearest"), "invalid argument", "requant = 'nearest'"),
    (dict(backend="gpu"), "unsupported", "backend 'gpu' is not built in"),
])
def test_matmul_i8_bad_parameters(kwargs, code, fragment):
    a = np.ones((2, 3), np.uint8)
    b = np.ones((3, 3), np.int8)
    expect_error(lambda: keel.matmul_i8(a, b, **kwargs), code, fragment)


def test_bad_dtypes_and_ranks():
    a64 = np.ones((2, 3), np.float64)
    b = np.ones((3, 2), np.int8)
    expect_error(lambda: keel.matmul_i8(a64, b), "unsupported", "A has dtype float64")
    expect_error(lambda: keel.matmul_i8(np.ones((2, 3), np.float32), b), "unsupported",
                 "dtypes A=f32 B=s8")
    expect_error(lambda: keel.matmul_i8(np.ones(3, np.uint8), b), "shape mismatch",
                 "A has rank 1")
    expect_error(lambda: keel.quantize_linear(np.ones((1,) * 5, np.float32), 1.0),
                 "invalid argument", "x has rank 5 (keel views hold at most 4)")
    expect_error(lambda: keel.matmul_i8(None, b), "invalid argument", "A is None")


def test_misaligned_float_buffer_is_rejected():
    raw = np.zeros(4 * 12 + 1, np.uint8)
    x = np.frombuffer(raw.data, dtype=np.float32, count=12, offset=1).reshape(3, 4)
    assert x.ctypes.data % 4 != 0
    out = sentinel_out((3, 4), np.int8)
    expect_error(lambda: keel.quantize_linear(x, 0.5, out=out), "invalid argument", "misaligned")
    assert np.all(out == SENTINEL)


def test_out_problems():
    a = np.ones((2, 3), np.uint8)
    b = np.ones((3, 2), np.int8)
    wrong_dtype = sentinel_out((2, 2), np.int8)
    expect_error(lambda: keel.matmul_i8(a, b, out_dtype="int32", out=wrong_dtype),
                 "invalid argument", "out has dtype s8 (must be s32)")
    assert np.all(wrong_dtype == SENTINEL)
    wrong_shape = sentinel_out((2, 3), np.int32)
    expect_error(lambda: keel.matmul_i8(a, b, out=wrong_shape), "shape mismatch", "out dim 1")
    assert np.all(wrong_shape == SENTINEL)
    read_only = sentinel_out((2, 2), np.int32)
    read_only.flags.writeable = False
    expect_error(lambda: keel.matmul_i8(a, b, out=read_only), "invalid argument",
                 "out must be a writable numpy array")
    reversed_out = sentinel_out((2, 2), np.int32)[::-1]
    expect_error(lambda: keel.matmul_i8(a, b, out=reversed_out), "invalid argument",
                 "out stride 0 is -2 (must be >= 0)")
    assert np.all(reversed_out == SENTINEL)


def test_k_beyond_the_exact_int32_range():
    # u8 x u8 with K = 33026 can overflow int32: rejected before any work.
    a = np.zeros((1, 33026), np.uint8)
    b = np.zeros((33026, 1), np.uint8)
    expect_error(lambda: keel.matmul_i8(a, b), "overflow", "reduction length 33026 exceeds 33025")


def test_packed_weights_errors():
    b = np.ones((4, 3), np.int8)
    packed = keel.pack_matmul_i8(b)
    expect_error(lambda: keel.matmul_i8(np.ones((2, 4), np.uint8), packed, b_scale=1.0),
                 "invalid argument", "come with packed weights")
    expect_error(lambda: keel.matmul_i8(np.ones((2, 5), np.uint8), packed), "shape mismatch",
                 "matmul_i8:")
    expect_error(lambda: keel.pack_matmul_i8(b, backend=keel.Router()), "invalid argument",
                 "packing needs one backend")


def test_matmul_i4_errors():
    a = np.ones((2, 64), np.float32)
    w = keel.pack_int4(np.zeros((3, 64), np.int8))
    scale = np.ones((3, 2), np.float32)
    out = sentinel_out((2, 3), np.float32)
    expect_error(lambda: keel.matmul_i4(a, w[:, :31], scale=scale), "shape mismatch",
                 "B rows hold 31 bytes (K = 64 needs 32)")
    expect_error(lambda: keel.matmul_i4(a, w, scale=scale[:, :1], out=out), "shape mismatch",
                 "scale dim 1 is 1 (must be 2)")
    expect_error(lambda: keel.matmul_i4(a, w, scale=scale, group_size=48), "invalid argument",
                 "group size 48")
    expect_error(lambda: keel.matmul_i4(a, w, scale=scale, zero_point=np.ones((3, 2), np.uint8)),
                 "invalid argument", "zero points given for s4 weights")
    expect_error(lambda: keel.matmul_i4(a, w, scale=scale, weight_dtype="s8"), "unsupported",
                 "weight dtype s8")
    expect_error(lambda: keel.matmul_i4(a, w.astype(np.int8), scale=scale), "invalid argument",
                 "packed int4 is uint8 bytes")
    bad = a.copy()
    bad[1, 5] = np.inf
    expect_error(lambda: keel.matmul_i4(bad, w, scale=scale, activation="dynamic_s8", out=out),
                 "invalid argument", "matmul_i4:")
    assert np.all(out == SENTINEL)
    expect_error(lambda: keel.pack_int4(np.array([[8]])), "invalid argument",
                 "values[0] = 8 is outside the s4 range [-8, 7]")


def test_conv2d_errors():
    x = np.ones((1, 5, 5, 4), np.uint8)
    w = np.ones((6, 3, 3, 4), np.int8)
    expect_error(lambda: keel.conv2d_i8(x, w, groups=3), "invalid argument",
                 "groups = 3 must divide in_c = 4 and out_c = 6")
    expect_error(lambda: keel.conv2d_i8(x, np.ones((6, 7, 7, 4), np.int8)), "invalid argument",
                 "larger than the padded input")
    expect_error(lambda: keel.conv2d_i8(x, w, padding="full"), "invalid argument",
                 "padding 'full'")
    expect_error(lambda: keel.conv2d_i8(x, w, stride=(1, 2, 3)), "invalid argument",
                 "stride = (1, 2, 3)")
    expect_error(lambda: keel.conv2d_i8(x, w[..., :3]), "shape mismatch", "weights dim 3")


def test_attention_errors():
    q = np.ones((1, 4, 3, 8), np.float32)
    k = np.ones((1, 3, 5, 8), np.float32)
    out = sentinel_out((1, 4, 3, 8), np.float32)
    expect_error(lambda: keel.attention(q, k, k, out=out), "invalid argument",
                 "kv_heads = 3 does not divide q_heads = 4")
    assert np.all(out == SENTINEL)
    k8 = np.ones((1, 2, 5, 8), np.int8)
    expect_error(lambda: keel.attention(q, k8, k8), "invalid argument",
                 "k_scale or v_scale is missing")
    expect_error(lambda: keel.attention(q, k8, k8, k_scale=[0.1, 0.1, 0.1], v_scale=[0.1, 0.1, 0.1]),
                 "shape mismatch", "K scale has 3 entries")
    expect_error(lambda: keel.attention(q, k8, k8, k_scale=0.1, v_scale=[0.1, 0.2]),
                 "invalid argument", "different granularities")
    expect_error(lambda: keel.attention(q, k[:, :2], k[:, :2], causal=True,
                                        mask=np.zeros((1, 1, 3, 5), np.float32)),
                 "invalid argument", "give one of them")
    expect_error(lambda: keel.attention(q, k[:, :2], k[:, :2], softmax_scale=-1.0),
                 "invalid argument", "softmax scale -1")


def test_quantize_errors():
    x = np.ones((2, 3), np.float32)
    out = sentinel_out((2, 3), np.int8)
    expect_error(lambda: keel.quantize_linear(x, 0.0, out=out), "invalid argument", "scale = 0")
    assert np.all(out == SENTINEL)
    expect_error(lambda: keel.quantize_linear(x, [1.0, 2.0], axis=1), "shape mismatch",
                 "scale has 2 entries (must be 3)")
    expect_error(lambda: keel.quantize_linear(x, 1.0, axis=2), "invalid argument", "axis 2")
    expect_error(lambda: keel.quantize_linear(x, 1.0, 200), "invalid argument",
                 "zero point = 200 is outside the s8 range")
    bad = x.copy()
    bad[0, 0] = np.nan
    y = sentinel_out((2, 3), np.uint8)
    expect_error(lambda: keel.dynamic_quantize_linear(bad, out=y), "invalid argument",
                 "NaN or infinity")
    assert np.all(y == SENTINEL)
    expect_error(lambda: keel.dequantize_linear(x, 1.0), "unsupported", "x dtype f32")


def test_router_errors():
    expect_error(lambda: keel.Router("nonexistent_board"), "unsupported", "board 'nonexistent_board'")
    expect_error(lambda: keel.Router("rk3588", "cheapest"), "unsupported", "policy 'cheapest'")
    expect_error(lambda: keel.board_profile("nope"), "unsupported", "board 'nope'")
    r = keel.Router()
    expect_error(lambda: r.inject_npu_fault("meteor"), "invalid argument", "fault 'meteor'")
    expect_error(lambda: r.candidates("softmax"), "invalid argument", "op 'softmax'")
