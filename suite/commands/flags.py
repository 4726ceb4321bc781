"""The flags several commands share: the device (run, converge, profile) and the flags that carry
values to check (run's axis overrides, profile's one config, converge's runs and settings), each
parsed one way: a bad value is a one-line UsageError that names the flag."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

import torch

from suite.core import env
from suite.core.errors import PresetError, UsageError
from suite.core.mixing import MIXABLE
from suite.core.schema import AXES, INT_AXES
from suite.sweep.presets import validate_axis

DEVICES = ("auto", "cuda", "cpu")
# How a flag's value is read: convert the raw text, check the result, and what it needs (in words).
Parser = tuple[Callable, Callable, str]


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", metavar="KIND", help="auto, cuda or cpu (default: auto)")


def add_allow_mixing(parser: argparse.ArgumentParser) -> None:
    """history's and ab's flags that let runs of different devices, presets or timing methods be
    set side by side (suite.core.mixing)."""
    for field, flag in MIXABLE.items():
        parser.add_argument(flag, action="store_true", help=f"set runs of different {field}s side by side")


def allowed_mixing(args: argparse.Namespace) -> set[str]:
    """The fields of MIXABLE whose --allow-... flag was given."""
    return {field for field, flag in MIXABLE.items() if getattr(args, flag.removeprefix("--").replace("-", "_"))}


def device_from(requested: str) -> torch.device:
    """The device --device names: "auto" is the GPU when there is one, else the CPU."""
    if requested not in DEVICES:
        raise UsageError(f"--device must be auto, cuda or cpu, got {requested!r}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return env.pick_device(requested)


def given_out(out: str, resume: bool, *beside: Path) -> Path:
    """--out as given: with --resume the file must exist; without, neither it nor the files kept
    beside it may hold results already."""
    path = Path(out)
    if resume and not path.is_file():
        raise UsageError(f"--resume: results file {path} does not exist")
    if not resume and any(p.exists() and p.stat().st_size > 0 for p in (path, *beside)):
        raise UsageError(f"{path} already holds results; pass --resume to continue it, or another --out")
    return path


def flag_value(flag: str, raw, convert, check, needs: str):
    """A command-line value converted (ValueError -> "FLAG needs NEEDS, got RAW") and then checked
    by `check` (PresetError -> "FLAG: why"), each failure a UsageError naming the flag."""
    try:
        value = convert(raw)
    except ValueError:
        shown = " ".join(raw) if isinstance(raw, list) else repr(raw)
        raise UsageError(f"{flag} needs {needs}, got {shown}") from None
    try:
        return check(value)
    except PresetError as e:
        raise UsageError(f"{flag}: {e}") from None


def given(args: argparse.Namespace, parsers: Mapping[str, Parser]) -> dict:
    """The flags of `parsers` that were given (name -> value), each read by its parser."""
    values = {}
    for name, (convert, check, needs) in parsers.items():
        raw = getattr(args, name)
        if raw is not None:
            values[name] = flag_value(f"--{name.replace('_', '-')}", raw, convert, check, needs)
    return values


def integers(values: list[str]) -> list[int]:
    return [int(v) for v in values]


def axis_overrides(args: argparse.Namespace) -> dict[str, list]:
    """The sweep axes given on the command line (`--seq-len 256 1024`), parsed and checked."""
    return given(
        args,
        {
            axis: (integers if axis in INT_AXES else list, partial(validate_axis, axis), "positive integers")
            for axis in AXES
        },
    )
