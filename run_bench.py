#!/usr/bin/env python
"""IndRNN benchmark suite: the one entry point. `python run_bench.py --help` lists the commands."""

import sys

from suite.commands.cli import main

if __name__ == "__main__":
    sys.exit(main())
