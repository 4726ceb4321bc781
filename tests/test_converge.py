"""`converge`: the adding-problem generator, the training loop's constraint and budgets, resume
after an interruption, bad flags, the report's numbers, and a tiny end-to-end run on CPU."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from kernels import IndRNN
from suite.commands import cli
from suite.commands.cli import main
from suite.converge import runs, training
from suite.converge.adding import BASELINE_MSE, adding_batch
from suite.converge.files import CURVE_COLUMNS, SUMMARY_COLUMNS, RunKey, Settings, is_converge_results
from suite.converge.models import MODELS
from suite.converge.presets import Preset
from suite.converge.report import build_converge_report, cells, load_converge, verdict
from suite.converge.runs import run_converge
from suite.converge.training import held_out_set, train_to_target
from suite.core.denormals import flushed_share
from suite.core.errors import UsageError
from suite.core.paths import summary_path

CPU = torch.device("cpu")


def settings(**changes) -> Settings:
    base = Settings(target=1e-9, max_steps=20, max_seconds=60.0, eval_every=10, batch=8, test_size=50)
    return replace(base, **changes)


def read(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------- the task


def test_one_marker_in_each_half_and_target_is_their_sum():
    seq_len = 11  # odd: the first half is steps 0-4, the second 5-10
    x, y = adding_batch(500, seq_len, torch.Generator().manual_seed(3))
    assert x.shape == (500, seq_len, 2) and y.shape == (500,)
    values, markers = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(markers.unique().tolist()) == {0.0, 1.0}
    assert (markers[:, : seq_len // 2].sum(1) == 1).all()
    assert (markers[:, seq_len // 2 :].sum(1) == 1).all()
    torch.testing.assert_close(y, (values * markers).sum(1))
    # Both halves are used throughout, not only their edges.
    first = markers[:, : seq_len // 2].argmax(1)
    second = markers[:, seq_len // 2 :].argmax(1) + seq_len // 2
    assert set(first.tolist()) == set(range(5)) and set(second.tolist()) == set(range(5, 11))


def test_same_seed_same_data_and_predicting_one_scores_one_sixth():
    x1, y1 = adding_batch(4, 20, torch.Generator().manual_seed(7))
    x2, y2 = adding_batch(4, 20, torch.Generator().manual_seed(7))
    x3, _ = adding_batch(4, 20, torch.Generator().manual_seed(8))
    assert torch.equal(x1, x2) and torch.equal(y1, y2) and not torch.equal(x1, x3)
    _, y = adding_batch(200_000, 4, torch.Generator().manual_seed(0))
    assert abs(float(((y - 1) ** 2).mean()) - BASELINE_MSE) < 0.003
    assert BASELINE_MSE == pytest.approx(0.1667, abs=1e-4)


def test_held_out_set_is_the_same_for_every_run():
    a, b = held_out_set(12, 30, CPU), held_out_set(12, 30, CPU)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


# ---------------------------------------------------------------------------- training


def test_indrnn_recurrent_weights_are_clamped_after_every_step(monkeypatch):
    # A learning rate this large pushes u past 2^(1/T) within a step: only the clamp keeps it in.
    monkeypatch.setitem(MODELS, "indrnn", replace(MODELS["indrnn"], lr=0.5))
    clamp = IndRNN.clamp_recurrent_weights_
    calls = {"n": 0, "beyond": 0}

    def checked_clamp(model: IndRNN) -> None:
        u = [unit.weight_hh.detach().abs() for unit in model.recurrences]
        calls["beyond"] += any(bool((w > model.recurrent_max).any()) for w in u)
        clamp(model)
        assert all(bool((unit.weight_hh.abs() <= model.recurrent_max).all()) for unit in model.recurrences)
        calls["n"] += 1

    monkeypatch.setattr(IndRNN, "clamp_recurrent_weights_", checked_clamp)
    outcome = train_to_target(
        RunKey("indrnn", 10, 0), settings(max_steps=7, eval_every=3), CPU, held_out_set(10, 20, CPU), lambda p: None
    )
    assert outcome.steps == 7
    assert calls["n"] == 7  # intervals of 3, 3 and 1 steps: one clamp per optimiser step
    assert calls["beyond"] > 0  # the optimiser did push u out, so the clamp was needed


def test_stops_at_max_steps_with_a_curve_point_per_evaluation():
    points = []
    outcome = train_to_target(RunKey("gru", 10, 0), settings(), CPU, held_out_set(10, 50, CPU), points.append)
    assert (outcome.reached, outcome.stopped_by, outcome.steps) == (False, "max_steps", 20)
    assert outcome.steps_to_target is None and outcome.seconds_to_target is None
    assert [p.step for p in points] == [0, 10, 20]
    assert points[0].train_s == 0 and points[0].train_loss is None
    assert points[-1].train_s == outcome.train_s > 0
    assert outcome.best_mse == min(p.test_mse for p in points)


def test_stops_at_max_seconds_checked_at_evaluations():
    outcome = train_to_target(
        RunKey("lstm", 10, 0),
        settings(max_steps=2000, max_seconds=0.3, eval_every=2),
        CPU,
        held_out_set(10, 50, CPU),
        lambda p: None,
    )
    assert outcome.stopped_by == "max_seconds" and not outcome.reached
    assert 0.3 <= outcome.train_s < 5  # passed by at most one two-step interval (and a slow machine)
    assert outcome.steps % 2 == 0 and outcome.steps < 2000


def test_reaching_the_target_stops_and_records_when():
    points = []
    outcome = train_to_target(
        RunKey("indrnn", 10, 0), settings(target=0.5, max_steps=200), CPU, held_out_set(10, 50, CPU), points.append
    )
    # An untrained model scores far above 0.5; a few steps bring it under.
    assert points[0].test_mse > 0.5
    assert outcome.reached and outcome.stopped_by == "target"
    assert outcome.steps_to_target == outcome.steps == points[-1].step
    assert outcome.seconds_to_target == outcome.train_s
    assert points[-1].test_mse <= 0.5 and all(p.test_mse > 0.5 for p in points[:-1])


# ---------------------------------------------------------------------------- files and resume


def tiny_preset(*keys: RunKey, **changes) -> Preset:
    return Preset("tiny", "", settings(**changes), keys)


def test_interrupted_run_resumes_without_redoing_or_losing_anything(tmp_path, monkeypatch):
    out = tmp_path / "run.csv"
    preset = tiny_preset(RunKey("indrnn", 10, 0), RunKey("gru", 10, 0))
    real_held_out_mse = training.held_out_mse
    evaluations = {"n": 0}

    def interrupted(model, test_set):
        evaluations["n"] += 1
        if evaluations["n"] == 5:  # the first run evaluates 3 times; stop the second mid-way
            raise KeyboardInterrupt
        return real_held_out_mse(model, test_set)

    monkeypatch.setattr(training, "held_out_mse", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_converge(preset, out, device=CPU, progress=False)
    first_summary, first_curves = read(summary_path(out)), read(out)
    assert [r["model"] for r in first_summary] == ["indrnn"]
    assert [(r["model"], r["step"]) for r in first_curves] == [("indrnn", "0"), ("indrnn", "10"), ("indrnn", "20")] + [
        ("gru", "0")
    ]

    monkeypatch.setattr(training, "held_out_mse", real_held_out_mse)
    trained = []
    real_train = runs.train_to_target
    monkeypatch.setattr(runs, "train_to_target", lambda key, *a: trained.append(key) or real_train(key, *a))
    run_converge(preset, out, device=CPU, resume=True, progress=False)
    assert trained == [RunKey("gru", 10, 0)]  # the finished run is not redone
    summary, curves = read(summary_path(out)), read(out)
    assert summary[0] == first_summary[0] and [r["model"] for r in summary] == ["indrnn", "gru"]
    assert curves[:3] == first_curves[:3]  # nothing finished is lost
    assert [(r["model"], r["step"]) for r in curves[3:]] == [("gru", "0"), ("gru", "10"), ("gru", "20")]
    meta = json.loads(out.with_name("run.meta.json").read_text())
    assert len({r["run_id"] for r in summary + curves}) == 1 == len(meta["notes"]["resumed"])
    assert meta["run_id"] == summary[0]["run_id"]

    with pytest.raises(UsageError, match="other settings"):
        run_converge(tiny_preset(RunKey("gru", 10, 1), max_steps=30), out, device=CPU, resume=True, progress=False)


def test_a_cpu_run_trains_with_denormals_flushed_records_it_and_resumes_only_alike(tmp_path, monkeypatch):
    if not torch.set_flush_denormal(False):
        pytest.skip("this CPU cannot flush denormal floats")
    seen = []
    real_train = runs.train_to_target
    monkeypatch.setattr(runs, "train_to_target", lambda *a: seen.append(flushed_share()) or real_train(*a))
    out = tmp_path / "run.csv"
    run_converge(tiny_preset(RunKey("lstm", 10, 0), max_steps=10), out, device=CPU, progress=False)
    assert seen == [1.0] and flushed_share() == 0.0  # on while it trains, off after
    assert json.loads(out.with_name("run.meta.json").read_text())["denormals"] == "flushed"
    more = tiny_preset(RunKey("lstm", 10, 0), RunKey("gru", 10, 0), max_steps=10)
    with pytest.raises(UsageError, match="denormal floats there: flushed, in this run: kept"):
        run_converge(more, out, device=CPU, resume=True, progress=False, flush_denormals=False)
    kept = tmp_path / "kept.csv"
    run_converge(
        tiny_preset(RunKey("lstm", 10, 0), max_steps=10), kept, device=CPU, progress=False, flush_denormals=False
    )
    assert seen[-1] == 0.0 and json.loads(kept.with_name("kept.meta.json").read_text())["denormals"] == "kept"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--models", "lstn"], "unknown model 'lstn'"),
        (["--seq-len", "1"], "seq_len must be an integer of at least 2"),
        (["--seeds", "one"], "--seeds needs integers"),
        (["--max-steps", "0"], "max_steps must be positive"),
        (["--eval-every", "2.5"], "--eval-every needs an integer"),
        (["--target", "-0.1"], "target must be positive"),
        (["--max-seconds", "soon"], "--max-seconds needs a number"),
        (["--preset", "nope"], "unknown converge preset 'nope'"),
        (["--device", "tpu"], "--device must be auto, cuda or cpu"),
        (["--resume", "--out", "no/such/run.csv"], "does not exist"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(flags, message, capsys):
    assert main(["converge", *flags, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_existing_output_is_not_overwritten(tmp_path, capsys):
    out = tmp_path / "run.csv"
    out.write_text("model\n")
    assert main(["converge", "--seq-len", "10", "--out", str(out)]) == 2
    assert "already holds results" in capsys.readouterr().err


# ---------------------------------------------------------------------------- report


def write_run(path: Path, rows: list[dict]) -> None:
    """A converge run's files from summary rows (model, seq_len, seed, reached, seconds, steps)."""
    base = dict(
        run_id="r",
        preset="tiny",
        device="test cpu",
        target=0.01,
        max_steps=1000,
        max_seconds=10.0,
        eval_every=10,
        batch=8,
        test_size=50,
        optimizer="Adam",
        lr=1e-3,
        grad_clip=10.0,
        params=100,
        details="",
        eval_s=0.1,
        final_mse=0.5,
    )
    summary = []
    for r in rows:
        reached = r["seconds"] is not None
        summary.append(
            {
                **base,
                **{k: r[k] for k in ("model", "seq_len", "seed")},
                "reached": str(reached).lower(),
                "stopped_by": "target" if reached else "max_steps",
                "steps_to_target": r["steps"] if reached else "",
                "seconds_to_target": r["seconds"] if reached else "",
                "best_mse": 0.005 if reached else 0.08,
                "steps": r["steps"] if reached else 1000,
                "train_s": r["seconds"] if reached else r["spent"],
            }
        )
    with open(summary_path(path), "w", newline="") as f:
        writer = csv.DictWriter(f, SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(summary)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, CURVE_COLUMNS)
        writer.writeheader()
        for r in summary:
            for step, mse in ((0, 0.7), (r["steps"], r["best_mse"])):
                train_s = 0 if step == 0 else r["train_s"]
                writer.writerow(
                    dict(
                        run_id="r",
                        model=r["model"],
                        seq_len=r["seq_len"],
                        seed=r["seed"],
                        step=step,
                        train_s=train_s,
                        test_mse=mse,
                    )
                )


def test_report_medians_ranges_speedups_and_verdict(tmp_path):
    path = tmp_path / "run.csv"
    rows = []
    for seed, (ind, lstm, gru) in enumerate([(1.0, 4.0, None), (2.0, 6.0, None), (3.0, 5.0, 9.0)]):
        rows.append(dict(model="indrnn", seq_len=10, seed=seed, seconds=ind, steps=100 * (seed + 1)))
        rows.append(dict(model="lstm", seq_len=10, seed=seed, seconds=lstm, steps=400))
        rows.append(dict(model="gru", seq_len=10, seed=seed, seconds=gru, steps=900, spent=20.0))
    write_run(path, rows)
    assert is_converge_results(path) and not is_converge_results(tmp_path / "sweep.csv")
    run = load_converge(path)
    table = cells(run)
    assert table[("indrnn", 10)].seconds == (2.0, 1.0, 3.0)
    assert table[("lstm", 10)].seconds == (5.0, 4.0, 6.0)
    assert not table[("gru", 10)].solved and table[("gru", 10)].reached == 1  # 1 of 3: no median
    text = build_converge_report(path)
    assert "| 10  | `indrnn` | 1/1" not in text and "3/3" in text
    assert "2 (1 - 3)" in text and "5 (4 - 6)" in text  # median (range) seconds
    assert "2.50x" in text  # lstm 5 s / indrnn 2 s
    assert ">= 10.0x (gru not solved)" in text  # gru spent 20 s (median) without solving
    assert "`gru` did not reach MSE 0.01 at T=10 in 2 of 3 seeds" in text
    assert "0.167" in text and "line to beat" in text
    assert verdict(run) == ("holds", "against lstm and gru; transformer not run")
    assert "above 3.000x" in text  # gru's fastest seed 9 s / indrnn's slowest 3 s; its others never finished

    # lstm's median (1.5 s) now beats indrnn's (2 s), but its slowest seed is slower than indrnn's fastest.
    rows[1]["seconds"] = 0.5
    rows[4]["seconds"] = rows[7]["seconds"] = 1.5
    write_run(path, rows)
    assert verdict(load_converge(path))[0] == "not enough evidence"


def seeds(model: str, times: list[float | None], seq_len: int = 10, spent: float = 10.0) -> list[dict]:
    """Summary rows of one model's seeds: seconds to the target, or None for a seed that trained
    `spent` seconds without reaching it."""
    return [dict(model=model, seq_len=seq_len, seed=i, seconds=t, steps=100, spent=spent) for i, t in enumerate(times)]


def judged(tmp_path: Path, rows: list[dict]) -> tuple[tuple[str, str], str]:
    """The verdict and the report of a run of these rows."""
    path = tmp_path / "run.csv"
    write_run(path, rows)
    return verdict(load_converge(path)), build_converge_report(path)


def test_one_seed_a_few_percent_apart_is_not_enough_evidence(tmp_path):
    (result, over), text = judged(tmp_path, seeds("indrnn", [45.1]) + seeds("lstm", [46.4]))
    assert result == "not enough evidence"
    assert "**Verdict: not enough evidence against lstm; gru and transformer not run.**" in text
    assert "at least 3 seeds of each model" in text


def test_three_seeds_with_separated_ranges_hold(tmp_path):
    rows = seeds("indrnn", [1.0, 1.2, 1.1]) + seeds("lstm", [1.3, 1.5, 1.4]) + seeds("gru", [1.25, 3.0, 2.0])
    (result, over), text = judged(tmp_path, rows)
    assert result == "holds" and over == "against lstm and gru; transformer not run"
    assert "1.042x - 3.000x" in text  # gru's fastest / indrnn's slowest to gru's slowest / indrnn's fastest


def test_three_seeds_with_overlapping_ranges_are_not_enough_evidence(tmp_path):
    rows = seeds("indrnn", [1.0, 1.2, 1.4]) + seeds("lstm", [1.3, 1.5, 1.6])  # medians 1.25x apart
    (result, _), text = judged(tmp_path, rows)
    assert result == "not enough evidence"
    assert "more seeds (the rank test can decide from 6 of each)" in text


def test_a_run_without_gru_names_what_its_verdict_is_over(tmp_path):
    rows = seeds("indrnn", [1.0, 1.2, 1.1]) + seeds("lstm", [1.3, 1.5, 1.4]) + seeds("transformer", [0.2, 0.3, 0.4])
    (result, over), text = judged(tmp_path, rows)
    assert result == "does not hold" and over == "against lstm and transformer; gru not run"
    assert "- T=10: does not hold (holds against lstm; does not hold against transformer)." in text


def test_the_rank_test_decides_where_many_seeds_overlap(tmp_path):
    indrnn = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
    lstm = [7.5, 8.5, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0]  # its fastest seed beats indrnn's slowest
    (result, _), text = judged(tmp_path, seeds("indrnn", indrnn) + seeds("lstm", lstm))
    assert result == "holds" and "holds (rank test, p = 0.0" in text
    (result, _), _ = judged(tmp_path, seeds("indrnn", lstm) + seeds("lstm", indrnn))
    assert result == "does not hold"


def test_seeds_that_missed_the_target_bound_the_range(tmp_path):
    indrnn, unsolved = [1.0, 1.2, 1.1], [None, None, None]
    (result, _), text = judged(tmp_path, seeds("indrnn", indrnn) + seeds("lstm", unsolved, spent=5.0))
    assert result == "holds" and "above 4.167x" in text  # lstm trained 5 s without reaching what indrnn did in 1.2
    (result, _), text = judged(tmp_path, seeds("indrnn", unsolved, spent=5.0) + seeds("lstm", [1.0, 3.0, 2.0]))
    assert result == "does not hold" and "below 0.600x" in text
    (result, _), text = judged(tmp_path, seeds("indrnn", unsolved) + seeds("lstm", unsolved))
    assert result == "not enough evidence" and "unbounded" in text and "a longer budget" in text


# ---------------------------------------------------------------------------- end to end


def test_cli_run_reaches_an_easy_target_and_writes_report_and_plots(tmp_path, capsys):
    out = tmp_path / "e2e.csv"
    flags = ["--models", "indrnn", "--seq-len", "10", "--seeds", "0", "--target", "0.12", "--max-steps", "400"]
    flags += ["--eval-every", "25", "--test-size", "200", "--max-seconds", "30", "--out", str(out), "--no-progress"]
    assert main(["converge", *flags]) == 0, capsys.readouterr().err
    (row,) = read(summary_path(out))
    assert row["reached"] == "true" and row["stopped_by"] == "target", row
    assert int(row["steps_to_target"]) <= 400 and float(row["best_mse"]) <= 0.12
    assert row["optimizer"] == "Adam" and float(row["lr"]) == 2e-4 and int(row["params"]) > 0
    meta = json.loads(out.with_name("e2e.meta.json").read_text())
    assert meta["timing"] == "train_wallclock" and meta["notes"]["settings"]["target"] == 0.12
    report = out.with_suffix(".md").read_text()
    assert "## Time to solve the adding problem" in report
    assert sorted(p.name for p in (tmp_path / "e2e-plots").iterdir()) == ["mse_vs_seconds.png", "to_target.png"]
    curve = read(out)
    assert curve[0]["step"] == "0" and math.isclose(float(curve[-1]["test_mse"]), float(row["final_mse"]))


def test_report_and_plot_commands_take_a_converge_run(tmp_path, capsys):
    path = tmp_path / "run.csv"
    write_run(
        path, [dict(model=m, seq_len=10, seed=0, seconds=s, steps=100) for m, s in (("indrnn", 1.0), ("lstm", 3.0))]
    )
    assert cli.main(["report", str(path), "--out", str(tmp_path / "r.md")]) == 0
    assert (tmp_path / "r.md").read_text().startswith("# Time to solve the adding problem")
    assert cli.main(["plot", str(path), "--out-dir", str(tmp_path / "p")]) == 0
    assert {p.name for p in (tmp_path / "p").glob("*.png")} == {"mse_vs_seconds.png", "to_target.png"}
