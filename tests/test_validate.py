"""`run_bench.py validate` on CPU: the plan and its budget, the folder it writes, the no-CUDA path."""

import datetime as dt
import sys

import synthetic_results as syn

from suite import cli, validate
from suite.validate import PlanItem, build_plan, fit_to_budget


def names(items):
    return [i.name for i in items]


def test_plan_has_the_issue_order_and_targets():
    plan = build_plan()
    assert names(plan)[0] == "GPU tests" and names(plan)[-1] == "report and plots"
    targets = next(i for i in plan if i.name.startswith("recurrence fp32"))
    assert targets.priority == 0
    assert {(c.seq_len, c.batch, c.hidden) for c in targets.configs} == {validate.BIG, validate.PAPER}
    figure = next(i for i in plan if "Fig. 2" in i.name)
    cells = {(c.provider, c.depth, c.seq_len) for c in figure.configs}
    assert {("indrnn_triton", d, t) for d in (1, 2) for t in (256, 512, 1024)} <= cells
    assert {("lstm", 1, t) for t in (256, 512, 1024)} <= cells
    assert all(c.batch == 32 and c.hidden == 128 for c in figure.configs)
    assert all(i.estimate_s > 0 for i in plan)


def test_default_plan_fits_ten_minutes_without_dropping_the_figure():
    kept, dropped = fit_to_budget(build_plan(), 600)
    assert sum(i.estimate_s for i in kept) <= 600
    assert any("Fig. 2" in n for n in names(kept))


def test_lowest_priority_is_dropped_first_and_priority_zero_never():
    items = [
        PlanItem("must", 0, 100),
        PlanItem("important", 1, 50),
        PlanItem("nice", 3, 50),
        PlanItem("nicer-but-cheap", 3, 10),
        PlanItem("optional", 4, 20),
    ]
    kept, dropped = fit_to_budget(items, 1000)
    assert kept == items and dropped == []
    kept, dropped = fit_to_budget(items, 170)
    assert names(dropped) == ["optional", "nice"]  # priority 4, then the dearer of the two 3s
    assert names(kept) == ["must", "important", "nicer-but-cheap"]  # order kept
    kept, dropped = fit_to_budget(items, 1)
    assert names(kept) == ["must"]


def test_folder_is_named_after_device_and_date(tmp_path):
    folder = validate.output_folder("NVIDIA H100 80GB HBM3", dt.date(2026, 11, 25), tmp_path)
    assert folder == tmp_path / "nvidia-h100-80gb-hbm3-2026-11-25"


def test_pytest_counts_are_parsed():
    out = "....\n3 failed, 120 passed, 2 skipped, 1 error in 12.3s\n"
    assert validate.parse_pytest_counts(out) == {"passed": 120, "failed": 3, "skipped": 2, "error": 1}


def test_no_cuda_runs_cpu_checks_and_exits_nonzero(monkeypatch, capsys):
    monkeypatch.setattr(validate.torch.cuda, "is_available", lambda: False)
    ran = []
    monkeypatch.setattr(validate, "CPU_CHECKS", [("stand-in check", [sys.executable, "-c", "pass"])])
    real_run = validate.subprocess.run
    monkeypatch.setattr(validate.subprocess, "run", lambda argv, **kw: ran.append(argv) or real_run(argv, **kw))
    assert cli.main(["validate"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("validate: no CUDA device")
    assert "stand-in check: passed" in out
    assert len(ran) == 1


def test_bad_budget_is_a_usage_error(capsys):
    assert cli.main(["validate", "--budget-min", "0"]) == 2
    assert "--budget-min must be positive" in capsys.readouterr().err


def test_execute_writes_one_committable_folder(tmp_path, monkeypatch):
    """With the GPU work stood in for by synthetic rows: csv, metadata, report, plots, summary."""

    def fake_sweep(configs, csv_path, **kwargs):
        if not csv_path.exists():
            syn.write(csv_path, syn.sweep_rows())
        return csv_path

    monkeypatch.setattr("suite.bench.run_sweep", fake_sweep)
    monkeypatch.setattr(validate.torch.cuda, "get_device_name", lambda i=0: syn.DEVICE)
    monkeypatch.setattr(
        validate, "run_tests", lambda folder: {"passed": 5, "failed": 0, "skipped": 1, "error": 0, "exit": 0}
    )
    kept, dropped = fit_to_budget(build_plan(), 10_000)
    folder = tmp_path / "run-folder"
    assert validate.execute(kept, dropped, 10_000, folder) == 0
    for name in ("run.csv", "run.meta.json", "run.md", "summary.md"):
        assert (folder / name).stat().st_size > 0, name
    assert list((folder / "plots").glob("*.png"))
    summary = (folder / "summary.md").read_text()
    assert summary.startswith(f"# Validation on {syn.DEVICE}")
    assert "5 passed, 0 failed" in summary
    assert "Verdict on '>10x faster than LSTM'" in summary
    assert "12.9x" in summary  # the paper's ratio beside ours


def test_budget_spent_at_run_time_skips_droppable_steps(tmp_path, monkeypatch):
    clock = iter(range(0, 10_000, 500))
    monkeypatch.setattr(validate.time, "monotonic", lambda: next(clock))
    swept = []
    monkeypatch.setattr("suite.bench.run_sweep", lambda configs, csv_path, **kw: swept.append(configs))
    monkeypatch.setattr(validate.torch.cuda, "get_device_name", lambda i=0: syn.DEVICE)
    monkeypatch.setattr(validate, "run_tests", lambda folder: dict(passed=1, failed=0, skipped=0, error=0, exit=0))
    items = [PlanItem("GPU tests", 0, 1), PlanItem("sweep", 2, 100, configs=("c",))]
    assert validate.execute(items, [], 600, tmp_path / "f") == 1  # nothing measured
    assert swept == []


def test_a_failing_step_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    def fake_sweep(configs, csv_path, **kwargs):
        if not csv_path.exists():
            syn.write(csv_path, syn.sweep_rows())
        raise RuntimeError("driver hiccup")

    monkeypatch.setattr("suite.bench.run_sweep", fake_sweep)
    monkeypatch.setattr(validate.torch.cuda, "get_device_name", lambda i=0: syn.DEVICE)
    monkeypatch.setattr(validate, "run_tests", lambda folder: dict(passed=1, failed=0, skipped=0, error=0, exit=0))
    kept, dropped = fit_to_budget(build_plan(), 10_000)
    folder = tmp_path / "f"
    assert validate.execute(kept, dropped, 10_000, folder) == 1
    summary = (folder / "summary.md").read_text()
    assert "## Failed steps" in summary and "RuntimeError: driver hiccup" in summary
    assert (folder / "run.md").exists()  # the report step after the failures still ran
