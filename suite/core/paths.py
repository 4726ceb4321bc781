"""Where the suite's files live, and the names of the files that sit beside a results CSV.

A run is a CSV with sidecars of the same stem: `<stem>.meta.json` (what produced it),
`<stem>.samples.jsonl` (every timed call), `<stem>.profile.csv` (`run --profile`'s breakdown),
`<stem>.summary.csv` (a converge run's one row per finished run) and `<stem>.md` (the report).
Its figures go to plots/<stem>/ when the run is kept in the repository's results/.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from suite.core.errors import ResultsError

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "results"  # committed runs, and where commands write by default
PLOTS_DIR = REPO_ROOT / "plots"  # the figures of the runs in RESULTS_DIR
# In a folder of runs measured at several commits (`history --measure`): what was run, commit by commit.
HISTORY_RECORD = "history.meta.json"
# In the folder of an A/B run (`ab`): the two commits, the settings and the interleaving, run by run.
AB_RECORD = "ab.meta.json"


def sidecar_path(csv_path: str | os.PathLike, suffix: str) -> Path:
    """results/run.csv -> results/run<suffix>, e.g. suffix ".samples.jsonl"."""
    p = Path(csv_path)
    return p.with_name(p.stem + suffix)


def meta_path(csv_path: str | os.PathLike) -> Path:
    return sidecar_path(csv_path, ".meta.json")


def samples_path(csv_path: str | os.PathLike) -> Path:
    return sidecar_path(csv_path, ".samples.jsonl")


def profile_path(csv_path: str | os.PathLike) -> Path:
    return sidecar_path(csv_path, ".profile.csv")


def summary_path(csv_path: str | os.PathLike) -> Path:
    return sidecar_path(csv_path, ".summary.csv")


def plots_dir(csv_path: str | os.PathLike) -> Path:
    """plots/<stem>/ for a run kept in the repository's results/; elsewhere (a scratch or CI run)
    <stem>-plots/ beside the CSV, so figures never land in the repository by surprise."""
    csv_path = Path(csv_path).resolve()
    if csv_path.parent == RESULTS_DIR:
        return PLOTS_DIR / csv_path.stem
    return csv_path.with_name(csv_path.stem + "-plots")


def results_in(path: str | os.PathLike) -> Path:
    """The results file a command was pointed at: the path itself, or for a folder the newest
    results CSV in it (one with its metadata beside it), said on stderr; ResultsError if none."""
    path = Path(path)
    if not path.is_dir():
        return path
    runs = [p for p in path.glob("*.csv") if meta_path(p).is_file()]
    if not runs:
        raise ResultsError(f"{path} is a folder with no results CSV (with its .meta.json) in it; pass a results CSV")
    newest = max(runs, key=lambda p: (p.stat().st_mtime, p.name))
    print(f"{path} is a folder: using its newest results file, {newest}", file=sys.stderr)
    return newest
