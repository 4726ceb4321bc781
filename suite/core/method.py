"""How a number was taken: what a timer does around each timed call, and which cuDNN algorithm a
recurrent baseline ran. Rows record both (ResultRow.l2_flush, .launch, .cudnn_algo), and reports
say them, because the same step timed another way is another number.

- do_bench (triton.testing.do_bench) writes a 256 MiB buffer before every timed call, so each
  call starts with the GPU's L2 cache flushed of its inputs, and launches the step eagerly.
- cuda_graph (triton.testing.do_bench_cudagraph) captures many calls in one CUDA graph and times
  its replays: no launch overhead, and no flush between the calls, whose inputs stay in L2.
- cpu_wallclock (the CPU timer) calls the step again and again: its caches stay warm.

cuDNN: PyTorch picks an RNN algorithm per call (aten/src/ATen/native/cudnn/RNN.cpp, get_algo);
suite.sweep.cudnn encodes that rule. A speedup over nn.LSTM can step along hidden size or dtype
for the baseline's reasons when that choice changes.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Taken:
    """What a timing method does: the cache flushed before each timed call (yes | no), and the
    step launched eagerly or replayed from a CUDA graph (eager | cuda_graph)."""

    l2_flush: str
    launch: str

    def describe(self) -> str:
        flush = "L2 flushed before each timed call" if self.l2_flush == "yes" else "caches not flushed between calls"
        launch = "replayed from a CUDA graph" if self.launch == "cuda_graph" else "launched eagerly"
        return f"{flush}, {launch}"


TAKEN = {
    "do_bench": Taken(l2_flush="yes", launch="eager"),
    "cuda_graph": Taken(l2_flush="no", launch="cuda_graph"),
    "cpu_wallclock": Taken(l2_flush="no", launch="eager"),
}

# The cuDNN RNN algorithms PyTorch chooses between, and what each is.
CUDNN_ALGORITHMS = {
    "standard": "cuDNN's standard RNN algorithm: per step, GEMMs of the recurrent weights and the gates",
    "persistent_small_h": "cuDNN's persistent kernel for small hidden sizes: the recurrent weights stay on chip "
    "across steps (CUDNN_RNN_ALGO_PERSIST_STATIC_SMALL_H)",
    "persistent": "cuDNN's persistent kernel (CUDNN_RNN_ALGO_PERSIST_STATIC), fp16 only",
}
NO_CUDNN = "none"  # the row's model ran without cuDNN: on a CPU, or with cuDNN disabled
