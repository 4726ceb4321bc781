"""Test setup: without CUDA the Triton kernels run through the interpreter on CPU tensors.

TRITON_INTERPRET must be set before any kernel is decorated, so this runs before the
project's modules are imported. With CUDA present the same tests run the compiled kernels.

Torch gets one intra-op thread (unless OMP_NUM_THREADS says otherwise), set before it loads its
OpenMP runtime and inherited by the commands the tests start: the tensors here are tiny, and on
2 cores shared with other work a second thread stalls every parallel op (the default command took
293 s with two threads and 166 s with one, at a load of about 4.5). Tests about threads set their
own count.

Four markers (pyproject.toml lists them) decide what runs here:
- `gpu`: needs CUDA; skipped without it.
- `triton`: runs the Triton kernels; without CUDA, skipped with the reason where Triton's
  interpreter cannot run on this stack (triton < 3.7 with numpy >= 2.4).
- `slow`: seconds or more on 2 cores (AOT compiles: the report's kernels, the whole space; deep-pipeline and long
  interpreter runs, end-to-end runs in subprocesses). Left out unless `--slow` is given or a
  `-m` expression chooses (`-m slow` runs only them, as CI's second call does).
- `aot`: compiles the kernels for sm_80/sm_90 without a GPU (triton's compiler, then cuobjdump):
  what it checks depends on the triton version, so CI runs these on the GPU image's triton.
"""

import gc
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `kernels` and `suite` are imported from the repository root

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"

import numpy  # noqa: E402
import pytest  # noqa: E402
import triton  # noqa: E402

from kernels.common import interpreter_unusable_reason  # noqa: E402

DEVICE = "cuda" if HAS_CUDA else "cpu"


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", help="also run the tests marked slow")


def pytest_collection_modifyitems(config, items):
    if not config.getoption("--slow") and not config.getoption("markexpr"):
        slow = [item for item in items if item.get_closest_marker("slow")]
        if slow:
            config.hook.pytest_deselected(items=slow)
            items[:] = [item for item in items if not item.get_closest_marker("slow")]
    if HAS_CUDA:
        return
    skips = {"gpu": pytest.mark.skip(reason="needs CUDA")}
    unusable = interpreter_unusable_reason(triton.__version__, numpy.__version__)
    if unusable:
        skips["triton"] = pytest.mark.skip(reason=unusable)
    for item in items:
        for marker, skip in skips.items():
            if item.get_closest_marker(marker):
                item.add_marker(skip)


def pytest_collection_finish(session):
    # Every module is imported now: its objects live to the end of the session. Frozen, they are
    # left out of each full collection (the sweep collects after every config: a third of a
    # second each over this many objects, for nothing).
    gc.freeze()


def pytest_unconfigure(config):
    gc.unfreeze()  # collected at exit as usual: native bindings check that their objects were freed


@pytest.fixture(autouse=True)
def _seeded():
    """Each test draws from torch's global generator as if it ran alone: what it draws (and so
    whether a tolerance holds) never depends on which tests ran before it or were deselected."""
    torch.manual_seed(0)


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
