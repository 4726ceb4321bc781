"""The adding problem, generated here from a seed (no download): the long-memory test of the
LSTM and IndRNN papers.

Each sequence has T steps of two inputs: a value drawn from U(0, 1) and a marker that is 1 at
exactly two steps, one in the first half (steps 0 .. T//2 - 1) and one in the second
(T//2 .. T-1), and 0 elsewhere. The target is the sum of the two marked values. A model has to
carry the first marked value across up to T steps, which is what makes long T hard.

The sum of two independent U(0, 1) values has mean 1 and variance 2/12, so always answering 1
gives an MSE of 1/6 (about 0.167): the line a model must beat to have learnt anything.
"""

from __future__ import annotations

import torch

BASELINE_MSE = 1.0 / 6.0  # MSE of always predicting 1, the mean of the target
INPUT_SIZE = 2  # (value, marker) at every step


def adding_batch(batch: int, seq_len: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """`batch` sequences of the adding problem, drawn on the CPU from `generator` (so a seed gives
    the same data on every device).

    Returns x of shape (batch, seq_len, 2), holding (value, marker) per step, and the targets y of
    shape (batch,).
    """
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    if seq_len < 2:
        raise ValueError(f"the adding problem needs two halves: seq_len must be at least 2, got {seq_len}")
    half = seq_len // 2
    values = torch.rand(batch, seq_len, generator=generator)
    first = torch.randint(0, half, (batch,), generator=generator)
    second = torch.randint(half, seq_len, (batch,), generator=generator)
    markers = torch.zeros(batch, seq_len)
    rows = torch.arange(batch)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]
    return torch.stack([values, markers], dim=-1), targets
