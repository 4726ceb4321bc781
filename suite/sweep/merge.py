"""Merging the shards of one sweep: join the shards of one sweep (`run --shard K/N`) into one results file that report,
plot and compare read like any other.

Shards are joined only when they are parts of the same plan (plan hash), measured with the same
commit, on the same device, with the same timing method and denormal floats treated alike:
anything else would put numbers that cannot be compared into one file. A key delivered by several shards is kept once (an ok row over
a failed one, else the later file's); configs of the plan that no shard delivered are listed.
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import pandas as pd

from suite.core import env
from suite.core.errors import ResultsError, UsageError
from suite.core.paths import samples_path
from suite.core.schema import KEY_COLUMNS, RunMeta, SweepConfig, key_of, missing_configs, plan_hash
from suite.core.store import (
    ResultsWriter,
    SamplesWriter,
    read_meta,
    read_results,
    read_samples,
    result_row,
    write_meta,
)
from suite.sweep.providers import lineup

# Metadata that must agree between shards, with how a refusal names it.
MUST_AGREE = {
    "plan_hash": "plan",
    "git_commit": "commit",
    "device": "device",
    "timing": "timing method",
    "denormals": "denormal floats",
}


@dataclass(frozen=True)
class Merged:
    """What a merge wrote and what it found."""

    out: Path
    rows: int
    duplicates: int  # rows dropped because another shard delivered the same key
    missing: list[SweepConfig]  # configs of the plan with no (or not every) row in any shard


def _shard_meta(path: Path) -> RunMeta:
    if not path.is_file():  # say so before looking for its metadata
        raise ResultsError(f"results file {path} does not exist")
    try:
        meta = RunMeta(**read_meta(path))
    except TypeError as e:
        raise ResultsError(f"{path}: metadata this suite cannot read ({e})") from None
    if not meta.plan_hash:
        raise ResultsError(f"{path}: its metadata records no plan hash (written by an older version); cannot merge it")
    return meta


def check_compatible(metas: dict[Path, RunMeta]) -> None:
    """ResultsError naming the first file that differs from the first one, and how."""
    (first, ref), *others = metas.items()
    for path, meta in others:
        for attr, what in MUST_AGREE.items():
            mine, theirs = getattr(meta, attr), getattr(ref, attr)
            if mine != theirs:
                raise ResultsError(
                    f"{path} is not of the same sweep as {first}: {what} {mine!r} vs {theirs!r}; "
                    "merge only shards of one plan, commit, device, timing method and treatment of denormals"
                )


def whole_plan(meta: RunMeta) -> list[SweepConfig]:
    """The plan a file is a part of: a shard records it apart, a whole run in its configs."""
    plan = [SweepConfig(**c) for c in (meta.plan if meta.shard else meta.configs)]
    if plan_hash(plan) != meta.plan_hash:
        raise ResultsError(f"run {meta.run_id}: the recorded plan does not match its plan hash {meta.plan_hash}")
    return plan


def _merged_meta(metas: dict[Path, RunMeta], plan: list[SweepConfig], argv: list[str]) -> RunMeta:
    """The first shard's record for the whole plan: a new run id, the earliest start, the shards'
    seconds summed, the median of their copy bandwidths, and each shard's own record in notes."""
    shards = list(metas.values())
    copy = [m.copy_gbytes_per_s for m in shards if m.copy_gbytes_per_s is not None]
    walls = [m.wall_s for m in shards if m.wall_s is not None]
    now = env.utc_now()
    notes = {
        "merged_shards": [
            {
                "file": path.name,
                "shard": m.shard,
                "run_id": m.run_id,
                "timestamp": m.timestamp,
                "git_dirty": m.git_dirty,
                "driver": m.driver,
                "threads": m.threads,
                "copy_gbytes_per_s": m.copy_gbytes_per_s,
                "wall_s": m.wall_s,
                "machine": m.machine,
            }
            for path, m in metas.items()
        ]
    }
    return replace(
        shards[0],
        run_id=f"{now:%Y%m%dT%H%M%SZ}-merged-{secrets.token_hex(3)}",
        timestamp=min(m.timestamp for m in shards),
        git_dirty=any(m.git_dirty for m in shards),
        copy_gbytes_per_s=statistics.median(copy) if copy else None,
        argv=argv,
        notes={**shards[0].notes, **notes},
        configs=[asdict(c) for c in plan],
        shard="",
        plan=[],
        wall_s=sum(walls) if walls else None,
        machine={},
    )


def merge(shards: list[str | os.PathLike], out_csv: str | os.PathLike, argv: list[str] | None = None) -> Merged:
    """Join the shard files into out_csv (replaced if it exists) with merged metadata beside it."""
    paths = [Path(p) for p in shards]
    out = Path(out_csv)
    if not paths:
        raise UsageError("merge needs at least one shard file")
    if any(p.resolve() == out.resolve() for p in paths):
        raise UsageError(f"{out} is one of the shards; write the merged file elsewhere")
    metas = {p: _shard_meta(p) for p in paths}
    check_compatible(metas)
    plan = whole_plan(next(iter(metas.values())))
    frames = [read_results(p, lineup()).assign(_file=i) for i, p in enumerate(paths)]
    rows = pd.concat(frames, ignore_index=True)
    # Per key, keep an ok row over any other, then the later file's.
    rows = rows.assign(_ok=rows["status"] == "ok").sort_values(["_ok", "_file"], kind="stable")
    kept = rows.drop_duplicates(list(KEY_COLUMNS), keep="last").sort_index()
    # Written afresh beside a temporary name, then moved: a failed merge leaves no half file.
    # Each kept row takes its timing samples (compare's statistics) from the file it came from.
    samples = [read_samples(p) for p in paths]
    tmp = out.with_name(out.name + ".tmp")
    for stale in (tmp, samples_path(tmp)):
        stale.unlink(missing_ok=True)
    with ResultsWriter(tmp) as writer, SamplesWriter(tmp) as sample_writer:
        for record in kept.drop(columns="_ok").astype(object).to_dict("records"):
            row = result_row(record)
            writer.append(row)
            row_samples = samples[record["_file"]].get(key_of(record))
            if row_samples:
                sample_writer.append(row, row_samples)
    os.replace(samples_path(tmp), samples_path(out))
    os.replace(tmp, out)
    meta = _merged_meta(metas, plan, list(sys.argv if argv is None else argv))
    write_meta(out, meta)
    missing = missing_configs(plan, {key_of(r) for r in kept.to_dict("records")}, meta.timing)
    return Merged(out, len(kept), len(rows) - len(kept), missing)
