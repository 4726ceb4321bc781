"""IndRNN as a drop-in for nn.LSTM: packed variable-length batches, bidirectional layers,
batch_first without copies, and the kernels as custom operators that torch.compile traces.

Without CUDA the kernels run through the Triton interpreter (see conftest.py). Shapes are tiny
and odd so every mask is exercised; lengths are unsorted so the packing order matters.
"""

import pytest
import synthetic_results as synthetic
import torch
import triton
from torch import nn
from torch.nn.utils.rnn import pack_sequence, pad_packed_sequence
from torch.utils._python_dispatch import TorchDispatchMode

import kernels.op
import kernels.sequential
from kernels import IndRec, IndRNN, indrnn_recurrence, recurrence_reference
from kernels.sequential import recurrence_bwd_kernel, recurrence_fwd_kernel
from suite import measure
from suite.providers import PROVIDERS
from suite.report import build_report
from suite.schema import SweepConfig
from suite.timing import Timer

T, B, D, H = 7, 3, 4, 5  # steps, batch, input features, hidden units
LENGTHS = (4, 7, 2)  # unsorted, one of them the full T


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def _flip_rows(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each row's first lengths[b] steps in reverse order, padding left where it is: a flipped copy,
    the way a reverse pass is written without a reverse-time kernel."""
    out = x.clone()
    for b, n in enumerate(lengths.tolist()):
        out[:n, b] = x[:n, b].flip(0)
    return out


def _randomised(model: IndRNN) -> IndRNN:
    with torch.no_grad():
        for unit in model.recurrences:
            unit.weight_hh.uniform_(-1.1, 1.1)  # negative and |u| > 1: what a fresh init never gives
            unit.bias.uniform_(-0.3, 0.3)
    return model


# ---------------------------------------------------------------------------- the recurrence


@pytest.mark.parametrize("backend", ["triton", "torch", "reference"])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_reverse_with_lengths_equals_flipped_forward(backend, with_lengths, device):
    """reverse=True (and lengths) against the float64 reference run forward over a flipped copy:
    states, h_last and every gradient; padded steps output 0 and get no gradient."""
    x, u = torch.randn(T, B, H, device=device), torch.empty(H, device=device).uniform_(-1.1, 1.1)
    h0, bias = torch.randn(B, H, device=device), 0.1 * torch.randn(H, device=device)
    lengths = torch.tensor(LENGTHS if with_lengths else (T,) * B)
    w_h, w_last = torch.randn(T, B, H, device=device), torch.randn(B, H, device=device)
    valid = (torch.arange(T)[:, None] < lengths[None, :])[..., None].to(device)

    leaves = [t.clone().requires_grad_() for t in (x, u, h0, bias)]
    h, h_last = indrnn_recurrence(*leaves, backend=backend, lengths=lengths if with_lengths else None, reverse=True)
    ((h * w_h).sum() + (h_last * w_last).sum()).backward()

    want_leaves = [t.detach().double().requires_grad_() for t in (x, u, h0, bias)]
    x_flip = _flip_rows(want_leaves[0], lengths)
    h_flip, _ = recurrence_reference(x_flip, *want_leaves[1:], lengths=lengths.to(device) if with_lengths else None)
    want_h = _flip_rows(h_flip, lengths) * valid
    want_last = h_flip.gather(0, (lengths - 1).to(device).view(1, B, 1).expand(1, B, H))[0]
    ((want_h * w_h).sum() + (want_last * w_last).sum()).backward()

    assert _rel_err(h, want_h) < 1e-5 and _rel_err(h_last, want_last) < 1e-5
    for got, want in zip(leaves, want_leaves, strict=True):
        assert _rel_err(got.grad, want.grad) < 1e-5
    assert torch.all(h.detach()[~valid.expand(T, B, H)] == 0)
    assert torch.all(leaves[0].grad[~valid.expand(T, B, H)] == 0)


@pytest.mark.parametrize("reverse", [False, True])
def test_kernels_walk_time_with_deep_pipelines(reverse, device):
    """The kernels launched directly with a config the interpreter's autotuner never picks
    (several chunks in flight, T not a multiple of CHUNK), reverse and per-row lengths, against
    the float64 reference."""
    config = dict(BLOCK=16, CHUNK=3, num_warps=1)
    x, u = torch.randn(T, B, H, device=device), torch.empty(H, device=device).uniform_(-1.1, 1.1)
    h0, bias = torch.randn(B, H, device=device), 0.1 * torch.randn(H, device=device)
    lengths = torch.tensor(LENGTHS, device=device)
    grid = (triton.cdiv(B * H, config["BLOCK"]),)
    h = torch.empty_like(x)
    recurrence_fwd_kernel.fn[grid](
        x, u, bias, h0, h, lengths, T, B * H, H, B * H, H, B * H, H, T,
        HAS_BIAS=True, HAS_H0=True, HAS_LENGTHS=True, REVERSE=reverse, ACT=0, **config,
    )  # fmt: skip
    dh = torch.randn_like(x)
    dx, cols = torch.empty_like(x), torch.zeros(3, B, H, device=device)
    recurrence_bwd_kernel.fn[grid](
        h, dh, u, h0, dx, cols[0], cols[1], cols[2], lengths, T, B * H, H, B * H, H, B * H, H, T,
        HAS_H0=True, HAS_LENGTHS=True, REVERSE=reverse, ACT=0, **config,
    )  # fmt: skip
    leaves = [t.double().requires_grad_() for t in (x, u, h0, bias)]
    h_ref, _ = recurrence_reference(*leaves, lengths=lengths, reverse=reverse)
    h_ref.backward(dh.double())
    assert _rel_err(h, h_ref) < 1e-5 and _rel_err(dx, leaves[0].grad) < 1e-5
    assert _rel_err(cols[0].sum(0), leaves[1].grad) < 1e-5 and _rel_err(cols[1].sum(0), leaves[3].grad) < 1e-5
    assert _rel_err(cols[2], leaves[2].grad) < 1e-5


def test_lengths_are_checked():
    x, u = torch.randn(T, B, H), torch.rand(H)
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=7\]"):
        indrnn_recurrence(x, u, lengths=torch.tensor([1, 8, 3]), backend="torch")
    with pytest.raises(ValueError, match=r"lengths must have shape \(3,\)"):
        indrnn_recurrence(x, u, lengths=torch.tensor([1, 2]), backend="torch")
    with pytest.raises(TypeError, match="lengths must be an integer"):
        indrnn_recurrence(x, u, lengths=torch.ones(B), backend="torch")


# ---------------------------------------------------------------------------- the layer


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_packed_equals_each_sequence_alone(backend, device):
    """A packed batch of unsorted lengths gives each sequence's outputs, h_n and gradients (of
    the inputs and of every parameter) exactly as running that sequence alone."""
    model = _randomised(IndRNN(D, H, 2, bidirectional=True, backend=backend)).to(device)
    seqs = [torch.randn(n, D, device=device) for n in LENGTHS]
    w_out = [torch.randn(n, 2 * H, device=device) for n in LENGTHS]
    w_state = torch.randn(4, B, H, device=device)

    inputs = [s.clone().requires_grad_() for s in seqs]
    out, h_n = model(pack_sequence(inputs, enforce_sorted=False))
    padded, lengths = pad_packed_sequence(out)
    assert lengths.tolist() == list(LENGTHS) and out.sorted_indices.tolist() == [1, 0, 2]
    loss = (h_n * w_state).sum() + sum((padded[:n, b] * w_out[b]).sum() for b, n in enumerate(LENGTHS))
    loss.backward()
    packed_grads = {n: p.grad.clone() for n, p in model.named_parameters()}

    model.zero_grad()
    alone = [s.clone().requires_grad_() for s in seqs]
    for b, seq in enumerate(alone):
        out_b, h_n_b = model(seq[:, None])
        assert _rel_err(padded[: LENGTHS[b], b], out_b[:, 0]) < 1e-5
        assert _rel_err(h_n[:, b], h_n_b[:, 0]) < 1e-5
        ((out_b[:, 0] * w_out[b]).sum() + (h_n_b[:, 0] * w_state[:, b]).sum()).backward()
    for b in range(B):
        assert _rel_err(inputs[b].grad, alone[b].grad) < 1e-5
    for name, p in model.named_parameters():
        assert _rel_err(packed_grads[name], p.grad) < 1e-5, name


@pytest.mark.parametrize("backend", ["triton", "torch"])
@pytest.mark.parametrize("reverse", [False, True])
def test_padding_never_reaches_a_state(backend, reverse, device):
    """Huge values in the padding change nothing: not the states, not BatchNorm's statistics
    (which count each row's valid frames only)."""
    unit = IndRec(H, bias=True, batch_norm=True, activation="relu", recurrent_max=1.0).to(device)
    lengths = torch.tensor(LENGTHS)
    padding = ~(torch.arange(T)[:, None] < lengths[None, :])[..., None].expand(T, B, H).to(device)
    x = torch.randn(T, B, H, device=device).masked_fill(padding, 0.0)
    h, h_last = unit(x, None, backend, lengths, reverse)
    h_noisy, h_last_noisy = unit(x.masked_fill(padding, 1e6), None, backend, lengths, reverse)
    assert torch.equal(h, h_noisy) and torch.equal(h_last, h_last_noisy)
    assert h.abs().sum() > 0


def test_bidirectional_equals_hand_made_reverse_pass():
    """One bidirectional layer is a forward recurrence on the first half of the projection and
    a recurrence over the time-flipped second half, flipped back; h_n as in nn.LSTM."""
    model = _randomised(IndRNN(D, H, 1, bidirectional=True, backend="torch"))
    x, h0 = torch.randn(T, B, D), torch.randn(2, B, H)
    out, h_n = model(x, h0)
    projection = model.projections[0](x)
    forward_unit, backward_unit = model.recurrences
    h_fwd, last_fwd = recurrence_reference(projection[..., :H], forward_unit.weight_hh, h0[0], forward_unit.bias)
    h_bwd, last_bwd = recurrence_reference(
        projection[..., H:].flip(0), backward_unit.weight_hh, h0[1], backward_unit.bias
    )
    assert _rel_err(out, torch.cat([h_fwd, h_bwd.flip(0)], dim=-1)) < 1e-5
    assert _rel_err(h_n, torch.stack([last_fwd, last_bwd])) < 1e-5
    lstm = nn.LSTM(D, H, 2, bidirectional=True)
    deep = IndRNN(D, H, 2, bidirectional=True)
    (lstm_out, (lstm_h, _)), (ours, our_h) = lstm(x), deep(x)
    assert ours.shape == lstm_out.shape and our_h.shape == lstm_h.shape == (4, B, H)


def test_bidirectional_is_refused_where_unsupported():
    with pytest.raises(ValueError, match="bidirectional=True supports architecture='plain' only"):
        IndRNN(D, H, 3, architecture="residual", bidirectional=True)


class _CopyWatch(TorchDispatchMode):
    """Records the aten ops that copy a tensor, with their element counts."""

    COPIES = ("clone", "copy_", "_to_copy")

    def __init__(self):
        super().__init__()
        self.copies = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if any(name in str(func) for name in self.COPIES):
            self.copies.append((str(func), args[0].numel()))
        return out


@pytest.mark.parametrize("directions", [1, 2])
def test_batch_first_reads_activations_in_place(directions, monkeypatch, device):
    """batch_first: every forward kernel reads its projection's output itself (same storage, batch
    stride T*F; a bidirectional layer's directions read the two halves of one projection), writes
    the states batch first, and nothing copies activations."""
    model = IndRNN(D, H, 2, batch_first=True, bidirectional=directions == 2, backend="triton").to(device)
    projected = []
    for proj in model.projections:
        proj.register_forward_hook(lambda module, args, out: projected.append(out))
    seen = []  # the x each forward kernel launch reads

    class Recorder:
        def __getitem__(self, grid):
            return lambda x, *args, **kwargs: seen.append(x) or recurrence_fwd_kernel[grid](x, *args, **kwargs)

    monkeypatch.setattr(kernels.sequential, "recurrence_fwd_kernel", Recorder())
    x = torch.randn(B, T, D, device=device)
    with _CopyWatch() as watch:
        out, _ = model(x)
    assert [c for c in watch.copies if c[1] >= T * B * H] == []
    assert len(seen) == 2 * directions
    F = directions * H  # features of a projection
    for i, received in enumerate(seen):
        made = projected[i // directions]
        assert received.data_ptr() == made.data_ptr() + (i % directions) * H * made.element_size()
        assert received.stride() == (F, T * F, 1)
    assert out.shape == (B, T, F) and out.is_contiguous()
    model.backend = "torch"  # the same weights through the torch loop
    assert _rel_err(out, model(x)[0]) < 1e-5


# ---------------------------------------------------------------------------- custom operators


def test_opcheck_forward_and_backward(device):
    """torch.library.opcheck: schema, fake (meta) implementation against the real one (strides
    included: batch-first input), autograd registration, and AOT dispatch. On CPU the ops run
    the kernels through the Triton interpreter."""
    x = torch.randn(B, T, H, device=device).transpose(0, 1)  # batch first in memory
    u, h0, bias = torch.rand(H, device=device), torch.randn(B, H, device=device), torch.randn(H, device=device)
    lengths = torch.tensor(LENGTHS, device=device)
    cases = [
        (x, u, h0, bias, lengths, 0, True),
        (x.contiguous(), u, None, None, None, 1, False),
    ]
    for case in cases:
        args = [
            a.clone().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in case
        ]
        torch.library.opcheck(kernels.op.recurrence, args)
    h, dh = torch.randn(T, B, H, device=device), torch.randn(B, T, H, device=device).transpose(0, 1)
    torch.library.opcheck(kernels.op.recurrence_backward, (h, dh, u, h0, lengths, 0, False))
    # An h the forward never makes (every other neuron of a wider tensor) is walked correctly too.
    gapped = torch.randn(T, B, 2 * H, device=device)[..., ::2]
    torch.library.opcheck(kernels.op.recurrence_backward, (gapped, dh, u, h0, None, 0, True))
    got = kernels.op.recurrence_backward(gapped, dh, u, h0, None, 0, True)
    want = kernels.op.recurrence_backward(gapped.contiguous(), dh.contiguous(), u, h0, None, 0, True)
    for g, w in zip(got, want, strict=True):
        assert torch.equal(g, w)


def test_compiled_model_traces_whole_and_calls_the_kernels(monkeypatch, device):
    """torch.compile(fullgraph=True) of a model holding a bidirectional IndRNN: no graph break,
    our kernels run forward and backward, and outputs and gradients equal eager's."""
    torch._dynamo.reset()
    rnn = _randomised(IndRNN(3, 4, 1, bidirectional=True, backend="triton")).to(device)
    head = nn.Linear(8, 1).to(device)

    def step(x):
        return head(rnn(x)[0][-1]).sum()

    x = torch.randn(5, 2, 3, device=device)
    eager = step(x)
    eager.backward()
    params = [*rnn.parameters(), *head.parameters()]
    eager_grads = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None

    launches = []
    for name in ("recurrence_fwd", "recurrence_bwd"):
        launch = getattr(kernels.op, name)
        monkeypatch.setattr(kernels.op, name, lambda *a, _f=launch, _n=name, **k: launches.append(_n) or _f(*a, **k))
    compiled = torch.compile(step, fullgraph=True)
    loss = compiled(x)
    loss.backward()
    assert sorted(set(launches)) == ["recurrence_bwd", "recurrence_fwd"] and launches.count("recurrence_fwd") == 2
    assert _rel_err(loss, eager) < 1e-6
    for got, want in zip(params, eager_grads, strict=True):
        assert _rel_err(got.grad, want) < 1e-5


# ---------------------------------------------------------------------------- benchmarks


@pytest.mark.parametrize("provider", ["indrnn_torch", "lstm"])
@pytest.mark.parametrize("mode", ["bidir", "packed"])
def test_bidir_and_packed_modes_measure_gated_rows(provider, mode):
    """Both modes build, pass the correctness gate and time a training step on the CPU; packed
    rows note the share of real steps, from lengths uniform in [T/4, T]."""
    cfg = SweepConfig(provider, mode, seq_len=8, depth=2, batch=5, hidden=4, dtype="float32", input_size=3)
    lengths = measure.packed_lengths(cfg)
    assert torch.equal(lengths, measure.packed_lengths(cfg)) and lengths.min() >= 2 and lengths.max() <= 8
    timer = Timer("cpu_wallclock", warmup=0, repeats=1)
    [row] = measure.measure(cfg, torch.device("cpu"), timer, None)
    assert row["status"] == "ok", row
    if mode == "packed":
        assert f"valid_frac={lengths.sum().item() / 40:.4f}" in row["extra"]
    built = PROVIDERS[provider].build(cfg, torch.device("cpu"))
    assert built.output_size == (8 if mode == "bidir" else 4)


def test_report_says_what_share_of_the_padding_each_skips(tmp_path):
    """Packed rows against the padded train rows of the same config: a provider whose packed step
    takes the valid share of the padded time skips all of the padding's work, one whose time does
    not move skips none."""
    rows = [
        synthetic.row("lstm", 10.0),
        synthetic.row("lstm", 6.0, mode="packed", phase="fwd+bwd", extra="valid_frac=0.6000"),
        synthetic.row("indrnn_triton", 2.0),
        synthetic.row("indrnn_triton", 2.0, mode="packed", phase="fwd+bwd", extra="backend=triton;valid_frac=0.6000"),
    ]
    text = build_report(synthetic.write(tmp_path / "packed.csv", rows))
    section = text.split("## Variable-length batches (packed)")[1]
    cells = [[c.strip() for c in line.split("|")[1:-1]] for line in section.splitlines() if line.startswith("| ")]
    lines = {c[0]: c[5:] for c in cells[1:]}
    assert lines["lstm"] == ["60", "6", "10", "40", "100"]
    assert lines["indrnn_triton"] == ["60", "2", "2", "0", "0"]
