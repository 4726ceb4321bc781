"""Presets as data: every preset loads; the paper and quick presets pair what they compare;
overrides replace axes; bad input raises PresetError."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest
import torch

from suite.core.errors import PresetError
from suite.sweep import presets
from suite.sweep.presets import load_preset
from suite.sweep.providers import PROVIDERS

# ---------------------------------------------------------------------------- presets


def test_every_preset_loads_valid_configs():
    assert set(presets.PRESETS) >= {"quick", "paper", "full", "ci"}
    for name in presets.PRESETS:
        configs = load_preset(name)
        assert configs and len(set(configs)) == len(configs)
        for c in configs:
            assert c.mode in PROVIDERS[c.provider].modes
        json.loads((presets.PRESET_DIR / f"{name}.json").read_text())  # presets are data


def test_paper_preset_pairs_two_layer_indrnn_with_one_layer_lstm():
    configs = load_preset("paper")
    assert {(c.hidden, c.input_size, c.dtype, c.mode) for c in configs} == {(128, 2, "float32", "train")}
    at_batch_32 = {(c.provider, c.depth, c.seq_len) for c in configs if c.batch == 32}
    for T in (256, 512, 1024):
        assert {("indrnn_triton", 1, T), ("indrnn_triton", 2, T), ("lstm", 1, T)} <= at_batch_32
    assert ("lstm", 2, 256) not in at_batch_32
    assert {c.batch for c in configs if c.provider == "lstm" and c.seq_len == 1024} >= {8, 32, 512}


def test_quick_preset_pairs_indrnn_with_every_baseline():
    configs = load_preset("quick")
    indrnn = {(c.mode, c.seq_len, c.depth, c.batch, c.hidden) for c in configs if c.provider == "indrnn_torch"}
    for c in configs:
        if c.provider in ("lstm", "gru", "transformer"):
            assert (c.mode, c.seq_len, c.depth, c.batch, c.hidden) in indrnn, c
    assert {c.provider for c in configs} >= {"indrnn_torch", "lstm", "gru", "transformer"}


def test_full_preset_reaches_the_required_extremes():
    configs = load_preset("full")
    assert max(c.seq_len for c in configs) == 16384 and max(c.depth for c in configs) == 21
    assert {c.batch for c in configs} >= {1, 512} and {c.dtype for c in configs} == {"float32", "bfloat16"}
    rec = {(c.seq_len, c.batch, c.hidden) for c in configs if c.mode == "recurrence"}
    assert rec == {(1024, 256, 2048), (1024, 32, 128)}


def test_overrides_replace_axes_and_recurrence_is_normalised():
    configs = load_preset("ci", {"seq_len": [4], "provider": ["lstm", "indrnn_torch"], "mode": ["infer", "recurrence"]})
    assert {c.seq_len for c in configs} == {4}
    assert {(c.provider, c.mode) for c in configs} == {
        ("lstm", "infer"),
        ("indrnn_torch", "infer"),
        ("indrnn_torch", "recurrence"),
    }
    configs = load_preset("quick", {"mode": ["recurrence"], "depth": [3]})
    assert {(c.depth, c.input_size == c.hidden) for c in configs} == {(1, True)}
    assert presets.default_preset("cuda") == "paper" and presets.default_preset("cpu") == "quick"


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("nope", None, "unknown preset"),
        ("ci", {"provider": ["lsmt"]}, "unknown provider 'lsmt'"),
        ("ci", {"batch": [0]}, "batch must be a positive integer"),
        ("ci", {"dtype": ["float64"]}, "unknown dtype"),
        ("ci", {"seq_len": []}, "non-empty"),
    ],
)
def test_bad_presets_and_overrides_raise(name, overrides, message):
    with pytest.raises(PresetError, match=message):
        load_preset(name, overrides)


def test_paper_preset_has_the_fig2_cells_on_each_schedule():
    at_batch_32 = {(c.provider, c.depth, c.seq_len) for c in load_preset("paper") if c.batch == 32}
    for provider in ("indrnn_triton_seq", "indrnn_triton_scan"):
        assert {(provider, d, t) for d in (1, 2) for t in (256, 512, 1024)} <= at_batch_32


# The sizes the long preset's description promises to stay within: elements of x (T*B*H) for the
# bare recurrence and for the models, which hold more tensors of that size at once.
LONG_ELEMENTS = {"recurrence": 2**30, "infer": 2**29, "train": 2**29}


def test_long_preset_spans_the_scan_regime_within_its_memory_bounds():
    configs = load_preset("long")
    assert {c.mode for c in configs} == set(LONG_ELEMENTS) and {c.depth for c in configs} == {1}
    assert all(c.seq_len * c.batch * c.hidden <= LONG_ELEMENTS[c.mode] for c in configs)
    rec = [c for c in configs if c.mode == "recurrence"]
    models = [c for c in configs if c.mode != "recurrence"]
    assert min(c.seq_len for c in rec) == 256 and max(c.seq_len for c in rec) == 2**20
    assert {c.batch * c.hidden for c in rec} >= {128, 1024, 65536}  # both sides of a GPU's auto boundary
    assert {c.seq_len for c in models} == {4096, 16384, 65536, 2**18}
    assert {c.batch for c in models} == {1, 8} and {c.hidden for c in models} == {128, 1024}
    # Both schedules at every size of the bare recurrence, the GPU target's among them; every model
    # size has the IndRNN (auto and the walk) against LSTM and GRU; all on the Triton kernels.
    sizes = defaultdict(set)
    for c in configs:
        sizes[c.mode, c.seq_len, c.batch, c.hidden].add(c.provider)
    for (mode, *size), providers in sizes.items():
        expected = (
            {"indrnn_triton_seq", "indrnn_triton_scan"}
            if mode == "recurrence"
            else {"indrnn_triton", "indrnn_triton_seq", "lstm", "gru"}
        )
        assert providers == expected, (mode, size)
    assert ("recurrence", 65536, 1, 256) in sizes
    assert all(PROVIDERS[c.provider].recurrence_backend in (None, "triton") for c in configs)


def test_long_cpu_preset_is_the_torch_scan_against_its_loop_on_one_cpu():
    configs = load_preset("long-cpu")
    assert {(c.mode, c.hidden, c.depth, c.dtype) for c in configs} == {("recurrence", 128, 1, "float32")}
    assert {c.seq_len for c in configs} == {4096, 16384, 65536} and {c.batch for c in configs} == {1, 2, 4}
    sizes = defaultdict(set)
    for c in configs:
        sizes[c.seq_len, c.batch].add(c.provider)
    assert len(sizes) == 9 and all(
        p == {"indrnn_torch", "indrnn_torch_seq", "indrnn_torch_scan"} for p in sizes.values()
    )
    assert all(PROVIDERS[c.provider].unavailable(c, torch.device("cpu")) is None for c in configs)
