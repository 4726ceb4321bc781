"""The cost model's prior on a GPU at long T: what grows with the sequence length is counted (the
gate's step-by-step loop, the timed calls of the kernels and of cuDNN), so a million-step preset is
planned in minutes, not seconds; the CPU's flat guess is untouched. Keys of the walk kernels that
triton's autotune cache already holds are not tuned again, and the plan says how many it found."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace

import pytest
from harness_helpers import cfg

from kernels.sequential import autotune_configs
from suite.commands import validate
from suite.sweep import cost
from suite.sweep.cost import CostModel, TuningKey, length_s, prior_s, tuned_keys, tuning_s

MILLION = 2**20


def test_the_gate_walks_every_step_of_an_indrnn_that_is_not_the_loop_itself():
    scan = cfg("indrnn_triton_scan", "recurrence", seq_len=MILLION, batch=1, hidden=128, input_size=128)
    short = replace(scan, seq_len=4096)
    per_step = sum(cost.LOOP_OPS.values()) * cost.LAUNCH_S  # the torch loop
    assert prior_s(scan, "cuda") - prior_s(short, "cuda") >= per_step * (MILLION - 4096)
    model = cfg("indrnn_triton", "train", seq_len=MILLION, batch=1, hidden=128)
    assert length_s(model) >= sum(cost.LOOP_OPS.values()) * cost.LAUNCH_S * MILLION  # the torch loop gates a model
    loop = cfg("indrnn_torch_seq", "infer", seq_len=MILLION)
    assert length_s(loop) == 0  # its own reference, and its calls are in the eager loop's figure
    assert length_s(cfg("transformer", "train", seq_len=MILLION)) == 0


def test_long_calls_of_cudnn_and_the_walk_count_as_what_they_run():
    lstm = cfg("lstm", "infer", seq_len=MILLION, batch=1, hidden=128)
    assert length_s(replace(lstm, mode="train")) == pytest.approx(3 * length_s(lstm))  # forward + backward
    assert length_s(lstm) == pytest.approx(cost.LONG_CALLS * MILLION * cost.CUDNN_STEP_S)
    few = cfg("indrnn_triton_seq", "infer", seq_len=MILLION, batch=1, hidden=128)
    many = replace(few, batch=2**12, hidden=2**10)  # past the latency floor: bytes decide
    assert length_s(many) > length_s(few) > length_s(replace(few, seq_len=4096))


def test_the_walk_autotunes_and_the_scan_does_not_and_a_cpu_keeps_its_flat_guess():
    seq = cfg("indrnn_triton_seq", "recurrence", seq_len=4096)
    assert prior_s(seq, "cuda") > prior_s(replace(seq, provider="indrnn_triton_scan"), "cuda") + 7
    assert prior_s(seq, "cpu") == prior_s(cfg("lstm", seq_len=MILLION), "cpu") == cost.CPU_GUESS_S


# ---------------------------------------------------------------------------- triton's autotune cache

KERNEL_NAMES = {"fwd": "recurrence_fwd_kernel", "bwd": "recurrence_bwd_kernel"}


def write_tuned(cache_dir, kernel: str, n_cols: int, t_bucket: int, dtype: str = "float32", space=None) -> None:
    """One tuned key as triton's autotuner writes it: <cache>/<hash>/<kernel>.autotune.json, the key's
    values then the dtype of each tensor argument (x first)."""
    flags = [True, False, False, False, 0] if kernel == "fwd" else [False, False, False, 0]
    key = [n_cols, t_bucket, *flags, f"torch.{dtype}", "torch.float32"]
    configs = autotune_configs(single=False, backward=kernel == "bwd") if space is None else space
    record = {"key": key, "configs_timings": [[c.__dict__, [1.0, 1.0, 1.0]] for c in configs]}
    folder = cache_dir / f"{kernel}{n_cols}X{t_bucket}{dtype}".upper()  # any name: the hash is not checked
    folder.mkdir(parents=True)
    (folder / f"{KERNEL_NAMES[kernel]}.autotune.json").write_text(json.dumps(record))


def test_the_cache_is_read_for_todays_space_only(tmp_path):
    write_tuned(tmp_path, "fwd", 4096, 1024)
    write_tuned(tmp_path, "bwd", 4096, 1024, "bfloat16")
    write_tuned(tmp_path, "bwd", 512, 256, space=autotune_configs(single=False)[:3])  # another space: retuned
    (tmp_path / "BROKEN").mkdir()
    (tmp_path / "BROKEN" / "recurrence_fwd_kernel.autotune.json").write_text("{")
    (tmp_path / "OTHER").mkdir()  # another kernel's file
    (tmp_path / "OTHER" / "scan_carry_kernel.autotune.json").write_text(json.dumps({"key": [1, 2]}))
    assert tuned_keys(tmp_path) == {TuningKey("fwd", 4096, 1024, "float32"), TuningKey("bwd", 4096, 1024, "bfloat16")}
    assert tuned_keys(tmp_path / "missing") == frozenset()


def test_a_warm_key_is_not_tuned_again(tmp_path):
    train = cfg("indrnn_triton", "train", seq_len=1000, batch=32, hidden=128)  # T=1000 lies in the bucket of 1024
    fwd, bwd = (TuningKey(k, 4096, 1024, "float32") for k in ("fwd", "bwd"))
    assert cost.tuning_keys(train) == (fwd, bwd)
    assert cost.tuning_keys(replace(train, mode="infer")) == (fwd,)
    for not_tuned in ("indrnn_triton_scan", "indrnn_torch", "lstm"):
        assert cost.tuning_keys(replace(train, provider=not_tuned)) == ()
    assert cost.tuning_keys(replace(train, timing="cuda_graph")) == ()  # tuned by its eager twin
    full = tuning_s(train)
    per_config = cost.TUNE_CONFIG_S
    assert full == per_config * (len(autotune_configs(single=False)) + len(autotune_configs(False, backward=True)))
    assert tuning_s(train, frozenset({fwd})) == per_config * len(autotune_configs(False, backward=True))
    assert prior_s(train, "cuda") - prior_s(train, "cuda", frozenset({fwd, bwd})) == pytest.approx(full)
    write_tuned(tmp_path / "cache", "fwd", 4096, 1024)
    write_tuned(tmp_path / "cache", "bwd", 4096, 1024)
    costs = CostModel.from_results("cuda", tmp_path, tmp_path / "cache")  # no earlier GPU run: the prior
    assert costs.seconds(train) == pytest.approx(prior_s(train, "cuda") - full)
    assert not costs.cold([train]) and costs.cold([train, replace(train, seq_len=2048)])
    assert CostModel.from_results("cpu", tmp_path, tmp_path / "cache").tuned == frozenset()


def test_validate_counts_the_compile_and_tuning_of_cold_groups_only_and_says_how_many_keys_were_warm(tmp_path, capsys):
    cold = CostModel.from_results("cuda", tmp_path, tmp_path / "empty")
    plan = {i.name: i for i in validate.build_plan(cold)}
    targets = plan["recurrence fp32 (kernel targets)"]
    for c in targets.configs:  # every key of the fp32 kernel targets, tuned in an earlier process
        for key in cost.tuning_keys(c):
            write_tuned(tmp_path / "cache", key.kernel, key.n_cols, key.t_bucket)
    warm = CostModel.from_results("cuda", tmp_path, tmp_path / "cache")
    warmed = {i.name: i for i in validate.build_plan(warm)}
    tuning = sum(tuning_s(c) for c in targets.configs)
    saved = targets.estimate_s - warmed[targets.name].estimate_s
    assert saved == pytest.approx(validate.COMPILE_SPACE_S + tuning)
    bf16 = "recurrence bf16"  # other keys: still cold, compile and all
    assert warmed[bf16].estimate_s == plan[bf16].estimate_s
    figure = "paper preset: Fig. 2 (batch 32)"  # T=1024 at the paper's size is a kernel target's key
    assert 0 < plan[figure].estimate_s - warmed[figure].estimate_s < plan[figure].estimate_s
    kept, dropped, _ = validate.plan_for(600, warm)
    validate.print_plan(kept, dropped, 600, warm)
    keys = {k for i in kept for c in i.configs for k in cost.tuning_keys(c)}
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("autotuning: "))
    assert line.startswith(f"autotuning: 4 of the {len(keys)} autotune keys of the walk kernels are already in")
    assert line.endswith(f": tuning is counted for the other {len(keys) - 4}")


NAMING = """
import json, os, sys
from pathlib import Path
from triton.backends.compiler import GPUTarget
from triton.runtime import driver

class Hopper:  # the target a GPU would report: no GPU needed to write the cache
    def get_current_target(self):
        return GPUTarget("cuda", 90, 32)

driver.set_active(Hopper())
from kernels.sequential import recurrence_bwd_kernel, autotune_configs
from suite.sweep.cost import TuningKey, tuned_keys

tuner = recurrence_bwd_kernel
configs = autotune_configs(single=False, backward=True)
key = (4096, 1024, False, False, False, 0, "torch.bfloat16", "torch.bfloat16", "torch.float32")

def bench():
    tuner.configs_timings = {c: [1.0, 1.0, 1.0] for c in configs}

assert tuner.check_disk_cache(key, configs, bench) is False  # cold: benchmarked and written
print(sorted(str(p.relative_to(os.environ["TRITON_CACHE_DIR"])) for p in Path(os.environ["TRITON_CACHE_DIR"]).rglob("*.json")))
assert tuned_keys(Path(os.environ["TRITON_CACHE_DIR"])) == {TuningKey("bwd", 4096, 1024, "bfloat16")}
"""


@pytest.mark.slow
def test_the_cache_is_read_where_triton_itself_writes_it(tmp_path):
    """triton's own autotuner (compiled mode, a GPU target stood in for) writes a tuned key; the
    cost model finds it: the file's place and fields are triton's, not this suite's guess."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_CACHE_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", NAMING], cwd=cost.paths.REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("/recurrence_bwd_kernel.autotune.json']")
