"""compare on synthetic results files: real regressions fail, noise and missing configs do not,
devices are checked, speedup ratios survive a uniformly slower machine, the JSON export has the
shape github-action-benchmark reads."""

import json
from dataclasses import replace

import numpy as np
import pytest

from suite.commands.cli import main
from suite.core.errors import UsageError
from suite.core.paths import samples_path
from suite.core.store import SamplesWriter
from suite.render.compare import compare_runs, judge
from suite.sweep.providers import lineup
from tests.synthetic_results import indrnn_ms, lstm_ms, row, write

TS = (64, 256, 1024)


def rows(indrnn_scale: float = 1.0, lstm_scale: float = 1.0, spread: float = 0.05, seq_lens=TS, indrnn="indrnn_triton"):
    """IndRNN and LSTM train rows at each T, times scaled, p20/p80 = (1 -/+ spread) x p50."""
    out = []
    for t in seq_lens:
        for provider, ms in ((indrnn, indrnn_scale * indrnn_ms(t)), ("lstm", lstm_scale * lstm_ms(t))):
            out.append(row(provider, ms, seq_len=t, p20_ms=(1 - spread) * ms, p80_ms=(1 + spread) * ms))
    return out


def cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["compare", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_identical_runs_pass(tmp_path, capsys):
    base = write(tmp_path / "base.csv", rows())
    new = write(tmp_path / "new.csv", rows())
    code, out, _ = cli(capsys, base, new)
    assert code == 0
    assert "**PASS**" in out
    cmp = compare_runs(base, new, lineup())
    assert len(cmp.rows) == 2 * len(TS)
    assert {r.verdict for r in cmp.rows} == {"unchanged"}
    assert all(r.ratio == pytest.approx(1.0) for r in cmp.rows)


def test_slowdown_beyond_noise_fails_and_is_listed_first(tmp_path, capsys):
    base = write(tmp_path / "base.csv", rows())
    new = write(tmp_path / "new.csv", rows(indrnn_scale=1.5))
    code, out, _ = cli(capsys, base, new)
    assert code == 1
    cmp = compare_runs(base, new, lineup())
    assert [r.verdict for r in cmp.rows[: len(TS)]] == ["regression"] * len(TS)
    assert all(r.name.startswith("indrnn_triton") and r.ratio == pytest.approx(1.5) for r in cmp.regressions)
    assert {r.verdict for r in cmp.rows[len(TS) :]} == {"unchanged"}
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert "regression" in table[2] and "indrnn_triton" in table[2]  # header, rule, then the worst
    assert cli(capsys, base, new, "--fail-on", "none")[0] == 0


def test_same_change_inside_wide_noise_passes(tmp_path, capsys):
    base = write(tmp_path / "base.csv", rows(spread=0.6))
    new = write(tmp_path / "new.csv", rows(indrnn_scale=1.5, spread=0.6))
    code, _, _ = cli(capsys, base, new)
    assert code == 0
    assert {r.verdict for r in compare_runs(base, new, lineup()).rows if r.name.startswith("indrnn")} == {"noise"}


def test_improvement_and_threshold():
    base, new = (0.95, 1.05), (0.60, 0.70)
    assert judge(0.65, base, new, 0.05, worse_up=True) == "improvement"
    assert judge(0.65, base, new, 0.05, worse_up=False) == "regression"  # a speedup that fell
    # Outside each other's spread but within the threshold: not a change worth a verdict.
    assert judge(1.04, (1.0, 1.0), (1.04, 1.04), 0.05, worse_up=True) == "unchanged"
    assert judge(1.06, (1.0, 1.0), (1.06, 1.06), 0.05, worse_up=True) == "regression"


def test_missing_configs_are_listed_not_fatal(tmp_path, capsys):
    base = write(tmp_path / "base.csv", rows(seq_lens=(64, 256)))
    new = write(tmp_path / "new.csv", rows(seq_lens=(256, 1024)))
    code, out, _ = cli(capsys, base, new)
    assert code == 0
    cmp = compare_runs(base, new, lineup())
    assert len(cmp.rows) == 2
    assert len(cmp.only_in_base) == 2 and all("T=64 " in n for n in cmp.only_in_base)
    assert len(cmp.only_in_new) == 2 and all("T=1024 " in n for n in cmp.only_in_new)
    assert "Only in BASE (2" in out and "Only in NEW (2" in out


def test_config_that_broke_is_a_regression(tmp_path, capsys):
    base = write(tmp_path / "base.csv", rows())
    broken = [r for r in rows() if not (r.provider == "lstm" and r.seq_len == 64)]
    broken.append(row("lstm", None, seq_len=64, status="failed", reason="correctness gate: max abs err 0.3"))
    new = write(tmp_path / "new.csv", broken)
    code, out, _ = cli(capsys, base, new)
    assert code == 1
    (change,) = compare_runs(base, new, lineup()).broken
    assert (change.base_status, change.new_status) == ("ok", "failed")
    assert "correctness gate" in out
    assert not compare_runs(new, base, lineup()).has_regression  # failed -> ok is a fix


def test_different_devices_refused_unless_allowed(tmp_path, capsys):
    base = write(tmp_path / "base.csv", rows(), device="GPU A")
    new = write(tmp_path / "new.csv", rows(), device="GPU B")
    code, _, err = cli(capsys, base, new)
    assert code == 2
    assert "GPU A" in err and "GPU B" in err and "--allow-device-mismatch" in err
    with pytest.raises(UsageError):
        compare_runs(base, new, lineup(), metric="speedup")
    code, out, _ = cli(capsys, base, new, "--allow-device-mismatch")
    assert code == 0
    assert "compared anyway" in out


def test_speedup_survives_a_slower_machine_and_catches_a_slower_indrnn(tmp_path, capsys):
    base = write(tmp_path / "base.csv", rows())
    slower_machine = write(tmp_path / "machine.csv", rows(indrnn_scale=2.0, lstm_scale=2.0))
    slower_indrnn = write(tmp_path / "indrnn.csv", rows(indrnn_scale=2.0))
    assert cli(capsys, base, slower_machine)[0] == 1  # time: every config slower
    assert cli(capsys, base, slower_machine, "--metric", "speedup")[0] == 0
    code, out, _ = cli(capsys, base, slower_indrnn, "--metric", "speedup", "--threshold", "0.35")
    assert code == 1
    cmp = compare_runs(base, slower_indrnn, lineup(), metric="speedup")
    assert len(cmp.rows) == len(TS)
    for r in cmp.rows:
        assert r.name.startswith("indrnn_triton vs lstm train")
        assert r.ratio == pytest.approx(0.5)
        assert r.verdict == "regression"
        assert r.base_lo < r.base < r.base_hi  # the ratio's spread from p20/p80


def test_speedup_uses_the_torch_indrnn_when_triton_did_not_run(tmp_path):
    base = write(tmp_path / "base.csv", rows(indrnn="indrnn_torch"))
    new = write(tmp_path / "new.csv", rows(indrnn="indrnn_torch", indrnn_scale=0.5))
    cmp = compare_runs(base, new, lineup(), metric="speedup")
    assert {r.verdict for r in cmp.rows} == {"improvement"}
    assert all(r.name.startswith("indrnn_torch vs lstm") for r in cmp.rows)


@pytest.mark.parametrize("metric", ["time", "speedup"])
def test_benchmark_json_shape(tmp_path, capsys, metric):
    base = write(tmp_path / "base.csv", rows())
    new = write(tmp_path / "new.csv", rows(indrnn_scale=1.5))
    out = tmp_path / "out" / "bench.json"
    md = tmp_path / "out" / "compare.md"
    code, printed, _ = cli(capsys, base, new, "--metric", metric, "--json-out", out, "--markdown-out", md)
    assert code == 1
    entries = json.loads(out.read_text())
    assert isinstance(entries, list) and len(entries) == (2 * len(TS) if metric == "time" else len(TS))
    for e in entries:
        assert set(e) <= {"name", "unit", "value", "range", "extra"}
        assert isinstance(e["name"], str) and isinstance(e["unit"], str)
        assert isinstance(e["value"], float) and e["value"] > 0
    assert len({e["name"] for e in entries}) == len(entries)
    if metric == "speedup":  # smaller is better: IndRNN time over baseline time, below 1 when it wins
        assert all(e["value"] < 1 for e in entries if "T=1024" in e["name"])
    assert md.read_text().strip() == printed.strip()


def test_bad_input_is_a_usage_error(tmp_path, capsys):
    base = write(tmp_path / "base.csv", rows())
    assert cli(capsys, base, base, "--threshold", "1.5")[0] == 2
    assert cli(capsys, base, tmp_path / "absent.csv")[0] == 2


def test_overall_gate_tolerates_one_shifted_config_but_not_a_slower_kernel(tmp_path, capsys):
    """On a shared machine one config can shift 2x for a few seconds; a slower kernel shifts all."""
    base = write(tmp_path / "base.csv", rows(seq_lens=(64, 128, 256, 512, 1024)))
    fluke = rows(seq_lens=(64, 128, 256, 512, 1024))
    fluke[0] = row("indrnn_triton", 2 * indrnn_ms(64), seq_len=64)  # 2x, tight spread: "real" on its own
    fluke = write(tmp_path / "fluke.csv", fluke, threads=8)
    slower = write(tmp_path / "slower.csv", rows(indrnn_scale=2.0, seq_lens=(64, 128, 256, 512, 1024)))
    gate = ("--metric", "speedup", "--threshold", "0.35")
    assert cli(capsys, base, fluke, *gate)[0] == 1
    code, out, _ = cli(capsys, base, fluke, *gate, "--fail-on", "overall")
    assert code == 0
    assert "16 threads, NEW with 8" in out  # a different thread count is worth saying
    cmp = compare_runs(base, fluke, lineup(), metric="speedup", threshold=0.35)
    assert cmp.overall.ratio == pytest.approx(0.5 ** (1 / 5))
    assert cmp.overall.verdict != "regression" and len(cmp.regressions) == 1
    code, out, _ = cli(capsys, base, slower, *gate, "--fail-on", "overall")
    assert code == 1
    assert "geometric mean NEW/BASE 0.500: regression" in out


@pytest.mark.parametrize("metric", ["time", "speedup"])
def test_no_config_in_common_is_an_error_not_a_pass(tmp_path, capsys, metric):
    base = write(tmp_path / "base.csv", rows(seq_lens=(64,)))
    new = write(tmp_path / "new.csv", rows(seq_lens=(1024,)))
    with pytest.raises(UsageError, match="nothing to compare") as e:
        compare_runs(base, new, lineup(), metric=metric)
    assert str(base) in str(e.value) and str(new) in str(e.value)
    code, out, err = cli(capsys, base, new, "--metric", metric)
    assert code == 2 and "PASS" not in out and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("empty", ["BASE", "NEW"])
def test_a_file_without_rows_is_an_error(tmp_path, capsys, empty):
    full = write(tmp_path / "full.csv", rows())
    header_only = write(tmp_path / "empty.csv", [])
    assert header_only.read_text().count("\n") == 1  # a header and no rows
    files = (header_only, full) if empty == "BASE" else (full, header_only)
    code, _, err = cli(capsys, *files)
    assert code == 2 and f"{empty} has no rows" in err and "unknown device" not in err


def keep_samples(csv, kept_rows, rng, n: int = 30) -> None:
    """A samples sidecar: n lognormal samples around each row's median. A sweep's rows always
    carry their input size (the results reader fills it in for the synthetic ones)."""
    with SamplesWriter(csv) as writer:
        for r in kept_rows:
            writer.append(replace(r, input_size=r.hidden), list(r.p50_ms * rng.lognormal(0.0, 0.05, n)))


def test_samples_decide_whether_a_change_is_real(tmp_path, capsys):
    base, new = write(tmp_path / "base.csv", rows()), write(tmp_path / "new.csv", rows(indrnn_scale=1.5))
    rng = np.random.default_rng(0)
    keep_samples(base, rows(), rng)
    # NEW's samples tell another story than its summary: no change at all.
    keep_samples(new, rows(), rng)
    code, out, _ = cli(capsys, base, new)
    assert code == 0 and "samples: p (rank test)" in out
    assert {r.verdict for r in compare_runs(base, new, lineup()).rows} == {"noise", "unchanged"}
    # Samples that agree with the 1.5x: a regression again.
    samples_path(new).unlink()
    keep_samples(new, rows(indrnn_scale=1.5), rng)
    cmp = compare_runs(base, new, lineup())
    assert len(cmp.regressions) == len(TS) and all(r.test.supports(up=True) for r in cmp.regressions)
    assert cli(capsys, base, new)[0] == 1


def test_without_samples_in_both_runs_compare_is_unchanged(tmp_path, capsys):
    base, new = write(tmp_path / "base.csv", rows()), write(tmp_path / "new.csv", rows(indrnn_scale=1.5))
    keep_samples(base, rows(), np.random.default_rng(0))  # BASE only
    cmp = compare_runs(base, new, lineup())
    assert len(cmp.regressions) == len(TS) and all(r.test is None for r in cmp.rows)
    assert "samples: p" not in cli(capsys, base, new)[1]
