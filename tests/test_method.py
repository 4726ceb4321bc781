"""The report says how each number was taken: per timing method whether L2 was flushed and whether
the step ran eagerly or from a CUDA graph, which cuDNN algorithm each baseline ran, and where a
speedup curve steps because that algorithm changes along the axis. Files from before rows recorded
it still render, saying what their timing method implies."""

from dataclasses import replace

from synthetic_results import build_report, indrnn_ms, lstm_ms, row, write

HIDDEN = (64, 128, 256, 512)
# What PyTorch picks for a 1-layer fp32 LSTM on an sm_90 GPU (suite.sweep.cudnn): the small-hidden
# persistent kernel up to H=128 both ways, standard above.
LSTM_ALGO = {64: "persistent_small_h", 128: "persistent_small_h", 256: "standard", 512: "standard"}


def gpu_rows(recorded: bool = True, timing: str = "do_bench") -> list:
    taken = (
        {"l2_flush": "yes", "launch": "eager"} if timing == "do_bench" else {"l2_flush": "no", "launch": "cuda_graph"}
    )
    config = dict(seq_len=512, input_size=128, timing=timing, **(taken if recorded else {}))
    rows = []
    for h in HIDDEN:
        algo = {"cudnn_algo": LSTM_ALGO[h]} if recorded else {}
        # The LSTM gets slower where it leaves the persistent kernel: the speedup jumps between 128 and 256.
        lstm_time = lstm_ms(512) * (1 if h <= 128 else 3)
        rows += [
            row("indrnn_triton", indrnn_ms(512), hidden=h, **config),
            row("lstm", lstm_time, hidden=h, **config, **algo),
        ]
    return rows


def section(report: str) -> str:
    start = report.index("## How each number was taken")
    return report[start : report.index("\n## ", start + 1)]


def test_a_gpu_report_names_the_method_the_algorithms_and_the_step_they_cause(tmp_path):
    text = section(build_report(write(tmp_path / "run.csv", gpu_rows())))
    assert "- `do_bench` (8 rows): L2 flushed before each timed call, launched eagerly." in text
    assert "| lstm       | persistent_small_h | 2" in text and "| lstm       | standard" in text
    assert "train H=64 float32, train H=128 float32" in text
    steps = [line for line in text.splitlines() if line.startswith("- Along H")]
    assert len(steps) == 1  # between 128 and 256 only: 64 -> 128 and 256 -> 512 keep their algorithm
    assert "`lstm` runs persistent_small_h at H=128 and standard at H=256" in steps[0]
    assert "the speedup over it goes" in steps[0]


def test_cuda_graph_rows_say_they_were_not_flushed(tmp_path):
    text = section(build_report(write(tmp_path / "run.csv", gpu_rows(timing="cuda_graph"), timing="cuda_graph")))
    assert "- `cuda_graph` (8 rows): caches not flushed between calls, replayed from a CUDA graph." in text


def test_a_file_from_before_the_columns_says_what_its_method_implies(tmp_path):
    path = write(tmp_path / "old.csv", gpu_rows(recorded=False))
    # Written without the columns at all, as older versions of the suite wrote files.
    header, *lines = path.read_text().splitlines()
    columns = header.split(",")
    keep = [i for i, c in enumerate(columns) if c not in ("l2_flush", "launch", "cudnn_algo")]
    path.write_text("\n".join(",".join(line.split(",")[i] for i in keep) for line in [header, *lines]) + "\n")
    text = section(build_report(path))
    assert "- `do_bench` (8 rows): L2 flushed before each timed call, launched eagerly." in text
    assert "predates the columns" in text
    assert "predates the record of which algorithm" in text
    assert "Along H" not in text


def test_a_cpu_run_says_no_cudnn_ran(tmp_path):
    rows = [
        replace(r, timing="cpu_wallclock", l2_flush="no", launch="eager", cudnn_algo="none" if r.cudnn_algo else "")
        for r in gpu_rows()
    ]
    text = section(build_report(write(tmp_path / "cpu.csv", rows, device_kind="cpu", timing="cpu_wallclock")))
    assert "- `cpu_wallclock` (8 rows): caches not flushed between calls, launched eagerly." in text
    assert "cuDNN: none ran for `lstm`" in text
    assert "Along H" not in text
