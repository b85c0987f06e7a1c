"""The module as a whole: what it exports, its stubs, docstrings, and the GIL released around
kernels."""

from __future__ import annotations

import ast
import threading
import time
from pathlib import Path

import numpy as np

import keel
from keel import _keel

STUB = Path(__file__).resolve().parents[1] / "keel" / "_keel.pyi"


def public_names(module) -> set[str]:
    return {n for n in dir(module) if not n.startswith("_")} | {"__version__"}


def stub_names() -> set[str]:
    tree = ast.parse(STUB.read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def test_stubs_list_every_public_name():
    helpers = {"BackendInfo", "TraceEntry", "BackendHealth"}  # typing-only names in the stub
    assert public_names(_keel) == stub_names() - helpers


def test_package_exports_the_module():
    assert set(keel.__all__) == public_names(_keel)
    assert keel.__version__ == _keel.__version__


def test_every_function_and_class_has_a_docstring():
    for name in public_names(_keel) - {"__version__"}:
        doc = getattr(_keel, name).__doc__
        assert doc and len(doc.strip()) > 20, name


def test_backends_describe_themselves():
    infos = keel.backends()
    names = [b["name"] for b in infos]
    assert names[0] == "reference"
    assert len(set(names)) == len(names)
    for b in infos:
        assert b["kind"] in ("reference", "cpu", "gpu", "npu")
        assert "matmul_i8" in b["ops"]
    ref = infos[0]
    assert ref["bit_exact"] and set(ref["ops"]) >= {"matmul_i8", "matmul_i4", "conv2d_i8",
                                                     "attention"}


def test_the_gil_is_released_while_a_kernel_runs():
    """A long reference attention runs in a thread; the main thread keeps running Python
    meanwhile. With the GIL held for the whole kernel the main thread would make no progress
    until it ended."""
    rng = np.random.default_rng(1)
    q = rng.standard_normal((1, 8, 256, 64)).astype(np.float32)
    kv = rng.standard_normal((1, 8, 256, 64)).astype(np.float32)
    t0 = time.perf_counter()
    keel.attention(q, kv, kv, backend="reference")
    single = time.perf_counter() - t0

    done = threading.Event()

    def work():
        for _ in range(3):
            keel.attention(q, kv, kv, backend="reference")
        done.set()

    th = threading.Thread(target=work)
    ticks = 0
    th.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0)
    th.join()
    # Each tick is a few microseconds of Python; the kernel calls took ~3 * single seconds.
    assert ticks > 50, f"main thread ticked {ticks} times during {3 * single:.3f} s of kernels"
