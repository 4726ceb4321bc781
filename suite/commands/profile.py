"""The `profile` command: where the time of one config's step goes (suite.sweep.profiling).

The config is given with the same flags as a sweep (one value each; without them, the 1-layer
Fig. 2 cell at T=256: B=32, H=128, input 2). Written beside each other under results/ (or
--out-dir): the Chrome/Perfetto trace (`.json`, open it in ui.perfetto.dev or chrome://tracing),
a markdown breakdown (`.md`) and the run's metadata (`.meta.json`). The breakdown ends with the
Nsight Compute and Nsight Systems command lines for the config; `--nvtx-only` runs the same
steps with the NVTX ranges alone, for those tools.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import torch
from tabulate import tabulate

from suite.commands import flags
from suite.commands.flags import axis_overrides
from suite.core import env, machine, paths
from suite.core.errors import UsageError
from suite.core.paper import FIG2_INPUT_SIZE
from suite.core.schema import AXES, SweepConfig
from suite.core.store import write_meta
from suite.render.markdown import fmt_4g
from suite.sweep.profiling import (
    CATEGORY_PATTERNS,
    NVTX_STEPS,
    SHAPE_AXES,
    Profile,
    profile_config,
    run_nvtx_only,
)
from suite.sweep.providers import PROVIDERS

RECURRENCE_KERNELS = "recurrence_(fwd|bwd)_kernel"  # kernels/sequential.py


def ncu_command(cfg: SweepConfig, out_stem: str) -> str:
    """The Nsight Compute command line that profiles the recurrence kernels of cfg's step."""
    return (
        f"ncu --nvtx --nvtx-include {NVTX_STEPS} --kernel-name regex:'{RECURRENCE_KERNELS}' --set full -o {out_stem}-ncu "
        f"python run_bench.py profile {config_flags(cfg)} --steps 1 --nvtx-only"
    )


def nsys_command(cfg: SweepConfig, out_stem: str) -> str:
    return f"nsys profile -t cuda,nvtx -o {out_stem}-nsys python run_bench.py profile {config_flags(cfg)} --nvtx-only"


def config_flags(cfg: SweepConfig) -> str:
    return " ".join(f"--{axis.replace('_', '-')} {getattr(cfg, axis)}" for axis in SHAPE_AXES)


def to_markdown(result: Profile, trace_name: str, ncu: str, nsys: str) -> str:
    busy_word = "GPU busy" if result.unit == "kernels" else "time inside ops"
    idle = 1 - result.busy_ms / result.wall_ms if result.wall_ms else float("nan")
    categories = result.by_category()
    lines = [
        f"# Profile: {result.cfg.label()}",
        "",
        f"Device: {result.device}. {result.steps} profiled steps after a warm-up; figures are per step. "
        f"Trace: `{trace_name}` (Chrome/Perfetto). Times are measured under the profiler, which adds "
        "a little to every op: use the sweep's rows for times, this file for shares.",
        "",
        "## Where the time goes",
        "",
        tabulate(
            [[c["category"], fmt_4g(c["ms"]), f"{c['share']:.1%}", fmt_4g(c["launches"])] for c in categories],
            headers=["category", "ms", "share", result.unit],
            tablefmt="github",
            disable_numparse=True,
        ),
        "",
        "## Launch overhead",
        "",
        f"- wall time {fmt_4g(result.wall_ms)} ms, {busy_word} {fmt_4g(result.busy_ms)} ms: "
        f"{idle:.0%} of the step the {'GPU waits for the CPU (launches, Python)' if result.unit == 'kernels' else 'CPU is outside ops (Python, dispatch)'}",
        f"- {fmt_4g(sum(c['launches'] for c in categories))} {result.unit} per step",
        "",
        f"## Top {result.unit} by time",
        "",
        tabulate(
            [
                [t["name"][:90], t["category"], fmt_4g(t["ms"]), fmt_4g(t["calls"]), f"{t['share']:.1%}"]
                for t in result.top()
            ],
            headers=["name", "category", "ms", "calls", "share"],
            tablefmt="github",
            disable_numparse=True,
        ),
        "",
        "## How pieces are categorised",
        "",
        f"Each {'kernel (by the op that launched it)' if result.unit == 'kernels' else 'op (by its self time)'} "
        "is named by its call chain, outermost op first; the first name matching one of these patterns decides:",
        "",
        *(f"- {category}: `{pattern.pattern}`" for category, pattern in CATEGORY_PATTERNS),
        "",
        "Recurrence work is backward in the backward phase or under an autograd `...Backward` node. "
        "Everything in the loss phase (the Linear head and the MSE) is loss. Unmatched work is glue in "
        "the zero_grad and backward phases, other elsewhere. GEMMs of the head's backward count as "
        "input projection (B x H x 1: small).",
        "",
        "## Nsight",
        "",
        "On a GPU, the recurrence kernels with Nsight Compute (only the Triton IndRNN launches them; drop "
        "--kernel-name for another provider's kernels), then the whole step with Nsight Systems:",
        "",
        "```",
        ncu,
        nsys,
        "```",
        "",
    ]
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", metavar="NAME", help="default: indrnn_triton on a GPU, indrnn_torch on a CPU")
    parser.add_argument("--mode", default="train", metavar="MODE", help="train, infer or recurrence (default: train)")
    defaults = {"seq_len": 256, "depth": 1, "batch": 32, "hidden": 128, "dtype": "float32"}
    for axis in SHAPE_AXES[2:]:
        default = defaults.get(axis)
        help_text = (
            f"default: {default}"
            if default is not None
            else f"default: {FIG2_INPUT_SIZE} as in Fig. 2's adding problem (the hidden size in recurrence mode)"
        )
        parser.add_argument(f"--{axis.replace('_', '-')}", default=default, metavar="V", help=help_text)
    flags.add_device(parser)
    parser.add_argument("--steps", type=int, default=5, help="profiled steps (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before them (default: %(default)s)")
    parser.add_argument("--out-dir", metavar="DIR", help="where the files go (default: results/)")
    parser.add_argument(
        "--nvtx-only", action="store_true", help="run the steps with NVTX ranges only, no torch.profiler (ncu, nsys)"
    )


def config_from(args: argparse.Namespace, device: torch.device) -> SweepConfig:
    """The one config the flags name, checked like a sweep's axis overrides."""
    values = {axis: getattr(args, axis, None) for axis in SHAPE_AXES}
    values["provider"] = values["provider"] or ("indrnn_triton" if device.type == "cuda" else "indrnn_torch")
    recurrence = values["mode"] == "recurrence"
    values["input_size"] = values["input_size"] or (values["hidden"] if recurrence else FIG2_INPUT_SIZE)
    given = {**dict.fromkeys(AXES), **{a: [str(v)] for a, v in values.items()}}  # the other axes: not given
    checked = axis_overrides(argparse.Namespace(**given))
    cfg = SweepConfig(**{axis: v[0] for axis, v in checked.items()})
    if cfg.mode not in PROVIDERS[cfg.provider].modes:
        raise UsageError(
            f"{cfg.provider} has no {cfg.mode} mode; its modes: {', '.join(PROVIDERS[cfg.provider].modes)}"
        )
    if cfg.mode == "recurrence" and (cfg.depth, cfg.input_size) != (1, cfg.hidden):
        raise UsageError("recurrence mode times one bare recurrence: --depth 1 and --input-size equal to --hidden")
    return cfg


def run(args: argparse.Namespace) -> int:
    device = flags.device_from(args.device)
    if args.steps < 1 or args.warmup < 0:
        raise UsageError(f"--steps must be at least 1 and --warmup at least 0, got {args.steps} and {args.warmup}")
    cfg = config_from(args, device)
    if args.nvtx_only:
        run_nvtx_only(cfg, device, args.steps, args.warmup)
        print(f"ran {args.steps} steps of {cfg.label()} inside the NVTX range {NVTX_STEPS} (CUDA only)")
        return 0
    out_dir = Path(args.out_dir) if args.out_dir else paths.RESULTS_DIR
    stem = (
        f"profile-{cfg.provider}-{cfg.mode}-T{cfg.seq_len}-L{cfg.depth}-B{cfg.batch}-H{cfg.hidden}"
        f"-I{cfg.input_size}-{cfg.dtype}-{env.utc_now():%Y%m%dT%H%M%SZ}"
    )
    trace = out_dir / f"{stem}.json"
    state_start = machine.machine_state(device)
    result = profile_config(cfg, device, args.steps, args.warmup, trace)
    ncu, nsys = ncu_command(cfg, stem), nsys_command(cfg, stem)
    report = out_dir / f"{stem}.md"
    report.write_text(to_markdown(result, trace.name, ncu, nsys))
    meta = env.collect_meta(
        preset="profile",
        device=device,
        timing="torch.profiler",
        copy_gbytes_per_s=None,
        notes={"steps": args.steps, "warmup": args.warmup, "trace": trace.name, "report": report.name},
        configs=[asdict(cfg)],
        machine={"start": state_start, "end": machine.machine_state(device)},
    )
    write_meta(out_dir / f"{stem}.csv", meta)
    print(report.read_text())
    print(f"trace: {trace}\nbreakdown: {report}\nmetadata: {out_dir / (stem + '.meta.json')}")
    print(f"Nsight Compute, the recurrence kernels of this config:\n  {ncu}")
    return 0
