"""Every committed results file re-renders to its committed report, byte for byte.

A report is rebuilt from its files alone (rows, metadata, sidecars), so rendering a committed run
again must give exactly the committed markdown: a refactor of the renderers that changes one
character of any report fails here. Nothing is normalised: the provenance in a report (device,
versions, commit, timestamp) comes from the run's metadata, not from the machine that renders it.
The `report` command is used, so the choice between the sweep's and the converge renderer is
tested too.
"""

from pathlib import Path

import pytest

from suite.commands.cli import main

RESULTS = Path(__file__).resolve().parents[1] / "results"
# Every results file of a run: a CSV with its metadata beside it (a converge run's summary CSV
# is a sidecar of its curves, not a run of its own).
COMMITTED = sorted(p for p in RESULTS.glob("*.csv") if p.with_name(p.stem + ".meta.json").is_file())


def test_the_committed_runs_are_the_sweeps_and_the_converge_run():
    names = [p.name for p in COMMITTED]
    assert any(n.startswith("converge-") for n in names) and any(not n.startswith("converge-") for n in names)


@pytest.mark.parametrize("csv", COMMITTED, ids=lambda p: p.stem)
def test_a_committed_report_is_what_its_files_render(csv, tmp_path, capsys):
    out = tmp_path / "again.md"
    assert main(["report", str(csv), "--out", str(out)]) == 0
    assert out.read_bytes() == csv.with_suffix(".md").read_bytes()
