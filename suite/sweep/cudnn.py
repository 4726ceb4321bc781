"""Which cuDNN algorithm PyTorch runs for nn.LSTM and nn.GRU at a config, as PyTorch decides it
(aten/src/ATen/native/cudnn/RNN.cpp, get_algo), written as pure functions of the config and the GPU.

PyTorch decides per call and per direction of the step (forward, backward):
- a PackedSequence always takes the standard algorithm (the persistent ones refuse varying lengths);
- else, on sm_60 or newer, a hidden size up to 192 in the forward (128 in the backward) takes the
  persistent kernel for small hidden sizes;
- else fp16 (not bf16) may take the general persistent kernel: one unidirectional layer, hidden and
  input sizes multiples of 128, hidden up to 1024, and a GPU and batch PyTorch trusts with it (sm_70
  with batches of 8 or multiples of 16 and enough steps; sm_80 and newer with at least 98 SMs, not
  sm_86, LSTM only, batch a multiple of 8 up to 128; never sm_75);
- else the standard algorithm.

So at fp32 a 1-layer LSTM runs persistent at H=128 and standard at H=256: a speedup over it steps
between the two for the baseline's reasons. The rule is PyTorch's heuristic as read, not a
measurement: a cuDNN or PyTorch release may change it.
"""

from __future__ import annotations

import torch

from suite.core.method import NO_CUDNN
from suite.core.schema import PHASES_OF_MODE, SweepConfig

CELLS = ("LSTM", "GRU")
SMALL_HIDDEN = {True: 192, False: 128}  # forward, backward: the small-hidden persistent kernel's limit
BIG_GPU_SMS = 98  # fewer SMs (A30, A40-class parts) are left to the standard algorithm


def _persistent_fits(*, hidden: int, input_size: int, layers: int, bidirectional: bool) -> bool:
    return layers == 1 and not bidirectional and hidden <= 1024 and hidden % 128 == 0 and input_size % 128 == 0


def _persistent_trusted(*, cell: str, batch: int, seq_len: int, capability: tuple[int, int], sm_count: int) -> bool:
    major, minor = capability
    if major == 7:
        if minor == 5:  # Turing is excluded
            return False
        batch_ok = (batch % 16 == 0 and batch not in (80, 112)) or batch == 8
        long_enough = (
            (seq_len >= 40 and batch <= 128) or (seq_len >= 20 and batch <= 96) or (seq_len >= 10 and batch <= 32)
        )
        return batch_ok and long_enough
    if major >= 8 and sm_count >= BIG_GPU_SMS and minor != 6:
        return cell == "LSTM" and batch % 8 == 0 and batch <= 128
    return False


def cudnn_rnn_algo(
    *,
    cell: str,
    hidden: int,
    input_size: int,
    layers: int,
    bidirectional: bool,
    batch: int,
    seq_len: int,
    dtype: str,
    packed: bool,
    forward: bool,
    capability: tuple[int, int],
    sm_count: int,
) -> str:
    """The algorithm of one direction of the step (forward or backward): standard,
    persistent_small_h or persistent (suite.core.method.CUDNN_ALGORITHMS)."""
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    if packed:
        return "standard"
    if dtype != "float64" and capability[0] >= 6 and hidden <= SMALL_HIDDEN[forward]:
        return "persistent_small_h"
    if (
        dtype == "float16"
        and _persistent_fits(hidden=hidden, input_size=input_size, layers=layers, bidirectional=bidirectional)
        and _persistent_trusted(cell=cell, batch=batch, seq_len=seq_len, capability=capability, sm_count=sm_count)
    ):
        return "persistent"
    return "standard"


def config_algo(cfg: SweepConfig, cell: str, capability: tuple[int, int], sm_count: int) -> str:
    """What a row of `cfg` records: the forward's algorithm, and the backward's where the mode
    trains and it differs ("fwd persistent_small_h, bwd standard")."""

    def algo(forward: bool) -> str:
        return cudnn_rnn_algo(
            cell=cell,
            hidden=cfg.hidden,
            input_size=cfg.input_size,
            layers=cfg.depth,
            bidirectional=cfg.mode == "bidir",
            batch=cfg.batch,
            seq_len=cfg.seq_len,
            dtype=cfg.dtype,
            packed=cfg.mode == "packed",
            forward=forward,
            capability=capability,
            sm_count=sm_count,
        )

    fwd = algo(forward=True)
    if "bwd" not in PHASES_OF_MODE[cfg.mode][0]:
        return fwd
    bwd = algo(forward=False)
    return fwd if fwd == bwd else f"fwd {fwd}, bwd {bwd}"


def row_algo(cfg: SweepConfig, cell: str, device: torch.device) -> str:
    """The algorithm a row of `cfg` on `device` records: NO_CUDNN where no cuDNN runs (a CPU, or
    cuDNN disabled or missing), else config_algo on this GPU."""
    if device.type != "cuda" or not (torch.backends.cudnn.enabled and torch.backends.cudnn.is_available()):
        return NO_CUDNN
    props = torch.cuda.get_device_properties(device)
    return config_algo(cfg, cell, (props.major, props.minor), props.multi_processor_count)
