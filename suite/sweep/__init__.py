"""What is measured and how: providers, presets (data in presets/), timers, the correctness gate,
one config measured, the sweep over a grid, shards and their merge, the cost model, and the
profile of one config's step. Built on the core; knows nothing of reports."""
