"""The cuDNN algorithm PyTorch picks for nn.LSTM / nn.GRU (suite.sweep.cudnn), case by case against
the rule of aten/src/ATen/native/cudnn/RNN.cpp, and what rows record: the algorithm on CUDA, "none"
for a baseline that ran without cuDNN, how each time was taken."""

import pytest
import torch
from harness_helpers import cfg, sweep_rows

from suite.sweep.cudnn import config_algo, cudnn_rnn_algo

H100 = ((9, 0), 132)
A100 = ((8, 0), 108)
A40 = ((8, 6), 84)
A30 = ((8, 0), 56)
V100 = ((7, 0), 80)
T4 = ((7, 5), 40)
P100 = ((6, 0), 56)
K80 = ((3, 7), 13)


def algo(gpu=H100, **overrides) -> str:
    """The fp32, 1-layer, unidirectional LSTM at the paper's size unless overridden."""
    capability, sms = gpu
    args = dict(
        cell="LSTM",
        hidden=128,
        input_size=128,
        layers=1,
        bidirectional=False,
        batch=32,
        seq_len=256,
        dtype="float32",
        packed=False,
        forward=True,
    )
    return cudnn_rnn_algo(**(args | overrides), capability=capability, sm_count=sms)


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({}, "persistent_small_h"),  # the paper's H=128 both ways
        ({"forward": False}, "persistent_small_h"),
        ({"hidden": 192}, "persistent_small_h"),  # the forward's limit is 192
        ({"hidden": 192, "forward": False}, "standard"),  # the backward's is 128
        ({"hidden": 256}, "standard"),  # fp32 above the small-hidden limits: the step in a curve along H
        ({"hidden": 256, "dtype": "bfloat16"}, "standard"),  # the general persistent kernel is fp16 only
        ({"hidden": 256, "dtype": "float16"}, "persistent"),
        ({"hidden": 256, "dtype": "float16", "cell": "GRU"}, "standard"),  # GRU left out on sm_80+
        ({"hidden": 256, "dtype": "float16", "layers": 2}, "standard"),
        ({"hidden": 256, "dtype": "float16", "bidirectional": True}, "standard"),
        ({"hidden": 256, "dtype": "float16", "input_size": 2}, "standard"),  # the adding problem's input
        ({"hidden": 320, "dtype": "float16", "input_size": 320}, "standard"),  # not a multiple of 128
        ({"hidden": 2048, "dtype": "float16", "input_size": 2048}, "standard"),  # above 1024
        ({"hidden": 256, "dtype": "float16", "batch": 12}, "standard"),  # not a multiple of 8
        ({"hidden": 256, "dtype": "float16", "batch": 256}, "standard"),  # above 128
        ({"packed": True}, "standard"),  # varying lengths: always standard
        ({"hidden": 256, "dtype": "float16", "packed": True}, "standard"),
        ({"dtype": "float64"}, "standard"),
    ],
)
def test_the_rule_on_an_h100(overrides, expected):
    assert algo(**overrides) == expected


@pytest.mark.parametrize(
    "gpu, overrides, expected",
    [
        (A100, {}, "persistent"),
        (A40, {}, "standard"),  # sm_86 is excluded
        (((8, 6), 112), {}, "standard"),  # ... by its architecture, not only by its SM count
        (A30, {}, "standard"),  # too few SMs
        (T4, {}, "standard"),  # Turing is excluded
        (V100, {}, "persistent"),  # batch 32, T=256
        (V100, {"batch": 24}, "standard"),  # neither 8 nor a multiple of 16
        (V100, {"batch": 8, "seq_len": 12}, "persistent"),
        (V100, {"batch": 64, "seq_len": 12}, "standard"),  # too short for that batch
        (V100, {"cell": "GRU"}, "persistent"),  # sm_70's rule does not single out GRU
        (P100, {}, "standard"),
    ],
)
def test_the_general_persistent_kernel_depends_on_the_gpu(gpu, overrides, expected):
    assert algo(gpu, **({"hidden": 256, "dtype": "float16"} | overrides)) == expected


def test_small_hidden_needs_sm_60():
    assert algo(P100) == "persistent_small_h"
    assert algo(K80) == "standard"


def test_a_row_gives_both_directions_of_a_training_step():
    capability, sms = H100
    assert config_algo(cfg("lstm", hidden=128), "LSTM", capability, sms) == "persistent_small_h"
    assert config_algo(cfg("lstm", hidden=192), "LSTM", capability, sms) == "fwd persistent_small_h, bwd standard"
    assert config_algo(cfg("lstm", mode="infer", hidden=192), "LSTM", capability, sms) == "persistent_small_h"
    assert config_algo(cfg("gru", mode="packed", hidden=64), "GRU", capability, sms) == "standard"
    assert config_algo(cfg("lstm", mode="bidir", hidden=256, input_size=256, dtype="float16"), "LSTM", *H100) == (
        "standard"
    )


def test_an_unknown_cell_is_refused():
    with pytest.raises(ValueError, match="cell"):
        algo(cell="RNN_TANH")


@pytest.mark.skipif(torch.cuda.is_available(), reason="what a CPU run records")
def test_cpu_rows_say_how_they_were_timed_and_that_no_cudnn_ran(tmp_path):
    rows = sweep_rows(tmp_path, [cfg("lstm"), cfg("gru", mode="infer"), cfg("indrnn_torch")]).set_index("provider")
    assert set(rows["l2_flush"]) == {"no"} and set(rows["launch"]) == {"eager"}
    assert rows.loc["lstm", "cudnn_algo"] == "none" and rows.loc["gru", "cudnn_algo"] == "none"
    assert rows.loc["indrnn_torch", "cudnn_algo"] == ""  # not a cuDNN model: nothing to say
