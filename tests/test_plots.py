"""The figures of a results file: every one written and non-empty, absent data skipped, never a crash."""

import dataclasses

import pytest
import synthetic_results as syn

from suite import analysis, cli, plots
from suite.errors import ResultsError

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
    "fig2",
}


def _names(paths):
    return {p.stem for p in paths}


def _assert_pngs(paths):
    for p in paths:
        data = p.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, p


def test_every_figure_of_a_full_sweep(tmp_path):
    path = syn.write(tmp_path / "sweep.csv", syn.sweep_rows())
    result = plots.plot_all(path, tmp_path / "out")
    assert _names(result.written) == FULL_SET and result.skipped == []
    assert all(p.parent == tmp_path / "out" for p in result.written)
    _assert_pngs(result.written)


def test_titles_carry_the_device(tmp_path):
    path = syn.write(tmp_path / "sweep.csv", syn.sweep_rows(), device="Device Under Test")
    res = analysis.load(path)
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
    result = plots.plot_all(path, tmp_path / "out")
    assert _names(result.written) == {"speedup_vs_seq_len_train", "speedup_vs_batch_train", "latency_vs_seq_len_train"}
    skipped = {line.split(":")[0] for line in result.skipped}
    assert skipped == {"speedup_vs_depth", "peak_memory_train", "recurrence_bandwidth", "fig2"}
    _assert_pngs(result.written)


def test_single_config_draws_nothing(tmp_path):
    path = syn.write(tmp_path / "one.csv", [syn.row("indrnn_triton", 2.0), syn.row("lstm", 9.0)], with_meta=False)
    result = plots.plot_all(path, tmp_path / "out")
    # One Fig. 2 cell (T=256) is enough for the bar chart; no sweep means no line plots.
    assert _names(result.written) == {"fig2"}
    assert {line.split(":")[0] for line in result.skipped} == {
        "speedup_vs_seq_len",
        "speedup_vs_depth",
        "speedup_vs_batch",
        "latency_vs_seq_len",
        "peak_memory",
        "recurrence_bandwidth",
    }
    _assert_pngs(result.written)


def test_default_out_dir_and_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(plots, "PLOTS_ROOT", tmp_path / "plots")
    monkeypatch.setattr(cli, "COMMANDS", {k: v for k, v in cli.COMMANDS.items() if k in ("report", "plot")})
    (tmp_path / "results").mkdir()
    path = syn.write(tmp_path / "results" / "sweep.csv", syn.sweep_rows())
    written = plots.plot_all(path).written  # a run in results/: plots/<stem>/
    assert _names(written) == FULL_SET and all(p.parent == tmp_path / "plots" / "sweep" for p in written)
    elsewhere = syn.write(tmp_path / "scratch.csv", syn.sweep_rows())
    assert all(p.parent == tmp_path / "scratch-plots" for p in plots.plot_all(elsewhere).written)
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
        plots.plot_all(bad, tmp_path / "out")


def test_out_dir_that_is_a_file_is_one_line_error(tmp_path, capsys):
    path = syn.write(tmp_path / "sweep.csv", syn.sweep_rows())
    taken = tmp_path / "taken"
    taken.write_text("a file")
    assert cli.main(["plot", str(path), "--out-dir", str(taken)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a file, not a folder" in err[0]


def test_a_folder_is_read_as_its_newest_results_file(tmp_path, capsys):
    syn.write(tmp_path / "sweep.csv", syn.sweep_rows())
    assert cli.main(["plot", str(tmp_path), "--out-dir", str(tmp_path / "out")]) == 0
    assert "using its newest results file" in capsys.readouterr().err
    assert (tmp_path / "out" / "fig2.png").is_file()
