"""The claim under test: Fig. 2 of Deep IndRNN (arXiv 1910.06251), "IndRNN trains >10x faster than
LSTM", and the config of its cells. The sweep uses it to find the Fig. 2 steps it profiles, the
analysis to put our ratios beside the paper's; the paper's own figures are in data/paper_fig2.csv.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

CLAIM_FACTOR = 10.0  # the paper's claim: IndRNN trains ">10x faster than LSTM"
PAPER_FIG2 = Path(__file__).resolve().parent / "data" / "paper_fig2.csv"
FIG2_HIDDEN = 128
FIG2_BATCH = 32  # not stated in the paper; the authors' adding-problem script defaults to it
FIG2_LAYERS = (1, 2)
FIG2_INPUT_SIZE = 2  # the adding problem feeds (value, marker) at each step


def read_paper_fig2(path: str | os.PathLike = PAPER_FIG2) -> tuple[pd.DataFrame, list[str]]:
    """The paper's Fig. 2 figures and the source lines (the file's leading comments)."""
    text = Path(path).read_text().splitlines()
    source = [line.lstrip("#").strip() for line in text if line.startswith("#")]
    return pd.read_csv(path, comment="#"), source
