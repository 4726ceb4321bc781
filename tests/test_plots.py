"""The figures of a results file: every one written and non-empty, absent data skipped, never a crash."""

import dataclasses

import numpy as np
import pytest
import synthetic_results as syn

from suite.commands import cli
from suite.core import paths
from suite.core.errors import ResultsError
from suite.render import analysis, plots
from suite.sweep.providers import lineup

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FULL_SET = {
    "speedup_vs_seq_len_train",
    "speedup_vs_seq_len_infer",
    "speedup_vs_depth_train",
    "speedup_vs_batch_train",
    "latency_vs_seq_len_train",
    "latency_vs_seq_len_infer",
    "peak_memory_train",
    "peak_memory_infer",
    "recurrence_bandwidth",
    "scan_speedup_triton_recurrence_fwd",
    "scan_speedup_triton_recurrence_bwd",
    "fig2",
}


def _names(paths):
    return {p.stem for p in paths}


def _assert_pngs(paths):
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, p


@pytest.mark.slow
def test_every_figure_of_a_full_sweep(tmp_path):
    path = syn.write(tmp_path / "sweep.csv", syn.sweep_rows())
    result = plots.plot_all(path, lineup(), tmp_path / "out")
    assert _names(result.written) == FULL_SET and result.skipped == []
    assert all(p.parent == tmp_path / "out" for p in result.written)
    _assert_pngs(result.written)


def test_titles_carry_the_device(tmp_path):
    path = syn.write(tmp_path / "sweep.csv", syn.sweep_rows(), device="Device Under Test")
    res = analysis.load(path, lineup())
    figures = [make() for _, make, _ in plots._figures(analysis.summarise(res)) if make is not None]
    assert len(figures) == len(FULL_SET)
    assert all("Device Under Test" in fig.get_suptitle() for fig in figures)
    for fig in figures:
        plots.plt.close(fig)


def test_absent_data_is_skipped_not_crashed(tmp_path):
    # A CPU run: the reference IndRNN, no peak memory, no recurrence rows, one layer only, no LSTM (so no Fig. 2).
    rows = [
        r
        for r in syn.sweep_rows(indrnn="indrnn_torch", baselines=("gru",))
        if r.mode != "recurrence" and r.provider != "lstm" and r.depth == 1
    ]
    rows = [dataclasses.replace(r, peak_mem_mb=None) for r in rows]
    path = syn.write(tmp_path / "cpu.csv", rows, device="Some CPU", device_kind="cpu")
    result = plots.plot_all(path, lineup(), tmp_path / "out")
    assert _names(result.written) == {"speedup_vs_seq_len_train", "speedup_vs_batch_train", "latency_vs_seq_len_train"}
    skipped = {line.split(":")[0] for line in result.skipped}
    assert skipped == {"speedup_vs_depth", "peak_memory_train", "recurrence_bandwidth", "scan_speedup", "fig2"}
    _assert_pngs(result.written)


def test_single_config_draws_nothing(tmp_path):
    path = syn.write(tmp_path / "one.csv", [syn.row("indrnn_triton", 2.0), syn.row("lstm", 9.0)], with_meta=False)
    result = plots.plot_all(path, lineup(), tmp_path / "out")
    # One Fig. 2 cell (T=256) is enough for the bar chart; no sweep means no line plots.
    assert _names(result.written) == {"fig2"}
    assert {line.split(":")[0] for line in result.skipped} == {
        "speedup_vs_seq_len",
        "speedup_vs_depth",
        "speedup_vs_batch",
        "latency_vs_seq_len",
        "peak_memory",
        "recurrence_bandwidth",
        "scan_speedup",
    }
    _assert_pngs(result.written)


@pytest.mark.slow
def test_default_out_dir_and_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(paths, "PLOTS_DIR", tmp_path / "plots")
    monkeypatch.setattr(paths, "RESULTS_DIR", tmp_path / "results")
    monkeypatch.setattr(cli, "COMMANDS", {k: v for k, v in cli.COMMANDS.items() if k in ("report", "plot")})
    (tmp_path / "results").mkdir()
    path = syn.write(tmp_path / "results" / "sweep.csv", syn.sweep_rows())
    written = plots.plot_all(path, lineup()).written  # a run in results/: plots/<stem>/
    assert _names(written) == FULL_SET and all(p.parent == tmp_path / "plots" / "sweep" for p in written)
    elsewhere = syn.write(tmp_path / "scratch.csv", syn.sweep_rows())
    assert all(p.parent == tmp_path / "scratch-plots" for p in plots.plot_all(elsewhere, lineup()).written)
    out = tmp_path / "cli"
    assert cli.main(["plot", str(path), "--out-dir", str(out)]) == 0
    assert {p.stem for p in out.iterdir()} == FULL_SET
    assert cli.main(["plot", str(tmp_path / "missing.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("content", ["", "provider,mode\nlstm,train\n"])
def test_unreadable_file_is_a_results_error(tmp_path, content):
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    with pytest.raises(ResultsError):
        plots.plot_all(bad, lineup(), tmp_path / "out")


def test_out_dir_that_is_a_file_is_one_line_error(tmp_path, capsys):
    path = syn.write(tmp_path / "sweep.csv", syn.sweep_rows())
    taken = tmp_path / "taken"
    taken.write_text("a file")
    assert cli.main(["plot", str(path), "--out-dir", str(taken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file, not a folder" in err[0]


@pytest.mark.slow
def test_a_folder_is_read_as_its_newest_results_file(tmp_path, capsys):
    syn.write(tmp_path / "sweep.csv", syn.sweep_rows())
    assert cli.main(["plot", str(tmp_path), "--out-dir", str(tmp_path / "out")]) == 0
    assert "using its newest results file" in capsys.readouterr().err
    assert (tmp_path / "out" / "fig2.png").is_file()


def _drawn_colours(fig) -> dict[str, str]:
    """Label -> colour (hex) of every line and bar series with a legend label in a figure."""
    from matplotlib.colors import to_hex

    colours = {}
    for ax in fig.axes:
        for line in ax.get_lines():
            if not line.get_label().startswith("_"):
                colours[line.get_label()] = to_hex(line.get_color())
        for bars in ax.containers:
            if hasattr(bars, "patches") and not bars.get_label().startswith("_"):
                colours[bars.get_label()] = to_hex(bars.patches[0].get_facecolor(), keep_alpha=False)
    return colours


def test_a_provider_has_one_colour_in_every_figure(tmp_path):
    summary = analysis.summarise(analysis.load(syn.write(tmp_path / "sweep.csv", syn.sweep_rows()), lineup()))
    seen: dict[str, set[str]] = {}
    for _, make, _ in plots._figures(summary):
        if make is None:
            continue
        fig = make()
        for label, colour in _drawn_colours(fig).items():
            provider = {"LSTM 1 layer": "lstm", "SRU 1 layer": "sru"}.get(label, label.split(" ")[0])
            seen.setdefault(provider, set()).add(colour)
        plots.plt.close(fig)
    for provider in ("lstm", "gru", "transformer", "sru", "indrnn_triton"):
        assert seen[provider] == {plots.matplotlib.colors.to_hex(plots.style_of(provider)["color"])}, provider
    # Fig. 2: a depth has one colour in both panels, and it is no provider's.
    fig = plots._fig2_figure(summary.res, summary.fig2)
    colours = _drawn_colours(fig)
    for n, layers in ((1, "1 layer"), (2, "2 layers")):
        assert colours[f"IndRNN {layers}"] == colours[f"ours, {layers}"] == colours[f"paper (P100), {layers}"]
        assert colours[f"IndRNN {layers}"] == plots.matplotlib.colors.to_hex(plots.FIG2_LAYER_STYLES[n]["color"])
    assert colours["IndRNN 1 layer"] != colours["IndRNN 2 layers"]
    providers = {plots.matplotlib.colors.to_hex(style["color"]) for style in plots.PROVIDER_STYLES.values()}
    assert not {colours["IndRNN 1 layer"], colours["IndRNN 2 layers"]} & providers
    plots.plt.close(fig)


def test_fig2_has_p20_p80_error_bars_on_ours_only(tmp_path):
    summary = analysis.summarise(analysis.load(syn.write(tmp_path / "sweep.csv", syn.sweep_rows()), lineup()))
    fig = plots._fig2_figure(summary.res, summary.fig2)
    left, right = fig.axes
    with_bars = {ax: {c.get_label() for c in ax.containers if getattr(c, "errorbar", None)} for ax in (left, right)}
    assert with_bars[left] == {"LSTM 1 layer", "SRU 1 layer", "IndRNN 1 layer", "IndRNN 2 layers"}
    assert with_bars[right] == {"ours, 1 layer", "ours, 2 layers"}  # the paper gives no spread
    ours = next(c for c in right.containers if c.get_label() == "ours, 1 layer")
    segment = ours.errorbar.lines[2][0].get_segments()[0]  # T=256: from speedup_lo to speedup_hi
    cell = summary.fig2.table.iloc[0]
    assert [segment[0][1], segment[1][1]] == pytest.approx([cell["speedup_lo"], cell["speedup_hi"]])
    plots.plt.close(fig)


@pytest.mark.slow
def test_bandwidth_at_one_size_is_not_drawn(tmp_path):
    rows = [r for r in syn.sweep_rows() if not (r.mode == "recurrence" and r.seq_len == 1024)]
    result = plots.plot_all(syn.write(tmp_path / "one_size.csv", rows), lineup(), tmp_path / "out")
    assert "recurrence_bandwidth" not in _names(result.written)
    assert any(line.startswith("recurrence_bandwidth: recurrence rows at one size only") for line in result.skipped)


def test_the_scan_map_colours_each_speedup_and_draws_the_auto_boundary(tmp_path):
    summary = analysis.summarise(analysis.load(syn.write(tmp_path / "sweep.csv", syn.sweep_rows()), lineup()))
    pairs = summary.scan.pairs.query("phase == 'fwd'")
    fig = plots._scan_figure(
        summary.res, {"backend": "triton", "mode": "recurrence", "phase": "fwd"}, pairs, syn.SCAN_RULE
    )
    ax = fig.axes[0]
    (dots,) = ax.collections
    assert list(dots.get_array()) == pytest.approx(list(np.log2(pairs["speedup"])))
    wins = dots.norm(dots.get_array()) > 0.5  # the upper half of the diverging map: the scan wins
    assert list(wins) == list(pairs["speedup"] > 1)
    (boundary,) = [line for line in ax.get_lines() if "auto takes the scan" in line.get_label()]
    steps, columns = syn.SCAN_RULE["min_steps"], syn.SCAN_RULE["max_columns"]
    assert list(boundary.get_xdata())[:2] == [steps, steps] and list(boundary.get_ydata())[1:] == [columns, columns]
    assert {t.get_text().split("\n")[0] for t in ax.texts} == {plots.fmt_x(s) for s in pairs["speedup"]}
    plots.plt.close(fig)
    without_rule = plots._scan_figure(
        summary.res, {"backend": "triton", "mode": "recurrence", "phase": "fwd"}, pairs, None
    )
    assert not without_rule.axes[0].get_lines()
    plots.plt.close(without_rule)
