"""A/B: two commits measured side by side, each with its own code, alternately, so that a drift
of the machine (another job, a clock, the cache of a shared disk) hits both alike.

Both commits are checked out in a temporary folder (suite.sweep.commits.Worktrees). Each round
runs the preset once per side, base then head, every run a process of its own running that
commit's `run_bench.py`: base, head, base, head, ... A burst of load from another job then lands
on both sides alike, one turn each, rather than on all the turns of one side. Each side's rounds
are then pooled into one results file per side (every timed call of every
round, or the rounds' medians where a commit kept no samples), which compare judges
(suite.render.compare) like any two runs.

The folder holds `ab.meta.json` (the commits, the settings, and each run of the interleaving with
its state, times and the machine's load, written as it changes), `rounds/` (each run's files and
log) and, once every round is done, `base.csv` and `head.csv` with their metadata and samples.
A cut A/B continues with --resume: finished runs are kept, a cut one continues its own file.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from suite.core import env, machine
from suite.core.errors import ResultsError, UsageError
from suite.core.mixing import refuse_mixed
from suite.core.paths import AB_RECORD
from suite.core.progress import Progress
from suite.core.schema import RunMeta, key_of
from suite.core.store import (
    ResultsWriter,
    SamplesWriter,
    read_meta,
    read_record,
    read_results,
    read_samples,
    result_row,
    write_meta,
    write_record,
)
from suite.sweep.commits import Worktrees, describe_commit, run_preset
from suite.sweep.providers import lineup
from suite.sweep.timing import QUANTILES

SIDES = ("base", "head")
# Row fields that scale with 1 / time, and with time: rescaled when a row's median is pooled.
PER_TIME = ("tokens_per_s", "gbytes_per_s", "pct_copy_bw")
WITH_TIME = ("ns_per_step",)


def interleaving(rounds: int) -> list[tuple[int, str]]:
    """(round, side) in the order they run: base, head, base, head, ..."""
    return [(r, side) for r in range(1, rounds + 1) for side in SIDES]


def new_record(
    base: str, head: str, refs: tuple[str, str], preset: str, rounds: int, settings: dict, argv: list
) -> dict:
    """The record of an A/B about to start: both commits, the settings, the interleaving to run."""
    return {
        "preset": preset,
        "rounds": rounds,
        "base": {"ref": refs[0], **describe_commit(base)},
        "head": {"ref": refs[1], **describe_commit(head)},
        "settings": settings,
        "argv": argv,
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "started": env.utc_now().isoformat(),
        "order": [
            {
                "round": r,
                "side": side,
                "file": f"rounds/{side}-{r}.csv",
                "log": f"rounds/{side}-{r}.log",
                "status": "pending",
            }
            for r, side in interleaving(rounds)
        ],
    }


def read_ab(folder: Path) -> dict:
    """The record of the A/B in `folder`; UsageError where there is none."""
    if not (folder / AB_RECORD).is_file():
        raise UsageError(f"{folder} holds no A/B run ({AB_RECORD} is missing)")
    return read_record(folder / AB_RECORD)


def save_ab(folder: Path, record: dict) -> None:
    write_record(folder / AB_RECORD, record)


class Turn:
    """One turn of the interleaving (a side in a round), as the progress line shows it."""

    def __init__(self, entry: dict, commit: str) -> None:
        self.entry, self.commit = entry, commit

    def label(self) -> str:
        return f"round {self.entry['round']} {self.entry['side']} ({self.commit[:8]})"


def _check_rounds(folder: Path, record: dict, allow: set[str]) -> None:
    """Finished runs must agree on device, preset and timing (suite.core.mixing) unless allowed."""
    done = [e for e in record["order"] if e["status"] == "done"]
    metas = [(f"{e['side']} round {e['round']}", read_meta(folder / e["file"])) for e in done]
    notes = refuse_mixed(metas, allow)
    record["notes"] = notes


def measure_ab(folder: Path, record: dict, *, progress: bool, allow: set[str]) -> dict:
    """Run every run of the record's interleaving that is not done, in order, updating the record
    after each; then pool each side's rounds. KeyboardInterrupt after the cut run is recorded."""
    (folder / "rounds").mkdir(parents=True, exist_ok=True)
    todo = [e for e in record["order"] if e["status"] != "done"]
    bar = Progress(len(todo), progress)
    with Worktrees() as trees:
        try:
            for i, entry in enumerate(todo):
                commit = record[entry["side"]]["commit"]
                bar.show(i, Turn(entry, commit))
                results = folder / entry["file"]
                resume = results.is_file() and results.stat().st_size > 0
                entry.update(status="running", started=env.utc_now().isoformat(), load_start=machine.load_average())
                save_ab(folder, record)
                start = time.perf_counter()
                code = run_preset(
                    trees.checkout(commit, folder),
                    folder,
                    entry["file"],
                    record["preset"],
                    resume,
                    folder / entry["log"],
                )
                entry.update(
                    status="done" if code == 0 else "failed",
                    exit_code=code,
                    seconds=round(time.perf_counter() - start, 1),
                    load_end=machine.load_average(),
                )
                save_ab(folder, record)
                if code != 0:
                    raise ResultsError(
                        f"round {entry['round']} {entry['side']} (commit {commit[:12]}) exited {code}: see {folder / entry['log']}"
                    )
                _check_rounds(folder, record, allow)
                save_ab(folder, record)
        except KeyboardInterrupt:
            for entry in record["order"]:
                if entry["status"] == "running":
                    entry["status"] = "cut"
            save_ab(folder, record)
            raise
        finally:
            bar.close()
    for side in SIDES:
        pool_rounds(folder, record, side)
    return record


def _pooled_meta(folder: Path, record: dict, side: str, files: list[Path]) -> RunMeta:
    """The first round's record of the side, for the pooled file: its own run id, the side's commit."""
    first = read_meta(files[0])
    known = {f.name for f in fields(RunMeta)}
    try:
        meta = RunMeta(**{k: v for k, v in first.items() if k in known})
    except TypeError as e:
        raise ResultsError(f"{files[0]}: its metadata is not a run record this suite can read ({e})") from None
    seconds = sum(e.get("seconds") or 0.0 for e in record["order"] if e["side"] == side)
    return RunMeta(
        **{
            **asdict(meta),
            "run_id": f"ab-{side}-{env.utc_now():%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}",
            "git_commit": record[side]["commit"],
            "git_commit_time": record[side]["commit_time"],
            "git_dirty": False,
            "argv": record["argv"],
            "wall_s": seconds,
            "notes": {**meta.notes, "ab": {"side": side, "rounds": [str(p.relative_to(folder)) for p in files]}},
        }
    )


def pool_rounds(folder: Path, record: dict, side: str) -> Path:
    """folder/<side>.csv: one row per key over the side's rounds. A config ok in every round it
    appears in gets the quantiles of every timed call of every round (or of the rounds' medians,
    where a round kept no samples); one that failed in any round keeps that round's row."""
    files = [folder / e["file"] for e in record["order"] if e["side"] == side]
    meta = _pooled_meta(folder, record, side, files)
    rounds = [{key_of(rec): rec for rec in read_results(p, lineup()).to_dict("records")} for p in files]
    samples = [read_samples(p) for p in files]
    keys = list(dict.fromkeys(k for by_key in rounds for k in by_key))
    out = folder / f"{side}.csv"
    tmp = out.with_name(f"{side}.tmp.csv")
    for stale in (tmp, tmp.with_name(f"{side}.tmp.samples.jsonl")):
        stale.unlink(missing_ok=True)
    with ResultsWriter(tmp) as writer, SamplesWriter(tmp) as sample_writer:
        for key in keys:
            present = [
                (by_key[key], kept.get(key)) for by_key, kept in zip(rounds, samples, strict=True) if key in by_key
            ]
            broken = [rec for rec, _ in present if rec["status"] != "ok"]
            first = present[0][0]
            if broken:
                writer.append(result_row({**broken[0], "run_id": meta.run_id}))
                continue
            calls = [s for _, kept in present for s in kept] if all(kept for _, kept in present) else None
            values = calls or [rec["p50_ms"] for rec, _ in present]
            p20, p50, p80 = (float(q) for q in np.quantile(values, QUANTILES))
            scale = first["p50_ms"] / p50
            pooled = {
                **first,
                "run_id": meta.run_id,
                "p20_ms": p20,
                "p50_ms": p50,
                "p80_ms": p80,
                "n_samples": len(values),
                **{c: first[c] * scale for c in PER_TIME if c in first},
                **{c: first[c] / scale for c in WITH_TIME if c in first},
            }
            row = result_row(pooled)
            writer.append(row)
            if calls:
                sample_writer.append(row, calls)
    write_meta(tmp, meta)
    for suffix in (".csv", ".meta.json", ".samples.jsonl"):
        os.replace(tmp.with_name(f"{side}.tmp{suffix}"), out.with_name(f"{side}{suffix}"))
    return out
