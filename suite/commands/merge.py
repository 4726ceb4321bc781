"""The `merge` command: join the shards of one sweep (`run --shard K/N`) into one results file
(suite.sweep.merge) and say what it found: rows, duplicates dropped, configs no shard delivered."""

from __future__ import annotations

import argparse

from suite.sweep.merge import Merged, merge


def print_merged(merged: Merged) -> None:
    print(f"merged: {merged.out} ({merged.rows} rows)")
    if merged.duplicates:
        print(
            f"dropped {merged.duplicates} duplicate rows (same key in several shards: kept the ok one, else the last)"
        )
    if merged.missing:
        print(f"{len(merged.missing)} configs of the plan were delivered by no shard:")
        for cfg in merged.missing:
            print(f"  {cfg.label()}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shards", nargs="+", metavar="SHARD.csv", help="results of `run --shard K/N` (any order)")
    parser.add_argument("-o", "--out", required=True, metavar="OUT.csv", help="merged results CSV to write")


def run(args: argparse.Namespace) -> int:
    print_merged(merge(args.shards, args.out))
    return 0
