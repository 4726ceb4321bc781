"""Measuring other commits of this repository, each with its own code: the commit checked out in a
temporary folder (`git worktree add --detach`), its own `run_bench.py --preset P --out F` run in a
process of its own. Every version of the suite keeps that interface, so an old commit (the flat
suite/ of before the packages) is measured as its authors measured it.

`measure_commits` runs one preset at a list of commits into one folder, the raw material of a
history; `ab` (suite.sweep.ab) interleaves two commits. The folder's `history.meta.json` records
each commit's state (running, measured, failed, cut) as it changes, so a cut measurement continues
where it stopped (`--resume`: a cut commit's own run continues its file with its own `--resume`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from suite.core import env, machine, paths
from suite.core.errors import UsageError
from suite.core.paths import HISTORY_RECORD
from suite.core.progress import Progress
from suite.core.store import read_record, write_record

LINK = ".bench-out"  # inside a checkout: a link to the folder its results go to (relative paths in its metadata)
CHILD_GRACE_S = 60.0  # after Ctrl-C: how long a commit's run may take to write its last row and metadata


def git(*args: str) -> str:
    """Output of a git command in this repository; UsageError with git's own first line on failure."""
    done = subprocess.run(["git", *args], cwd=paths.REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["failed"])[0]
        raise UsageError(f"git {' '.join(args)}: {why}")
    return done.stdout.strip()


def resolve(ref: str) -> str:
    """The full hash of a commit named by any git revision (a branch, HEAD~2, a short hash)."""
    try:
        return git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except UsageError:
        raise UsageError(f"{ref!r} names no commit of this repository") from None


def commits_of(revisions: list[str]) -> list[str]:
    """The commits a list of revisions names, oldest first, each once: `A..B` is the first-parent
    line from A (excluded) to B, anything else one commit."""
    out: dict[str, None] = {}
    for rev in revisions:
        listed = git("rev-list", "--first-parent", "--reverse", rev).split() if ".." in rev else [resolve(rev)]
        out.update(dict.fromkeys(listed))
    if not out:
        raise UsageError(f"{' '.join(revisions)} names no commit")
    return list(out)


def describe_commit(commit: str) -> dict:
    """What a history or an A/B record says of a commit: its hash, committer date and subject."""
    return {
        "commit": commit,
        "commit_time": env.commit_time(commit) or "",
        "subject": git("show", "-s", "--format=%s", commit),
    }


class Worktrees:
    """Commits checked out side by side in a temporary folder, removed on leaving (on Ctrl-C too)."""

    def __init__(self) -> None:
        self.folder: Path | None = None
        self.trees: dict[str, Path] = {}

    def __enter__(self) -> Worktrees:
        self.folder = Path(tempfile.mkdtemp(prefix="indrnn-commits-"))
        return self

    def checkout(self, commit: str, out_dir: Path) -> Path:
        """The commit's tree (checked out once), with LINK pointing at out_dir."""
        if commit not in self.trees:
            tree = self.folder / commit[:12]
            git("worktree", "add", "--detach", "--quiet", str(tree), commit)
            self.trees[commit] = tree
        link = self.trees[commit] / LINK
        if link.is_symlink():
            link.unlink()
        link.symlink_to(out_dir.resolve(), target_is_directory=True)
        return self.trees[commit]

    def __exit__(self, *exc) -> None:
        for tree in self.trees.values():
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(tree)], cwd=paths.REPO_ROOT, capture_output=True
            )
        shutil.rmtree(self.folder, ignore_errors=True)
        subprocess.run(["git", "worktree", "prune"], cwd=paths.REPO_ROOT, capture_output=True)


def run_preset(tree: Path, out_dir: Path, out_name: str, preset: str, resume: bool, log: Path) -> int:
    """Run the checkout's own `run_bench.py --preset P --out F` (F = out_dir/out_name, named through
    LINK so that the run's metadata holds a relative path), its output appended to `log`; its exit
    status. On Ctrl-C the run gets the time to write what it measured, then is stopped."""
    argv = ["run_bench.py", "--preset", preset, "--out", f"{LINK}/{out_name}", "--no-progress"]
    argv += ["--resume"] if resume else []
    child_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # its own code, never this one's
    with open(log, "a") as f:
        f.write(f"$ python {' '.join(argv)}\n")
        f.flush()
        child = subprocess.Popen([sys.executable, *argv], cwd=tree, stdout=f, stderr=subprocess.STDOUT, env=child_env)
        try:
            return child.wait()
        except KeyboardInterrupt:
            _stop(child)
            raise
        finally:
            # Figures of one commit's run are not kept (the `plot` command redraws them from the files).
            results = out_dir / out_name
            shutil.rmtree(results.with_name(results.stem + "-plots"), ignore_errors=True)


def _stop(child: subprocess.Popen) -> None:
    """A Ctrl-C at the terminal reached the child too: let it finish writing; otherwise ask it, then insist."""
    for ask in (None, signal.SIGINT):
        if ask is not None and child.poll() is None:
            child.send_signal(ask)
        try:
            child.wait(timeout=CHILD_GRACE_S if ask else 5)
            return
        except subprocess.TimeoutExpired:
            continue
    child.kill()
    child.wait()


@dataclass(frozen=True)
class CommitJob:
    """One commit to measure, as the progress line shows it."""

    commit: str
    subject: str

    def label(self) -> str:
        return f"{self.commit[:8]} {self.subject[:60]}"


def read_measured(folder: Path) -> dict | None:
    """The record of the commits measured into `folder`, None before the first."""
    path = folder / HISTORY_RECORD
    return read_record(path) if path.is_file() else None


def measure_commits(
    commits: list[str], folder: Path, preset: str, *, resume: bool, progress: bool, argv: list[str]
) -> dict:
    """Measure `preset` at each commit (oldest first) into folder/<preset>-<commit>.csv; commits
    measured (or failed) before are not run again, a cut one continues only with `resume`. Returns
    the folder's record. KeyboardInterrupt after the cut commit's state is saved."""
    folder.mkdir(parents=True, exist_ok=True)
    record_path = folder / HISTORY_RECORD
    record = read_measured(folder) or {"preset": preset, "argv": argv, "commits": []}
    if record["preset"] != preset:
        raise UsageError(f"{folder} holds a history of preset {record['preset']!r}, not {preset!r}; use another folder")
    known = {c["commit"]: c for c in record["commits"]}
    cut = [c for c in commits if known.get(c, {}).get("status") in ("running", "cut")]
    if cut and not resume:
        raise UsageError(f"{folder}: the run of commit {cut[0][:12]} was cut; pass --resume to continue it")
    todo = [c for c in commits if known.get(c, {}).get("status") not in ("measured", "failed")]
    if not todo:
        return record
    bar = Progress(len(todo), progress)
    with Worktrees() as trees:
        try:
            for i, commit in enumerate(todo):
                entry = known.get(commit) or describe_commit(commit)
                if commit not in known:
                    record["commits"].append(entry)
                    known[commit] = entry
                bar.show(i, CommitJob(commit, entry["subject"]))
                name = f"{preset}-{commit[:12]}.csv"
                entry.update(
                    file=name, log=f"{preset}-{commit[:12]}.log", status="running", load_start=machine.load_average()
                )
                write_record(record_path, record)
                started = time.perf_counter()
                resume_file = (folder / name).is_file() and (folder / name).stat().st_size > 0
                code = run_preset(
                    trees.checkout(commit, folder), folder, name, preset, resume_file, folder / entry["log"]
                )
                entry.update(
                    status="measured" if code == 0 else "failed",
                    exit_code=code,
                    seconds=round(time.perf_counter() - started, 1),
                    load_end=machine.load_average(),
                )
                write_record(record_path, record)
        except KeyboardInterrupt:
            for entry in record["commits"]:
                if entry.get("status") == "running":
                    entry["status"] = "cut"
            write_record(record_path, record)
            raise
        finally:
            bar.close()
    return record
