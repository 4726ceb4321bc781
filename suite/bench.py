"""The `run` command: sweep a preset's grid, gate and time every config, append one row each.

For every config: a provider that cannot run here (no CUDA, package missing, compile too
long) gives a skipped row; otherwise the model is built, compiled if it compiles (seconds
recorded), gated against its reference (suite.gate), and only then timed. An exception
becomes a failed row, running out of memory an oom row, and the sweep goes on. Rows are
flushed one by one, so an interrupted sweep loses nothing and `--resume` continues it.

Modes: train = forward, a Linear head on the last step, MSE loss, backward (the adding
problem's step, Deep IndRNN Fig. 2); infer = forward under inference_mode; recurrence = the
bare `indrnn_recurrence`, forward and backward as separate rows, with GB/s against the
copy bandwidth measured once per run.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from tabulate import tabulate
from torch import nn

from kernels import indrnn_recurrence
from suite import env
from suite.errors import PresetError, UsageError
from suite.gate import GateError, check_model, check_recurrence
from suite.presets import (
    AXES,
    INT_AXES,
    PRESETS,
    SweepConfig,
    default_preset,
    load_preset,
    preset_description,
    validate_axis,
)
from suite.providers import PROVIDERS, Built, Provider, dtype_of, param_count
from suite.schema import ResultRow, RunMeta
from suite.store import ResultsWriter, existing_keys, read_meta, read_results, row_key, write_meta
from suite.timing import Timing, copy_bandwidth_gbps, time_cpu, time_gpu

PHASES_OF_MODE = {"train": ("fwd+bwd",), "infer": ("fwd",), "recurrence": ("fwd", "bwd")}
TIMING_METHODS = ("auto", "do_bench", "cuda_graph", "cpu_wallclock")
RESULTS_DIR = env.REPO_ROOT / "results"


@dataclass(frozen=True)
class Timer:
    """How every config of a run is timed. warmup/repeats: calls on CPU, milliseconds
    (do_bench's budgets) on GPU. max_s: CPU only, stop repeating after that many seconds."""

    method: str
    warmup: float
    repeats: float
    max_s: float | None = None

    def __call__(self, fn: Callable[[], object]) -> Timing:
        if self.method == "cpu_wallclock":
            return time_cpu(fn, int(self.warmup), int(self.repeats), self.max_s)
        return time_gpu(fn, self.warmup, self.repeats, cuda_graph=self.method == "cuda_graph")


def make_timer(
    device: torch.device, timing: str = "auto", warmup: float | None = None, repeats: float | None = None
) -> Timer:
    if timing not in TIMING_METHODS:
        raise UsageError(f"unknown timing {timing!r}; choose from {', '.join(TIMING_METHODS)}")
    if timing == "auto":
        timing = "do_bench" if device.type == "cuda" else "cpu_wallclock"
    if (timing == "cpu_wallclock") != (device.type == "cpu"):
        raise UsageError(f"timing {timing} does not run on a {device.type} device")
    if timing == "cpu_wallclock":
        return Timer(timing, 2 if warmup is None else warmup, 10 if repeats is None else repeats, max_s=2.0)
    return Timer(timing, 25 if warmup is None else warmup, 100 if repeats is None else repeats)


# ---------------------------------------------------------------------------- measuring


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mb(fn: Callable[[], object], device: torch.device) -> float:
    """Peak device memory of one untimed call of fn, counting what was allocated before it (the
    model, inputs, saved tensors): measured apart from the timer, whose L2-flush buffer
    (256 MiB in do_bench) would otherwise be counted in every row."""
    _sync(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    _sync(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def _timed(fn: Callable[[], object], timer: Timer, device: torch.device) -> dict:
    """Time fn; the row fields it gives (times, samples, peak memory on GPU)."""
    peak = peak_memory_mb(fn, device) if device.type == "cuda" else None
    t = timer(fn)
    return dict(p20_ms=t.p20_ms, p50_ms=t.p50_ms, p80_ms=t.p80_ms, n_samples=t.n_samples, peak_mem_mb=peak)


def _tokens_per_s(cfg: SweepConfig, p50_ms: float) -> float:
    return cfg.seq_len * cfg.batch / (p50_ms * 1e-3)


def _random_input(cfg: SweepConfig, device: torch.device, batch_first: bool) -> torch.Tensor:
    shape = (cfg.batch, cfg.seq_len, cfg.input_size) if batch_first else (cfg.seq_len, cfg.batch, cfg.input_size)
    return torch.randn(shape, device=device, dtype=dtype_of(cfg.dtype))


def model_step(built: Built, cfg: SweepConfig, device: torch.device) -> Callable[[], None]:
    """The timed call of a train or infer config, on fresh random inputs."""
    x = _random_input(cfg, device, built.batch_first)
    if cfg.mode == "infer":

        def infer() -> None:
            with torch.inference_mode():
                built.forward(x)

        return infer

    dtype = dtype_of(cfg.dtype)
    head = nn.Linear(built.output_size, 1).to(device=device, dtype=dtype)
    target = torch.randn(cfg.batch, 1, device=device, dtype=dtype)
    params = [*built.model.parameters(), *head.parameters()]

    def train() -> None:
        for p in params:  # zero the gradients between iterations, as a training loop does
            p.grad = None
        out = built.forward(x)
        last = out[:, -1] if built.batch_first else out[-1]
        nn.functional.mse_loss(head(last), target).backward()

    return train


def measure_model(cfg: SweepConfig, provider: Provider, device: torch.device, timer: Timer) -> list[dict]:
    built = provider.build(cfg, device)
    built.model.train(cfg.mode == "train")
    step = model_step(built, cfg, device)
    compile_s = None
    if provider.compiles:  # the first call compiles (backward too, in train mode)
        start = time.perf_counter()
        step()
        _sync(device)
        compile_s = time.perf_counter() - start
    gate_x = _random_input(cfg, device, built.batch_first)
    check_model(built.forward, built.reference, built.model, gate_x, cfg.dtype, cfg.mode == "train")
    fields = _timed(step, timer, device)
    return [
        dict(
            phase=PHASES_OF_MODE[cfg.mode][0],
            tokens_per_s=_tokens_per_s(cfg, fields["p50_ms"]),
            params=param_count(built.model),
            compile_s=compile_s,
            extra=built.extra,
            **fields,
        )
    ]


def measure_recurrence(
    cfg: SweepConfig, provider: Provider, device: torch.device, timer: Timer, copy_gbps: float | None
) -> list[dict]:
    """Forward and backward of the bare recurrence over x (T, B, H), as two rows.
    Bytes that must move: forward reads x and writes h; backward reads h and dh, writes dx."""
    backend = provider.recurrence_backend
    T, B, H = cfg.seq_len, cfg.batch, cfg.hidden
    x = torch.randn(T, B, H, device=device, dtype=dtype_of(cfg.dtype))
    u = torch.rand(H, device=device)  # U(0, 1): states stay bounded over any length
    bias = 0.1 * torch.randn(H, device=device)
    check_recurrence(backend, x, u, bias, cfg.dtype)

    leaves = [t.clone().requires_grad_() for t in (x, u, bias)]
    h, _ = indrnn_recurrence(leaves[0], leaves[1], bias=leaves[2], backend=backend)
    dh = torch.randn_like(h)
    phases = (
        ("fwd", lambda: indrnn_recurrence(x, u, bias=bias, backend=backend), 2),
        ("bwd", lambda: torch.autograd.grad(h, leaves, dh, retain_graph=True), 3),
    )
    rows = []
    for phase, fn, tensors_moved in phases:
        if phase == "bwd" and timer.method == "cuda_graph":
            # The autograd graph of h was recorded outside the capture, on another stream: its
            # backward cannot be captured and replayed on its own.
            rows.append(dict(phase=phase, status="skipped", reason="bwd alone is not timed as a CUDA graph"))
            continue
        fields = _timed(fn, timer, device)
        gbps = tensors_moved * x.numel() * x.element_size() / (fields["p50_ms"] * 1e-3) / 1e9
        rows.append(
            dict(
                phase=phase,
                tokens_per_s=_tokens_per_s(cfg, fields["p50_ms"]),
                gbytes_per_s=gbps,
                pct_copy_bw=100 * gbps / copy_gbps if copy_gbps else None,
                ns_per_step=fields["p50_ms"] * 1e6 / T,
                params=2 * H,  # u and bias
                extra=f"backend={backend}",
                **fields,
            )
        )
    return rows


def is_oom(error: BaseException) -> bool:
    """Out of device memory, however the allocator or a library reported it."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    message = text[0] if text else ""
    reason = message if isinstance(error, GateError) else f"{type(error).__name__}: {message}"
    return reason[:300]


def measure(cfg: SweepConfig, device: torch.device, timer: Timer, copy_gbps: float | None) -> list[dict]:
    """Row fields of every phase of cfg: measured, or skipped/failed/oom with the reason."""
    provider = PROVIDERS[cfg.provider]
    phases = PHASES_OF_MODE[cfg.mode]
    reason = provider.unavailable(cfg, device)
    if reason:
        return [dict(phase=p, status="skipped", reason=reason) for p in phases]
    try:
        if cfg.mode == "recurrence":
            rows = measure_recurrence(cfg, provider, device, timer, copy_gbps)
        else:
            rows = measure_model(cfg, provider, device, timer)
        return [{"status": "ok", **r} for r in rows]
    except Exception as error:  # noqa: BLE001 - one config's failure must not end the sweep
        status = "oom" if is_oom(error) else "failed"
        return [dict(phase=p, status=status, reason=_one_line(error)) for p in phases]
    finally:
        gc.collect()  # drop the failed config's tensors before the next one allocates
        if device.type == "cuda":
            torch.cuda.empty_cache()


# ---------------------------------------------------------------------------- the sweep


class Progress:
    """One status line on stderr: i/n, the config, elapsed time and ETA."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()

    @staticmethod
    def _clock(seconds: float) -> str:
        m, s = divmod(int(seconds), 60)
        return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"

    def show(self, done: int, cfg: SweepConfig) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        eta = self._clock(elapsed / done * (self.total - done)) if done else "?"
        line = f"[{done + 1}/{self.total}] {cfg.label()}  elapsed {self._clock(elapsed)}  ETA {eta}"
        print(f"\r\033[K{line}" if self.tty else line, end="" if self.tty else "\n", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            print(file=sys.stderr)


def _row(cfg: SweepConfig, meta: RunMeta, **fields) -> ResultRow:
    return ResultRow(
        **asdict(cfg), device=meta.device, timing=meta.timing, preset=meta.preset, run_id=meta.run_id, **fields
    )


def expected_keys(cfg: SweepConfig, timing: str) -> list[tuple]:
    """The row keys a config produces (one per phase), for --resume."""
    return [row_key(ResultRow(**asdict(cfg), phase=p, status="ok", timing=timing)) for p in PHASES_OF_MODE[cfg.mode]]


def _meta_for(out: Path, resume: bool, fresh: Callable[[], RunMeta], device: str, timing: str) -> RunMeta:
    """A resumed run keeps its run id and copy bandwidth (so its rows stay comparable) and
    notes when it was continued, with which commit. It must continue on the same device with
    the same timing method: one file never mixes them."""
    if resume and out.exists():
        try:
            old = RunMeta(**read_meta(out))
        except (ValueError, TypeError):  # no or unreadable metadata: start a new record
            return fresh()
        if (old.device, old.timing) != (device, timing):
            raise UsageError(
                f"cannot resume {out}: it was measured on {old.device} with {old.timing}, "
                f"this run is on {device} with {timing}; use a new --out"
            )
        commit, dirty = env.git_state()
        resumed = [
            *old.notes.get("resumed", []),
            {"timestamp": env.utc_now().isoformat(), "git_commit": commit, "git_dirty": dirty},
        ]
        return replace(old, notes={**old.notes, "resumed": resumed})
    return fresh()


def run_sweep(
    configs: Iterable[SweepConfig],
    out_csv: str | Path,
    *,
    preset: str,
    resume: bool = False,
    timing: str = "auto",
    progress: bool = True,
    device: str | torch.device = "auto",
    warmup: float | None = None,
    repeats: float | None = None,
    argv: list[str] | None = None,
) -> Path:
    """Measure every config into out_csv (rows appended, flushed per row) with its metadata
    beside it. With resume, configs whose rows are all present are not measured again, and a
    partly written config only gets its missing rows. Returns the CSV path."""
    out = Path(out_csv)
    device = env.pick_device(device) if isinstance(device, str) else device
    timer = make_timer(device, timing, warmup, repeats)
    configs = list(configs)
    done = existing_keys(out) if resume else set()

    def fresh_meta() -> RunMeta:
        notes = {"timer": asdict(timer)}
        if device.type == "cuda":  # fp32 GEMMs and cuDNN RNNs may use TF32: say which did
            notes.update(
                matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            )
        return env.collect_meta(
            preset=preset,
            device=device,
            timing=timer.method,
            copy_gbytes_per_s=copy_bandwidth_gbps(device),
            argv=argv,
            notes=notes,
        )

    meta = _meta_for(out, resume, fresh_meta, env.device_name(device), timer.method)
    todo = [c for c in configs if not set(expected_keys(c, timer.method)) <= done]
    with ResultsWriter(out) as writer:
        write_meta(out, meta)
        bar = Progress(len(todo), progress)
        try:
            for i, cfg in enumerate(todo):
                bar.show(i, cfg)
                for fields in measure(cfg, device, timer, meta.copy_gbytes_per_s):
                    row = _row(cfg, meta, **fields)
                    if row_key(row) not in done:
                        writer.append(row)
                        done.add(row_key(row))
        finally:
            bar.close()
    return out


# ---------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset", metavar="NAME", help=f"one of {', '.join(PRESETS)} (default: paper on a GPU, quick on a CPU)"
    )
    parser.add_argument("--list", action="store_true", help="list presets and providers, then exit")
    parser.add_argument("--dry-run", action="store_true", help="print the grid without measuring")
    parser.add_argument("--out", metavar="PATH", help="results CSV (default: results/<preset>-<device>-<UTC time>.csv)")
    parser.add_argument(
        "--resume", action="store_true", help="continue --out (default: the newest run of this preset and device)"
    )
    parser.add_argument("--device", default="auto", metavar="KIND", help="auto, cuda or cpu (default: auto)")
    parser.add_argument("--cuda-graph", action="store_true", help="GPU: time CUDA-graph replays (rows say cuda_graph)")
    parser.add_argument("--warmup", metavar="N", help="CPU: untimed calls (2); GPU: do_bench warm-up ms (25)")
    parser.add_argument("--repeats", metavar="N", help="CPU: timed calls (10, at most 2 s); GPU: do_bench ms (100)")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    axes = parser.add_argument_group("axis overrides (replace the preset's values in every grid)")
    for axis in AXES:
        axes.add_argument(f"--{axis.replace('_', '-')}", nargs="+", metavar="V", help=f"{axis} values")


def _number(flag: str, text: str | None, minimum: float) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{flag} needs a number, got {text!r}") from None
    if value < minimum:
        raise UsageError(f"{flag} must be at least {minimum:g}, got {text}")
    return value


def overrides_from(args: argparse.Namespace) -> dict[str, list]:
    """Axis overrides given on the command line, parsed and checked (UsageError if bad)."""
    overrides: dict[str, list] = {}
    for axis in AXES:
        values = getattr(args, axis)
        if values is None:
            continue
        flag = f"--{axis.replace('_', '-')}"
        if axis in INT_AXES:
            try:
                values = [int(v) for v in values]
            except ValueError:
                raise UsageError(f"{flag} needs positive integers, got {' '.join(values)}") from None
        try:
            overrides[axis] = validate_axis(axis, values)
        except PresetError as e:
            raise UsageError(f"{flag}: {e}") from None
    return overrides


def _device(requested: str) -> torch.device:
    if requested not in ("auto", "cuda", "cpu"):
        raise UsageError(f"--device must be auto, cuda or cpu, got {requested!r}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return env.pick_device(requested)


def _output_path(args: argparse.Namespace, preset: str, device: torch.device) -> Path:
    if args.out:
        out = Path(args.out)
        if args.resume and not out.is_file():
            raise UsageError(f"--resume: results file {out} does not exist")
        if not args.resume and out.exists() and out.stat().st_size > 0:
            raise UsageError(f"{out} already holds results; pass --resume to continue it, or another --out")
        return out
    if args.resume:
        runs = sorted(RESULTS_DIR.glob(f"{preset}-{device.type}-*.csv"))
        if not runs:
            raise UsageError(f"--resume: no earlier {preset} run on {device.type} in results/; pass --out PATH")
        return runs[-1]
    return RESULTS_DIR / f"{preset}-{device.type}-{env.utc_now():%Y%m%dT%H%M%SZ}.csv"


def print_list(device: torch.device) -> None:
    print(
        tabulate(
            [[n, len(load_preset(n)), preset_description(n)] for n in PRESETS], ["preset", "configs", "description"]
        )
    )
    print()
    rows = []
    for name, p in PROVIDERS.items():
        probe = SweepConfig(name, p.modes[0], 8, 1, 1, 8, "float32", 8)  # smallest config: availability only
        rows.append([name, ", ".join(p.modes), p.unavailable(probe, device) or "yes", p.description])
    print(tabulate(rows, ["provider", "modes", f"runs on {device.type}", "description"]))


def print_grid(configs: list[SweepConfig]) -> None:
    print(tabulate([list(asdict(c).values()) for c in configs], list(AXES)))
    print(f"{len(configs)} configs")


# results column -> summary table header
SUMMARY_COLUMNS = {
    "provider": "provider",
    "mode": "mode",
    "phase": "phase",
    "seq_len": "T",
    "depth": "L",
    "batch": "B",
    "hidden": "H",
    "dtype": "dtype",
    "status": "status",
    "p50_ms": "p50 ms",
    "tokens_per_s": "tokens/s",
    "reason": "reason",
}


def print_summary(out: Path) -> None:
    table = read_results(out)[list(SUMMARY_COLUMNS)]
    table = table.assign(reason=table["reason"].str.slice(0, 60)).astype(object)
    rows = table.where(table.notna(), None).values.tolist()  # None prints as "-"
    print(tabulate(rows, list(SUMMARY_COLUMNS.values()), floatfmt=".4g", missingval="-"))


def _write_report_and_plots(out: Path) -> None:
    # Both modules read only the results file; a missing one must not cost the measurements.
    try:
        from suite.report import write_report
    except ImportError as e:
        print(f"report not written: {e}")
    else:
        print(f"report: {write_report(out)}")
    try:
        from suite.plots import draw_plots
    except ImportError as e:
        print(f"plots not written: {e}")
    else:
        print(f"plots: {len(draw_plots(out))} figures")


def run(args: argparse.Namespace) -> int:
    device = _device(args.device)
    if args.list:
        print_list(device)
        return 0
    preset = args.preset or default_preset(device.type)
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; presets: {', '.join(PRESETS)}")
    if args.cuda_graph and device.type != "cuda":
        raise UsageError("--cuda-graph needs a CUDA device")
    configs = load_preset(preset, overrides_from(args))
    if not configs:
        raise UsageError("the grid is empty: no provider in it supports the requested modes")
    warmup = _number("--warmup", args.warmup, 0)
    repeats = _number("--repeats", args.repeats, 1)
    if args.dry_run:
        print_grid(configs)
        return 0
    out = _output_path(args, preset, device)
    started = time.perf_counter()
    run_sweep(
        configs,
        out,
        preset=preset,
        resume=args.resume,
        timing="cuda_graph" if args.cuda_graph else "auto",
        progress=not args.no_progress,
        device=device,
        warmup=warmup,
        repeats=repeats,
    )
    print_summary(out)
    print(f"results: {out} ({time.perf_counter() - started:.0f} s)")
    _write_report_and_plots(out)
    return 0
