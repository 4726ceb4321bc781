"""The benchmark harness, in layers that import downwards only (README "Layout"): commands ->
converge -> render and sweep -> core, all on top of kernels/."""
