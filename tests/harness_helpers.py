"""Shared helpers of the tests: a tiny SweepConfig, fast timer settings, a test provider, and the
backend parameter that runs the Triton kernels."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from suite.core.schema import SweepConfig
from suite.core.store import read_results
from suite.sweep import sweep
from suite.sweep.providers import PROVIDERS, Built, Provider

FAST = dict(progress=False, warmup=0, repeats=2)  # tiny shapes; the figures are not the point here
# backend="triton" as a parameter: marked, so that conftest skips it where the kernels cannot run
# (the torch backend always can).
TRITON = pytest.param("triton", marks=pytest.mark.triton)


def cfg(provider: str = "indrnn_torch", mode: str = "train", **axes) -> SweepConfig:
    values = dict(seq_len=8, depth=1, batch=2, hidden=8, dtype="float32", input_size=8) | axes
    return SweepConfig(provider=provider, mode=mode, **values)


def indrnn_build(forward_of):
    """A provider whose forward is forward_of(model, x) and whose reference is the model."""

    def build(c: SweepConfig, device: torch.device) -> Built:
        built = PROVIDERS["indrnn_torch"].build(c, device)
        model = built.model
        return Built(model, lambda x: forward_of(model, x), built.output_size, reference=lambda x: model(x)[0])

    return build


def register(monkeypatch, name: str, build, unavailable=lambda c, d: None, role: str = "baseline") -> None:
    preference = 9 if role == "indrnn" else None
    monkeypatch.setitem(
        PROVIDERS, name, Provider(name, "test provider", build, unavailable, role=role, preference=preference)
    )


def sweep_rows(tmp_path, configs) -> pd.DataFrame:
    out = tmp_path / "run.csv"
    sweep.run_sweep(configs, out, preset="test", **FAST)
    return read_results(out)
