"""What is timed: every implementation the suite compares, as a registered provider.

A provider turns a SweepConfig into a `Built` model on a device: a module whose parameters
are counted and trained, a `forward(x) -> output sequence`, and, for the IndRNN variants, a
`reference` forward over the same weights that the correctness gate compares against.
Every provider in a comparison gets the same hidden size, depth (num_layers), dtype and
input. `unavailable` says why a provider cannot run a config here (no CUDA, a package not
installed, a compile too long to wait for): such configs become skipped rows, never crashes.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from suite.core.schema import ROLES, Lineup, SweepConfig

Forward = Callable[[torch.Tensor], torch.Tensor]

# torch.compile unrolls the T-step loop, so compile time grows with the steps it unrolls.
# Measured on a CPU (torch 2.13): about 0.23 s per unrolled step and layer (T=256, one layer:
# 59 s). Configs whose estimate exceeds the budget are skipped rather than waited for.
COMPILE_S_PER_STEP = 0.25
COMPILE_BUDGET_S = {"cpu": 45.0, "cuda": 300.0}
# The modes of models that are drop-ins for each other: bidirectional and packed variable-length
# batches too (IndRNN, nn.LSTM, nn.GRU).
DROP_IN_MODES = ("train", "infer", "bidir", "packed")


@dataclass
class Built:
    """A provider's model for one config."""

    model: nn.Module  # holds every trained parameter (counted in `params`)
    forward: Forward  # x -> output sequence, in the layout given by batch_first
    output_size: int  # features of each output step (the head's input)
    batch_first: bool = False  # x is (B, T, I) and the output (B, T, F); else time first
    reference: Forward | None = None  # same weights, the reference implementation (the gate)
    extra: str = ""  # provider notes for the row, "key=value;key=value"


@dataclass(frozen=True)
class Provider:
    """One implementation the suite times. `role` (see suite.core.schema.ROLES) tells the analysis
    what it is: an IndRNN (the lower `preference`, the more it is "the IndRNN" of a results
    file when several ran), a variant of one, an IndRNN of another architecture, or a baseline."""

    name: str
    description: str
    build: Callable[[SweepConfig, torch.device], Built]
    unavailable: Callable[[SweepConfig, torch.device], str | None]
    role: str = "baseline"
    preference: int | None = None  # indrnn role only: 0 is preferred over 1, ...
    modes: tuple[str, ...] = ("train", "infer")
    recurrence_backend: str | None = None  # the indrnn_recurrence backend timed in recurrence mode
    compiles: bool = False  # first call compiles: the harness records its seconds as compile_s
    cudnn_cell: str | None = None  # a cuDNN RNN on CUDA (LSTM, GRU): rows record its algorithm (suite.sweep.cudnn)

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"provider {self.name}: role must be one of {ROLES}, got {self.role!r}")
        if (self.role == "indrnn") != (self.preference is not None):
            raise ValueError(f"provider {self.name}: a preference is given exactly to the indrnn role")


def dtype_of(name: str) -> torch.dtype:
    return getattr(torch, name)


def _runs_anywhere(cfg: SweepConfig, device: torch.device) -> str | None:
    return None


def _needs_cuda(cfg: SweepConfig, device: torch.device) -> str | None:
    return None if device.type == "cuda" else "needs CUDA"


def _needs_package(module: str, package: str, cuda: bool = False) -> Callable[[SweepConfig, torch.device], str | None]:
    def unavailable(cfg: SweepConfig, device: torch.device) -> str | None:
        if importlib.util.find_spec(module) is None:
            return f"package {package} is not installed (pip install {package})"
        return _needs_cuda(cfg, device) if cuda else None

    return unavailable


# ---------------------------------------------------------------------------- IndRNN


def _indrnn(cfg: SweepConfig, device: torch.device, architecture: str, backend: str) -> nn.Module:
    from kernels import IndRNN

    return IndRNN(
        cfg.input_size,
        cfg.hidden,
        cfg.depth,
        bidirectional=cfg.mode == "bidir",
        architecture=architecture,
        batch_norm=architecture != "plain",  # the deep architectures are defined with BN
        seq_len=cfg.seq_len,  # the papers' init: u ~ U(0, 2^(1/T))
        backend=backend,
    ).to(device=device, dtype=dtype_of(cfg.dtype))


def _with_backend(model: nn.Module, backend: str) -> Forward:
    """model's forward run with `backend`, whatever backend the model is set to."""

    def forward(x: torch.Tensor) -> torch.Tensor:
        saved, model.backend = model.backend, backend
        try:
            return model(x)[0]
        finally:
            model.backend = saved

    return forward


def _harness_backend(device: torch.device) -> str:
    # "auto" inside the model would pick the Triton interpreter on CPU when TRITON_INTERPRET
    # is set (as under pytest): far too slow to benchmark. The harness resolves it itself.
    return "triton" if device.type == "cuda" else "torch"


def _indrnn_builder(architecture: str, backend: str | None) -> Callable[[SweepConfig, torch.device], Built]:
    def build(cfg: SweepConfig, device: torch.device) -> Built:
        chosen = backend or _harness_backend(device)
        model = _indrnn(cfg, device, architecture, chosen)
        return Built(
            model,
            _with_backend(model, chosen),
            model.output_size,
            reference=None if chosen == "torch" else _with_backend(model, "torch"),
            extra=f"arch={architecture};backend={chosen};recurrences={len(model.state_sizes)}",
        )

    return build


def _residual_unavailable(cfg: SweepConfig, device: torch.device) -> str | None:
    if cfg.depth % 2 == 0:
        return f"residual IndRNN needs an odd depth (1 + 2 per block), got {cfg.depth}"
    return None


def compile_estimate_s(cfg: SweepConfig) -> float:
    """Rough seconds torch.compile needs for the unrolled loop of this config."""
    passes = 2 if cfg.mode == "train" else 1  # training compiles a backward graph as well
    return COMPILE_S_PER_STEP * cfg.seq_len * cfg.depth * passes


def _compile_unavailable(cfg: SweepConfig, device: torch.device) -> str | None:
    estimate, budget = compile_estimate_s(cfg), COMPILE_BUDGET_S.get(device.type, COMPILE_BUDGET_S["cpu"])
    if estimate > budget:
        return f"compile prohibitive: about {estimate:.0f} s to unroll {cfg.seq_len}x{cfg.depth} steps (budget {budget:.0f} s)"
    return None


def _compile_from_scratch() -> None:
    """compile_s must be what a fresh machine pays, not a hit in inductor's on-disk cache."""
    import torch._inductor.config

    torch._inductor.config.force_disable_caches = True
    warnings.filterwarnings("ignore", message="dynamo_pgo force disabled")  # the consequence we asked for


def _compiled_builder(backend: str, fullgraph: bool) -> Callable[[SweepConfig, torch.device], Built]:
    """A plain IndRNN on `backend` under torch.compile, gated against the torch backend.

    backend "reference": what a user compiles before writing a kernel, the plain loop
    differentiated by autograd (unrolled by the compiler). backend "triton", fullgraph: the whole
    model, the recurrence left to our kernels (custom operators, kernels/op.py): what compiling
    adds around them (projections, casts, the head's input)."""

    def build(cfg: SweepConfig, device: torch.device) -> Built:
        _compile_from_scratch()
        model = _indrnn(cfg, device, "plain", backend)
        compiled = torch.compile(model, fullgraph=fullgraph)
        return Built(
            model,
            lambda x: compiled(x)[0],
            model.output_size,
            reference=_with_backend(model, "torch"),
            extra=f"arch=plain;backend={backend};compiler=inductor",
        )

    return build


# ---------------------------------------------------------------------------- baselines


def _rnn_builder(cls: type[nn.RNNBase]) -> Callable[[SweepConfig, torch.device], Built]:
    def build(cfg: SweepConfig, device: torch.device) -> Built:
        directions = 2 if cfg.mode == "bidir" else 1
        model = cls(cfg.input_size, cfg.hidden, cfg.depth, bidirectional=directions == 2)
        model = model.to(device=device, dtype=dtype_of(cfg.dtype))
        return Built(model, lambda x: model(x)[0], directions * cfg.hidden)

    return build


def attention_heads(hidden: int) -> int:
    """Heads of width 64 where hidden allows (the common choice), else the most heads (<= 8)
    of width >= 16 that divide hidden, else one."""
    if hidden % 64 == 0:
        return hidden // 64
    for heads in (8, 4, 2):
        if hidden % heads == 0 and hidden // heads >= 16:
            return heads
    return 1


class _CausalTransformer(nn.Module):
    """Input projection to d_model = hidden, then a causal nn.TransformerEncoder."""

    def __init__(self, cfg: SweepConfig) -> None:
        super().__init__()
        self.embed = nn.Linear(cfg.input_size, cfg.hidden)
        layer = nn.TransformerEncoderLayer(
            cfg.hidden, attention_heads(cfg.hidden), 4 * cfg.hidden, dropout=0.0, batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.depth, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embed(x), mask=mask, is_causal=True)


def _build_transformer(cfg: SweepConfig, device: torch.device) -> Built:
    dtype = dtype_of(cfg.dtype)
    model = _CausalTransformer(cfg).to(device=device, dtype=dtype)
    mask = nn.Transformer.generate_square_subsequent_mask(cfg.seq_len, device=device, dtype=dtype)
    return Built(
        model,
        lambda x: model(x, mask),
        cfg.hidden,
        batch_first=True,  # the layout of the encoder's fast paths
        extra=f"heads={attention_heads(cfg.hidden)}",
    )


def _build_sru(cfg: SweepConfig, device: torch.device) -> Built:
    import sru

    model = sru.SRU(cfg.input_size, cfg.hidden, num_layers=cfg.depth).to(device=device, dtype=dtype_of(cfg.dtype))
    return Built(model, lambda x: model(x)[0], cfg.hidden)


class _HGRNStack(nn.Module):
    """depth layers of the HGRN elementwise recurrence h_t = g_t * h_{t-1} + x_t (fla-core's
    fused recurrent kernel), each fed by one projection to (x, log g): IndRNN's closest peer."""

    def __init__(self, cfg: SweepConfig) -> None:
        super().__init__()
        sizes = [cfg.input_size] + [cfg.hidden] * (cfg.depth - 1)
        self.projections = nn.ModuleList(nn.Linear(n, 2 * cfg.hidden) for n in sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from fla.ops.hgrn import fused_recurrent_hgrn

        for projection in self.projections:
            inputs, gates = projection(x).chunk(2, dim=-1)
            x = fused_recurrent_hgrn(inputs, nn.functional.logsigmoid(gates))[0]
        return x


def _build_hgrn(cfg: SweepConfig, device: torch.device) -> Built:
    model = _HGRNStack(cfg).to(device=device, dtype=dtype_of(cfg.dtype))
    return Built(model, model, cfg.hidden, batch_first=True)


# ---------------------------------------------------------------------------- registry

PROVIDERS: dict[str, Provider] = {
    p.name: p
    for p in (
        Provider(
            "indrnn_triton",
            "IndRNN stack on the Triton kernels (CUDA only)",
            _indrnn_builder("plain", "triton"),
            _needs_cuda,
            role="indrnn",
            preference=0,
            modes=DROP_IN_MODES + ("recurrence",),
            recurrence_backend="triton",
        ),
        Provider(
            "indrnn_torch",
            "IndRNN stack on the torch backend (eager loops, hand-written backward; runs anywhere)",
            _indrnn_builder("plain", "torch"),
            _runs_anywhere,
            role="indrnn",
            preference=1,
            modes=DROP_IN_MODES + ("recurrence",),
            recurrence_backend="torch",
        ),
        Provider(
            "indrnn_compile",
            "the plain autograd loop IndRNN under torch.compile (compile seconds recorded)",
            _compiled_builder("reference", fullgraph=False),
            _compile_unavailable,
            role="variant",
            compiles=True,
        ),
        Provider(
            "indrnn_compile_model",
            "the whole IndRNN model under torch.compile(fullgraph=True), the recurrence on our kernels (CUDA only)",
            _compiled_builder("triton", fullgraph=True),
            _needs_cuda,
            role="variant",
            compiles=True,
        ),
        Provider(
            "indrnn_residual",
            "residual IndRNN (pre-activation blocks, BN); Triton on CUDA, torch loop elsewhere",
            _indrnn_builder("residual", None),
            _residual_unavailable,
            role="architecture",
        ),
        Provider(
            "indrnn_dense",
            "dense IndRNN (depth = dense layers, 2 recurrences each, BN); Triton on CUDA, torch loop elsewhere",
            _indrnn_builder("dense", None),
            _runs_anywhere,
            role="architecture",
        ),
        Provider(
            "lstm",
            "nn.LSTM (cuDNN on GPU)",
            _rnn_builder(nn.LSTM),
            _runs_anywhere,
            modes=DROP_IN_MODES,
            cudnn_cell="LSTM",
        ),
        Provider(
            "gru", "nn.GRU (cuDNN on GPU)", _rnn_builder(nn.GRU), _runs_anywhere, modes=DROP_IN_MODES, cudnn_cell="GRU"
        ),
        Provider(
            "transformer",
            "causal nn.TransformerEncoder, d_model = hidden, FFN 4*hidden (SDPA attention)",
            _build_transformer,
            _runs_anywhere,
        ),
        Provider("sru", "SRU (package sru), the paper's other peer", _build_sru, _needs_package("sru", "sru")),
        Provider(
            "hgrn",
            "HGRN elementwise recurrence, fla-core fused recurrent kernel (CUDA only)",
            _build_hgrn,
            _needs_package("fla", "fla-core", cuda=True),
        ),
    )
}


def lineup() -> Lineup:
    """The registry as it stands, as reading a results file needs it."""
    return Lineup(
        {name: p.role for name, p in PROVIDERS.items()},
        {name: p.preference for name, p in PROVIDERS.items() if p.preference is not None},
    )


def role_of(provider: str) -> str:
    """The role of a provider by name (a baseline where this suite does not know it)."""
    return lineup().role_of(provider)


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
