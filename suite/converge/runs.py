"""The `converge` command: how long each model takes to *solve* the adding problem.

For every model x T x seed of a preset: build the model from the seed, train it on a stream of
fresh batches drawn from the same seed (so every model at a seed sees the same data), and score
it every `eval_every` steps on a fixed held-out set of `test_size` sequences per T (the same for
every model and seed). A run stops at the first evaluation whose test MSE reaches the target,
or when a budget runs out: `max_steps`, or `max_seconds` of training (checked at each
evaluation, so a run may exceed it by up to one evaluation interval). Only the training steps
are timed (data for the next interval is drawn before the clock starts, and on CUDA the clock
waits for the device); evaluation time is recorded apart.

Files: the curves CSV (one row per evaluation), `<stem>.summary.csv` (one row per finished
model x T x seed), `<stem>.meta.json` (as the sweep's), all flushed as they are written. With
`--resume`, finished runs are kept and not redone; a run that was interrupted is started again
from scratch and its partial curve is removed first.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from tabulate import tabulate
from torch import nn

from suite.converge.adding import adding_batch
from suite.converge.models import MODELS, AddingModel, ModelSpec
from suite.core import env, paths
from suite.core.errors import PresetError, ResultsError, UsageError, flag_value
from suite.core.progress import Progress
from suite.core.schema import RunMeta
from suite.core.store import read_meta, write_meta
from suite.sweep.providers import param_count

PRESET_DIR = Path(__file__).resolve().parent / "presets"
RESULTS_DIR = paths.RESULTS_DIR
TIMING = "train_wallclock"  # perf_counter around the training steps, synchronised on CUDA
TEST_SEED = 10_000  # the held-out set's seed: apart from any training seed a preset uses
EVAL_CHUNK = 250  # sequences scored at once: bounds the Transformer's attention memory at long T
STOP_REASONS = ("target", "max_steps", "max_seconds", "diverged")


# ---------------------------------------------------------------------------- what to run


@dataclass(frozen=True)
class Settings:
    """How every run of a converge sweep is trained, scored and stopped."""

    target: float  # test MSE that counts as solved
    max_steps: int
    max_seconds: float  # training seconds, evaluation excluded
    eval_every: int  # steps between evaluations of the held-out set
    batch: int
    test_size: int  # held-out sequences per T


@dataclass(frozen=True)
class RunKey:
    """One model x T x seed: the unit that is trained, summarised and resumed."""

    model: str
    seq_len: int
    seed: int

    def label(self) -> str:
        return f"{self.model} T={self.seq_len} seed={self.seed}"


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


# ---------------------------------------------------------------------------- training


@dataclass(frozen=True)
class CurvePoint:
    """One evaluation of the held-out set during a run."""

    step: int
    train_s: float  # training seconds so far
    train_loss: float | None  # mean training loss since the previous evaluation (None at step 0)
    test_mse: float


@dataclass(frozen=True)
class Outcome:
    """How a run ended: the summary row's measured fields."""

    reached: bool
    stopped_by: str  # one of STOP_REASONS
    steps_to_target: int | None
    seconds_to_target: float | None
    best_mse: float
    final_mse: float
    steps: int
    train_s: float
    eval_s: float
    params: int
    details: str


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def held_out_set(seq_len: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed test set of length seq_len: the same sequences for every model and seed."""
    x, y = adding_batch(size, seq_len, torch.Generator().manual_seed(TEST_SEED + seq_len))
    return x.to(device), y.to(device)


@torch.no_grad()
def held_out_mse(model: nn.Module, test_set: tuple[torch.Tensor, torch.Tensor]) -> float:
    model.eval()
    x, y = test_set
    squared = sum(
        float(((model(xc) - yc) ** 2).sum()) for xc, yc in zip(x.split(EVAL_CHUNK), y.split(EVAL_CHUNK), strict=True)
    )
    model.train()
    return squared / len(y)


def train_step(
    model: AddingModel, optimizer: torch.optim.Optimizer, spec: ModelSpec, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """One optimiser step on a batch; returns the batch loss (left on the device, not synchronised)."""
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    if spec.grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
    optimizer.step()
    model.after_optimizer_step()
    return loss.detach()


def _stop_reason(point: CurvePoint, settings: Settings) -> str | None:
    if point.test_mse <= settings.target:
        return "target"
    if not math.isfinite(point.test_mse):
        return "diverged"
    if point.step >= settings.max_steps:
        return "max_steps"
    if point.train_s >= settings.max_seconds:
        return "max_seconds"
    return None


def train_to_target(
    key: RunKey,
    settings: Settings,
    device: torch.device,
    test_set: tuple[torch.Tensor, torch.Tensor],
    record: Callable[[CurvePoint], None],
) -> Outcome:
    """Train key's model until its test MSE reaches the target or a budget runs out; `record`
    receives every evaluation (step 0 included) as it is made."""
    spec = MODELS[key.model]
    torch.manual_seed(key.seed)  # the model's initial weights
    model = spec.build(key.seq_len, device)
    optimizer = spec.optimizer(model.parameters(), lr=spec.lr)
    data = torch.Generator().manual_seed(key.seed)  # the training stream, shared by every model at this seed
    step, train_s, eval_s = 0, 0.0, 0.0
    train_loss: float | None = None
    history: list[CurvePoint] = []
    while True:
        _sync(device)
        started = time.perf_counter()
        point = CurvePoint(step, train_s, train_loss, held_out_mse(model, test_set))
        _sync(device)
        eval_s += time.perf_counter() - started
        history.append(point)
        record(point)
        stopped_by = _stop_reason(point, settings)
        if stopped_by:
            break
        steps = min(settings.eval_every, settings.max_steps - step)
        x, y = adding_batch(steps * settings.batch, key.seq_len, data)
        batches = zip(x.to(device).split(settings.batch), y.to(device).split(settings.batch), strict=True)
        _sync(device)
        started = time.perf_counter()
        losses = [train_step(model, optimizer, spec, xb, yb) for xb, yb in batches]
        _sync(device)
        train_s += time.perf_counter() - started
        step += steps
        train_loss = float(torch.stack(losses).mean())
    reached = stopped_by == "target"
    mses = [p.test_mse for p in history]
    return Outcome(
        reached=reached,
        stopped_by=stopped_by,
        steps_to_target=step if reached else None,
        seconds_to_target=train_s if reached else None,
        best_mse=min(mses, key=lambda m: m if math.isfinite(m) else math.inf),
        final_mse=point.test_mse,
        steps=step,
        train_s=train_s,
        eval_s=eval_s,
        params=param_count(model),
        details=model.details,
    )


# ---------------------------------------------------------------------------- files

CURVE_COLUMNS = ("run_id", "model", "seq_len", "seed", "step", "train_s", "train_loss", "test_mse")
SUMMARY_COLUMNS = (
    "run_id",
    "preset",
    "device",
    "model",
    "seq_len",
    "seed",
    *(f.name for f in fields(Outcome) if f.name not in ("params", "details")),
    *(f.name for f in fields(Settings)),
    "optimizer",
    "lr",
    "grad_clip",
    "params",
    "details",
)
KEY_COLUMNS = ("model", "seq_len", "seed")


def summary_path(csv_path: str | os.PathLike) -> Path:
    """results/run.csv -> results/run.summary.csv"""
    p = Path(csv_path)
    return p.with_name(p.stem + ".summary.csv")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)  # repr: full precision
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


class RowAppender:
    """Appends rows (dicts) to a CSV of fixed columns, writing the header once and flushing
    every row to disk, so an interrupted run keeps all it wrote."""

    def __init__(self, path: Path, columns: tuple[str, ...]) -> None:
        self.path, self.columns = path, columns
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not path.exists() or path.stat().st_size == 0
        if not fresh and tuple(read_rows(path, columns)[0]) != columns:
            raise ResultsError(f"{path} has other columns than converge writes; use a new --out")
        self._file = open(path, "a", newline="")
        self._csv = csv.writer(self._file)
        if fresh:
            self.append(dict(zip(columns, columns, strict=True)))

    def append(self, row: dict) -> None:
        self._csv.writerow([_cell(row.get(c)) for c in self.columns])
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def read_rows(path: Path, columns: tuple[str, ...]) -> tuple[list[str], list[dict]]:
    """(header, rows as dicts of strings) of a CSV this module wrote; ResultsError if it is not one."""
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, [])
            rows = [dict(zip(header, r, strict=True)) for r in reader]
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ResultsError(f"cannot read {path}: {e}") from e
    if missing := [c for c in columns if c not in header]:
        raise ResultsError(f"{path} is not a converge file: missing columns {missing}")
    return header, rows


def _key_of(row: dict) -> RunKey:
    return RunKey(row["model"], int(row["seq_len"]), int(row["seed"]))


def finished_runs(csv_path: Path) -> set[RunKey]:
    """The runs whose summary row is written: they are complete and not run again."""
    path = summary_path(csv_path)
    if not path.exists() or path.stat().st_size == 0:
        return set()
    return {_key_of(r) for r in read_rows(path, SUMMARY_COLUMNS)[1]}


def drop_unfinished_curves(csv_path: Path, finished: set[RunKey]) -> int:
    """Remove the curve rows of runs that never finished (they restart from scratch); returns how
    many rows went. The file is replaced atomically: a crash here loses nothing finished."""
    if not csv_path.exists() or csv_path.stat().st_size == 0:
        return 0
    header, rows = read_rows(csv_path, CURVE_COLUMNS)
    kept = [r for r in rows if _key_of(r) in finished]
    if len(kept) == len(rows):
        return 0
    tmp = csv_path.with_name(csv_path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(kept)
    os.replace(tmp, csv_path)
    return len(rows) - len(kept)


# ---------------------------------------------------------------------------- the sweep


@dataclass(frozen=True)
class _RunStatus:
    """The progress line during a run: the run and its latest evaluation."""

    key: RunKey
    point: CurvePoint

    def label(self) -> str:
        return f"{self.key.label()} step {self.point.step} test MSE {self.point.test_mse:.3g}"


def _run_meta(
    out: Path, resume: bool, fresh: Callable[[], RunMeta], device: torch.device, settings: Settings
) -> RunMeta:
    """A fresh metadata record, or for --resume the file's own, noting when it was continued and
    with which commit. A resumed file must continue on the same device with the same settings:
    one file never mixes them."""
    if not resume:
        return fresh()
    try:
        old = RunMeta(**read_meta(out))
    except (ValueError, TypeError):  # no or unreadable metadata: start a new record
        return fresh()
    if old.device != env.device_name(device):
        raise UsageError(f"cannot resume {out}: it ran on {old.device}, this run is on {env.device_name(device)}")
    had, wanted = old.notes.get("settings", {}), asdict(settings)
    if had != wanted:
        changed = ", ".join(f"{k} {had.get(k)} -> {v}" for k, v in wanted.items() if had.get(k) != v)
        raise UsageError(f"cannot resume {out} with other settings ({changed}); use a new --out")
    commit, dirty = env.git_state()
    resumed = [
        *old.notes.get("resumed", []),
        {"timestamp": env.utc_now().isoformat(), "git_commit": commit, "git_dirty": dirty},
    ]
    return replace(old, notes={**old.notes, "resumed": resumed})


def run_converge(
    preset: Preset,
    out_csv: str | os.PathLike,
    *,
    device: torch.device,
    resume: bool = False,
    progress: bool = True,
    argv: list[str] | None = None,
) -> Path:
    """Train every run of the preset not already finished in out_csv; returns the CSV path."""
    out = Path(out_csv)
    settings = preset.settings

    def fresh_meta() -> RunMeta:
        recipes = {
            name: {
                "optimizer": s.optimizer.__name__,
                "lr": s.lr,
                "grad_clip": s.grad_clip,
                "description": s.description,
            }
            for name, s in MODELS.items()
        }
        notes = {
            "task": "adding problem",
            "settings": asdict(settings),
            "models": recipes,
            # Others' work on a shared machine slows every timed step: say how busy it was.
            "load_average": [os.getloadavg()[0]],
        }
        if device.type == "cuda":  # fp32 GEMMs and cuDNN RNNs may use TF32: say which did
            notes.update(
                matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32,
                cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
            )
        return env.collect_meta(
            preset=preset.name, device=device, timing=TIMING, copy_gbytes_per_s=None, argv=argv, notes=notes
        )

    meta = _run_meta(out, resume, fresh_meta, device, settings)
    finished = finished_runs(out) if resume else set()
    dropped = drop_unfinished_curves(out, finished) if resume else 0
    if dropped:
        print(f"resume: removed {dropped} curve rows of unfinished runs; they start again from scratch")
    todo = [k for k in preset.runs if k not in finished]
    write_meta(out, meta)
    curves = RowAppender(out, CURVE_COLUMNS)
    summary = RowAppender(summary_path(out), SUMMARY_COLUMNS)
    bar = Progress(len(todo), progress)
    test_sets: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    try:
        for i, key in enumerate(todo):
            if key.seq_len not in test_sets:
                test_sets = {key.seq_len: held_out_set(key.seq_len, settings.test_size, device)}

            def record(point: CurvePoint, key: RunKey = key, i: int = i) -> None:
                curves.append({"run_id": meta.run_id, **asdict(key), **asdict(point)})
                bar.show(i, _RunStatus(key, point))

            outcome = train_to_target(key, settings, device, test_sets[key.seq_len], record)
            spec = MODELS[key.model]
            summary.append(
                {
                    "run_id": meta.run_id,
                    "preset": preset.name,
                    "device": meta.device,
                    **asdict(key),
                    **asdict(outcome),
                    **asdict(settings),
                    "optimizer": spec.optimizer.__name__,
                    "lr": spec.lr,
                    "grad_clip": spec.grad_clip,
                }
            )
    finally:
        bar.close()
        curves.close()
        summary.close()
    write_meta(
        out, replace(meta, notes={**meta.notes, "load_average": [*meta.notes["load_average"][:1], os.getloadavg()[0]]})
    )
    return out


# ---------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        metavar="NAME",
        help=f"one of {', '.join(converge_presets())} (default: paper on a GPU, quick on a CPU)",
    )
    parser.add_argument("--list", action="store_true", help="list presets and models, then exit")
    parser.add_argument("--dry-run", action="store_true", help="print the runs and settings without training")
    parser.add_argument(
        "--out", metavar="PATH", help="curves CSV (default: results/converge-<preset>-<device>-<UTC time>.csv)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue --out (default: the newest converge run of this preset and device); "
        "finished runs are kept, an interrupted run starts again from scratch",
    )
    parser.add_argument("--device", default="auto", metavar="KIND", help="auto, cuda or cpu (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    grid = parser.add_argument_group("overrides (replace the preset's values)")
    grid.add_argument("--models", nargs="+", metavar="M", help=f"models: {', '.join(MODELS)}")
    grid.add_argument("--seq-len", nargs="+", metavar="T", help="sequence lengths (in every grid)")
    grid.add_argument("--seeds", nargs="+", metavar="S", help="seeds, one run each per model and T")
    grid.add_argument("--target", metavar="MSE", help="test MSE that counts as solved (0.01)")
    grid.add_argument("--max-steps", metavar="N", help="step budget per run")
    grid.add_argument("--max-seconds", metavar="S", help="training-seconds budget per run (checked at evaluations)")
    grid.add_argument("--eval-every", metavar="N", help="steps between evaluations of the held-out set")
    grid.add_argument("--batch", metavar="B", help="training batch size")
    grid.add_argument("--test-size", metavar="N", help="held-out sequences per T")


def overrides_from(args: argparse.Namespace) -> dict:
    """The command line's overrides, parsed and checked (UsageError if bad)."""
    overrides: dict = {}
    for axis in ("models", "seq_len", "seeds"):
        values = getattr(args, axis)
        if values is None:
            continue
        overrides[axis] = flag_value(
            f"--{axis.replace('_', '-')}",
            values,
            list if axis == "models" else (lambda vs: [int(v) for v in vs]),
            lambda vs, axis=axis: check_axis(axis, vs),
            "integers",
        )
    for name, kind in SETTING_TYPES.items():
        text = getattr(args, name)
        if text is None:
            continue
        overrides[name] = flag_value(
            f"--{name.replace('_', '-')}",
            text,
            kind,
            lambda value, name=name: check_setting(name, value),
            "an integer" if kind is int else "a number",
        )
    return overrides


def output_path(args: argparse.Namespace, preset: str, device: torch.device) -> Path:
    if args.out:
        out = Path(args.out)
        if args.resume and not out.is_file():
            raise UsageError(f"--resume: results file {out} does not exist")
        if not args.resume and any(p.exists() and p.stat().st_size > 0 for p in (out, summary_path(out))):
            raise UsageError(f"{out} already holds results; pass --resume to continue it, or another --out")
        return out
    if args.resume:
        runs = sorted(
            p for p in RESULTS_DIR.glob(f"converge-{preset}-{device.type}-*.csv") if not p.name.endswith(".summary.csv")
        )
        if not runs:
            raise UsageError(f"--resume: no earlier converge {preset} run on {device.type} in results/; pass --out")
        return runs[-1]
    return RESULTS_DIR / f"converge-{preset}-{device.type}-{env.utc_now():%Y%m%dT%H%M%SZ}.csv"


def print_list() -> None:
    rows = []
    for name in converge_presets():
        p = load_preset(name)
        rows.append([name, len(p.runs), p.description])
    print(tabulate(rows, ["preset", "runs", "description"]))
    print()
    models = [[s.name, s.optimizer.__name__, s.lr, s.grad_clip or "-", s.description] for s in MODELS.values()]
    print(tabulate(models, ["model", "optimizer", "lr", "grad clip", "description"]))


def print_runs(preset: Preset, keys: Iterable[RunKey]) -> None:
    print(", ".join(f"{k}={v}" for k, v in asdict(preset.settings).items()))
    print(tabulate([list(asdict(k).values()) for k in keys], ["model", "T", "seed"]))


def _write_report_and_plots(out: Path) -> None:
    # Both read only the files; a failure there must not cost the measurements already written.
    from suite.converge.plots import plot_converge
    from suite.converge.report import write_converge_report

    print(f"report: {write_converge_report(out)}")
    plots = plot_converge(out)
    print(f"plots: {', '.join(str(p) for p in plots)}")


def pick_device(requested: str) -> torch.device:
    if requested not in ("auto", "cuda", "cpu"):
        raise UsageError(f"--device must be auto, cuda or cpu, got {requested!r}")
    if requested == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available")
    return env.pick_device(requested)


def run(args: argparse.Namespace) -> int:
    device = pick_device(args.device)
    if args.list:
        print_list()
        return 0
    name = args.preset or default_preset(device.type)
    try:
        preset = load_preset(name, overrides_from(args))
    except PresetError as e:
        raise UsageError(str(e)) from None
    out = output_path(args, preset.name, device)
    if args.dry_run:  # with --resume: the runs still to do
        finished = finished_runs(out) if args.resume else set()
        print_runs(preset, [k for k in preset.runs if k not in finished])
        return 0
    started = time.perf_counter()
    try:
        run_converge(preset, out, device=device, resume=args.resume, progress=not args.no_progress)
    except KeyboardInterrupt:  # cli.main prints it: where the runs so far are, and how to continue
        raise KeyboardInterrupt(
            f"finished runs are in {out}; continue with `python run_bench.py converge --resume --out {out}`"
            " and the same flags"
        ) from None
    print(f"results: {out}, {summary_path(out).name} ({time.perf_counter() - started:.0f} s)")
    _write_report_and_plots(out)
    return 0
