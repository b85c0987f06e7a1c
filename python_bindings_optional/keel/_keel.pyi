"""Type stubs of keel._keel, the extension module behind the package `keel`.

Written by hand from the bindings (python_bindings_optional/src/*.cpp); the test
tests/test_module.py fails when a public name of the module is missing here or a name here is
missing from the module. The full descriptions are the functions' docstrings.
"""

from typing import Literal, TypedDict

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray

__version__: str

# A backend name from backends(), "auto"/None (the fastest built in), or a Router.
BackendArg = str | Router | None
# keel's dtype names, or anything numpy.dtype() accepts.
DTypeArg = Literal["s8", "u8", "s4", "u4", "s32", "f32", "f16"] | DTypeLike
PaddingArg = (
    Literal["valid", "same", "same_upper", "same_lower"]
    | int
    | tuple[int, int]
    | tuple[int, int, int, int]
)

class KeelError(ValueError):
    """A keel op rejected its input; str(e) is keel's Status text, nothing was written."""

    code: str

class BackendInfo(TypedDict):
    name: str
    caps_name: str
    kind: str
    bit_exact: bool
    ops: list[str]
    weight_types: list[str]
    description: str

class TraceEntry(TypedDict):
    request: int
    op: str
    weights: str
    shape: dict[str, int]
    backend: str
    reason: str
    attempt: int
    result: str
    predicted_us: float
    measured_us: float
    text: str

class BackendHealth(TypedDict):
    backend: str
    held_out: bool
    runs: int
    faults: int
    probes: int
    last_fault: str

def backends() -> list[BackendInfo]:
    """The backends this module was built with (name, kind, bit_exact, ops, ...)."""

def set_cpu_threads(max_threads: int) -> None:
    """Caps the cpu backend's threads: 0 for all, 1 for serial."""

def cpu_threads() -> int:
    """The threads a cpu-backend call may use now (0 without a cpu backend)."""

def boards() -> list[str]:
    """The board profiles keel ships."""

def board_profile(board: str) -> dict[str, object]:
    """A board's profile: name, soc, and the cpu, gpu, npu and power sections."""

class Router:
    """keel::router<Board, Policy>: pass it as `backend`; it routes, falls back and traces."""

    def __init__(
        self,
        board: str = "generic_x86_64_avx2",
        policy: Literal["latency_first", "energy_first"] = "latency_first",
    ) -> None: ...
    @property
    def board(self) -> str: ...
    @property
    def policy(self) -> str: ...
    @property
    def backends(self) -> list[str]: ...
    @property
    def requests(self) -> int: ...
    def candidates(self, op: str, weights: DTypeArg = "s8") -> list[str]: ...
    def trace(self) -> list[TraceEntry]: ...
    def trace_text(self) -> str: ...
    def clear_trace(self) -> None: ...
    def health(self) -> list[BackendHealth]: ...
    def reset_health(self) -> None: ...
    def inject_npu_fault(
        self,
        kind: Literal["none", "timeout", "dma_error", "device_lost"],
        every_nth: int = 1,
    ) -> None: ...

class PackedMatmulI8:
    """int8 matmul weights packed once by one backend; pass as B to matmul_i8."""

    @property
    def k(self) -> int: ...
    @property
    def n(self) -> int: ...
    @property
    def weight_dtype(self) -> str: ...
    @property
    def backend(self) -> str: ...
    @property
    def weights(self) -> NDArray[np.int8] | NDArray[np.uint8]: ...

class PackedMatmulI4:
    """int4 matmul weights packed once by one backend; pass as B to matmul_i4."""

    @property
    def k(self) -> int: ...
    @property
    def n(self) -> int: ...
    @property
    def group_size(self) -> int: ...
    @property
    def weight_dtype(self) -> str: ...
    @property
    def backend(self) -> str: ...

def matmul_i8(
    a: ArrayLike,
    b: ArrayLike | PackedMatmulI8,
    *,
    a_zero_point: int = 0,
    a_scale: float = 1.0,
    b_scale: ArrayLike | float | None = None,
    b_zero_point: ArrayLike | int | None = None,
    bias: ArrayLike | None = None,
    out_dtype: DTypeArg | None = None,
    out_scale: float = 1.0,
    out_zero_point: int | None = None,
    clamp_min: int | None = None,
    clamp_max: int | None = None,
    requant: Literal["fixed_point", "float_scale"] = "fixed_point",
    out: NDArray[np.generic] | None = None,
    backend: BackendArg = None,
) -> NDArray[np.generic]:
    """int8 matmul: stage(sum_k (A - za) * (B - zb[n]) + bias[n]); int32, float32, int8 or uint8."""

def pack_matmul_i8(
    b: ArrayLike,
    *,
    b_scale: ArrayLike | float | None = None,
    b_zero_point: ArrayLike | int | None = None,
    bias: ArrayLike | None = None,
    out_dtype: DTypeArg | None = None,
    backend: str | None = None,
) -> PackedMatmulI8:
    """Packs int8 weights B [K, N] (or [batch, K, N]) once for one backend."""

def matmul_i4(
    a: ArrayLike,
    b: ArrayLike | PackedMatmulI4,
    *,
    scale: ArrayLike | None = None,
    zero_point: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    weight_dtype: Literal["s4", "u4"] = "s4",
    group_size: int = 32,
    activation: Literal["f32", "dynamic_s8"] = "f32",
    out: NDArray[np.float32] | None = None,
    backend: BackendArg = None,
) -> NDArray[np.float32]:
    """int4-weight matmul: float32 A [M, K] x packed int4 B [N, ceil(K/2)] with group scales."""

def pack_matmul_i4(
    b: ArrayLike,
    *,
    k: int | None = None,
    scale: ArrayLike | None = None,
    zero_point: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    weight_dtype: Literal["s4", "u4"] = "s4",
    group_size: int = 32,
    backend: str | None = None,
) -> PackedMatmulI4:
    """Packs int4 weights with their group scales once for one backend."""

def conv2d_i8(
    x: ArrayLike,
    w: ArrayLike,
    *,
    stride: int | tuple[int, int] = 1,
    dilation: int | tuple[int, int] = 1,
    padding: PaddingArg = "valid",
    groups: int = 1,
    in_zero_point: int = 0,
    in_scale: float = 1.0,
    w_scale: ArrayLike | float | None = None,
    w_zero_point: ArrayLike | int | None = None,
    bias: ArrayLike | None = None,
    out_dtype: DTypeArg | None = None,
    out_scale: float = 1.0,
    out_zero_point: int | None = None,
    clamp_min: int | None = None,
    clamp_max: int | None = None,
    requant: Literal["fixed_point", "float_scale"] = "fixed_point",
    out: NDArray[np.generic] | None = None,
    backend: BackendArg = None,
) -> NDArray[np.generic]:
    """int8 NHWC conv2d with OHWI weights, groups/depthwise, stride, dilation and padding."""

def attention(
    q: ArrayLike,
    k: ArrayLike,
    v: ArrayLike,
    *,
    q_scale: ArrayLike | float | None = None,
    k_scale: ArrayLike | float | None = None,
    v_scale: ArrayLike | float | None = None,
    softmax_scale: float = 0.0,
    causal: bool = False,
    causal_offset: int | None = None,
    mask: ArrayLike | None = None,
    out_dtype: DTypeArg | None = None,
    out_scale: float = 1.0,
    out: NDArray[np.generic] | None = None,
    backend: BackendArg = None,
) -> NDArray[np.generic]:
    """softmax(softmax_scale * Q K^T + mask) V for Q [B, Hq, Sq, D], K/V [B, Hkv, Skv, D|Dv]."""

def quantize_linear(
    x: ArrayLike,
    scale: ArrayLike | float,
    zero_point: ArrayLike | int | None = None,
    *,
    axis: int | None = None,
    dtype: DTypeArg = "int8",
    out: NDArray[np.generic] | None = None,
) -> NDArray[np.generic]:
    """ONNX QuantizeLinear: saturate(round_half_even(x / scale) + zero_point)."""

def dequantize_linear(
    x: ArrayLike,
    scale: ArrayLike | float,
    zero_point: ArrayLike | int | None = None,
    *,
    axis: int | None = None,
    out: NDArray[np.float32] | None = None,
) -> NDArray[np.float32]:
    """ONNX DequantizeLinear: float32(x - zero_point) * scale."""

def dynamic_quantize_linear(
    x: ArrayLike, *, out: NDArray[np.uint8] | None = None
) -> tuple[NDArray[np.uint8], np.float32, int]:
    """ONNX DynamicQuantizeLinear: (y uint8, scale, zero_point)."""

def quantize_rows_s8(x: ArrayLike) -> tuple[NDArray[np.int8], NDArray[np.float32]]:
    """matmul_i4's dynamic row quantizer: (q int8 [rows, K], scale float32 [rows])."""

def pack_int4(values: ArrayLike, weight_dtype: Literal["s4", "u4"] = "s4") -> NDArray[np.uint8]:
    """int4 values [..., K] -> bytes [..., ceil(K/2)], low nibble first."""

def unpack_int4(
    packed: ArrayLike, k: int | None = None, weight_dtype: Literal["s4", "u4"] = "s4"
) -> NDArray[np.int8] | NDArray[np.uint8]:
    """bytes [..., ceil(K/2)] -> int4 values [..., K]."""
