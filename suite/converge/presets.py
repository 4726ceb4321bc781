"""What a converge sweep runs: presets as data (presets/*.json), each a set of settings (how runs
are trained, scored and stopped) and the model x T x seed runs of its grids, with the command
line's overrides checked and applied."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from suite.converge.files import RunKey, Settings
from suite.converge.models import MODELS
from suite.core.errors import PresetError

PRESET_DIR = Path(__file__).with_suffix("")  # suite/converge/presets/


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    settings: Settings
    runs: tuple[RunKey, ...]


SETTING_TYPES = {f.name: (int if f.type == "int" else float) for f in fields(Settings)}


def converge_presets() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in PRESET_DIR.glob("*.json")))


def default_preset(device_kind: str) -> str:
    """The paper's lengths on a GPU; a few minutes of short sequences on a CPU."""
    return "paper" if device_kind == "cuda" else "quick"


def check_setting(name: str, value: float) -> float:
    """A setting's value, checked: counts are positive integers, target and seconds positive."""
    if SETTING_TYPES[name] is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise PresetError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise PresetError(f"{name} must be positive, got {value!r}")
    return value


def check_axis(axis: str, values: list) -> list:
    """models, seq_len or seeds: a non-empty list of known models, lengths >= 2, seeds >= 0."""
    if not isinstance(values, list) or not values:
        raise PresetError(f"{axis} needs a non-empty list, got {values!r}")
    for v in values:
        if axis == "models" and v not in MODELS:
            raise PresetError(f"unknown model {v!r}; models: {', '.join(MODELS)}")
        if axis == "seq_len" and (isinstance(v, bool) or not isinstance(v, int) or v < 2):
            raise PresetError(f"seq_len must be an integer of at least 2 (two halves), got {v!r}")
        if axis == "seeds" and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
            raise PresetError(f"seeds must be non-negative integers, got {v!r}")
    return values


def load_preset(name: str, overrides: dict | None = None) -> Preset:
    """Preset `name` from suite/converge/presets/, with overrides applied: settings by name,
    and `models`, `seq_len`, `seeds` replacing those lists in every grid."""
    if name not in converge_presets():
        raise PresetError(f"unknown converge preset {name!r}; presets: {', '.join(converge_presets())}")
    path = PRESET_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise PresetError(f"cannot read preset {path.name}: {e}") from e
    overrides = dict(overrides or {})
    given = {**data.get("settings", {}), **{k: v for k, v in overrides.items() if k in SETTING_TYPES}}
    missing = [s for s in SETTING_TYPES if s not in given]
    if missing:
        raise PresetError(f"preset {name!r} does not set {', '.join(missing)}")
    settings = Settings(**{s: check_setting(s, given[s]) for s in SETTING_TYPES})
    seeds = check_axis("seeds", overrides.get("seeds", data.get("seeds")))
    if len(set(seeds)) != len(seeds):
        raise PresetError(f"seeds repeat: {seeds}")
    runs: dict[RunKey, None] = {}  # an ordered set: grids may overlap once overridden
    for grid in data.get("grids", []):
        models = check_axis("models", overrides.get("models", grid.get("models")))
        seq_lens = check_axis("seq_len", overrides.get("seq_len", grid.get("seq_len")))
        for seq_len in seq_lens:
            for model in models:
                for seed in seeds:
                    runs[RunKey(model, seq_len, seed)] = None
    if not runs:
        raise PresetError(f"preset {name!r} has no grids")
    # Shortest T first, every model at a T together: an interrupted sweep leaves whole comparisons.
    order = sorted(runs, key=lambda k: k.seq_len)
    return Preset(name, data.get("description", ""), settings, tuple(order))
