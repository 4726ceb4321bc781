"""The trend figures of a history (suite.render.history), as PNGs: per mode the IndRNN's
geometric-mean speedup over each baseline with its min-max band, and per provider the median time
of each config with its p20-p80 band, across the runs in commit order. A run where a change was
flagged is marked: red for a regression, green for an improvement.
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on benchmark machines

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from suite.render.history import History  # noqa: E402
from suite.render.plots import PlotSet, save_figure, style_of  # noqa: E402

FLAG_COLOURS = {"regression": "tab:red", "improvement": "tab:green", "broke": "tab:red"}


def _runs_axis(ax, h: History) -> None:
    ax.set_xticks(range(len(h.runs)))
    ax.set_xticklabels([run.label for run in h.runs], rotation=45, ha="right", fontsize=7)
    ax.set_xlabel("commit (in commit order)")
    ax.grid(True, which="both", alpha=0.3)


def _mark_flagged(ax, h: History) -> None:
    """A vertical line at each run where compare's rule flagged a change against the run before:
    red where anything got slower or broke, else green where anything got faster."""
    labelled = set()
    for step in h.steps:
        verdicts = {verdict for verdict, _, _ in step.flagged}
        worst = next((v for v in ("regression", "broke", "improvement") if v in verdicts), None)
        if worst is None:
            continue
        what = "improvement flagged" if worst == "improvement" else "regression flagged"
        ax.axvline(step.after, color=FLAG_COLOURS[worst], ls=":", lw=1.2, label=None if what in labelled else what)
        labelled.add(what)


def _title(fig: Figure, h: History, what: str) -> None:
    first = h.runs[0]
    fig.suptitle(f"{what}\n{first.field('preset')} on {first.field('device')}", fontsize=11)


def _speedup_figure(h: History, mode: str, part) -> Figure:
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    for baseline, line in part.groupby("baseline", sort=False):
        line = line.sort_values("run")
        style = style_of(baseline)
        ax.plot(line["run"], line["geomean"], label=baseline, **style)
        ax.fill_between(line["run"], line["min"], line["max"], color=style["color"], alpha=0.15)
    ax.axhline(1, ls=":", color="0.4", lw=1, label="parity")
    ax.set_yscale("log")
    ax.set_ylabel("IndRNN speedup: geometric mean, min-max band")
    _runs_axis(ax, h)
    _mark_flagged(ax, h)
    ax.legend(fontsize=8)
    _title(fig, h, f"Speedup over each baseline ({mode}) per commit")
    return fig


def _times_figure(h: History, provider: str, part) -> Figure:
    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    colours = plt.get_cmap("tab10")
    for i, (name, line) in enumerate(part.groupby("name", sort=True)):
        line = line.sort_values("run")
        colour = colours(i % 10)
        label = name.removeprefix(f"{provider} ")
        ax.plot(line["run"], line["p50_ms"], marker=style_of(provider)["marker"], color=colour, label=label)
        ax.fill_between(line["run"], line["p20_ms"], line["p80_ms"], color=colour, alpha=0.15)
    ax.set_yscale("log")
    ax.set_ylabel("ms (p50, p20-p80 band)")
    _runs_axis(ax, h)
    _mark_flagged(ax, h)
    ax.legend(fontsize=6)
    _title(fig, h, f"{provider}: median time per config per commit")
    return fig


def plot_history(h: History, out_dir: str | os.PathLike) -> PlotSet:
    """Draw every trend figure the history has data for into out_dir."""
    out_dir = Path(out_dir)
    result = PlotSet()
    figures = []
    overall = h.overall()
    if overall.empty:
        result.skipped.append("speedup: no run has a config measured ok for both the IndRNN and a baseline")
    else:
        figures += [
            (f"speedup_{mode}", lambda p=part, m=mode: _speedup_figure(h, m, p))
            for mode, part in overall.groupby("mode")
        ]
    configs = h.configs()
    figures += [
        (f"times_{provider}", lambda p=part, n=provider: _times_figure(h, n, p))
        for provider, part in configs.groupby("provider")
    ]
    for name, make in figures:
        result.written.append(save_figure(make(), out_dir, name))
    return result
