"""What a results file says, computed once for the report and the plots alike: which IndRNN was
measured, its speedup over every baseline, the slice of a sweep along one axis, where IndRNN
starts to win as sequences grow, and the verdict on Fig. 2 of the Deep IndRNN paper.

Every number here is derived from one results file (and the paper's figures, suite.core.paper);
nothing is typed in by hand.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from suite.core.paper import (
    CLAIM_FACTOR,
    FIG2_BATCH,
    FIG2_HIDDEN,
    FIG2_INPUT_SIZE,
    FIG2_LAYERS,
    PAPER_FIG2,
    read_paper_fig2,
)
from suite.core.paths import meta_path
from suite.core.schema import CONFIG_COLUMNS as CONFIG
from suite.core.schema import MODES, Lineup
from suite.core.store import read_meta, read_results
from suite.render import claims
from suite.render.markdown import fmt_x

# A comparison is fair only between rows that agree on every column of CONFIG (the row key
# without the provider). Which provider is the IndRNN, a variant of it or a baseline is the
# `role` each row carries (suite.core.schema.ROLES); nothing here names a provider.
AXES = ("seq_len", "depth", "batch", "hidden", "dtype", "mode")
AXIS_LABELS = {
    "mode": "mode",
    "phase": "phase",
    "seq_len": "T",
    "depth": "depth",
    "batch": "B",
    "hidden": "H",
    "input_size": "I",
    "dtype": "dtype",
    "timing": "timing",
}
METRICS = ("p20_ms", "p50_ms", "p80_ms", "peak_mem_mb", "params", "compile_s")


@dataclass(frozen=True)
class Results:
    """One results file: its rows, its metadata ({} when the file has none), its IndRNN, and the
    lineup of providers it was read with."""

    path: Path
    rows: pd.DataFrame
    meta: dict
    indrnn: str | None
    lineup: Lineup

    @property
    def ok(self) -> pd.DataFrame:
        return self.rows[self.rows["status"] == "ok"]

    @property
    def device(self) -> str:
        if self.meta.get("device"):
            return str(self.meta["device"])
        devices = self.rows["device"][self.rows["device"] != ""] if "device" in self.rows else []
        return str(devices.mode().iloc[0]) if len(devices) else "unknown device"

    def with_role(self, *roles: str) -> list[str]:
        """Providers of these roles with ok rows, in display order."""
        return self.lineup.order(set(self.ok.loc[self.ok["role"].isin(roles), "provider"]))

    @property
    def baselines(self) -> list[str]:
        """Providers with ok rows that the IndRNN is compared against, in display order."""
        return self.with_role("baseline")

    @property
    def variants(self) -> list[str]:
        """Other implementations of the IndRNN with ok rows (the other IndRNNs and the variants)."""
        return [p for p in self.with_role("indrnn", "variant") if p != self.indrnn]


def pick_indrnn(rows: pd.DataFrame, lineup: Lineup) -> str | None:
    """The most preferred provider of the indrnn role with ok rows (see Lineup.preference)."""
    ok = rows[(rows["status"] == "ok") & (rows["role"] == "indrnn")]
    return min(set(ok["provider"]), key=lineup.preference, default=None)


def load(csv_path: str | os.PathLike, lineup: Lineup) -> Results:
    """Read a results file and the metadata beside it; ResultsError if the results are unreadable.

    A missing metadata file is tolerated (the report says so); a corrupt one is an error.
    """
    rows = read_results(csv_path, lineup)
    meta = read_meta(csv_path) if meta_path(csv_path).exists() else {}
    return Results(Path(csv_path), rows, meta, pick_indrnn(rows, lineup), lineup)


def _add_ratio(df: pd.DataFrame, slow: str, fast: str, prefix: str = "speedup") -> pd.DataFrame:
    """Ratio of medians, with the p20-p80 spread of the ratio (pessimistic end to optimistic end)."""
    df[prefix] = df[f"{slow}p50_ms"] / df[f"{fast}p50_ms"]
    df[f"{prefix}_lo"] = df[f"{slow}p20_ms"] / df[f"{fast}p80_ms"]
    df[f"{prefix}_hi"] = df[f"{slow}p80_ms"] / df[f"{fast}p20_ms"]
    return df


def _prefixed(rows: pd.DataFrame, prefix: str, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    cols = list(keep) + list(CONFIG) + list(METRICS)
    return rows[cols].rename(columns={m: prefix + m for m in METRICS})


def _pairs(res: Results, others: list[str], column: str) -> pd.DataFrame:
    """The IndRNN's ok rows matched with the ok rows of each provider in `others` (named in
    `column`) at the same config, with speedup = other's p50 / IndRNN p50 and its spread."""
    ok = res.ok
    ours = _prefixed(ok[ok["provider"] == res.indrnn], "indrnn_")
    theirs = _prefixed(ok[ok["provider"].isin(others)], "base_", keep=("provider",))
    pairs = theirs.rename(columns={"provider": column}).merge(ours, on=list(CONFIG))
    pairs = _add_ratio(pairs, "base_", "indrnn_")
    rank = {b: i for i, b in enumerate(others)}
    pairs["_rank"] = pairs[column].map(rank)
    return pairs.sort_values(["_rank", *CONFIG]).drop(columns="_rank").reset_index(drop=True)


def speedups(res: Results) -> pd.DataFrame:
    """One row per (baseline, config) measured ok for both the IndRNN and the baseline at the same
    depth: their times, memory and params, and speedup = baseline p50 / IndRNN p50 with its spread."""
    return _pairs(res, res.baselines, "baseline")


def variant_speedups(res: Results) -> pd.DataFrame:
    """The same for every other implementation of the IndRNN (column `variant`): how much faster
    the IndRNN is than its eager, compiled or otherwise built twin at the same config."""
    return _pairs(res, res.variants, "variant")


@dataclass(frozen=True)
class Slice:
    """The pairs along one swept axis with every other config value held at `fixed`."""

    axis: str
    fixed: dict
    pairs: pd.DataFrame


def describe(fixed: dict) -> str:
    return ", ".join(f"{AXIS_LABELS.get(k, k)}={v}" for k, v in fixed.items())


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def sweep_slices(pairs: pd.DataFrame, axis: str) -> list[Slice]:
    """For each mode, the slice of `pairs` that sweeps `axis` furthest (the most distinct values,
    then the most baselines), other config values fixed; none where the axis takes one value.

    The mode axis itself is one slice across modes, labelled "mode (phase)"."""
    if pairs.empty:
        return []
    if axis == "mode":
        df = pairs.assign(mode=pairs["mode"] + " (" + pairs["phase"] + ")")
        others = [c for c in CONFIG if c not in ("mode", "phase")]
        parts = [df]
    else:
        others = [c for c in CONFIG if c != axis]
        parts = [pairs[pairs["mode"] == m] for m in MODES] + [pairs[~pairs["mode"].isin(MODES)]]
    slices = []
    for part in parts:
        best = None
        for key, group in part.groupby(others, sort=True):
            score = (group[axis].nunique(), group["baseline"].nunique(), len(group))
            if score[0] >= 2 and (best is None or score > best[0]):
                best = (score, key, group)
        if best is not None:
            fixed = {c: _plain(v) for c, v in zip(others, best[1], strict=True)}
            slices.append(Slice(axis, fixed, best[2].sort_values([axis, "baseline"]).reset_index(drop=True)))
    return slices


def rows_at(res: Results, fixed: dict) -> pd.DataFrame:
    """Ok rows of every provider that match `fixed` (e.g. a slice's fixed values)."""
    ok = res.ok
    mask = pd.Series(True, index=ok.index)
    for column, value in fixed.items():
        mask &= ok[column] == value
    return ok[mask]


def crossovers(pairs: pd.DataFrame) -> pd.DataFrame:
    """Where the winner changes as T grows, per baseline and mode.

    One row per (baseline, mode): the smallest T at which the IndRNN is faster and the batch
    sizes at which it is faster there; how many configs it wins; and where the baseline
    overtakes it again at a longer T (after the IndRNN was faster at a shorter one)."""
    columns = ["baseline", "mode", "first_win_T", "first_win_batches", "wins", "configs", "overtakes"]
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    others = [c for c in CONFIG if c != "seq_len"]
    out = []
    for (baseline, mode), group in pairs.groupby(["baseline", "mode"], sort=False):
        wins = group[group["speedup"] > 1]
        first_t = int(wins["seq_len"].min()) if len(wins) else None
        batches = sorted(int(b) for b in wins.loc[wins["seq_len"] == first_t, "batch"].unique()) if len(wins) else []
        overtakes = []
        for _, series in group.groupby(others, sort=True):
            series = series.sort_values("seq_len")
            won_before = False
            for t, s, b in zip(series["seq_len"], series["speedup"], series["batch"], strict=True):
                if s > 1:
                    won_before = True
                elif won_before:
                    overtakes.append((int(t), int(b)))
                    break
        out.append(
            {
                "baseline": baseline,
                "mode": mode,
                "first_win_T": first_t,
                "first_win_batches": batches,
                "wins": len(wins),
                "configs": len(group),
                "overtakes": sorted(set(overtakes)),
            }
        )
    return pd.DataFrame(out, columns=columns)


@dataclass(frozen=True)
class Fig2:
    """Our Fig. 2: one row per (layers, seq_len) with our ms and ratios beside the paper's."""

    table: pd.DataFrame
    config: dict  # the batch, dtype, timing and input size our cells were measured at ({} when none)
    verdict: str  # holds | partly | does not hold | not enough evidence | no data (suite.render.claims)
    summary: str  # one sentence: where >10x holds and where it does not
    headline: str  # the paper's own >10x cells, reproduced or not
    has_sru: bool


def cell_label(layers: int, seq_len: int) -> str:
    return f"{layers} layer{'s' if layers > 1 else ''} T={seq_len}"


def claim_verdict(table: pd.DataFrame) -> tuple[str, str]:
    """Verdict on ">10x faster than LSTM" from a table with columns layers, seq_len, speedup and its
    p20-p80 range speedup_lo, speedup_hi (NaN where not measured): each config judged by the rule
    of suite.render.claims, then holds, partly, does not hold, not enough evidence, or no data."""
    measured = table[table["speedup"].notna()]
    missing = table[table["speedup"].isna()]
    if measured.empty:
        return claims.NO_DATA, "None of the Fig. 2 configs was measured for both IndRNN and LSTM."
    judged = [claims.judge_spread(r.speedup_lo, r.speedup_hi, CLAIM_FACTOR) for r in measured.itertuples()]
    parts = []
    for outcome in (claims.HOLDS, claims.FAILS, claims.UNSURE):
        cells = [
            f"{cell_label(r.layers, r.seq_len)} ({_with_spread(r.speedup, r.speedup_lo, r.speedup_hi)})"
            for r, j in zip(measured.itertuples(), judged, strict=True)
            if j.verdict == outcome
        ]
        if cells:
            settle = f", where {claims.QUIETER} would settle it" if outcome == claims.UNSURE else ""
            parts.append(f"{outcome} at {', '.join(cells)}{settle}")
    text = f">{CLAIM_FACTOR:g}x " + "; ".join(parts) + "."
    if not missing.empty:
        text += " No data: " + ", ".join(cell_label(r.layers, r.seq_len) for r in missing.itertuples()) + "."
    return claims.where_it_holds(j.verdict for j in judged), text


def _choose_fig2_config(ok: pd.DataFrame, indrnn: str, timing: str | None) -> dict:
    """The (batch, dtype, timing, input size) with the most Fig. 2 cells measured, preferring the
    paper's setting."""
    ours = ok[(ok["provider"] == indrnn) & ok["depth"].isin(FIG2_LAYERS)]
    lstm = ok[(ok["provider"] == "lstm") & (ok["depth"] == 1)]
    setting = ["batch", "dtype", "timing", "input_size"]
    best = None
    for key, group in ours.groupby(setting, sort=True):
        matched = lstm.merge(group, on=["seq_len", *setting])
        preferred = (key[0] != FIG2_BATCH, key[1] != "float32", key[2] != timing, key[3] != FIG2_INPUT_SIZE)
        rank = (-len(matched), *preferred, key[0], key[3])
        if best is None or rank < best[0]:
            best = (rank, key)
    return {} if best is None else {c: _plain(v) for c, v in zip(setting, best[1], strict=True)}


def _why_missing(rows: pd.DataFrame, providers: dict[str, int], seq_len: int, config: dict, in_file: set[str]) -> str:
    """The status and reason of the rows that would have filled a Fig. 2 cell, when not ok;
    `in_file`: the providers with rows anywhere in the file (measured, just not at this cell)."""
    notes = []
    for provider, depth in providers.items():
        match = rows[(rows["provider"] == provider) & (rows["depth"] == depth) & (rows["seq_len"] == seq_len)]
        for column, value in config.items():
            match = match[match[column] == value]
        bad = match[match["status"] != "ok"]
        if match.empty:
            where = "not at the Fig. 2 config" if provider in in_file else "not in file"
            notes.append(f"{provider} depth {depth}: {where}")
        elif len(bad) == len(match):
            row = bad.iloc[0]
            notes.append(
                f"{provider} depth {depth}: {row['status']}" + (f" ({row['reason']})" if row["reason"] else "")
            )
    return "; ".join(notes)


def fig2(res: Results, paper_path: str | os.PathLike = PAPER_FIG2, timing: str | None = None) -> Fig2:
    """Our Fig. 2 from the file's rows: at `timing` when given, else at the setting with the
    most cells (preferring the run's default timing)."""
    paper, _ = read_paper_fig2(paper_path)
    seq_lens = sorted(int(t) for t in paper["seq_len"].unique())
    rows = res.rows[
        (res.rows["mode"] == "train") & (res.rows["hidden"] == FIG2_HIDDEN) & res.rows["seq_len"].isin(seq_lens)
    ]
    if timing is not None:
        rows = rows[rows["timing"] == timing]
    ok = rows[rows["status"] == "ok"]
    config = _choose_fig2_config(ok, res.indrnn, res.meta.get("timing")) if res.indrnn else {}

    def ms(provider: str | None, depth: int, seq_len: int) -> pd.Series:
        match = ok[(ok["provider"] == provider) & (ok["depth"] == depth) & (ok["seq_len"] == seq_len)]
        for column, value in config.items():
            match = match[match[column] == value]
        empty = pd.Series({m: float("nan") for m in ("p20_ms", "p50_ms", "p80_ms")})
        return match.iloc[0][["p20_ms", "p50_ms", "p80_ms"]].astype(float) if len(match) else empty

    def paper_value(model: str, layers: int, seq_len: int, column: str) -> float:
        hit = paper[(paper["model"] == model) & (paper["layers"] == layers) & (paper["seq_len"] == seq_len)]
        return float(hit[column].iloc[0]) if len(hit) else float("nan")

    has_sru = bool(len(ok[ok["provider"] == "sru"]))
    records = []
    for layers in FIG2_LAYERS:
        for t in seq_lens:
            ind, lstm, sru = ms(res.indrnn, layers, t), ms("lstm", 1, t), ms("sru", 1, t)
            rec = {"layers": layers, "seq_len": t}
            rec.update({f"indrnn_{k}": v for k, v in ind.items()})
            rec.update({f"lstm_{k}": v for k, v in lstm.items()})
            rec.update({f"sru_{k}": v for k, v in sru.items()})
            rec["paper_indrnn_ms"] = paper_value("indrnn", layers, t, "ms")
            rec["paper_lstm_ms"] = paper_value("lstm", 1, t, "ms")
            rec["paper_sru_ms"] = paper_value("sru", 1, t, "ms")
            rec["paper_ratio"] = paper_value("indrnn", layers, t, "ratio_vs_lstm")
            needed = {res.indrnn or res.lineup.preferred_indrnn(): layers, "lstm": 1}
            rec["note"] = (
                ""
                if pd.notna(ind["p50_ms"]) and pd.notna(lstm["p50_ms"])
                else _why_missing(rows, needed, t, config, set(res.rows["provider"]))
            )
            records.append(rec)
    table = _add_ratio(pd.DataFrame(records), "lstm_", "indrnn_")
    table = _add_ratio(table, "sru_", "indrnn_", prefix="vs_sru")
    verdict, summary = claim_verdict(table)
    headline = _headline(table)
    return Fig2(table, config, verdict, summary, headline, has_sru)


def _with_spread(ratio: float, lo: float, hi: float) -> str:
    return f"{fmt_x(ratio)}, p20-p80 {lo:.2f}-{hi:.2f}"


def _headline(table: pd.DataFrame) -> str:
    """The cells where the paper itself reports >10x: what the rule says of ours there."""
    claimed = table[table["paper_ratio"] > CLAIM_FACTOR]
    parts = []
    for r in claimed.itertuples():
        label = f"{cell_label(r.layers, r.seq_len)} (paper {r.paper_ratio:g}x)"
        if pd.isna(r.speedup):
            parts.append(f"{label}: no data")
        else:
            judged = claims.judge_spread(r.speedup_lo, r.speedup_hi, CLAIM_FACTOR)
            parts.append(f"{label}: ours {_with_spread(r.speedup, r.speedup_lo, r.speedup_hi)}, {judged.verdict}")
    return "; ".join(parts)


def overall_speedups(pairs: pd.DataFrame) -> pd.DataFrame:
    """Per (baseline, mode): the geometric mean of the speedups over every matched config, their
    smallest and largest, and how many configs there are."""
    columns = ["baseline", "mode", "geomean", "min", "max", "configs"]
    if pairs.empty:
        return pd.DataFrame(columns=columns)
    grouped = pairs.groupby(["baseline", "mode"], sort=False)["speedup"]
    out = grouped.agg(
        geomean=lambda s: math.exp(s.map(math.log).mean()), min="min", max="max", configs="count"
    ).reset_index()
    return out[columns]


# Noise: a number is distrusted when its own samples spread widely, or when the machine was
# not what it is when idle. One run cannot know the idle machine, so the rules compare the run
# with itself (copy bandwidth at its start and end) and the load with the cores there are.
SPREAD_LIMIT = 1.25  # p80 / p20 of one config above this: its median is not a stable figure
COPY_DRIFT_LIMIT = 1.5  # copy bandwidth at start and end differing by more: the machine changed meanwhile


@dataclass(frozen=True)
class Noise:
    """What says the numbers of a run are noisy: configs whose p20-p80 spread is wide (ok rows,
    with their `spread` = p80 / p20) and why the machine looked busy (empty when it did not)."""

    wide: pd.DataFrame
    busy: tuple[str, ...]


def noise(res: Results) -> Noise:
    ok = res.ok
    spread = ok["p80_ms"] / ok["p20_ms"]
    wide = ok.assign(spread=spread)[spread > SPREAD_LIMIT].sort_values("spread", ascending=False)
    machine = res.meta.get("machine") or {}
    busy = []
    cores = machine.get("cores")
    for when in ("start", "end"):
        load = machine.get(f"load_{when}")
        if cores and load is not None and load > cores:
            busy.append(f"the 1-minute load average at the {when} of the run was {load:.1f} on {cores} cores")
    start_bw, end_bw = res.meta.get("copy_gbytes_per_s"), machine.get("copy_gbytes_per_s_end")
    if start_bw and end_bw and max(start_bw, end_bw) / min(start_bw, end_bw) > COPY_DRIFT_LIMIT:
        busy.append(
            f"the copy bandwidth was {start_bw:.1f} GB/s at the start and {end_bw:.1f} GB/s at the end "
            f"(more than {COPY_DRIFT_LIMIT:g}x apart)"
        )
    return Noise(wide.reset_index(drop=True), tuple(busy))


# Time against work along T. Every model here does work linear in T (the recurrences) or at most
# quadratic in it (attention), so a median that grows by more than the square of the step ratio
# between two consecutive measured T is not the model's work: on a CPU, denormal floats in a long
# backward chain do it (an LSTM at 63x the time for 4x the steps); so can memory running out.
WORK_GROWTH_POWER = 2.0


def growth_along_t(res: Results) -> pd.DataFrame:
    """Every pair of consecutive measured T of one provider at one config (ok rows, everything but
    T fixed): the medians, time_ratio = later / earlier, steps_ratio = T ratio, and `outgrown` where
    time_ratio exceeds steps_ratio ** WORK_GROWTH_POWER."""
    columns = ["provider", "role", *CONFIG, "seq_len_from", "p50_ms_from", "p50_ms", "time_ratio", "steps_ratio"]
    others = [c for c in CONFIG if c != "seq_len"]
    records = []
    for _, series in res.ok.groupby(["provider", *others], sort=True):
        series = series.sort_values("seq_len")
        for (_, before), (_, after) in zip(series.iterrows(), series.iloc[1:].iterrows(), strict=False):
            records.append(
                {
                    **{c: after[c] for c in ("provider", "role", *CONFIG)},
                    "seq_len_from": before["seq_len"],
                    "p50_ms_from": before["p50_ms"],
                    "p50_ms": after["p50_ms"],
                    "time_ratio": after["p50_ms"] / before["p50_ms"],
                    "steps_ratio": after["seq_len"] / before["seq_len"],
                }
            )
    growth = pd.DataFrame(records, columns=columns)
    return growth.assign(outgrown=growth["time_ratio"] > growth["steps_ratio"] ** WORK_GROWTH_POWER)


SLICE_AXES = AXES  # the axes a summary slices along (the report's and the plots' tables and figures)


@dataclass(frozen=True)
class Summary:
    """Everything the report, the plots and validate's summary say about one results file,
    computed once: they only render it."""

    res: Results
    pairs: pd.DataFrame  # speedups over the baselines
    variant_pairs: pd.DataFrame  # speedups over the other implementations of the IndRNN
    slices: dict[str, list[Slice]]  # axis -> the slices of `pairs` that sweep it
    crossovers: pd.DataFrame
    fig2: Fig2
    fig2_graph: Fig2 | None  # the same at CUDA-graph timing, when the file has such rows beside eager ones
    overall: pd.DataFrame  # geometric-mean speedup per baseline and mode (overall_speedups)
    noise: Noise
    growth: pd.DataFrame  # consecutive T of each provider and config, time against steps (growth_along_t)


def summarise(res: Results) -> Summary:
    """The summary of a results file, read by `load`."""
    pairs = speedups(res)
    eager = fig2(res)
    graph = None
    if eager.config.get("timing") != "cuda_graph" and (res.ok["timing"] == "cuda_graph").any():
        graph = fig2(res, timing="cuda_graph")
    return Summary(
        res=res,
        pairs=pairs,
        variant_pairs=variant_speedups(res),
        slices={axis: sweep_slices(pairs, axis) for axis in SLICE_AXES},
        crossovers=crossovers(pairs),
        fig2=eager,
        fig2_graph=graph if graph is not None and graph.verdict != "no data" else None,
        overall=overall_speedups(pairs),
        noise=noise(res),
        growth=growth_along_t(res),
    )
