"""Test setup: without CUDA the Triton kernels run through the interpreter on CPU tensors.

TRITON_INTERPRET must be set before any kernel is decorated, so this runs before the
project's modules are imported. With CUDA present the same tests run the compiled kernels.
"""

import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `kernels` and `suite` are imported from the repository root

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs CUDA; skipped without it")


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def device() -> str:
    """Where kernel tests run: the GPU when there is one, else CPU through the interpreter."""
    return DEVICE


@pytest.fixture(scope="session")
def report_facts():
    """Every kernel, dtype, target and size that `kernel-report` compiles, compiled once for every test
    that reads them (kernels/aot.py; no GPU needed)."""
    from kernels.aot import compile_facts
    from suite.commands.kernel_report import report_jobs

    return compile_facts(report_jobs())
