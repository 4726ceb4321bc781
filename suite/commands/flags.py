"""The flags several commands share: the device (run, converge, profile) and the sweep's axes
(run's overrides, profile's one config), each parsed and checked one way, a bad value being a
one-line UsageError that names the flag."""

from __future__ import annotations

import argparse

import torch

from suite.core import env
from suite.core.errors import UsageError, flag_value
from suite.core.schema import AXES, INT_AXES
from suite.sweep.presets import validate_axis

DEVICES = ("auto", "cuda", "cpu")


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", metavar="KIND", help="auto, cuda or cpu (default: auto)")


def device_from(requested: str) -> torch.device:
    """The device --device names: "auto" is the GPU when there is one, else the CPU."""
    if requested not in DEVICES:
        raise UsageError(f"--device must be auto, cuda or cpu, got {requested!r}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return env.pick_device(requested)


def axis_overrides(args: argparse.Namespace) -> dict[str, list]:
    """The sweep axes given on the command line (`--seq-len 256 1024`), parsed and checked."""
    overrides: dict[str, list] = {}
    for axis in AXES:
        values = getattr(args, axis)
        if values is None:
            continue
        overrides[axis] = flag_value(
            f"--{axis.replace('_', '-')}",
            values,
            (lambda vs: [int(v) for v in vs]) if axis in INT_AXES else list,
            lambda vs, axis=axis: validate_axis(axis, vs),
            "positive integers",
        )
    return overrides
