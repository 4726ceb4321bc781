"""Figures of a `converge` run, drawn from its files alone: test MSE against training seconds
(one panel per T, every seed thin, the median bold, the 1/6 line and the target marked) and the
steps and seconds each model needed to reach the target, per T."""

from __future__ import annotations

import math
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on benchmark machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from suite.converge.adding import BASELINE_MSE  # noqa: E402
from suite.converge.report import ConvergeRun, cells, load_converge  # noqa: E402
from suite.core import paths  # noqa: E402
from suite.render.plots import save_figure  # noqa: E402

MSE_FLOOR = 1e-5  # a test MSE of exactly 0 cannot sit on a log axis


def _colors(run: ConvergeRun) -> dict[str, str]:
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {model: cycle[i % len(cycle)] for i, model in enumerate(run.models)}


def median_curve(seeds: pd.DataFrame) -> pd.DataFrame:
    """The median over seeds at every evaluated step: a seed that stopped early (solved, or out of
    budget) keeps its last MSE, so solved seeds stay solved; seconds are the median over the seeds
    that trained that far."""
    mse = seeds.pivot_table(index="step", columns="seed", values="test_mse").sort_index().ffill()
    seconds = seeds.pivot_table(index="step", columns="seed", values="train_s").sort_index()
    return pd.DataFrame({"train_s": seconds.median(axis=1), "test_mse": mse.median(axis=1)}).reset_index()


def _target(run: ConvergeRun) -> float:
    return float(run.summary["target"].iloc[0])


def _plain_log_axis(axis) -> None:
    """Log scale labelled 0.01, 0.1, 1, 10 rather than 10^-2 ...: easier to read off."""
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _title(fig: Figure, run: ConvergeRun, what: str) -> None:
    device = run.meta.get("device") or str(run.summary["device"].iloc[0])
    fig.suptitle(f"{what}\n{device}", fontsize=11)


def mse_figure(run: ConvergeRun) -> Figure:
    seq_lens = run.seq_lens
    fig, axes = plt.subplots(
        1, len(seq_lens), figsize=(4.6 * len(seq_lens), 4.4), sharey=True, layout="constrained", squeeze=False
    )
    colors = _colors(run)
    for ax, seq_len in zip(axes[0], seq_lens, strict=True):
        at = run.curves[(run.curves["seq_len"] == seq_len) & (run.curves["train_s"] > 0)]
        for model in run.models:
            seeds = at[at["model"] == model]
            if seeds.empty:
                continue
            for _, line in seeds.groupby("seed"):
                ax.plot(
                    line["train_s"],
                    line["test_mse"].clip(lower=MSE_FLOOR),
                    color=colors[model],
                    lw=0.7,
                    marker=".",
                    ms=3,
                    alpha=0.35,
                )
            median = median_curve(seeds)
            ax.plot(
                median["train_s"],
                median["test_mse"].clip(lower=MSE_FLOOR),
                color=colors[model],
                lw=2.2,
                marker="o",
                ms=3,
                label=model,
            )
        ax.axhline(BASELINE_MSE, ls="--", color="0.35", lw=1, label="always 1 (MSE 1/6)")
        ax.axhline(_target(run), ls=":", color="crimson", lw=1.2, label=f"target {_target(run):g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log_axis(ax.xaxis)
        _plain_log_axis(ax.yaxis)
        ax.set_title(f"T = {seq_len}", fontsize=10)
        ax.set_xlabel("training seconds")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("test MSE (held-out set)")
    axes[0][-1].legend(fontsize=8, loc="lower left")
    _title(fig, run, "Adding problem: test MSE against training time (seeds thin, median bold)")
    return fig


def _jitter(n: int, width: float) -> np.ndarray:
    return np.linspace(-width / 2, width / 2, n) if n > 1 else np.zeros(1)


def to_target_figure(run: ConvergeRun) -> Figure:
    """Steps and seconds to the target per T and model: seeds as dots, the median as a bar
    marker with the seeds' range; seeds that never reached it as crosses at what they spent."""
    table = cells(run)
    seq_lens, models, colors = run.seq_lens, run.models, _colors(run)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), layout="constrained")
    offsets = dict(zip(models, _jitter(len(models), 0.7), strict=True))
    for ax, column, spent, title in (
        (axes[0], "steps_to_target", "steps", "steps to target"),
        (axes[1], "seconds_to_target", "train_s", "training seconds to target"),
    ):
        unsolved_drawn = False
        for model in models:
            for i, seq_len in enumerate(seq_lens):
                rows = run.summary[(run.summary["model"] == model) & (run.summary["seq_len"] == seq_len)]
                if rows.empty:
                    continue
                x = i + offsets[model]
                solved = rows[rows["reached"]]
                ax.scatter([x] * len(solved), solved[column], s=12, color=colors[model], alpha=0.6)
                failed = rows[~rows["reached"]]
                if len(failed):
                    ax.scatter(
                        [x] * len(failed),
                        failed[spent],
                        marker="x",
                        s=30,
                        color=colors[model],
                        label=None if unsolved_drawn else "not reached (at what it spent)",
                    )
                    unsolved_drawn = True
                cell = table[(model, seq_len)]
                median, low, high = cell.steps if column == "steps_to_target" else cell.seconds
                if math.isfinite(median):
                    high = high if math.isfinite(high) else median
                    ax.errorbar(
                        x, median, yerr=[[median - low], [high - median]], fmt="D", ms=6, color=colors[model], capsize=3
                    )
        for model in models:  # one legend entry per model
            ax.scatter([], [], marker="D", color=colors[model], label=model)
        ax.set_xticks(range(len(seq_lens)))
        ax.set_xticklabels([f"T={t}" for t in seq_lens])
        ax.set_yscale("log")
        _plain_log_axis(ax.yaxis)
        ax.set_ylabel(title)
        ax.grid(True, axis="y", which="both", alpha=0.3)
        ax.legend(fontsize=8)
    _title(fig, run, f"Adding problem: to test MSE {_target(run):g} (median, seed range, seeds as dots)")
    return fig


FIGURES = {"mse_vs_seconds": mse_figure, "to_target": to_target_figure}


def plot_converge(csv_path: str | os.PathLike, out_dir: str | os.PathLike | None = None) -> list[Path]:
    """Draw every figure of a converge run into out_dir (default: plots/<stem>/ for a run in
    results/, else <stem>-plots/ beside it); returns the PNGs written."""
    run = load_converge(csv_path)
    out = Path(out_dir) if out_dir else paths.plots_dir(run.path)
    return [save_figure(draw(run), out, name) for name, draw in FIGURES.items()]
