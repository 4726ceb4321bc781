"""`run_bench.py validate` on CPU: the plan and its budget, the preflight, the folder it writes,
a summary that survives a cut at any step, the rehearsal, and the no-CUDA path."""

import datetime as dt
import signal
import subprocess
import sys

import pytest
import synthetic_results as syn
import torch

from suite.commands import cli, validate
from suite.commands.validate import Check, PlanItem, build_plan, fit_to_budget, plan_for
from suite.sweep.providers import PROVIDERS

STEPS_OK = dict(passed=5, failed=0, skipped=1, error=0, exit=0)


def names(items):
    return [i.name for i in items]


def test_plan_has_the_issue_order_and_targets():
    plan = build_plan()
    assert names(plan)[0] == "GPU tests" and names(plan)[-1] == "report and plots"
    targets = next(i for i in plan if i.name.startswith("recurrence fp32"))
    assert targets.priority == 0
    assert {(c.seq_len, c.batch, c.hidden) for c in targets.configs} == {validate.BIG, validate.PAPER}
    figure = next(i for i in plan if i.name == "paper preset: Fig. 2 (batch 32)")
    cells = {(c.provider, c.depth, c.seq_len) for c in figure.configs}
    assert {("indrnn_triton", d, t) for d in (1, 2) for t in (256, 512, 1024)} <= cells
    assert {("lstm", 1, t) for t in (256, 512, 1024)} <= cells
    assert all(c.batch == 32 and c.hidden == 128 and c.timing == "auto" for c in figure.configs)
    assert not any(c.provider.startswith(("indrnn_triton_", "indrnn_torch_")) for c in figure.configs)
    pinned = next(i for i in plan if "each schedule pinned" in i.name)
    assert pinned.priority > 0  # dropped before the groups that were there first
    assert {(c.provider, c.depth, c.seq_len) for c in pinned.configs} == {
        (p, d, t) for p in ("indrnn_triton_seq", "indrnn_triton_scan") for d in (1, 2) for t in (256, 512, 1024)
    }
    graph = next(i for i in plan if "CUDA graphs" in i.name)
    assert {c.timing for c in graph.configs} == {"cuda_graph"}
    assert {("lstm", 1), ("indrnn_triton", 1), ("indrnn_triton", 2)} <= {(c.provider, c.depth) for c in graph.configs}
    assert all(i.estimate_s > 0 for i in plan)


def test_default_plan_fits_85_percent_of_ten_minutes_with_start_up():
    kept, dropped, steps_s = plan_for(600)
    assert steps_s == pytest.approx(0.85 * 600 - validate.STARTUP_S)
    assert validate.STARTUP_S + sum(i.estimate_s for i in kept) <= 0.85 * 600
    assert {"GPU tests", "recurrence fp32 (kernel targets)", "paper preset: Fig. 2 (batch 32)"} <= set(names(kept))


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


def test_each_run_has_its_own_folder_named_after_device_and_utc_time(tmp_path):
    now = dt.datetime(2026, 11, 25, 16, 5, 9, tzinfo=dt.timezone.utc)
    folder = validate.output_folder("NVIDIA H100 80GB HBM3", now, tmp_path)
    assert folder == tmp_path / "nvidia-h100-80gb-hbm3-20261125T160509Z"


def test_pytest_counts_are_parsed():
    out = "....\n3 failed, 120 passed, 2 skipped, 1 error in 12.3s\n"
    assert validate.parse_pytest_counts(out) == {"passed": 120, "failed": 3, "skipped": 2, "error": 1}


def test_preflight_says_what_is_missing_one_line_each(tmp_path, monkeypatch):
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(validate.shutil, "which", lambda name: None)
    monkeypatch.setattr(validate, "SUPPORTED", {"torch": (99, 0), "triton": (3, 6)})
    checks = {c.name: c for c in validate.preflight(tmp_path)}
    assert not checks["C compiler"].ok and checks["C compiler"].fatal
    assert "Triton cannot build its kernel launcher" in checks["C compiler"].detail
    assert not checks["torch"].ok and not checks["torch"].fatal  # may still work: recorded, not fatal
    assert "older than the oldest supported 99.0" in checks["torch"].detail
    assert checks["triton"].ok and checks["disk"].ok and checks["imports"].ok
    assert checks["CUDA device"].ok == validate.torch.cuda.is_available()


def _stand_in_gpu(monkeypatch, sweep=None):
    def fake_sweep(configs, csv_path, **kwargs):
        if not csv_path.exists():
            syn.write(csv_path, syn.sweep_rows())
        return csv_path

    monkeypatch.setattr("suite.sweep.sweep.run_sweep", sweep or fake_sweep)
    monkeypatch.setattr(validate.torch.cuda, "get_device_name", lambda i=0: syn.DEVICE)
    monkeypatch.setattr(validate, "run_tests", lambda folder, files=None: dict(STEPS_OK))


@pytest.mark.slow
def test_execute_writes_one_committable_folder(tmp_path, monkeypatch):
    """With the GPU work stood in for by synthetic rows: csv, metadata, report, plots, summary."""
    _stand_in_gpu(monkeypatch)
    kept, dropped = fit_to_budget(build_plan(), 10_000)
    folder = tmp_path / "run-folder"
    assert validate.execute(kept, dropped, 10_000, folder, checks=[Check("imports", True, "all present")]) == 0
    for name in ("run.csv", "run.meta.json", "run.md", "summary.md", "state.json"):
        assert (folder / name).stat().st_size > 0, name
    assert list((folder / "plots").glob("*.png"))
    summary = (folder / "summary.md").read_text()
    assert summary.startswith(f"# Validation on {syn.DEVICE}") and "Incomplete" not in summary
    assert "5 passed, 0 failed" in summary and "- imports: ok, all present" in summary
    assert "Verdict on '>10x faster than LSTM'" in summary
    assert "12.9x" in summary  # the paper's ratio beside ours
    steps = summary[summary.index("## Steps") : summary.index("## Tests")]
    assert steps.count("| done") == len(kept)  # each step with its estimate and actual seconds


@pytest.mark.parametrize("step", names(build_plan()))
def test_a_cut_in_the_middle_of_any_step_leaves_a_readable_summary(step, tmp_path, monkeypatch):
    """A hard cut runs no more code: the summary on disk must already say where the run was.
    The stand-in raises a BaseException (which nothing in execute catches) in the middle of `step`."""

    class Cut(BaseException):
        pass

    def cut_here():
        raise Cut

    def sweep(configs, csv_path, **kwargs):
        if not csv_path.exists():
            syn.write(csv_path, syn.sweep_rows())
        if configs == next(i for i in build_plan() if i.name == step).configs:
            cut_here()
        return csv_path

    _stand_in_gpu(monkeypatch, sweep)
    monkeypatch.setattr(validate, "_sections_from_results", lambda v: [])  # only the step table matters here
    if step == "GPU tests":
        monkeypatch.setattr(validate, "run_tests", lambda folder, files=None: cut_here())
    if step == "report and plots":
        monkeypatch.setattr("suite.render.plots.plot_all", lambda *a, **k: cut_here())
    folder = tmp_path / "f"
    with pytest.raises(Cut):
        validate.execute(build_plan(), [], 10_000, folder)
    summary = (folder / "summary.md").read_text()
    assert f"**Incomplete**: this summary was written during step '{step}'" in summary
    assert f"| {step} " in summary and "| running" in summary


@pytest.mark.slow
def test_a_killed_rehearsal_keeps_its_log_and_summary(tmp_path):
    """The real thing on the CPU: SIGKILL when a step starts; every line printed before it is in
    the log (flushed) and the summary names the step."""
    step = "paper preset: Fig. 2 (batch 32)"
    argv = [sys.executable, "run_bench.py", "validate", "--rehearse", "--out-dir", str(tmp_path / "f")]
    proc = subprocess.Popen(argv, cwd=validate.ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if line.startswith(f"== {step}"):
                proc.send_signal(signal.SIGKILL)
                break
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert any(line.startswith(f"== {step}") for line in seen), "".join(seen)
    assert any(line.startswith("preflight C compiler: ok") for line in seen)
    summary = (tmp_path / "f" / "summary.md").read_text()
    assert f"during step '{step}'" in summary
    assert "| GPU tests" in summary and "| done" in summary  # the steps before it finished
    assert (tmp_path / "f" / "run.csv").exists() and (tmp_path / "f" / "tests.txt").exists()


def test_budget_spent_at_run_time_skips_droppable_steps(tmp_path, monkeypatch):
    clock = iter(range(0, 10_000, 500))
    monkeypatch.setattr(validate.time, "monotonic", lambda: next(clock))
    swept = []
    _stand_in_gpu(monkeypatch, lambda configs, csv_path, **kw: swept.append(configs))
    items = [PlanItem("GPU tests", 0, 1), PlanItem("sweep", 2, 100, configs=("c",))]
    assert validate.execute(items, [], 600, tmp_path / "f") == 1  # nothing measured
    assert swept == []
    assert "| skipped  | budget spent" in (tmp_path / "f" / "summary.md").read_text()


@pytest.mark.slow
def test_a_failing_step_is_recorded_and_the_run_goes_on(tmp_path, monkeypatch):
    def fake_sweep(configs, csv_path, **kwargs):
        if not csv_path.exists():
            syn.write(csv_path, syn.sweep_rows())
        raise RuntimeError("driver hiccup")

    _stand_in_gpu(monkeypatch, fake_sweep)
    monkeypatch.setattr("suite.render.plots.plot_all", lambda *a, **k: None)  # drawn in the test above
    kept, dropped = fit_to_budget(build_plan(), 10_000)
    folder = tmp_path / "f"
    assert validate.execute(kept, dropped, 10_000, folder) == 1
    summary = (folder / "summary.md").read_text()
    assert "| failed   | RuntimeError: driver hiccup" in summary
    assert (folder / "run.md").exists()  # the report step after the failures still ran


def test_no_cuda_runs_cpu_checks_and_ends_with_the_reason(monkeypatch, capsys):
    monkeypatch.setattr(validate.torch.cuda, "is_available", lambda: False)
    ran = []
    monkeypatch.setattr(validate, "CPU_CHECKS", [("stand-in check", [sys.executable, "-c", "pass"])])
    real_run = validate.subprocess.run
    monkeypatch.setattr(validate.subprocess, "run", lambda argv, **kw: ran.append(argv) or real_run(argv, **kw))
    assert cli.main(["validate"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("validate: no CUDA device")
    assert "stand-in check: passed" in out
    assert out[-1].startswith("validate: exit 1 because there is no CUDA device")
    assert len(ran) == 1


def test_bad_budget_and_a_file_as_folder_are_usage_errors(tmp_path, capsys):
    assert cli.main(["validate", "--budget-min", "0"]) == 2
    assert "--budget-min must be positive" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert cli.main(["validate", "--rehearse", "--out-dir", str(tmp_path / "file")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_rehearsal_runs_each_triton_provider_as_its_torch_twin_on_the_same_schedule():
    plan = build_plan()
    for item in validate.rehearsal_plan(plan):
        for c in item.configs:
            assert "triton" not in c.provider
            if c.provider.startswith("indrnn"):
                assert PROVIDERS[c.provider].unavailable(c, torch.device("cpu")) is None
    pinned = next(i for i in plan if "each schedule pinned" in i.name)
    for gpu in pinned.configs:
        cpu = validate.rehearsal_config(gpu)
        assert PROVIDERS[cpu.provider].recurrence_backend == "torch"
        assert PROVIDERS[cpu.provider].schedule == PROVIDERS[gpu.provider].schedule != "auto"
