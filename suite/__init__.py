"""The benchmark harness: providers, presets, timing, correctness gate, results, reports."""
