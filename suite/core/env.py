"""What produced a run: device, software versions, code version, threads, time.

Every results file carries this record beside it (see suite.core.schema.RunMeta), because a
number without its hardware and conditions cannot be compared with anything.
"""

from __future__ import annotations

import datetime as dt
import platform
import secrets
import subprocess
import sys
from dataclasses import replace

import torch
import triton

from suite.core import paths
from suite.core.schema import RunMeta


def pick_device(requested: str = "auto") -> torch.device:
    """ "auto" is the GPU when there is one, else the CPU."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def _command(*argv: str) -> str | None:
    """Output of a small command, or None when it is missing or fails (nvidia-smi, git)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, cwd=paths.REPO_ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def driver_version() -> str | None:
    out = _command("nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader")
    return out.splitlines()[0].strip() if out else None


def git_state() -> tuple[str, bool]:
    """(commit, dirty): dirty when tracked files differ from that commit."""
    commit = _command("git", "rev-parse", "HEAD") or "unknown"
    status = _command("git", "status", "--porcelain", "--untracked-files=no")
    return commit, bool(status)


def commit_time(commit: str) -> str | None:
    """The committer date of a commit (ISO 8601), or None where git does not know the commit: the
    order of a history is the order of its commits, which a run's own timestamp need not follow."""
    return _command("git", "show", "-s", "--format=%cI", f"{commit}^{{commit}}", "--")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def resumed(old: RunMeta) -> RunMeta:
    """A resumed run's record: its own, noting when it was continued and with which commit."""
    commit, dirty = git_state()
    note = {"timestamp": utc_now().isoformat(), "git_commit": commit, "git_dirty": dirty}
    return replace(old, notes={**old.notes, "resumed": [*old.notes.get("resumed", []), note]})


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on a GPU (nothing to wait for on a CPU), before a clock is read."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def collect_meta(
    *,
    preset: str,
    device: torch.device,
    timing: str,
    copy_gbytes_per_s: float | None,
    argv: list[str] | None = None,
    notes: dict | None = None,
    **fields,
) -> RunMeta:
    """The metadata record of a run starting now on `device`."""
    now = utc_now()
    commit, dirty = git_state()
    cuda = device.type == "cuda"
    return RunMeta(
        run_id=f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}",
        preset=preset,
        timestamp=now.isoformat(),
        device=device_name(device),
        device_kind=device.type,
        timing=timing,
        git_commit=commit,
        git_dirty=dirty,
        git_commit_time=commit_time(commit) or "",
        python=sys.version.split()[0],
        torch=torch.__version__,
        triton=triton.__version__,
        cpu=cpu_name(),
        threads=torch.get_num_threads(),
        cuda=torch.version.cuda if cuda else None,
        driver=driver_version() if cuda else None,
        copy_gbytes_per_s=copy_gbytes_per_s,
        argv=list(sys.argv if argv is None else argv),
        notes=dict(notes or {}),
        **fields,
    )
