"""`plot`: the figures of one results file, as PNGs (matplotlib, Agg backend).

Speedup against each baseline along T, depth and batch (p20-p80 bands, the 10x line), latency
and peak memory against T per provider, recurrence bandwidth as % of the copy bandwidth,
a Fig. 2-style bar chart beside the paper's bars, and where the chunked scan beats the
sequential walk over T x B*H, with the boundary of the auto schedule. A figure whose data the file lacks is not
drawn and is listed as skipped. The numbers come from `suite.render.analysis`, as the report's do.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on benchmark machines

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from suite.core import paths  # noqa: E402
from suite.core.errors import UsageError  # noqa: E402
from suite.core.paper import CLAIM_FACTOR, FIG2_HIDDEN, FIG2_LAYERS  # noqa: E402
from suite.core.schema import Lineup  # noqa: E402
from suite.render import analysis  # noqa: E402
from suite.render.analysis import AXIS_LABELS, Results  # noqa: E402
from suite.render.markdown import fmt_x  # noqa: E402

log = logging.getLogger(__name__)
SPEEDUP_AXES = ("seq_len", "depth", "batch")

# One look per provider in every figure, so that a colour names the same model everywhere.
PROVIDER_STYLES = {
    "indrnn_triton": {"color": "tab:blue", "marker": "o"},
    "indrnn_torch": {"color": "tab:cyan", "marker": "o"},
    "indrnn_triton_seq": {"color": "darkblue", "marker": "<"},
    "indrnn_triton_scan": {"color": "royalblue", "marker": ">"},
    "indrnn_torch_seq": {"color": "darkcyan", "marker": "<"},
    "indrnn_torch_scan": {"color": "mediumturquoise", "marker": ">"},
    "indrnn_compile": {"color": "tab:purple", "marker": "P"},
    "indrnn_residual": {"color": "tab:olive", "marker": "h"},
    "indrnn_dense": {"color": "tab:pink", "marker": "p"},
    "lstm": {"color": "tab:orange", "marker": "s"},
    "gru": {"color": "tab:green", "marker": "^"},
    "transformer": {"color": "tab:red", "marker": "D"},
    "sru": {"color": "tab:brown", "marker": "v"},
    "hgrn": {"color": "tab:gray", "marker": "X"},
}
OTHER_STYLE = {"color": "black", "marker": "x"}  # a provider this suite does not know (an older file)
# Fig. 2 compares 1 and 2 layers of the same IndRNN: one colour per depth, none a provider's.
FIG2_LAYER_STYLES = {1: {"color": "navy"}, 2: {"color": "teal"}}
PHASE_LINES = {"fwd": "-", "bwd": "--"}  # recurrence rows: the provider's colour, a line per phase
CLAIM_LINE = {"ls": "--", "color": "black", "lw": 1}  # the 10x line, apart from every provider's colour
SCAN_CMAP = "RdBu"  # the scan's speedup over the walk: blue where the scan wins, red where the walk does


def style_of(provider: str) -> dict:
    return PROVIDER_STYLES.get(provider, OTHER_STYLE)


@dataclass
class PlotSet:
    written: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name: why"


def save_figure(fig: Figure, out_dir: str | os.PathLike, name: str) -> Path:
    """fig as out_dir/<name>.png (the folder made when missing) at the suite's one resolution, then
    closed; the path written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.png"
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
    return path


def _title(fig: Figure, res: Results, what: str, fixed: dict | None = None) -> None:
    fig.suptitle(f"{what}\n{res.device}", fontsize=11)
    if fixed:
        fig.supxlabel(analysis.describe(fixed), fontsize=7, color="0.35")


def _log_x(ax, values) -> None:
    """Log2 axis ticked at the measured values, so a sweep over powers of two reads plainly."""
    values = sorted(set(int(v) for v in values))
    ax.set_xscale("log", base=2)
    ax.set_xticks(values)
    ax.set_xticklabels([str(v) for v in values])
    ax.minorticks_off()


def _speedup_figure(res: Results, sl: analysis.Slice) -> Figure:
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    for baseline in res.lineup.order(set(sl.pairs["baseline"])):
        line = sl.pairs[sl.pairs["baseline"] == baseline].sort_values(sl.axis)
        style = style_of(baseline)
        ax.plot(line[sl.axis], line["speedup"], label=baseline, **style)
        ax.fill_between(line[sl.axis], line["speedup_lo"], line["speedup_hi"], color=style["color"], alpha=0.2)
    ax.axhline(CLAIM_FACTOR, label=f"{CLAIM_FACTOR:g}x", **CLAIM_LINE)
    ax.axhline(1, ls=":", color="0.4", lw=1, label="parity")
    ax.set_yscale("log")
    _log_x(ax, sl.pairs[sl.axis])
    ax.set_xlabel(AXIS_LABELS[sl.axis])
    ax.set_ylabel(f"speedup of {res.indrnn} (baseline p50 / IndRNN p50)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _title(fig, res, f"{res.indrnn} speedup vs {AXIS_LABELS[sl.axis]} ({sl.fixed['mode']})", sl.fixed)
    return fig


def _per_provider_figure(res: Results, at: pd.DataFrame, column: str, ylabel: str, what: str, fixed: dict) -> Figure:
    """One line per provider against T, with the p20-p80 band when the column is a latency."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    providers = [res.indrnn] + res.lineup.order(set(at["provider"]) - {res.indrnn})
    for provider in providers:
        line = at[(at["provider"] == provider) & at[column].notna()].sort_values("seq_len")
        if line.empty:
            continue
        style = style_of(provider)
        ax.plot(line["seq_len"], line[column], label=provider, **style)
        if column == "p50_ms":
            ax.fill_between(line["seq_len"], line["p20_ms"], line["p80_ms"], color=style["color"], alpha=0.2)
    ax.set_yscale("log")
    _log_x(ax, at["seq_len"])
    ax.set_xlabel("T")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    _title(fig, res, what, fixed)
    return fig


def _recurrence_figure(res: Results, rec: pd.DataFrame) -> Figure:
    """% of copy bandwidth against the elements moved: the copy floor is the roof at 100%."""
    fig, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    rec = rec.assign(elements=rec["seq_len"] * rec["batch"] * rec["hidden"])
    for (provider, phase, dtype), line in rec.groupby(["provider", "phase", "dtype"], sort=True):
        line = line.sort_values("elements")
        ax.plot(
            line["elements"],
            line["pct_copy_bw"],
            ls=PHASE_LINES.get(phase, ":"),
            fillstyle="full" if dtype == "float32" else "none",  # half precision: hollow markers
            label=f"{provider} {phase} {dtype}",
            **style_of(provider),
        )
    ax.axhline(100, label="copy bandwidth (roof)", **CLAIM_LINE)
    ax.set_xscale("log")
    ax.set_ylim(0, max(110, float(rec["pct_copy_bw"].max()) * 1.1))
    ax.set_xlabel("elements of x (T x B x H)")
    ax.set_ylabel("% of device copy bandwidth")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    copy_bw = res.meta.get("copy_gbytes_per_s")
    _title(fig, res, "Recurrence kernel bandwidth" + (f" (copy: {copy_bw:.0f} GB/s)" if copy_bw else ""))
    return fig


def _bars(
    ax,
    groups: list,
    series: dict[str, list[float]],
    styles: dict[str, dict],
    spreads: dict[str, tuple[list[float], list[float]]],
) -> None:
    """Grouped bars, one colour per series (`styles`), with error bars from the (lo, hi) values
    of the series in `spreads` (ours: p20-p80; the paper's bars have none)."""
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, (label, values) in enumerate(series.items()):
        yerr = None
        if label in spreads:
            lo, hi = (np.asarray(v, dtype=float) for v in spreads[label])
            yerr = np.vstack([np.asarray(values) - lo, hi - np.asarray(values)])
        ax.bar(
            x + (i - (len(series) - 1) / 2) * width, values, width, label=label, yerr=yerr, capsize=3, **styles[label]
        )
    ax.set_xticks(x)
    ax.set_xticklabels([f"T={g}" for g in groups])
    ax.legend(fontsize=7)


def _layers(n: int) -> str:
    return f"{n} layer{'s' if n > 1 else ''}"


def _fig2_figure(res: Results, fig2: analysis.Fig2) -> Figure:
    """Left: our ms per training step, paper-style. Right: speedup vs LSTM, ours beside the paper's."""
    table = fig2.table
    seq_lens = sorted(table["seq_len"].unique())

    def col(layers: int, column: str) -> list[float]:
        part = table[table["layers"] == layers].set_index("seq_len")
        return [float(part.loc[t, column]) for t in seq_lens]

    def spread(layers: int, lo: str, hi: str) -> tuple[list[float], list[float]]:
        return col(layers, lo), col(layers, hi)

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
    ms, styles, spreads = {}, {}, {}
    baselines = [("lstm", "LSTM")] + ([("sru", "SRU")] if fig2.has_sru else [])
    for provider, name in baselines:
        ms[f"{name} 1 layer"] = col(1, f"{provider}_p50_ms")
        styles[f"{name} 1 layer"] = {"color": style_of(provider)["color"]}
        spreads[f"{name} 1 layer"] = spread(1, f"{provider}_p20_ms", f"{provider}_p80_ms")
    for n in FIG2_LAYERS:
        label = f"IndRNN {_layers(n)}"
        ms[label], styles[label] = col(n, "indrnn_p50_ms"), FIG2_LAYER_STYLES[n]
        spreads[label] = spread(n, "indrnn_p20_ms", "indrnn_p80_ms")
    _bars(left, seq_lens, ms, styles, spreads)
    left.set_ylabel("ms per training step (p50, p20-p80 bars)")
    left.set_title("this run", fontsize=9)
    ratios, styles, spreads = {}, {}, {}
    for n in FIG2_LAYERS:
        paper, ours = f"paper (P100), {_layers(n)}", f"ours, {_layers(n)}"
        ratios[paper], styles[paper] = col(n, "paper_ratio"), {**FIG2_LAYER_STYLES[n], "alpha": 0.35, "hatch": "//"}
        ratios[ours], styles[ours] = col(n, "speedup"), FIG2_LAYER_STYLES[n]
        spreads[ours] = spread(n, "speedup_lo", "speedup_hi")
    _bars(right, seq_lens, ratios, styles, spreads)
    right.axhline(CLAIM_FACTOR, **CLAIM_LINE)
    right.set_ylabel("IndRNN speedup over 1-layer LSTM (ours: p20-p80)")
    right.set_title(f"verdict on >{CLAIM_FACTOR:g}x: {fig2.verdict}", fontsize=9)
    fixed = {"mode": "train", "hidden": FIG2_HIDDEN, **fig2.config}
    _title(fig, res, f"Fig. 2 of Deep IndRNN (arXiv 1910.06251) with {res.indrnn}", fixed)
    return fig


def _scan_name(fixed: dict, implementation: str) -> str:
    parts = ["scan_speedup", fixed["backend"], fixed["mode"], fixed["phase"].replace("+", "_")]
    parts += [f"depth{fixed['depth']}"] if fixed["depth"] != 1 else []
    parts += [fixed["dtype"]] if fixed["dtype"] != "float32" else []
    parts += ["cuda_graph"] if fixed["timing"] == "cuda_graph" else []
    parts += ["compiled"] if analysis.notes_of(implementation).get("compiler") else []
    return "_".join(parts)


def _scan_figure(res: Results, fixed: dict, pairs: pd.DataFrame, rule: dict | None) -> Figure:
    """The scan's speedup over the walk at each measured (T, B*H), coloured on a log scale centred
    on parity and written beside its square, with the line past which auto takes the scan."""
    fig, ax = plt.subplots(figsize=(7.5, 5), layout="constrained")
    # Configs with the same T and B*H (8 x 128 and 1 x 1024) are drawn side by side.
    slot = pairs.groupby(["seq_len", "columns"]).cumcount()
    count = pairs.groupby(["seq_len", "columns"])["batch"].transform("size")
    x = pairs["seq_len"] * 2.0 ** (0.3 * (slot - (count - 1) / 2))
    y = pairs["columns"].astype(float)
    log_speedup = np.log2(pairs["speedup"].astype(float))
    reach = max(1.0, float(log_speedup.abs().max()))
    norm = TwoSlopeNorm(vcenter=0.0, vmin=-reach, vmax=reach)
    dots = ax.scatter(x, y, c=log_speedup, cmap=SCAN_CMAP, norm=norm, marker="s", s=260, edgecolors="0.3")
    for xi, yi, r in zip(x, y, pairs.itertuples(), strict=True):
        ax.annotate(
            f"{fmt_x(r.speedup)}\n{r.batch}x{r.hidden}", (xi, yi), xytext=(0, 13), textcoords="offset points",
            ha="center", fontsize=6,
        )  # fmt: skip
    t_values, c_values = sorted(pairs["seq_len"].unique()), sorted(pairs["columns"].unique())
    x_lo, x_hi, y_lo, y_hi = t_values[0] / 2, t_values[-1] * 2, c_values[0] / 2, c_values[-1] * 4
    if rule and rule["max_columns"] <= 64 * c_values[-1]:  # a boundary far above the data is not drawn
        y_hi = max(y_hi, rule["max_columns"] * 2)
        x_lo = min(x_lo, rule["min_steps"] / 2)
        t_values, c_values = [*t_values, rule["min_steps"]], [*c_values, rule["max_columns"]]  # ticked too
        ax.plot(
            [rule["min_steps"], rule["min_steps"], x_hi],
            [y_lo, rule["max_columns"], rule["max_columns"]],
            label=f"auto takes the scan right of and below this line (T >= {rule['min_steps']}, B*H <= {rule['max_columns']})",
            **CLAIM_LINE,
        )
        ax.legend(fontsize=7, loc="best")
    _log_x(ax, t_values)
    ax.set_yscale("log", base=2)
    c_values = sorted(set(int(c) for c in c_values))
    ax.set_yticks(c_values)
    ax.set_yticklabels([str(c) for c in c_values])
    ax.minorticks_off()
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlabel("T")
    ax.set_ylabel("columns B*H")
    ticks = np.arange(-np.floor(reach), np.floor(reach) + 1)
    bar = fig.colorbar(dots, ax=ax, ticks=ticks)
    bar.ax.set_yticklabels([fmt_x(2.0**t) for t in ticks])
    bar.set_label("scan speedup over the walk (walk p50 / scan p50)")
    what = f"Where the chunked scan wins: {fixed['backend']}, {fixed['mode']} ({fixed['phase']})"
    _title(fig, res, what, {k: v for k, v in fixed.items() if k not in ("backend", "mode", "phase")})
    return fig


def _figures(summary: analysis.Summary):
    """(name, figure or None, why not drawn) for every figure this suite draws."""
    res = summary.res
    for axis in SPEEDUP_AXES:
        slices = summary.slices[axis]
        if not slices:
            yield f"speedup_vs_{axis}", None, f"no {AXIS_LABELS[axis]} sweep with both the IndRNN and a baseline ok"
        for sl in slices:
            yield f"speedup_vs_{axis}_{sl.fixed['mode']}", lambda sl=sl: _speedup_figure(res, sl), ""

    # Latency and memory per provider along the same slices as the speedup against T.
    t_slices = summary.slices["seq_len"]
    if not t_slices:
        yield "latency_vs_seq_len", None, "no T sweep with both the IndRNN and a baseline ok"
        yield "peak_memory", None, "no T sweep with both the IndRNN and a baseline ok"
    for sl in t_slices:
        mode = sl.fixed["mode"]
        at = analysis.rows_at(res, sl.fixed)
        yield (
            f"latency_vs_seq_len_{mode}",
            lambda at=at, sl=sl: _per_provider_figure(
                res, at, "p50_ms", "ms (p50, p20-p80 band)", f"Latency vs T ({sl.fixed['mode']})", sl.fixed
            ),
            "",
        )
        if at["peak_mem_mb"].notna().any():
            yield (
                f"peak_memory_{mode}",
                lambda at=at, sl=sl: _per_provider_figure(
                    res, at, "peak_mem_mb", "peak memory (MiB)", f"Peak memory vs T ({sl.fixed['mode']})", sl.fixed
                ),
                "",
            )
        else:
            yield f"peak_memory_{mode}", None, "peak memory not recorded (GPU only)"

    rec = res.ok[(res.ok["mode"] == "recurrence") & res.ok["pct_copy_bw"].notna()]
    sizes = (rec["seq_len"] * rec["batch"] * rec["hidden"]).nunique()
    if rec.empty:
        yield "recurrence_bandwidth", None, "no recurrence rows with % of copy bandwidth"
    elif sizes < 2:
        yield "recurrence_bandwidth", None, "recurrence rows at one size only: a curve against size needs two"
    else:
        yield "recurrence_bandwidth", lambda: _recurrence_figure(res, rec), ""

    scan = summary.scan
    if scan.pairs.empty:
        yield "scan_speedup", None, "no config with both schedules of the same IndRNN measured ok"
    for (implementation, *group), pairs in scan.pairs.groupby(["implementation", *analysis.SCHEDULE_GROUP], sort=False):
        fixed = dict(zip(analysis.SCHEDULE_GROUP, group, strict=True))
        name = _scan_name(fixed, implementation)
        if len(pairs) < 2:
            yield name, None, "both schedules at one config only: a map needs two"
        else:
            yield name, lambda f=fixed, p=pairs: _scan_figure(res, f, p, scan.rule), ""

    fig2 = summary.fig2
    if fig2.verdict == "no data":
        yield "fig2", None, "no Fig. 2 config measured for both the IndRNN and LSTM"
    else:
        yield "fig2", lambda: _fig2_figure(res, fig2), ""


def plot_all(csv_path: str | os.PathLike, lineup: Lineup, out_dir: str | os.PathLike | None = None) -> PlotSet:
    """Draw every figure the file has data for; ResultsError if the file cannot be read,
    UsageError if `out_dir` is a file."""
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise UsageError(f"--out-dir {out_dir} is a file, not a folder; pass a folder for the PNGs")
    summary = analysis.summarise(analysis.load(csv_path, lineup))
    out_dir = Path(out_dir) if out_dir else paths.plots_dir(summary.res.path)
    result = PlotSet()
    for name, make, why in _figures(summary):
        if make is None:
            result.skipped.append(f"{name}: {why}")
            log.info("not drawn: %s: %s", name, why)
            continue
        result.written.append(save_figure(make(), out_dir, name))
    return result
