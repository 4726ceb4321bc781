"""Measuring one config: SweepConfig in, the fields of its result rows out (one per phase).

A provider that cannot run here (no CUDA, package missing, compile too long) gives skipped
rows; otherwise the model is built, compiled if it compiles (seconds recorded), gated against
its reference (suite.sweep.gate), and only then timed. An exception becomes a failed row, running
out of memory an oom row: one config's failure never ends a sweep.

Modes: train = forward, a Linear head on the last step, MSE loss, backward (the adding
problem's step, Deep IndRNN Fig. 2); infer = forward under inference_mode; recurrence = the
bare `indrnn_recurrence`, forward and backward as separate rows, with GB/s against the
copy bandwidth measured once per run. bidir = train's step for bidirectional models; packed =
train's step on a PackedSequence whose lengths are uniform in [T/4, T] (`packed_lengths`), the
head on each sequence's last step; its rows note valid_frac, the share of the T*B steps that
are real.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from kernels import indrnn_recurrence
from suite.core import env
from suite.core.method import TAKEN
from suite.core.schema import PHASES_OF_MODE, SweepConfig
from suite.sweep.cudnn import row_algo
from suite.sweep.gate import GateError, check_model, check_recurrence
from suite.sweep.providers import PROVIDERS, Built, Forward, Provider, dtype_of, param_count
from suite.sweep.timing import Timer


def peak_memory_mb(fn: Callable[[], object], device: torch.device) -> float:
    """Peak device memory of one untimed call of fn, counting what was allocated before it (the
    model, inputs, saved tensors): measured apart from the timer, whose L2-flush buffer
    (256 MiB in do_bench) would otherwise be counted in every row."""
    env.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    env.synchronize(device)
    return torch.cuda.max_memory_allocated(device) / 2**20


def _timed(fn: Callable[[], object], timer: Timer, device: torch.device) -> dict:
    """Time fn; the row fields it gives (times, samples, peak memory on GPU, how the time was
    taken), and under "samples_ms" the raw samples, which the sweep keeps beside the row."""
    peak = peak_memory_mb(fn, device) if device.type == "cuda" else None
    t = timer(fn)
    taken = TAKEN[t.method]
    return dict(
        p20_ms=t.p20_ms,
        p50_ms=t.p50_ms,
        p80_ms=t.p80_ms,
        n_samples=t.n_samples,
        peak_mem_mb=peak,
        l2_flush=taken.l2_flush,
        launch=taken.launch,
        samples_ms=list(t.samples_ms),
    )


def _tokens_per_s(cfg: SweepConfig, p50_ms: float) -> float:
    return cfg.seq_len * cfg.batch / (p50_ms * 1e-3)


def random_input(cfg: SweepConfig, device: torch.device, batch_first: bool) -> torch.Tensor:
    shape = (cfg.batch, cfg.seq_len, cfg.input_size) if batch_first else (cfg.seq_len, cfg.batch, cfg.input_size)
    return torch.randn(shape, device=device, dtype=dtype_of(cfg.dtype))


PACKED_SEED = 0  # every provider and every run gets the same lengths for a (T, B)


def packed_lengths(cfg: SweepConfig) -> torch.Tensor:
    """The lengths of a packed-mode batch: B integers uniform in [ceil(T/4), T], drawn from a
    fixed seed, so every provider of a comparison runs the same batch."""
    generator = torch.Generator().manual_seed(PACKED_SEED)
    return torch.randint(-(-cfg.seq_len // 4), cfg.seq_len + 1, (cfg.batch,), generator=generator)


def model_input(cfg: SweepConfig, device: torch.device, batch_first: bool) -> torch.Tensor | PackedSequence:
    """A fresh random input of a train/infer/bidir/packed config: packed mode packs it by
    `packed_lengths` (in the batch's own order, as a data loader gives it)."""
    x = random_input(cfg, device, batch_first)
    if cfg.mode != "packed":
        return x
    return pack_padded_sequence(x, packed_lengths(cfg), batch_first=batch_first, enforce_sorted=False)


def padded_forward(forward: Forward | None, cfg: SweepConfig) -> Forward | None:
    """forward, or in packed mode forward with its packed output padded again (zeros past each
    length), so the loss, the gate and the analysis see one tensor."""
    if forward is None or cfg.mode != "packed":
        return forward
    return lambda x: pad_packed_sequence(forward(x))[0]


def _last_steps(out: torch.Tensor, cfg: SweepConfig, batch_first: bool) -> torch.Tensor:
    """(B, F): each sequence's last step (the last of T, or of its length in packed mode)."""
    if batch_first:
        out = out.transpose(0, 1)
    if cfg.mode != "packed":
        return out[-1]
    last = (packed_lengths(cfg) - 1).to(out.device).view(1, -1, 1).expand(1, *out.shape[1:])
    return out.gather(0, last)[0]


PhaseRange = Callable[[str], AbstractContextManager]


def model_step(
    built: Built, cfg: SweepConfig, device: torch.device, phase: PhaseRange = nullcontext
) -> Callable[[], None]:
    """The timed call of a train or infer config, on fresh random inputs. `phase(name)` wraps
    each part of the step (zero_grad, forward, loss, backward): a profiler's ranges, or nothing."""
    x = model_input(cfg, device, built.batch_first)
    forward = padded_forward(built.forward, cfg)
    if cfg.mode == "infer":

        def infer() -> None:
            with torch.inference_mode(), phase("forward"):
                built.forward(x)

        return infer

    dtype = dtype_of(cfg.dtype)
    head = nn.Linear(built.output_size, 1).to(device=device, dtype=dtype)
    target = torch.randn(cfg.batch, 1, device=device, dtype=dtype)
    params = [*built.model.parameters(), *head.parameters()]

    def train() -> None:
        with phase("zero_grad"):
            for p in params:  # zero the gradients between iterations, as a training loop does
                p.grad = None
        with phase("forward"):
            out = forward(x)
        with phase("loss"):
            loss = nn.functional.mse_loss(head(_last_steps(out, cfg, built.batch_first)), target)
        with phase("backward"):
            loss.backward()

    return train


def measure_model(cfg: SweepConfig, provider: Provider, device: torch.device, timer: Timer) -> list[dict]:
    built = provider.build(cfg, device)
    training = cfg.mode != "infer"
    built.model.train(training)
    step = model_step(built, cfg, device)
    compile_s = None
    if provider.compiles:  # the first call compiles (backward too, in train mode)
        start = time.perf_counter()
        step()
        env.synchronize(device)
        compile_s = time.perf_counter() - start
    gate_x = model_input(cfg, device, built.batch_first)
    forward, reference = padded_forward(built.forward, cfg), padded_forward(built.reference, cfg)
    check_model(forward, reference, built.model, gate_x, cfg.dtype, training)
    fields = _timed(step, timer, device)
    extra = built.extra
    if cfg.mode == "packed":
        valid_frac = packed_lengths(cfg).sum().item() / (cfg.seq_len * cfg.batch)
        extra = ";".join(filter(None, [extra, f"valid_frac={valid_frac:.4f}"]))
    return [
        dict(
            phase=PHASES_OF_MODE[cfg.mode][0],
            tokens_per_s=_tokens_per_s(cfg, fields["p50_ms"]),
            params=param_count(built.model),
            compile_s=compile_s,
            extra=extra,
            cudnn_algo=row_algo(cfg, provider.cudnn_cell, device) if provider.cudnn_cell else "",
            **fields,
        )
    ]


def recurrence_inputs(cfg: SweepConfig, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (T, B, H), u and bias of a recurrence-mode config, on fresh random values."""
    x = torch.randn(cfg.seq_len, cfg.batch, cfg.hidden, device=device, dtype=dtype_of(cfg.dtype))
    u = torch.rand(cfg.hidden, device=device)  # U(0, 1): states stay bounded over any length
    bias = 0.1 * torch.randn(cfg.hidden, device=device)
    return x, u, bias


def recurrence_phases(
    x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor, backend: str
) -> tuple[tuple[str, Callable[[], object], int], ...]:
    """(phase, call, tensors of x's size it must move) of the bare recurrence: the forward, and
    the backward alone through a graph recorded once."""
    leaves = [t.clone().requires_grad_() for t in (x, u, bias)]
    h, _ = indrnn_recurrence(leaves[0], leaves[1], bias=leaves[2], backend=backend)
    dh = torch.randn_like(h)
    return (
        ("fwd", lambda: indrnn_recurrence(x, u, bias=bias, backend=backend), 2),
        ("bwd", lambda: torch.autograd.grad(h, leaves, dh, retain_graph=True), 3),
    )


def measure_recurrence(
    cfg: SweepConfig, provider: Provider, device: torch.device, timer: Timer, copy_gbps: float | None
) -> list[dict]:
    """Forward and backward of the bare recurrence over x (T, B, H), as two rows.
    Bytes that must move: forward reads x and writes h; backward reads h and dh, writes dx."""
    backend = provider.recurrence_backend
    T, H = cfg.seq_len, cfg.hidden
    x, u, bias = recurrence_inputs(cfg, device)
    check_recurrence(backend, x, u, bias, cfg.dtype)
    rows = []
    for phase, fn, tensors_moved in recurrence_phases(x, u, bias, backend):
        if phase == "bwd" and timer.method == "cuda_graph":
            # The autograd graph of h was recorded outside the capture, on another stream: its
            # backward cannot be captured and replayed on its own.
            rows.append(dict(phase=phase, status="skipped", reason="bwd alone is not timed as a CUDA graph"))
            continue
        fields = _timed(fn, timer, device)
        gbps = tensors_moved * x.numel() * x.element_size() / (fields["p50_ms"] * 1e-3) / 1e9
        rows.append(
            dict(
                phase=phase,
                tokens_per_s=_tokens_per_s(cfg, fields["p50_ms"]),
                gbytes_per_s=gbps,
                pct_copy_bw=100 * gbps / copy_gbps if copy_gbps else None,
                ns_per_step=fields["p50_ms"] * 1e6 / T,
                params=2 * H,  # u and bias
                extra=f"backend={backend}",
                **fields,
            )
        )
    return rows


def is_oom(error: BaseException) -> bool:
    """Out of device memory, however the allocator or a library reported it."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(error, RuntimeError) and "out of memory" in str(error).lower()


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    message = text[0] if text else ""
    reason = message if isinstance(error, GateError) else f"{type(error).__name__}: {message}"
    return reason[:300]


def measure(cfg: SweepConfig, device: torch.device, timer: Timer | None, copy_gbps: float | None) -> list[dict]:
    """Row fields of every phase of cfg: measured, or skipped/failed/oom with the reason.
    `timer` is None where the config's timing method cannot run on this device."""
    provider = PROVIDERS[cfg.provider]
    phases = PHASES_OF_MODE[cfg.mode]
    reason = provider.unavailable(cfg, device)
    if timer is None:
        reason = f"{cfg.timing} timing needs CUDA"
    if reason:
        return [dict(phase=p, status="skipped", reason=reason) for p in phases]
    try:
        if cfg.mode == "recurrence":
            rows = measure_recurrence(cfg, provider, device, timer, copy_gbps)
        else:
            rows = measure_model(cfg, provider, device, timer)
        return [{"status": "ok", **r} for r in rows]
    except Exception as error:  # noqa: BLE001 - one config's failure must not end the sweep
        status = "oom" if is_oom(error) else "failed"
        return [dict(phase=p, status=status, reason=_one_line(error)) for p in phases]
    finally:
        gc.collect()  # drop the failed config's tensors before the next one allocates
        if device.type == "cuda":
            torch.cuda.empty_cache()
