"""What both forms of the recurrence share (the sequential walk of kernels/sequential.py and the
chunked scan): whether Triton can run on an input, the activation and its derivative recomputed
from h, column offsets in a (B, H) plane read through its batch stride, and the layout of the
states a launch returns and of the tensors a backward launch reads.
"""

from __future__ import annotations

import os
import re

import torch
import triton
import triton.language as tl

ACT_CODES = {"relu": 0, "tanh": 1}
FLOAT_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def interpreter_enabled() -> bool:
    """True when Triton kernels run through the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


# One switch for both kernels: the autotuner searches their config spaces on a GPU unless the
# interpreter runs them or INDRNN_AUTOTUNE=0 asks for correctness only (one config, no tuning).
AUTOTUNE = not interpreter_enabled() and os.environ.get("INDRNN_AUTOTUNE", "1") != "0"


@triton.jit
def activate(a, ACT: tl.constexpr):
    if ACT == 0:
        return tl.maximum(a, 0.0, propagate_nan=tl.PropagateNan.ALL)  # a NaN stays NaN, as in torch
    # tanh(a) = 1 - 2 / (exp(2a) + 1): finite at both ends, no libdevice needed.
    return 1.0 - 2.0 / (tl.exp(2.0 * a) + 1.0)


@triton.jit
def activation_grad(h, ACT: tl.constexpr):
    """d act / d a, recomputed from the output h = act(a)."""
    if ACT == 0:
        return tl.where(h > 0.0, 1.0, 0.0)
    return 1.0 - h * h


@triton.jit
def plane_offsets(o_col, H, stride_b):
    """Element offsets of columns o_col (b * H + neuron) in a plane whose batch stride is stride_b
    and neuron stride 1, in int64: batch-first tensors are read in place, T*B*H may pass 2^31."""
    return (o_col // H).to(tl.int64) * stride_b + o_col % H


def ceil_div(a: int, b: int) -> int:
    """Host-side ceiling division for grids and cuts. triton.cdiv does the same, but it is a
    ConstexprFunction, and each host call goes through triton's wrapper: a launcher calling it a
    dozen times per step pays that on every call. Written with a positive division: under
    the interpreter a grid receives its scalars as tensors, whose // truncates toward zero."""
    return (a + b - 1) // b


def states_like(x: torch.Tensor) -> torch.Tensor:
    """An uninitialised (T, B, H) tensor for the states of x, in x's dtype: dense, and batch first
    in memory when x is (a (B, T, H) tensor viewed time first), so that layout carries through."""
    T, B, H = x.shape
    if T > 1 and B > 1 and x.stride(1) > x.stride(0):
        return torch.empty((B, T, H), dtype=x.dtype, device=x.device).transpose(0, 1)
    return torch.empty((T, B, H), dtype=x.dtype, device=x.device)


def with_unit_neuron_stride(t: torch.Tensor) -> torch.Tensor:
    """t itself when its neurons are adjacent (any time and batch strides: the kernels take them),
    else a contiguous copy."""
    return t if t.stride(2) == 1 else t.contiguous()


def backward_operands(h: torch.Tensor, dh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(h, dh, dx) as a backward launch reads and writes them: dh with its neurons adjacent, dx
    uninitialised and laid out as `states_like(h)`, and h in dx's strides (the kernels walk h and dx
    with one set of strides; the forward's h has them already, anything else is copied once)."""
    dh = with_unit_neuron_stride(dh)
    dx = states_like(h)
    if h.stride() != dx.stride():
        h = torch.empty_like(dx).copy_(h)
    return h, dh, dx


def _major_minor(version: str) -> tuple[int, int]:
    major, minor = re.match(r"(\d+)\.(\d+)", version).groups()
    return int(major), int(minor)


def interpreter_unusable_reason(triton_version: str, numpy_version: str) -> str | None:
    """Triton before 3.7 turns the interpreter's scalars (1-element arrays) into loop bounds with
    int(array), which numpy 2.4 made an error: every kernel with a runtime loop bound fails."""
    if _major_minor(triton_version) < (3, 7) and _major_minor(numpy_version) >= (2, 4):
        return (
            f"triton {triton_version}'s interpreter cannot run with numpy {numpy_version}: "
            "use numpy < 2.4 or triton >= 3.7 (or a GPU)"
        )
    return None


def triton_unavailable_reason(x: torch.Tensor) -> str | None:
    """Why the triton backend cannot run on x, or None when it can."""
    if x.dtype not in FLOAT_DTYPES:
        return f"the triton backend supports {', '.join(str(d) for d in FLOAT_DTYPES)}, not {x.dtype}"
    if x.is_cuda:
        return None
    if x.device.type == "cpu" and interpreter_enabled():
        import numpy  # the interpreter's own dependency

        return interpreter_unusable_reason(triton.__version__, numpy.__version__)
    return f"Triton kernels need a CUDA tensor (or TRITON_INTERPRET=1 for CPU tensors); x is on {x.device}"
