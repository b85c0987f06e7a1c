"""keel: int8/int4 kernels for edge AI on numpy arrays.

The ops (matmul_i8, matmul_i4, conv2d_i8, attention, quantize_linear, dequantize_linear,
dynamic_quantize_linear) run keel's C++ kernels on the backends this build has
(keel.backends()) or through a router (keel.Router). Inputs are read through their numpy
strides without copying; bad input raises keel.KeelError carrying keel's Status text.
See docs/python.md.
"""

from keel._keel import (
    KeelError,
    PackedMatmulI4,
    PackedMatmulI8,
    Router,
    __version__,
    attention,
    backends,
    board_profile,
    boards,
    conv2d_i8,
    cpu_threads,
    dequantize_linear,
    dynamic_quantize_linear,
    matmul_i4,
    matmul_i8,
    pack_int4,
    pack_matmul_i4,
    pack_matmul_i8,
    quantize_linear,
    quantize_rows_s8,
    set_cpu_threads,
    unpack_int4,
)

__all__ = [
    "KeelError",
    "PackedMatmulI4",
    "PackedMatmulI8",
    "Router",
    "__version__",
    "attention",
    "backends",
    "board_profile",
    "boards",
    "conv2d_i8",
    "cpu_threads",
    "dequantize_linear",
    "dynamic_quantize_linear",
    "matmul_i4",
    "matmul_i8",
    "pack_int4",
    "pack_matmul_i4",
    "pack_matmul_i8",
    "quantize_linear",
    "quantize_rows_s8",
    "set_cpu_threads",
    "unpack_int4",
]
