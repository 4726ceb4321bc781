"""Shards: a sweep's grid split into N deterministic parts, one per GPU or cluster job, balanced by
the cost model's estimate of GPU time (suite.sweep.cost).

Configs are split by comparison, never inside one: every config that the analysis compares with
another (an IndRNN and its baselines and variants at one size, the 1- and 2-layer IndRNN against
the 1-layer LSTM of Fig. 2, eager and CUDA-graph timing of one size) lands in the same shard, so
each speedup stays a ratio of two medians measured on one device in one run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from suite.core.errors import UsageError
from suite.core.schema import SweepConfig
from suite.sweep.cost import prior_s

# The axes a comparison holds fixed: configs that agree on them form one indivisible group.
# Provider, depth, input size and timing are left out because the analysis compares across them.
COMPARISON_AXES = ("mode", "dtype", "hidden", "seq_len", "batch")


@dataclass(frozen=True)
class Shard:
    """The index-th (1-based) of count parts of a plan."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def suffix(self) -> str:
        """The part of a file name that tells the shard: `shard-2-of-3`."""
        return f"shard-{self.index}-of-{self.count}"

    @classmethod
    def parse(cls, text: str) -> Shard:
        """'K/N' with 1 <= K <= N; UsageError otherwise."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise UsageError(f"--shard needs K/N (e.g. 2/3), got {text!r}") from None
        if not 1 <= index <= count:
            raise UsageError(f"--shard {text}: K must be between 1 and N")
        return cls(index, count)


def comparison_of(cfg: SweepConfig) -> tuple:
    return tuple(getattr(cfg, axis) for axis in COMPARISON_AXES)


def partition(plan: Sequence[SweepConfig], count: int) -> list[list[SweepConfig]]:
    """The plan split into `count` parts (some empty when there are fewer comparisons than parts),
    each in plan order. Comparisons go, costliest first, to the part with the least estimated
    time so far (ties: the lower part), so parts differ by at most one comparison's estimate.
    The estimate is the cost model's prior of GPU seconds, never the history of earlier runs: every
    shard job computes the split on its own, on whatever machine runs it, and must get the same."""
    groups: dict[tuple, list[int]] = {}  # comparison -> plan positions, in order of first appearance
    for position, cfg in enumerate(plan):
        groups.setdefault(comparison_of(cfg), []).append(position)
    cost = {key: sum(prior_s(plan[p], "cuda") for p in positions) for key, positions in groups.items()}
    loads = [0.0] * count
    owner = [0] * len(plan)
    for key in sorted(groups, key=lambda g: (-cost[g], groups[g][0])):
        part = min(range(count), key=lambda k: (loads[k], k))
        loads[part] += cost[key]
        for position in groups[key]:
            owner[position] = part
    return [[cfg for cfg, part in zip(plan, owner, strict=True) if part == k] for k in range(count)]


def shard_of(plan: Sequence[SweepConfig], shard: Shard) -> list[SweepConfig]:
    """The configs of one shard of the plan."""
    return partition(plan, shard.count)[shard.index - 1]
