"""Shared fixtures of the keel Python tests.

The module under test is `keel` as Python finds it: the build tree when PYTHONPATH points at
<build>/python_bindings_optional (scripts/test.sh does that), or an installed package. Every
random input comes from numpy's default_rng with a seed that the test prints in its failure
message; KEEL_TEST_SEED=<n> replaces the base seed to replay or vary a run.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/oracle.py

import keel  # noqa: E402

BASE_SEED = int(os.environ.get("KEEL_TEST_SEED", "20240611"))


def pytest_report_header(config):
    names = ", ".join(b["name"] for b in keel.backends())
    return [f"keel {keel.__version__} from {Path(keel.__file__).parent}",
            f"keel backends: {names}; base seed {BASE_SEED} (KEEL_TEST_SEED)"]


@pytest.fixture
def seed(request) -> int:
    """A seed per test, derived from the base seed and the test's name (stable across runs)."""
    name = request.node.nodeid.encode()
    return (BASE_SEED * 1_000_003 + sum(b * 131**i for i, b in enumerate(name))) % 2**32


def backends_running(op: str, weight: str | None = None) -> list[str]:
    """Names of the built-in backends whose caps list `op` (and the weight dtype)."""
    out = []
    for b in keel.backends():
        if op in b["ops"] and (weight is None or weight in b["weight_types"]):
            out.append(b["name"])
    return out


def all_runners(op: str, weight: str | None = None) -> list[str]:
    """Backends plus 'router:<board>' entries: the same op through keel.Router."""
    return backends_running(op, weight) + ["router:generic_x86_64_avx2", "router:rk3588"]


_routers: dict[str, keel.Router] = {}


def runner(name: str):
    """The `backend` argument for a name from all_runners()."""
    if name.startswith("router:"):
        if name not in _routers:
            _routers[name] = keel.Router(name.split(":", 1)[1])
        return _routers[name]
    return name


def is_npu(name: str) -> bool:
    return name.startswith("npu")
