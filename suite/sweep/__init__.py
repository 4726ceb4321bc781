"""What is measured and how: providers, presets (data in presets/), timers, the correctness gate,
one config measured, the sweep over a grid, shards and their merge, the cost model, the
profile of one config's step, and the host time of one layer call. Built on the core; knows
nothing of reports."""
