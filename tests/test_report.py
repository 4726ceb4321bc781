"""The report and the analysis behind it, on small synthetic results files."""

import dataclasses
import math

import pandas as pd
import pytest
import synthetic_results as syn
from synthetic_results import build_report

from suite.commands import cli
from suite.core.paper import read_paper_fig2
from suite.render import analysis
from suite.render.markdown import fmt_speedup, fmt_x
from suite.render.report import write_report
from suite.sweep.providers import lineup


@pytest.fixture
def sweep(tmp_path):
    return syn.write(tmp_path / "sweep.csv", syn.sweep_rows())


@pytest.fixture
def own_commands(monkeypatch):
    """Dispatch only `report` and `plot`, so the CLI tests do not depend on the other commands' modules."""
    monkeypatch.setattr(cli, "COMMANDS", {k: v for k, v in cli.COMMANDS.items() if k in ("report", "plot")})


def test_speedup_is_ratio_of_medians_with_spread(sweep):
    res = analysis.load(sweep, lineup())
    pairs = analysis.speedups(res)
    row = pairs[(pairs["baseline"] == "lstm") & (pairs["seq_len"] == 1024) & (pairs["depth"] == 2)].iloc[0]
    ours, theirs = syn.indrnn_ms(1024, 2), syn.lstm_ms(1024, 2)
    assert row["speedup"] == pytest.approx(theirs / ours)
    assert row["speedup_lo"] == pytest.approx(0.95 * theirs / (1.05 * ours))
    assert row["speedup_hi"] == pytest.approx(1.05 * theirs / (0.95 * ours))
    # Other IndRNN architectures and failed providers are no baselines; infer pairs only with infer rows.
    assert set(pairs["baseline"]) == {"lstm", "gru", "transformer", "sru"}
    assert not ((pairs["mode"] == "infer") & (pairs["baseline"] != "lstm")).any()


def test_report_sections_and_numbers_come_from_the_file(sweep):
    text = build_report(sweep)
    assert text.startswith(f"# IndRNN benchmark report: {syn.DEVICE}")
    for expected in ("abc1234", "do_bench", "2000.0 GB/s", "`indrnn_triton` (the Triton recurrence kernel)"):
        assert expected in text
    for heading in ("Along sequence length T (train)", "Along depth", "Along batch size B", "Along mode"):
        assert heading in text
    assert fmt_speedup(syn.lstm_ms(1024) / syn.indrnn_ms(1024), None, None) in text
    # Every non-ok row is listed with its reason.
    for reason in (
        "CUDA out of memory (tried 12 GiB)",
        "fla not installed",
        "correctness gate: max abs err 0.3 > 1e-3",
    ):
        assert reason in text
    assert "## Recurrence kernel alone" in text and "% copy BW" in text
    assert "Peak memory (MiB) by T and parameters, at mode=train" in text
    assert "The transformer does not overtake the IndRNN" in text


def test_fig2_matches_the_paper_file_and_gives_a_verdict(sweep):
    fig = analysis.fig2(analysis.load(sweep, lineup()))
    paper, source = read_paper_fig2()
    assert any("1910.06251" in line for line in source)
    assert fig.config == {"batch": 32, "dtype": "float32", "timing": "do_bench", "input_size": 128}
    claimed = paper.dropna(subset=["ratio_vs_lstm"]).sort_values(["layers", "seq_len"])
    assert list(fig.table["paper_ratio"]) == list(claimed["ratio_vs_lstm"])
    expected = [syn.lstm_ms(t) / syn.indrnn_ms(t, n) for n in (1, 2) for t in (256, 512, 1024)]
    assert list(fig.table["speedup"]) == pytest.approx(expected)
    # With p20/p80 at 0.95/1.05 x the median, 1 layer at T=512 and 1024 is above 10x at both ends of
    # the p20-p80 range and every 2-layer cell below it at both ends: partly, whatever T=256 turns out.
    assert fig.verdict == "partly"
    assert "; not enough evidence at 1 layer T=256 (9.17x, p20-p80 8.30-10.13), where narrower" in fig.summary
    assert fig.has_sru and "ours: vs SRU" in build_report(sweep)


CLEAR, ACROSS, BELOW = (15.0, 13.0, 17.0), (10.5, 9.5, 11.5), (5.0, 4.5, 5.5)  # (median, p20-p80 range) x
UNMEASURED = (math.nan, math.nan, math.nan)


def _claim(cells):
    """A Fig. 2 table: speedup and its p20-p80 range at 1 and 2 layers x T = 256, 512, 1024."""
    where = [(n, t) for n in (1, 2) for t in (256, 512, 1024)]
    return pd.DataFrame(
        [
            {"layers": n, "seq_len": t, "speedup": s, "speedup_lo": lo, "speedup_hi": hi}
            for (n, t), (s, lo, hi) in zip(where, cells, strict=True)
        ]
    )


@pytest.mark.parametrize(
    ("cells", "verdict"),
    [
        ([CLEAR] * 6, "holds"),
        ([CLEAR] * 5 + [ACROSS], "not enough evidence"),  # the one config across 10x could still fail
        ([BELOW] * 6, "does not hold"),
        ([BELOW, BELOW, CLEAR, BELOW, BELOW, BELOW], "partly"),
        ([BELOW, ACROSS, CLEAR, BELOW, BELOW, BELOW], "partly"),  # whichever way T=512 turns out
        ([BELOW, ACROSS, BELOW, BELOW, BELOW, BELOW], "not enough evidence"),
        ([UNMEASURED] * 6, "no data"),
        ([UNMEASURED, UNMEASURED, CLEAR, UNMEASURED, UNMEASURED, UNMEASURED], "holds"),
    ],
)
def test_claim_verdict_judges_each_config_by_its_p20_p80_range(cells, verdict):
    got, text = analysis.claim_verdict(_claim(cells))
    assert got == verdict
    if ACROSS in cells:
        assert "not enough evidence at " in text and "a quieter machine" in text
    if verdict == "partly":
        assert text.startswith(
            ">10x holds at 1 layer T=1024 (15.0x, p20-p80 13.00-17.00); does not hold at 1 layer T=256"
        )
    if UNMEASURED in cells and verdict != "no data":
        assert "No data: 1 layer T=256" in text


def test_ten_x_within_the_spread_is_not_enough_evidence(tmp_path):
    path = syn.write(tmp_path / "near.csv", syn.sweep_rows(lstm=lambda t, d=1, b=32: 10.5 * syn.indrnn_ms(t, d, b)))
    fig = analysis.fig2(analysis.load(path, lineup()))
    assert fig.verdict == "not enough evidence"
    assert "1 layer T=1024 (paper 12.9x): ours 10.5x, p20-p80 9.50-11.61, not enough evidence" in fig.headline
    text = build_report(path)
    assert "**Verdict: not enough evidence against lstm.**" in text and "How a verdict is reached" in text


def test_does_not_hold_when_lstm_is_barely_slower(tmp_path):
    path = syn.write(tmp_path / "slow.csv", syn.sweep_rows(lstm=lambda t, d=1, b=32: 2 * syn.indrnn_ms(t, d, b)))
    fig = analysis.fig2(analysis.load(path, lineup()))
    assert fig.verdict == "does not hold"
    assert "1 layer T=1024 (paper 12.9x): ours 2.00x, p20-p80 1.81-2.21, does not hold" in fig.headline
    assert "**Verdict: does not hold against lstm.**" in build_report(path)


def test_missing_baseline_gives_no_data_with_reasons(tmp_path):
    rows = [r for r in syn.sweep_rows(baselines=("gru",)) if r.provider != "lstm"]
    rows.append(syn.row("lstm", None, seq_len=1024, status="oom", reason="out of memory"))
    path = syn.write(tmp_path / "nolstm.csv", rows)
    fig = analysis.fig2(analysis.load(path, lineup()))
    assert fig.verdict == "no data" and not fig.has_sru
    notes = fig.table.set_index(["layers", "seq_len"])["note"]
    assert notes[(1, 1024)] == "lstm depth 1: oom (out of memory)"
    assert notes[(1, 256)] == "lstm depth 1: not at the Fig. 2 config"  # its one row is at T=1024
    text = build_report(path)
    assert "**Verdict: no data.**" in text
    assert analysis.load(path, lineup()).baselines == ["gru"] and "| gru " in text


def test_reference_indrnn_used_when_triton_did_not_run(tmp_path):
    rows = [r for r in syn.sweep_rows(indrnn="indrnn_torch")]
    rows.append(syn.row("indrnn_triton", None, status="failed", reason="no CUDA"))
    path = syn.write(tmp_path / "cpu.csv", rows, device="Some CPU", device_kind="cpu", copy_gbytes_per_s=None)
    res = analysis.load(path, lineup())
    assert res.indrnn == "indrnn_torch"
    assert (
        "`indrnn_torch` (eager torch loops with a hand-written backward): the file has no ok rows for `indrnn_triton`"
        in build_report(path)
    )


def test_single_config_and_no_metadata(tmp_path):
    path = syn.write(tmp_path / "one.csv", [syn.row("indrnn_triton", 2.0), syn.row("lstm", 9.0)], with_meta=False)
    text = build_report(path)
    assert "No metadata file beside the results" in text
    assert "No axis takes more than one value" in text
    assert "4.50x (4.07-4.97)" in text  # 9/2, spread 0.95*9/(1.05*2) .. 1.05*9/(0.95*2)
    assert "Every config in the file ran" in text


def test_nothing_comparable(tmp_path):
    path = syn.write(tmp_path / "lstm_only.csv", [syn.row("lstm", 9.0, seq_len=t) for t in (256, 512)])
    text = build_report(path)
    assert "no speedup can be computed" in text and "**Verdict: no data.**" in text


def test_crossover_and_transformer_overtaking():
    # IndRNN loses at T=64, wins at 128 and 256, loses again at 512 (batch 8); another batch never wins.
    speed = {64: 0.5, 128: 2.0, 256: 3.0, 512: 0.8}
    rows = [
        {**dict(zip(analysis.CONFIG, ("train", "fwd+bwd", t, 1, b, 128, 128, "float32", "do_bench"), strict=True)),
         "baseline": "transformer", "speedup": s if b == 8 else 0.5}
        for t, s in speed.items() for b in (8, 64)
    ]  # fmt: skip
    table = analysis.crossovers(pd.DataFrame(rows)).set_index("baseline")
    assert table.loc["transformer", "first_win_T"] == 128
    assert table.loc["transformer", "first_win_batches"] == [8]
    assert table.loc["transformer", "overtakes"] == [(512, 8)]
    assert table.loc["transformer", "wins"] == 2 and table.loc["transformer", "configs"] == 8


def test_write_report_default_path_and_cli(sweep, tmp_path, own_commands, capsys):
    assert write_report(sweep, lineup()) == sweep.with_suffix(".md") and sweep.with_suffix(
        ".md"
    ).read_text().startswith("# ")
    out = tmp_path / "sub" / "r.md"
    assert cli.main(["report", str(sweep), "--out", str(out)]) == 0
    assert out.read_text() == build_report(sweep)


def test_cli_errors_are_one_line(tmp_path, own_commands, capsys):
    assert cli.main(["report", str(tmp_path / "missing.csv")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    garbage = tmp_path / "garbage.csv"
    garbage.write_text("a,b\n1,2\n")
    assert cli.main(["report", str(garbage)]) == 2
    assert "not a results file" in capsys.readouterr().err
    bad_meta = syn.write(tmp_path / "badmeta.csv", [syn.row("lstm", 1.0)], with_meta=False)
    bad_meta.with_name("badmeta.meta.json").write_text("{not json")
    assert cli.main(["report", str(bad_meta)]) == 2


def test_header_only_file(tmp_path):
    path = syn.write(tmp_path / "empty.csv", [])
    text = build_report(path)
    assert "(0 rows: 0 ok, 0 oom, 0 failed, 0 skipped)" in text and "**Verdict: no data.**" in text


def test_variants_are_compared_with_the_indrnn_never_as_baselines(tmp_path):
    rows = [
        syn.row("indrnn_triton", 1.0),
        syn.row("indrnn_torch", 4.0),
        syn.row("indrnn_compile", 2.0, compile_s=30.0),
        syn.row("lstm", 10.0),
    ]
    summary = analysis.summarise(analysis.load(syn.write(tmp_path / "v.csv", rows), lineup()))
    assert list(summary.pairs["baseline"]) == ["lstm"]
    assert list(summary.variant_pairs["variant"]) == ["indrnn_torch", "indrnn_compile"]
    assert list(summary.variant_pairs["speedup"]) == pytest.approx([4.0, 2.0])
    text = build_report(tmp_path / "v.csv")
    assert "## `indrnn_triton` against other implementations" in text
    assert "| never" not in text  # no crossover row for a variant


def test_cuda_graph_rows_get_their_own_fig2_beside_the_eager_one(tmp_path):
    rows = []
    for t in (256, 512, 1024):
        for timing, launch_ms in (("do_bench", 2.0), ("cuda_graph", 0.0)):
            rows += [
                syn.row("indrnn_triton", launch_ms + syn.indrnn_ms(t), seq_len=t, timing=timing),
                syn.row("indrnn_triton", launch_ms + syn.indrnn_ms(t, 2), seq_len=t, depth=2, timing=timing),
                syn.row("lstm", launch_ms + syn.lstm_ms(t), seq_len=t, timing=timing),
            ]
    path = syn.write(tmp_path / "graph.csv", rows)
    summary = analysis.summarise(analysis.load(path, lineup()))
    assert summary.fig2.config["timing"] == "do_bench"
    assert summary.fig2_graph is not None and summary.fig2_graph.config["timing"] == "cuda_graph"
    eager, graph = summary.fig2.table, summary.fig2_graph.table
    assert (graph["speedup"] > eager["speedup"]).all()  # launch overhead hidden: the ratio grows
    text = build_report(path)
    assert "### The same, captured in a CUDA graph" in text and "Verdict (CUDA graph)" in text


# ---------------------------------------------------------------------------- what the numbers mean


def test_fig2_note_tells_a_provider_measured_elsewhere_from_one_never_measured(tmp_path):
    rows = [r for r in syn.sweep_rows(baselines=("gru",)) if r.provider != "lstm"]
    never = analysis.fig2(analysis.load(syn.write(tmp_path / "never.csv", rows), lineup()))
    assert never.table.set_index(["layers", "seq_len"])["note"][(1, 256)] == "lstm depth 1: not in file"
    rows.append(syn.row("lstm", 1.0, hidden=64))  # measured, only not at H=128
    fig = analysis.fig2(analysis.load(syn.write(tmp_path / "elsewhere.csv", rows), lineup()))
    assert fig.table.set_index(["layers", "seq_len"])["note"][(1, 256)] == "lstm depth 1: not at the Fig. 2 config"


def test_verdict_says_a_cpu_run_does_not_test_a_gpu_claim(tmp_path):
    gpu = build_report(syn.write(tmp_path / "gpu.csv", syn.sweep_rows()))
    cpu = build_report(syn.write(tmp_path / "cpu.csv", syn.sweep_rows(), device_kind="cpu"))
    claim = "the paper's claim is about GPUs (one P100)"
    assert claim in cpu and claim not in gpu
    assert cpu.index(claim) > cpu.index("**Verdict:")  # beside the verdict it qualifies


def test_verdict_says_where_the_input_size_is_not_the_papers(tmp_path):
    other = build_report(syn.write(tmp_path / "i128.csv", syn.sweep_rows()))  # input size = hidden
    assert "Our input size is I=128; the paper's adding problem has I=2" in other
    paper_rows = [dataclasses.replace(r, input_size=2) for r in syn.sweep_rows()]
    paper = build_report(syn.write(tmp_path / "i2.csv", paper_rows))
    assert "Our input size" not in paper and "I=2;" in paper  # the setting line names it


def test_wide_spreads_and_a_busy_machine_are_flagged(tmp_path):
    rows = syn.sweep_rows()
    noisy = syn.row("lstm", 100.0, seq_len=1024, p20_ms=50.0, p80_ms=150.0)  # the Fig. 2 cell, 3x spread
    rows = [r for r in rows if not (r.provider == "lstm" and r.mode == "train" and r.seq_len == 1024 and r.depth == 1)]
    machine = {"load_start": 3.5, "load_end": 1.0, "cores": 2, "copy_gbytes_per_s_end": 500.0, "gpu": {"sm_mhz": 1}}
    text = build_report(syn.write(tmp_path / "noisy.csv", [*rows, noisy], machine=machine))
    noise = text[text.index("## Noise") : text.index("## Claim")]
    assert "**The machine was busy during this run**" in noise
    assert "load average at the start of the run was 3.5 on 2 cores" in noise
    assert "2000.0 GB/s at the start and 500.0 GB/s at the end" in noise
    assert "Distrust these 1 config(s)" in noise and "| lstm " in noise and "| 3.00 " in noise
    assert "Caution: the machine was busy (see Noise); p80/p20 above 1.25 at 1 layer T=1024 (lstm)" in text
    assert "2000.0 GB/s (copy measured in this run, 500.0 GB/s at its end)" in text


def test_a_quiet_run_is_said_to_be_quiet(tmp_path):
    machine = {"load_start": 0.5, "load_end": 1.9, "cores": 2, "copy_gbytes_per_s_end": 1900.0}
    text = build_report(syn.write(tmp_path / "quiet.csv", syn.sweep_rows(), machine=machine))
    assert "The machine was not busy by these rules (1-minute load 0.5 / 1.9 (start / end) on 2 cores)." in text
    assert "No config's spread is wide." in text
    assert "Caution" not in text


def test_first_line_gives_the_geometric_mean_speedup_per_mode(tmp_path):
    path = syn.write(tmp_path / "sweep.csv", syn.sweep_rows(), wall_s=123.4)
    summary = analysis.summarise(analysis.load(path, lineup()))
    train_lstm = summary.pairs[(summary.pairs["baseline"] == "lstm") & (summary.pairs["mode"] == "train")]
    geomean = math.exp(train_lstm["speedup"].map(math.log).mean())
    line = build_report(path).splitlines()[2]
    assert line.startswith("**`indrnn_triton` speedup, geometric mean (min-max) over configs**: infer: lstm ")
    lo, hi = train_lstm["speedup"].min(), train_lstm["speedup"].max()
    expected = f"train: lstm {fmt_x(geomean)} ({fmt_x(lo)}-{fmt_x(hi)}, {len(train_lstm)} configs), gru "
    assert expected in line
    assert "| wall time " in build_report(path) and "123 s" in build_report(path)


def _cpu_run(tmp_path, lstm_ms: dict[int, float], **meta):
    """A CPU training sweep at the Fig. 2 setting: a linear IndRNN, and the LSTM at the given ms per T."""
    rows = []
    for t, ms in lstm_ms.items():
        rows.append(syn.row("indrnn_torch", 0.05 * t, seq_len=t, timing="cpu_wallclock"))
        rows.append(syn.row("lstm", ms, seq_len=t, timing="cpu_wallclock"))
    cpu = dict(device="Some CPU", device_kind="cpu", timing="cpu_wallclock", cuda=None, driver=None)
    return syn.write(tmp_path / "cpu.csv", rows, **(cpu | meta))


def test_a_baseline_whose_time_outgrows_its_work_along_t_is_flagged_beside_fig2(tmp_path):
    # Shaped like an LSTM slowed by denormal floats: 63x the time for 4x the steps, then flat.
    text = build_report(_cpu_run(tmp_path, {64: 11.6, 256: 736.0, 512: 793.0}))
    section = text[text.index("## Time against work along T") :]
    section = section[: section.index("\n## ")]
    assert text.index("**Verdict:") < text.index("## Time against work along T") < text.index("## Speedup of")
    assert "**Flagged: 1 of 4 pairs.**" in section
    assert "| lstm " in section and "| 64 -> 256 " in section and "| 63.4x " in section and "| 4.00x " in section
    assert "256 -> 512" not in section  # 1.08x the time for twice the steps: flat, not flagged
    assert "**The Fig. 2 comparison rests on such times** (`lstm` depth 1 T=64 -> 256)" in section


def test_times_that_grow_with_the_work_along_t_are_not_flagged(tmp_path):
    text = build_report(_cpu_run(tmp_path, {64: 11.6, 256: 46.4, 512: 110.0}))
    assert "No provider is flagged (4 pairs of consecutive T checked)." in text
    assert "Flagged" not in text


def test_a_cpu_report_says_how_denormal_floats_were_treated(tmp_path):
    for recorded, expected in [
        ("flushed", "flushed to zero on every thread while timing"),
        ("kept", "kept (`--keep-denormals`)"),
        ("", "not recorded: the run predates flushing them, so they were kept"),
    ]:
        text = build_report(_cpu_run(tmp_path, {64: 1.0, 256: 4.0}, denormals=recorded))
        (line,) = [line for line in text.splitlines() if line.startswith("| denormal floats ")]
        assert expected in line
    assert "| denormal floats " not in build_report(syn.write(tmp_path / "gpu.csv", syn.sweep_rows()))
