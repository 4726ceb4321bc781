"""Sweeps: a preset is a JSON table under suite/sweep/presets/, expanded here into SweepConfigs.

A preset file holds `defaults` (axis -> list of values) and a list of `grids`; each grid
overrides some axes and is expanded as the cartesian product of its axes. Several grids let
one preset pair axes that are not a product, e.g. 1- and 2-layer IndRNN against 1-layer LSTM
(the paper's comparison). Command-line overrides replace an axis in every grid. The configs
run grouped by comparison, smallest first (see `_comparison_order`).

Axes: provider, mode, seq_len, depth, batch, hidden, dtype, input_size (default: hidden) and
timing ("auto", the device's default timer, or "cuda_graph").
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from suite.core.errors import PresetError
from suite.core.schema import AXES, CONFIG_TIMINGS, DTYPES, INT_AXES, MODES, SweepConfig
from suite.sweep.providers import PROVIDERS

PRESET_DIR = Path(__file__).with_suffix("")  # suite/sweep/presets/
PRESETS: tuple[str, ...] = tuple(sorted(p.stem for p in PRESET_DIR.glob("*.json")))
OPTIONAL_AXES = ("input_size", "timing")  # default: hidden, and the device's default timer


def default_preset(device_kind: str) -> str:
    """The preset `run` uses when none is given: the paper's figure on a GPU, quick on a CPU."""
    return "paper" if device_kind == "cuda" else "quick"


def preset_description(name: str) -> str:
    return _read(name).get("description", "")


def _read(name: str) -> dict:
    if name not in PRESETS:
        raise PresetError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    path = PRESET_DIR / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PresetError(f"cannot read preset {path.name}: {e}") from e


def validate_axis(axis: str, values: list) -> list:
    """Check one axis' values (from a preset or the command line); returns them."""
    if axis not in AXES:
        raise PresetError(f"unknown axis {axis!r}; axes: {', '.join(AXES)}")
    if not isinstance(values, list) or not values:
        raise PresetError(f"{axis} needs a non-empty list of values, got {values!r}")
    for v in values:
        if axis in INT_AXES and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise PresetError(f"{axis} must be a positive integer, got {v!r}")
    known = {"provider": tuple(PROVIDERS), "mode": MODES, "dtype": DTYPES, "timing": CONFIG_TIMINGS}.get(axis)
    if known is not None:
        bad = [v for v in values if v not in known]
        if bad:
            raise PresetError(f"unknown {axis} {bad[0]!r}; choose from {', '.join(known)}")
    return values


def expand(grids: list[dict], overrides: dict[str, list] | None = None) -> list[SweepConfig]:
    """Cartesian product of every grid (with overrides applied), in order, without duplicates.

    A (provider, mode) pair the provider does not support is left out (e.g. recurrence mode
    for LSTM). Recurrence mode times the bare recurrence, so its depth is 1 and its input is
    already hidden-sized: those axes are normalised rather than repeated.
    """
    overrides = {k: validate_axis(k, v) for k, v in (overrides or {}).items()}
    configs: dict[SweepConfig, None] = {}  # an ordered set
    for grid in grids:
        axes = {**grid, **overrides}
        missing = [a for a in AXES if a not in axes and a not in OPTIONAL_AXES]
        if missing:
            raise PresetError(f"grid {grid} does not set {', '.join(missing)}")
        for a, v in axes.items():
            validate_axis(a, v)
        names = [a for a in AXES if a in axes]
        for values in itertools.product(*(axes[a] for a in names)):
            point = dict(zip(names, values, strict=True))
            point.setdefault("input_size", point["hidden"])
            if point["mode"] not in PROVIDERS[point["provider"]].modes:
                continue
            if point["mode"] == "recurrence":
                point.update(depth=1, input_size=point["hidden"])
            configs[SweepConfig(**point)] = None
    return sorted(configs, key=_comparison_order)  # stable: preset order within a comparison


def _comparison_order(c: SweepConfig) -> tuple:
    """Run the configs of one comparison (every provider and depth at the same mode, dtype,
    hidden, T and batch) together, smallest first: an interrupted sweep then leaves complete
    comparisons, and the cheap ones are done before the expensive ones."""
    return (MODES.index(c.mode), DTYPES.index(c.dtype), c.hidden, c.seq_len, c.batch)


def load_preset(name: str, overrides: dict[str, list] | None = None) -> list[SweepConfig]:
    """The configs of preset `name`, with command-line overrides (axis -> values) applied."""
    data = _read(name)
    defaults = data.get("defaults", {})
    grids = [{**defaults, **grid} for grid in data.get("grids", [])]
    if not grids:
        raise PresetError(f"preset {name!r} has no grids")
    return expand(grids, overrides)
