"""`report`: the markdown answer to "how much faster is IndRNN, and where?" for one results file.

Sections: the environment that produced the numbers, the Fig. 2 claim of the Deep IndRNN paper
with a verdict computed from the data, speedup tables along every swept axis, the crossover in
sequence length, memory and parameters, recurrence bandwidth, where the chunked scan beats the
sequential walk, and every config that did not run with its reason. All numbers come from the
results file (see `suite.render.analysis`).
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import pandas as pd

from suite.core.machine import summary as machine_summary
from suite.core.machine import warnings as machine_warnings
from suite.core.paper import CLAIM_FACTOR, FIG2_HIDDEN, FIG2_INPUT_SIZE, read_paper_fig2
from suite.core.paths import profile_path
from suite.core.rowfile import complete_text
from suite.core.schema import Lineup, SweepConfig, key_of, missing_configs
from suite.render import analysis, claims
from suite.render.analysis import AXIS_LABELS, Results, Summary
from suite.render.markdown import (
    fmt_ms,
    fmt_num,
    fmt_speedup,
    fmt_x,
    is_missing,
    markdown_table,
    provenance_fields,
    write_beside,
)
from suite.render.method import method_section

AXIS_TITLES = {
    "seq_len": "sequence length T",
    "depth": "depth (layers)",
    "batch": "batch size B",
    "hidden": "hidden size H",
    "dtype": "dtype",
    "mode": "mode",
}


def _environment(s: Summary) -> list[str]:
    res = s.res
    meta = res.meta
    counts = res.rows["status"].value_counts()
    status_line = ", ".join(f"{counts.get(s, 0)} {s}" for s in ("ok", "oom", "failed", "skipped"))
    lines = [f"Results: `{res.path.name}` ({len(res.rows)} rows: {status_line})."]
    if not meta:
        lines += ["", f"No metadata file beside the results; device taken from the rows: {res.device}."]
        return lines
    copy_bw = meta.get("copy_gbytes_per_s")
    fields = [
        *provenance_fields(meta),
        ("timing method", meta.get("timing", "")),
        ("copy bandwidth", _copy_bandwidth(copy_bw, (meta.get("machine") or {}).get("copy_gbytes_per_s_end"))),
        ("wall time", "-" if is_missing(meta.get("wall_s")) else f"{meta['wall_s']:.0f} s (the sweep, all sessions)"),
        ("GPU clocks, CPU governor", machine_summary(meta.get("machine") or {})),
        ("run id", meta.get("run_id", "")),
    ]
    warnings = [
        f"**Warning: {w}.** Times from a GPU held below its clocks are slower than the code."
        for w in machine_warnings(meta.get("machine") or {})
    ]
    return (
        lines
        + ["", markdown_table([[k, v] for k, v in fields], ["", ""])]
        + [line for w in warnings for line in ("", w)]
    )


def _copy_bandwidth(start, end) -> str:
    if is_missing(start):
        return "-"
    at_end = "" if is_missing(end) else f", {end:.1f} GB/s at its end"
    return f"{start:.1f} GB/s (copy measured in this run{at_end})"


def _load(machine: dict) -> str:
    """The recorded 1-minute load averages, e.g. '0.5 / 1.9 (start / end) on 2 cores'."""
    loads = " / ".join(fmt_num(machine.get(k), 2) for k in ("load_start", "load_end"))
    return f"{loads} (start / end) on {machine.get('cores', '?')} cores"


def _which_indrnn(res: Results) -> str:
    if res.indrnn == "indrnn_triton":
        return "The IndRNN in this report is `indrnn_triton` (the Triton recurrence kernel)."
    if res.indrnn == "indrnn_torch":
        return (
            "The IndRNN in this report is `indrnn_torch` (eager torch loops with a hand-written backward): "
            "the file has no ok rows for `indrnn_triton`."
        )
    return "The file has no ok rows for `indrnn_triton` or `indrnn_torch`: no speedup can be computed."


def _indrnn_schedule(res: Results) -> str:
    """How often the IndRNN of the report ran the scan, where its rows recorded a schedule."""
    ran = res.ok.loc[(res.ok["provider"] == res.indrnn) & (res.ok["schedule"] != ""), "schedule"]
    if ran.empty:
        return ""
    scans, rows = int((ran == "scan").sum()), len(ran)
    if scans in (0, rows):
        which = f"the {'chunked scan' if scans else 'sequential walk'} in all {rows}"
    else:
        which = f"the chunked scan in {scans} of {rows}, the sequential walk in the rest"
    return f" Its rows record the schedule that ran: {which}."


def fig2_table(fig: analysis.Fig2) -> str:
    """Our Fig. 2 cells beside the paper's, as a markdown table (the report's and validate's)."""
    headers = ["IndRNN layers", "T", "IndRNN ms", "LSTM ms"]
    if fig.has_sru:
        headers += ["SRU ms"]
    headers += ["ours: vs LSTM (p20-p80)", "paper: vs LSTM (P100)", "paper ms IndRNN / LSTM"]
    if fig.has_sru:
        headers += ["ours: vs SRU"]
    headers += ["note"]
    rows = []
    for r in fig.table.itertuples():
        row = [r.layers, r.seq_len, fmt_ms(r.indrnn_p50_ms), fmt_ms(r.lstm_p50_ms)]
        if fig.has_sru:
            row.append(fmt_ms(r.sru_p50_ms))
        row += [
            fmt_speedup(r.speedup, r.speedup_lo, r.speedup_hi),
            fmt_x(r.paper_ratio),
            f"{fmt_ms(r.paper_indrnn_ms)} / {fmt_ms(r.paper_lstm_ms)}",
        ]
        if fig.has_sru:
            row.append(fmt_speedup(r.vs_sru, r.vs_sru_lo, r.vs_sru_hi))
        row.append(r.note)
        rows.append(row)
    return markdown_table(rows, headers)


def _fig2_section(s: Summary) -> list[str]:
    res, fig = s.res, s.fig2
    _, source = read_paper_fig2()
    lines = [
        f'## Claim: Fig. 2 of Deep IndRNN, ">{CLAIM_FACTOR:g}x faster than LSTM"',
        "",
        "Paper: " + " ".join(source),
        "",
    ]
    if fig.config:
        setting = ", ".join(f"{AXIS_LABELS[k]}={v}" for k, v in fig.config.items())
        lines.append(
            f"Ours: training step (fwd+bwd), H={FIG2_HIDDEN}, {setting}; "
            f"`{res.indrnn}` with 1 and 2 layers against a 1-layer `lstm`"
            + (" and a 1-layer `sru`" if fig.has_sru else "")
            + ". Absolute times come from different machines: compare the ratios."
        )
        lines.append("")
    lines += [fig2_table(fig), "", _fig2_verdict("Verdict", fig)]
    if fig.headline:
        lines += ["", f"The paper's own >{CLAIM_FACTOR:g}x point: {fig.headline}."]
    lines += ["", claims.statement(CLAIM_FACTOR, claims.SPREAD_EVIDENCE, FIG2_COMBINED)]
    lines += _fig2_context(s, fig)
    graph = s.fig2_graph
    if graph is not None:
        lines += [
            "",
            "### The same, captured in a CUDA graph",
            "",
            "Each training step replayed from a CUDA graph (both models alike), so kernel-launch overhead, "
            "which dominates small steps, is hidden: the ratio of the kernels' work alone.",
            "",
            fig2_table(graph),
            "",
            _fig2_verdict("Verdict (CUDA graph)", graph),
        ]
    return lines


FIG2_COMBINED = (
    "Over the Fig. 2 configs the verdict holds or does not hold when every config says so, and is partly "
    "when some hold and some do not."
)


def _fig2_verdict(label: str, fig: analysis.Fig2) -> str:
    """The verdict line, naming the baseline it was computed against."""
    against = "" if fig.verdict == claims.NO_DATA else " " + claims.scope(["lstm"])
    return f"**{label}: {fig.verdict}{against}.** {fig.summary}"


def _fig2_context(s: Summary, fig: analysis.Fig2) -> list[str]:
    """What the verdict does not say by itself: where our setting is not the paper's, and
    whether its cells were measured in noise."""
    notes = []
    if fig.verdict == "no data":
        return notes
    if s.res.meta.get("device_kind") == "cpu":
        notes.append(
            "This run is on a CPU; the paper's claim is about GPUs (one P100), where the balance of "
            "launch overhead, GEMMs and the sequential recurrence differs: this verdict does not test it."
        )
    input_size = fig.config.get("input_size")
    if input_size is not None and input_size != FIG2_INPUT_SIZE:
        notes.append(
            f"Our input size is I={input_size}; the paper's adding problem has I={FIG2_INPUT_SIZE} "
            "(a value and a marker per step), so every model's input projection does more work here than there."
        )
    wide = [
        f"{analysis.cell_label(r.layers, r.seq_len)} ({who})"
        for r in fig.table.itertuples()
        for who in ("indrnn", "lstm")
        if getattr(r, f"{who}_p80_ms") / getattr(r, f"{who}_p20_ms") > analysis.SPREAD_LIMIT
    ]
    if wide or s.noise.busy:
        why = []
        if s.noise.busy:
            why.append("the machine was busy (see Noise)")
        if wide:
            why.append(f"p80/p20 above {analysis.SPREAD_LIMIT:g} at " + ", ".join(wide))
        notes.append("Caution: " + "; ".join(why) + ": the ratios there rest on noisy times.")
    return [line for note in notes for line in ("", note)]


def _work_growth_section(s: Summary) -> list[str]:
    """Beside the Fig. 2 verdict: any provider whose time grew along T faster than its work can,
    whatever the cause, and whether the Fig. 2 comparison rests on such times."""
    growth = s.growth
    if growth.empty:
        return []
    lines = [
        "## Time against work along T",
        "",
        "Every model here does work linear in T (the recurrences) or at most quadratic in it (attention). A "
        "provider is flagged where, between two consecutive measured T with everything else fixed, its median "
        f"time grew by more than the step ratio to the power {analysis.WORK_GROWTH_POWER:g} (more than 4x for twice "
        "the steps, 16x for four times): that is not the model's work. On a CPU, denormal floats in a long "
        "backward chain do it; so can memory running out or a machine busy for part of the run.",
        "",
    ]
    outgrown = growth[growth["outgrown"]]
    if outgrown.empty:
        return lines + [f"No provider is flagged ({len(growth)} pairs of consecutive T checked)."]
    rows = [
        [r.provider, r.mode, r.phase, r.depth, r.batch, r.hidden, r.dtype]
        + [f"{r.seq_len_from} -> {r.seq_len}", f"{fmt_ms(r.p50_ms_from)} -> {fmt_ms(r.p50_ms)}"]
        + [fmt_x(r.time_ratio), fmt_x(r.steps_ratio)]
        for r in outgrown.itertuples()
    ]
    headers = ["provider", "mode", "phase", "depth", "B", "H", "dtype", "T", "p50 ms", "time", "steps"]
    lines += [f"**Flagged: {len(rows)} of {len(growth)} pairs.**", "", markdown_table(rows, headers)]
    fig2_cells = _fig2_growth(s, outgrown)
    if fig2_cells:
        lines += [
            "",
            f"**The Fig. 2 comparison rests on such times** ({', '.join(fig2_cells)}): its ratios, and the verdict "
            "above, measure more than the models' work there.",
        ]
    return lines


def _fig2_growth(s: Summary, outgrown: pd.DataFrame) -> list[str]:
    """The flagged pairs that are cells of the Fig. 2 table (its providers, depths and setting)."""
    fig = s.fig2
    if not fig.config:
        return []
    cells = set(fig.table["seq_len"])
    depths = {s.res.indrnn: set(fig.table["layers"]), "lstm": {1}, "sru": {1}}
    hits = outgrown[(outgrown["mode"] == "train") & (outgrown["hidden"] == FIG2_HIDDEN)]
    for column, value in fig.config.items():
        hits = hits[hits[column] == value]
    return [
        f"`{r.provider}` depth {r.depth} T={r.seq_len_from} -> {r.seq_len}"
        for r in hits.itertuples()
        if r.depth in depths.get(r.provider, set()) and (r.seq_len in cells or r.seq_len_from in cells)
    ]


def _noise_section(s: Summary) -> list[str]:
    """Which numbers to distrust: configs whose samples spread widely, and a busy machine."""
    noise, machine = s.noise, s.res.meta.get("machine") or {}
    lines = [
        "## Noise",
        "",
        f"A config is flagged when its p80 / p20 exceeds {analysis.SPREAD_LIMIT:g}; the machine counts as busy "
        "when the 1-minute load average at the start or end of the run exceeded its cores, or the copy "
        f"bandwidth at the end of the run was more than {analysis.COPY_DRIFT_LIMIT:g}x off the one at the start.",
        "",
    ]
    if noise.busy:
        lines.append(
            "**The machine was busy during this run**: " + "; ".join(noise.busy) + ". Every time here may "
            "be slowed by other work, and ratios between providers measured at different moments with it."
        )
    elif "cores" not in machine:
        lines.append(
            "The metadata records no load average or end-of-run copy bandwidth (an older run): whether the "
            "machine was busy is not known."
        )
    else:
        lines.append(f"The machine was not busy by these rules (1-minute load {_load(machine)}).")
    if noise.wide.empty:
        return lines + ["", "No config's spread is wide."]
    rows = [
        [r.provider, *_config_cells(r), fmt_ms(r.p50_ms), f"{fmt_ms(r.p20_ms)}-{fmt_ms(r.p80_ms)}", f"{r.spread:.2f}"]
        for r in noise.wide.itertuples()
    ]
    return lines + [
        "",
        f"Distrust these {len(rows)} config(s) and every speedup that uses them (widest first):",
        "",
        markdown_table(rows, ["provider", *CONFIG_HEADERS, "p50 ms", "p20-p80 ms", "p80/p20"]),
    ]


def _axis_sections(s: Summary) -> list[str]:
    res, pairs = s.res, s.pairs
    lines = [
        f"## Speedup of `{res.indrnn}` over each baseline" if res.indrnn else "## Speedups",
        "",
        "Speedup = baseline median / IndRNN median, same run, same config and depth; in brackets "
        "the spread from baseline p20 / IndRNN p80 to baseline p80 / IndRNN p20. Each table holds "
        "every other config value fixed at the slice that sweeps the axis furthest.",
    ]
    if pairs.empty:
        return lines + ["", "No config was measured ok for both the IndRNN and a baseline."]
    drawn = False
    for axis, slices in s.slices.items():
        for sl in slices:
            drawn = True
            baselines = res.lineup.order(set(sl.pairs["baseline"]))
            rows = []
            for value, group in sl.pairs.groupby(axis, sort=False):
                by_base = {r.baseline: r for r in group.itertuples()}
                cells = [
                    fmt_speedup(*(getattr(by_base[b], c) for c in ("speedup", "speedup_lo", "speedup_hi")))
                    if b in by_base
                    else "-"
                    for b in baselines
                ]
                rows.append([value, fmt_ms(group["indrnn_p50_ms"].iloc[0]), *cells])
            lines += [
                "",
                f"### Along {AXIS_TITLES[axis]}" + ("" if axis == "mode" else f" ({sl.fixed['mode']})"),
                "",
                f"At {analysis.describe(sl.fixed)}.",
                "",
                markdown_table(rows, [AXIS_LABELS[axis], "IndRNN p50 ms", *baselines]),
            ]
    if not drawn:
        lines += ["", "No axis takes more than one value among the matched configs: see the table of all speedups."]
    return lines


def _crossover_section(s: Summary) -> list[str]:
    pairs = s.pairs
    lines = [
        "## Crossover in sequence length",
        "",
        "For each baseline: the shortest T at which the IndRNN is faster (and the batch sizes where it "
        "is faster there), and any longer T at which the baseline is faster again.",
    ]
    table = s.crossovers
    if table.empty:
        return lines + ["", "No matched configs."]
    shortest = pairs.groupby(["baseline", "mode"])["seq_len"].min()
    rows = []
    for r in table.itertuples():
        if r.first_win_T is None or pd.isna(r.first_win_T):
            first, batches = "never", "-"
        else:
            first = str(int(r.first_win_T))
            if r.first_win_T == shortest[(r.baseline, r.mode)]:
                first += " (shortest measured)"
            batches = ", ".join(map(str, r.first_win_batches))
        overtakes = ", ".join(f"T={t} (B={b})" for t, b in r.overtakes) or "-"
        rows.append([r.baseline, r.mode, first, batches, f"{r.wins} / {r.configs}", overtakes])
    lines += [
        "",
        markdown_table(
            rows, ["baseline", "mode", "IndRNN faster from T", "at B", "configs won", "baseline faster again at"]
        ),
    ]
    transformer = table[table["baseline"] == "transformer"]
    for r in transformer.itertuples():
        if r.overtakes:
            where = ", ".join(f"T={t} (B={b})" for t, b in r.overtakes)
            lines += ["", f"The transformer overtakes the IndRNN as T grows ({r.mode}): at {where}."]
        else:
            lines += ["", f"The transformer does not overtake the IndRNN as T grows ({r.mode}) in this run."]
    return lines


def _memory_section(s: Summary) -> list[str]:
    res = s.res
    lines = ["## Memory and parameters", ""]
    slices = s.slices["seq_len"]
    if not slices:
        return lines + ["No sequence-length sweep; peak memory and parameters of every config are in the last table."]
    for sl in slices:
        at = analysis.rows_at(res, sl.fixed)
        providers = [res.indrnn, *res.lineup.order(set(at["provider"]) - {res.indrnn})]
        # Peak memory is measured on GPUs only; without it the table keeps just the parameters.
        seq_lens = sorted(at["seq_len"].unique()) if at["peak_mem_mb"].notna().any() else []
        rows = []
        for t in seq_lens:
            cells = []
            for p in providers:
                hit = at[(at["provider"] == p) & (at["seq_len"] == t)]
                cells.append(fmt_num(hit["peak_mem_mb"].iloc[0], 4) if len(hit) else "-")
            rows.append([t, *cells])
        params = []
        for p in providers:
            values = sorted(v for v in at.loc[at["provider"] == p, "params"].dropna().unique())
            params.append(" / ".join(fmt_num(v, 6) for v in values) or "-")
        rows.append(["params", *params])
        what = (
            "Peak memory (MiB) by T and parameters" if seq_lens else "Parameters (peak memory is measured on GPUs only)"
        )
        lines += [
            f"{what}, at {analysis.describe(sl.fixed)}:",
            "",
            markdown_table(rows, ["T" if seq_lens else "", *providers]),
            "",
        ]
    return lines


def _recurrence_section(s: Summary) -> list[str]:
    res = s.res
    rec = res.ok[res.ok["mode"] == "recurrence"]
    if rec.empty:
        return []
    copy_bw = res.meta.get("copy_gbytes_per_s")
    lines = [
        "## Recurrence kernel alone",
        "",
        "Bytes moved / median time, against the device's copy bandwidth measured in the same run"
        + ("" if is_missing(copy_bw) else f" ({copy_bw:.1f} GB/s)")
        + ": the recurrence must read x once and write h once, so the copy bandwidth is its floor.",
        "",
    ]
    rec = rec.sort_values(["provider", "phase", "dtype", "hidden", "batch", "seq_len"])
    rows = [
        [
            r.provider,
            r.phase,
            r.seq_len,
            r.batch,
            r.hidden,
            r.dtype,
            fmt_ms(r.p50_ms),
            fmt_num(r.gbytes_per_s),
            fmt_num(r.pct_copy_bw),
            fmt_num(r.ns_per_step),
        ]
        for r in rec.itertuples()
    ]
    headers = ["provider", "phase", "T", "B", "H", "dtype", "p50 ms", "GB/s", "% copy BW", "ns/step"]
    return lines + [markdown_table(rows, headers)]


def _scan_section(s: Summary) -> list[str]:
    """The chunked scan against the sequential walk, where a run has both: where the scan wins,
    whether auto took the faster one, and the targets the scan was built for."""
    scan = s.scan
    if scan.pairs.empty:
        return []
    lines = [
        "## Where the chunked scan wins",
        "",
        "The same IndRNN on both schedules: speedup of the chunked scan over the sequential walk = the walk's "
        "median / the scan's median, same run, same config and implementation (p20-p80 spread in brackets; a row "
        "pinned to its schedule stands for it before one where auto chose it). Both passed the correctness gate "
        "against the torch loop before they were timed. Rows: the B*H columns the walk runs in parallel (B x H); "
        "columns: the sequence length T.",
        "",
    ]
    rule = scan.rule
    if rule:
        lines.append(
            f'On this device `schedule="auto"` takes the scan from T = {rule["min_steps"]} on over at most '
            f"{rule['max_columns']} columns: those cells are marked *."
        )
    else:
        lines.append(
            'The run\'s metadata does not record where `schedule="auto"` takes the scan (an older run): '
            "its choice is not marked."
        )
    for (_, *group), pairs in scan.pairs.groupby(["implementation", *analysis.SCHEDULE_GROUP], sort=False):
        fixed = dict(zip(analysis.SCHEDULE_GROUP, group, strict=True))
        lines += ["", f"### {_schedule_title(fixed, pairs)}", "", _scan_table(pairs)]
        lines += _auto_and_gate(pairs)
    for outcome in scan.targets:
        lines += ["", _target_line(outcome, s.res.meta)]
    return lines


def _schedule_title(fixed: dict, pairs: pd.DataFrame) -> str:
    compiler = analysis.notes_of(pairs["implementation"].iloc[0]).get("compiler")
    parts = [f"{fixed['backend']} backend" + (f", compiled ({compiler})" if compiler else "")]
    parts.append(f"{fixed['mode']} ({fixed['phase']})")
    parts += [f"depth {fixed['depth']}", fixed["dtype"], f"timed by {fixed['timing']}"]
    return ", ".join(parts)


def _scan_table(pairs: pd.DataFrame) -> str:
    seq_lens = sorted(pairs["seq_len"].unique())
    rows = []
    for (columns, batch, hidden), line in pairs.groupby(["columns", "batch", "hidden"], sort=True):
        by_t = {r.seq_len: r for r in line.itertuples()}
        cells = []
        for t in seq_lens:
            r = by_t.get(t)
            if r is None:
                cells.append("-")
                continue
            cells.append(fmt_speedup(r.speedup, r.speedup_lo, r.speedup_hi) + ("*" if r.auto_scan is True else ""))
        rows.append([f"{columns} ({batch} x {hidden})", *cells])
    return markdown_table(rows, ["B*H (B x H)", *(f"T={t}" for t in seq_lens)])


def _auto_and_gate(pairs: pd.DataFrame) -> list[str]:
    """Whether auto took the faster schedule, and how close the scan came to the torch loop."""
    lines = []
    judged = pairs[pairs["auto_scan"].notna()]
    if len(judged):
        wrong = judged[judged["auto_scan"].astype(bool) != (judged["speedup"] > 1)]
        text = f"Auto takes the faster schedule at {len(judged) - len(wrong)} of {len(judged)} configs"
        if len(wrong):
            text += "; not at " + ", ".join(
                f"T={r.seq_len}, {r.batch} x {r.hidden} ({'scan' if r.auto_scan else 'walk'}, "
                f"the scan {fmt_x(r.speedup)})"
                for r in wrong.itertuples()
            )
        lines += ["", text + "."]
    errors = pairs["scan_gate_err"].dropna()
    if len(errors):
        text = (
            f"In the gate the scan's largest relative error against the torch loop was {errors.max():.1e} "
            "(max |difference| / max |loop| over h and every gradient)"
        )
        flips = pairs.loc[pairs["scan_gate_flips"] > 0]
        if len(flips):
            text += (
                f"; at {len(flips)} config(s) the gradients of {int(flips['scan_gate_flips'].sum())} column(s) "
                "were left out, where a state within rounding of 0 took the other side of the ReLU"
            )
        lines += ["", text + "."]
    return lines


def _target_line(outcome: analysis.TargetOutcome, meta: dict) -> str:
    t, pair = outcome.target, outcome.pair
    where = f"T={t.seq_len}, B={t.batch}, H={t.hidden}, {t.mode} {t.phase}, {t.dtype}, {t.condition}"
    text = (
        f"**Target: the {t.backend} backend's scan at least {t.factor:g}x faster than its walk** ({where}): "
        f"**{'met' if outcome.met else 'missed'}**, "
        f"{fmt_speedup(pair['speedup'], pair['speedup_lo'], pair['speedup_hi'])} in this run"
    )
    if pd.notna(pair["scan_gate_err"]):
        text += f", the scan within {pair['scan_gate_err']:.1e} (max relative error) of the torch loop in the gate"
        if pair["scan_gate_flips"]:
            text += f" ({pair['scan_gate_flips']} column(s) left out for a ReLU flip)"
    if t.condition == "one thread" and meta.get("threads") != 1:
        text += f" (this run had {meta.get('threads')} threads)"
    return text + "."


def _not_measured_section(s: Summary) -> list[str]:
    res = s.res
    bad = res.rows[res.rows["status"] != "ok"]
    lines = ["## Configs not measured", ""]
    if bad.empty:
        return lines + ["Every config in the file ran and passed the correctness gate."]
    bad = bad.sort_values(["status", "provider", "mode", "seq_len", "depth", "batch", "hidden"])
    rows = [
        [r.status, r.provider, r.mode, r.phase, r.seq_len, r.depth, r.batch, r.hidden, r.dtype, r.reason or "-"]
        for r in bad.itertuples()
    ]
    return lines + [
        markdown_table(rows, ["status", "provider", "mode", "phase", "T", "depth", "B", "H", "dtype", "reason"])
    ]


def _unmeasured_plan_section(s: Summary) -> list[str]:
    """Configs of the plan in the metadata with no row in the file: a shard of a merged file that
    did not finish, or a run that was interrupted."""
    meta = s.res.meta
    try:
        plan = [SweepConfig(**c) for c in meta.get("configs", [])]
    except TypeError:  # a grid recorded by another version of the schema
        return []
    missing = missing_configs(plan, {key_of(r) for r in s.res.rows.to_dict("records")}, meta.get("timing", ""))
    if not missing:
        return []
    lines = [
        "## Configs of the plan with no results",
        "",
        f"{len(missing)} of the {len(plan)} configs of the plan have no row in this file "
        "(a shard that did not finish, or an interrupted run):",
        "",
    ]
    rows = [[c.provider, c.mode, c.seq_len, c.depth, c.batch, c.hidden, c.dtype, c.timing] for c in missing]
    return lines + [markdown_table(rows, ["provider", "mode", "T", "depth", "B", "H", "dtype", "timing"])]


CONFIG_HEADERS = ["mode", "phase", "T", "depth", "B", "H", "dtype"]


def _config_cells(r) -> list:
    """The config of a row or speedup pair, in the order of CONFIG_HEADERS."""
    return [r.mode, r.phase, r.seq_len, r.depth, r.batch, r.hidden, r.dtype]


def _all_measurements_section(s: Summary) -> list[str]:
    res, pairs = s.res, s.pairs
    lines = ["## All measurements", ""]
    ok = res.ok.sort_values(["provider", "mode", "phase", "dtype", "depth", "hidden", "batch", "seq_len"])
    rows = [
        [
            r.provider,
            *_config_cells(r),
            fmt_ms(r.p50_ms),
            f"{fmt_ms(r.p20_ms)}-{fmt_ms(r.p80_ms)}",
            fmt_num(r.peak_mem_mb, 4),
            fmt_num(r.params, 6),
        ]
        for r in ok.itertuples()
    ]
    headers = ["provider", *CONFIG_HEADERS, "p50 ms", "p20-p80 ms", "peak MiB", "params"]
    lines.append(markdown_table(rows, headers) if rows else "No ok rows.")
    if not pairs.empty:
        speed_rows = [
            [r.baseline, *_config_cells(r), fmt_speedup(r.speedup, r.speedup_lo, r.speedup_hi)]
            for r in pairs.itertuples()
        ]
        lines += [
            "",
            "Every speedup:",
            "",
            markdown_table(speed_rows, ["baseline", *CONFIG_HEADERS, "speedup (p20-p80)"]),
        ]
    return lines


def _overall_line(s: Summary) -> str:
    """The one-line answer: geometric-mean speedup over each baseline, per mode, with its range."""
    if s.overall.empty:
        return "No config was measured ok for both the IndRNN and a baseline."
    per_mode = []
    for mode, group in s.overall.groupby("mode", sort=True):
        cells = ", ".join(
            f"{r.baseline} {fmt_x(r.geomean)} ({fmt_x(r.min)}-{fmt_x(r.max)}, {r.configs} configs)"
            for r in group.itertuples()
        )
        per_mode.append(f"{mode}: {cells}")
    return f"**`{s.res.indrnn}` speedup, geometric mean (min-max) over configs**: " + "; ".join(per_mode) + "."


def _header(s: Summary) -> list[str]:
    return [
        f"# IndRNN benchmark report: {s.res.device}",
        "",
        _overall_line(s),
        "",
        *_environment(s),
        "",
        _which_indrnn(s.res) + _indrnn_schedule(s.res),
    ]


def _variants_section(s: Summary) -> list[str]:
    """The IndRNN against its other implementations (eager loop, torch.compile, ...)."""
    if s.variant_pairs.empty:
        return []
    lines = [
        f"## `{s.res.indrnn}` against other implementations of the same IndRNN",
        "",
        "Same model, same config, another implementation: how much faster the IndRNN of this report is "
        "(other's median / its median, p20-p80 spread in brackets). Compile seconds: the first call of "
        "an implementation that compiles, not counted in its median.",
        "",
    ]
    rows = [
        [
            r.variant,
            *_config_cells(r),
            fmt_ms(r.indrnn_p50_ms),
            fmt_ms(r.base_p50_ms),
            fmt_num(r.base_compile_s),
            fmt_speedup(r.speedup, r.speedup_lo, r.speedup_hi),
        ]
        for r in s.variant_pairs.itertuples()
    ]
    headers = [
        "other",
        *CONFIG_HEADERS,
        f"{s.res.indrnn} p50 ms",
        "other p50 ms",
        "other compile s",
        "speedup (p20-p80)",
    ]
    return lines + [markdown_table(rows, headers)]


def _where_time_goes_section(s: Summary) -> list[str]:
    """The profiled breakdown of the Fig. 2 training steps (`run --profile`), where it was kept."""
    path = profile_path(s.res.path)
    if not path.is_file() or path.stat().st_size == 0:
        return []
    try:
        breakdown = pd.read_csv(io.StringIO(complete_text(path)))  # a row cut off by a crash is left out
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        return ["## Where the time goes", "", f"The profile `{path.name}` cannot be read: {e}"]
    ours = breakdown[(breakdown["provider"] == s.res.indrnn) | (breakdown["provider"] == "lstm")]
    if ours.empty:
        return []
    unit = "kernels" if s.res.meta.get("device_kind") == "cuda" else "ops"
    categories = list(dict.fromkeys(ours["category"]))
    steps = ours.groupby(["provider", "depth", "seq_len"], sort=False)
    rows = []
    for (provider, depth, seq_len), step in sorted(steps, key=lambda g: (g[0][0] != s.res.indrnn, g[0][1], g[0][2])):
        share = dict(zip(step["category"], step["share"], strict=True))
        rows.append(
            [provider, depth, seq_len, fmt_ms(step["ms"].sum())]
            + [f"{share.get(c, 0):.0%}" for c in categories]
            + [fmt_num(step["launches"].sum())]
        )
    return [
        "## Where the time goes",
        "",
        f"The training steps of Fig. 2 profiled after timing (`run --profile`, `{path.name}`): the share of each "
        "part of the step, "
        + ("by kernel time on the GPU" if unit == "kernels" else "by op self time on the CPU")
        + f", and the {unit} launched per step. The profiler adds its own overhead: the ms here are the "
        "profiled step's, the timed ones are above. `python run_bench.py profile` breaks one config down further.",
        "",
        markdown_table(rows, ["provider", "depth", "T", "profiled ms", *categories, f"{unit} / step"]),
    ]


def _packed_section(s: Summary) -> list[str]:
    """Variable-length batches: each provider's packed step against its padded train step of the
    same config, and how much of the padding's work that saves."""
    ok = s.res.ok
    packed = ok[ok["mode"] == "packed"]
    if packed.empty:
        return []
    config = ["provider", "seq_len", "depth", "batch", "hidden", "dtype", "input_size", "timing"]
    padded = ok[ok["mode"] == "train"][[*config, "p50_ms"]].rename(columns={"p50_ms": "padded_ms"})
    rows = []
    for r in packed.merge(padded, on=config, how="left").sort_values(config).itertuples():
        notes = analysis.notes_of(r.extra)
        valid = float(notes["valid_frac"]) if "valid_frac" in notes else math.nan
        saved = 1 - r.p50_ms / r.padded_ms  # NaN without a padded row
        skipped = saved / (1 - valid) if valid < 1 else math.nan
        rows.append(
            [r.provider, r.seq_len, r.batch, r.hidden, r.dtype, fmt_num(100 * valid), fmt_ms(r.p50_ms)]
            + [fmt_ms(r.padded_ms), fmt_num(100 * saved), fmt_num(100 * skipped)]
        )
    headers = ["provider", "T", "B", "H", "dtype", "valid steps %", "packed ms", "padded ms", "time saved %"]
    return [
        "## Variable-length batches (packed)",
        "",
        "A training step on a PackedSequence whose lengths are uniform in [T/4, T] (a fixed seed: every "
        "provider gets the same batch), against the same provider's step on the full T x B batch. "
        "'padding skipped %' is the share of the padding's work the packed step saved: time saved / padded share "
        "of the steps (100: all of it; 0: padding costs as much as real steps).",
        "",
        markdown_table(rows, [*headers, "padding skipped %"]),
    ]


# The report, top to bottom: each section renders the summary into markdown lines ([] to leave
# itself out). A new section is one function here and one entry in this list.
SECTIONS = (
    _header,
    _noise_section,
    method_section,
    _fig2_section,
    _work_growth_section,
    _axis_sections,
    _variants_section,
    _crossover_section,
    _memory_section,
    _recurrence_section,
    _scan_section,
    _not_measured_section,
    _unmeasured_plan_section,
    _all_measurements_section,
    _where_time_goes_section,
    _packed_section,
)


def build_report(csv_path: str | os.PathLike, lineup: Lineup) -> str:
    """The markdown report of one results file (ResultsError if it cannot be read)."""
    summary = analysis.summarise(analysis.load(csv_path, lineup))
    sections = [section(summary) for section in SECTIONS]
    return "\n\n".join("\n".join(lines) for lines in sections if lines) + "\n"


def write_report(csv_path: str | os.PathLike, lineup: Lineup, out_path: str | os.PathLike | None = None) -> Path:
    """Write the report; by default beside the results as `<stem>.md`."""
    return write_beside(build_report(csv_path, lineup), csv_path, out_path)
