"""One converge run: a model trained on the adding problem until its test MSE reaches the target
or a budget runs out.

The model is built from the seed and trained on a stream of fresh batches drawn from the same
seed (so every model at a seed sees the same data), and scored every `eval_every` steps on a
fixed held-out set of `test_size` sequences per T (the same for every model and seed). A run
stops at the first evaluation whose test MSE reaches the target, or when a budget runs out:
`max_steps`, or `max_seconds` of training (checked at each evaluation, so a run may exceed it by
up to one evaluation interval). Only the training steps are timed (data for the next interval
is drawn before the clock starts, and on CUDA the clock waits for the device); evaluation time
is recorded apart.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch
from torch import nn

from suite.converge.adding import adding_batch
from suite.converge.files import CurvePoint, Outcome, RunKey, Settings
from suite.converge.models import MODELS, AddingModel, ModelSpec
from suite.core import env
from suite.sweep.providers import param_count

TEST_SEED = 10_000  # the held-out set's seed: apart from any training seed a preset uses
EVAL_CHUNK = 250  # sequences scored at once: bounds the Transformer's attention memory at long T
STOP_REASONS = ("target", "max_steps", "max_seconds", "diverged")


def held_out_set(seq_len: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed test set of length seq_len: the same sequences for every model and seed."""
    x, y = adding_batch(size, seq_len, torch.Generator().manual_seed(TEST_SEED + seq_len))
    return x.to(device), y.to(device)


@torch.no_grad()
def held_out_mse(model: nn.Module, test_set: tuple[torch.Tensor, torch.Tensor]) -> float:
    model.eval()
    x, y = test_set
    squared = sum(
        float(((model(xc) - yc) ** 2).sum()) for xc, yc in zip(x.split(EVAL_CHUNK), y.split(EVAL_CHUNK), strict=True)
    )
    model.train()
    return squared / len(y)


def train_step(
    model: AddingModel, optimizer: torch.optim.Optimizer, spec: ModelSpec, x: torch.Tensor, y: torch.Tensor
) -> torch.Tensor:
    """One optimiser step on a batch; returns the batch loss (left on the device, not synchronised)."""
    optimizer.zero_grad(set_to_none=True)
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    if spec.grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), spec.grad_clip)
    optimizer.step()
    model.after_optimizer_step()
    return loss.detach()


def _stop_reason(point: CurvePoint, settings: Settings) -> str | None:
    if point.test_mse <= settings.target:
        return "target"
    if not math.isfinite(point.test_mse):
        return "diverged"
    if point.step >= settings.max_steps:
        return "max_steps"
    if point.train_s >= settings.max_seconds:
        return "max_seconds"
    return None


def train_to_target(
    key: RunKey,
    settings: Settings,
    device: torch.device,
    test_set: tuple[torch.Tensor, torch.Tensor],
    record: Callable[[CurvePoint], None],
) -> Outcome:
    """Train key's model until its test MSE reaches the target or a budget runs out; `record`
    receives every evaluation (step 0 included) as it is made."""
    spec = MODELS[key.model]
    torch.manual_seed(key.seed)  # the model's initial weights
    model = spec.build(key.seq_len, device)
    optimizer = spec.optimizer(model.parameters(), lr=spec.lr)
    data = torch.Generator().manual_seed(key.seed)  # the training stream, shared by every model at this seed
    step, train_s, eval_s = 0, 0.0, 0.0
    train_loss: float | None = None
    history: list[CurvePoint] = []
    while True:
        env.synchronize(device)
        started = time.perf_counter()
        point = CurvePoint(step, train_s, train_loss, held_out_mse(model, test_set))
        env.synchronize(device)
        eval_s += time.perf_counter() - started
        history.append(point)
        record(point)
        stopped_by = _stop_reason(point, settings)
        if stopped_by:
            break
        steps = min(settings.eval_every, settings.max_steps - step)
        x, y = adding_batch(steps * settings.batch, key.seq_len, data)
        batches = zip(x.to(device).split(settings.batch), y.to(device).split(settings.batch), strict=True)
        env.synchronize(device)
        started = time.perf_counter()
        losses = [train_step(model, optimizer, spec, xb, yb) for xb, yb in batches]
        env.synchronize(device)
        train_s += time.perf_counter() - started
        step += steps
        train_loss = float(torch.stack(losses).mean())
    reached = stopped_by == "target"
    mses = [p.test_mse for p in history]
    return Outcome(
        reached=reached,
        stopped_by=stopped_by,
        steps_to_target=step if reached else None,
        seconds_to_target=train_s if reached else None,
        best_mse=min(mses, key=lambda m: m if math.isfinite(m) else math.inf),
        final_mse=point.test_mse,
        steps=step,
        train_s=train_s,
        eval_s=eval_s,
        params=param_count(model),
        details=model.details,
    )
