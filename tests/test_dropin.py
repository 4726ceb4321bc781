"""IndRNN as a drop-in for nn.LSTM: packed variable-length batches, bidirectional layers,
batch_first without copies, and the kernels as custom operators that torch.compile traces.

Without CUDA the kernels run through the Triton interpreter (see conftest.py). Shapes are tiny
and odd so every mask is exercised; lengths are unsorted so the packing order matters.
"""

import copy

import pytest
import synthetic_results as synthetic
import torch
import triton
from harness_helpers import TRITON
from synthetic_results import build_report
from torch import nn
from torch._dynamo.testing import CompileCounterWithBackend
from torch.nn.utils.rnn import pack_padded_sequence, pack_sequence, pad_packed_sequence
from torch.utils._python_dispatch import TorchDispatchMode

import kernels.op
import kernels.sequential
from kernels import IndRec, IndRNN, indrnn_recurrence, recurrence_reference
from kernels.sequential import recurrence_bwd_kernel, recurrence_fwd_kernel
from suite.core.schema import SweepConfig
from suite.sweep import measure
from suite.sweep.providers import PROVIDERS
from suite.sweep.timing import Timer

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


@pytest.mark.parametrize("backend", [TRITON, "torch", "reference"])
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


@pytest.mark.slow
@pytest.mark.triton
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


@pytest.mark.parametrize("backend", [TRITON, "torch"])
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


@pytest.mark.parametrize("backend", [TRITON, "torch"])
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


@pytest.mark.parametrize("momentum", [0.1, None])
def test_packed_batch_norm_is_batch_norm_of_the_valid_frames(momentum, device):
    """BatchNorm with lengths is nn.BatchNorm1d over the valid frames alone, the padding passed
    through: outputs, gradients of x, weight and bias, and the running statistics over three
    training steps (exponential, or with momentum None cumulative), then the output in eval mode."""
    unit = IndRec(H, bias=True, batch_norm=True, activation="relu", recurrent_max=1.0).to(device)
    unit.norm.momentum = momentum
    with torch.no_grad():
        unit.norm.weight.uniform_(0.5, 1.5)
        unit.norm.bias.uniform_(-0.5, 0.5)
    reference = copy.deepcopy(unit.norm)
    lengths = torch.tensor(LENGTHS, device=device)
    valid = (torch.arange(T, device=device)[:, None] < lengths[None, :])[..., None].expand(T, B, H)
    for _ in range(3):
        x = (2 * torch.randn(T, B, H, device=device) + 1).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        w = torch.randn(T, B, H, device=device)
        got = unit._normalise(x, lengths)
        want = x_ref.masked_scatter(valid, reference(x_ref[valid].view(-1, H)))
        (got * w).sum().backward()
        (want * w).sum().backward()
        assert _rel_err(got, want) < 1e-5 and _rel_err(x.grad, x_ref.grad) < 1e-5
        for name in ("weight", "bias"):
            assert _rel_err(getattr(unit.norm, name).grad, getattr(reference, name).grad) < 1e-5
        assert _rel_err(unit.norm.running_mean, reference.running_mean) < 1e-5
        assert _rel_err(unit.norm.running_var, reference.running_var) < 1e-5
        assert torch.equal(unit.norm.num_batches_tracked, reference.num_batches_tracked)
    unit.eval(), reference.eval()
    x = torch.randn(T, B, H, device=device)
    assert _rel_err(unit._normalise(x, lengths), x.masked_scatter(valid, reference(x[valid].view(-1, H)))) < 1e-5


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
    """Records the aten ops that copy a tensor, with their element counts, except while `paused`
    (the Triton interpreter copies a kernel's arguments to run it on the CPU)."""

    COPIES = ("clone", "copy_", "_to_copy")

    def __init__(self):
        super().__init__()
        self.copies = []
        self.paused = False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not self.paused and any(name in str(func) for name in self.COPIES):
            self.copies.append((str(func), args[0].numel()))
        return out


@pytest.mark.triton
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
    watch = _CopyWatch()

    class Recorder:
        def __getitem__(self, grid):
            return lambda x, *args, **kwargs: self.launch(grid, x, *args, **kwargs)

        def launch(self, grid, x, *args, **kwargs):
            seen.append(x)
            watch.paused = True
            try:
                recurrence_fwd_kernel[grid](x, *args, **kwargs)
            finally:
                watch.paused = False

    monkeypatch.setattr(kernels.sequential, "recurrence_fwd_kernel", Recorder())
    x = torch.randn(B, T, D, device=device)
    with watch:
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


# ---------------------------------------------------------------------------- unbatched input and lengths


def _rnn_peer(model: IndRNN) -> nn.RNN:
    """PyTorch's nn.RNN(nonlinearity="relu") computing what the plain IndRNN `model` computes: each
    direction's input weights are its rows of the layer's projection, weight_hh = diag(u),
    bias_ih the IndRec's bias and bias_hh = 0."""
    peer = nn.RNN(
        model.input_size,
        model.hidden_size,
        model.num_layers,
        nonlinearity="relu",
        batch_first=model.batch_first,
        bidirectional=model.bidirectional,
    )
    units = iter(model.recurrences)
    with torch.no_grad():
        for layer, projection in enumerate(model.projections):
            for direction, rows in enumerate(projection.weight.split(model.hidden_size)):
                unit, suffix = next(units), f"l{layer}" + ("_reverse" if direction else "")
                getattr(peer, f"weight_ih_{suffix}").copy_(rows)
                getattr(peer, f"weight_hh_{suffix}").copy_(torch.diag(unit.weight_hh))
                getattr(peer, f"bias_ih_{suffix}").copy_(unit.bias)
                getattr(peer, f"bias_hh_{suffix}").zero_()
    return peer


@pytest.mark.parametrize("backend", [TRITON, "torch"])
def test_unbatched_equals_nn_rnn(backend, device):
    """One (T, I) sequence and (layers * directions, H) states, as nn.RNN takes them (batch_first
    does not apply to them): output, h_n and the gradients of input and h0 equal those of the
    nn.RNN that computes the same recurrence."""
    model = _randomised(IndRNN(D, H, 2, bidirectional=True, batch_first=True, backend=backend)).to(device)
    peer = _rnn_peer(model).to(device)
    x, h0 = torch.randn(T, D, device=device), torch.randn(4, H, device=device)
    w_out, w_state = torch.randn(T, 2 * H, device=device), torch.randn(4, H, device=device)

    def run(module: nn.Module) -> list[torch.Tensor]:
        x_in, h0_in = x.clone().requires_grad_(), h0.clone().requires_grad_()
        out, h_n = module(x_in, h0_in)
        ((out * w_out).sum() + (h_n * w_state).sum()).backward()
        return [out, h_n, x_in.grad, h0_in.grad]

    got, want = run(model), run(peer)
    assert got[0].shape == (T, 2 * H) and got[1].shape == (4, H)
    for g, w in zip(got, want, strict=True):
        assert _rel_err(g, w) < 1e-5


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_layers=2, bidirectional=True),
        dict(num_layers=3, architecture="residual"),
        dict(num_layers=2, architecture="dense", growth_rate=2),
    ],
    ids=["plain-bidirectional", "residual", "dense"],
)
def test_unbatched_equals_a_batch_of_one(kwargs):
    """Every architecture, with BatchNorm and batch_first: an unbatched sequence and its states
    (stacked, or one (width,) tensor per recurrence for dense) give what the same sequence gives
    as a batch of one, without the batch dimension."""
    model = _randomised(IndRNN(D, H, batch_norm=True, batch_first=True, backend="torch", **kwargs))
    x = torch.randn(T, D)
    states = [torch.randn(width) for width in model.state_sizes]
    h0 = torch.stack(states) if len(set(model.state_sizes)) == 1 else tuple(states)
    out, h_n = model(x, h0)
    batched_h0 = h0[:, None] if isinstance(h0, torch.Tensor) else tuple(s[None] for s in h0)
    want_out, want_h_n = model(x[None], batched_h0)  # batch first: (1, T, D)
    assert out.shape == (T, model.output_size) and _rel_err(out, want_out[0]) < 1e-6
    assert type(h_n) is type(h0)
    for got, want in zip(h_n, want_h_n, strict=True):
        assert got.shape == want.shape[1:] and _rel_err(got, want[0]) < 1e-6


def test_state_and_lengths_shapes_are_checked():
    model = IndRNN(D, H, 2)
    with pytest.raises(ValueError, match="h0 must be 2-D for unbatched 2-D input, got a 3-D tensor"):
        model(torch.randn(T, D), torch.zeros(2, 1, H))
    with pytest.raises(ValueError, match="h0 must be 3-D for batched 3-D input, got a 2-D tensor"):
        model(torch.randn(T, B, D), torch.zeros(2, H))
    dense = IndRNN(D, H, 1, architecture="dense", growth_rate=2)
    with pytest.raises(ValueError, match=r"h0\[0\] must have shape \(5,\), got \(1, 5\)"):
        dense(torch.randn(T, D), tuple(torch.zeros(1, width) for width in dense.state_sizes))
    with pytest.raises(ValueError, match="lengths apply to batched 3-D input"):
        model(torch.randn(T, D), lengths=torch.tensor([T]))
    with pytest.raises(ValueError, match="lengths cannot be given with a PackedSequence"):
        model(pack_sequence([torch.randn(n, D) for n in LENGTHS], enforce_sorted=False), lengths=torch.tensor(LENGTHS))
    # Lengths on the host are checked before their copy to a device (meta here, as a GPU would be),
    # where no layer could check them without waiting for it.
    for where in ("cpu", "meta"):
        with pytest.raises(ValueError, match=r"lengths must lie in \[1, T=7\], got values in \[0, 7\]"):
            model.to(where)(torch.randn(T, B, D, device=where), lengths=torch.tensor([0, 7, 2]))


@pytest.mark.parametrize("backend", [TRITON, "torch"])
@pytest.mark.parametrize("lengths_on_device", [False, True])
def test_lengths_equal_packed(backend, lengths_on_device, device):
    """A padded batch (longer than its longest row, garbage in the padding) with lengths gives what
    the same rows give packed: outputs (0 past each row's length), h_n, BatchNorm's running
    statistics, and the gradients of the input (0 on the padding) and of every parameter. Lengths
    may be int64 on the CPU or int32 on the input's device."""
    packed_model = _randomised(
        IndRNN(D, H, 2, bidirectional=True, batch_first=True, batch_norm=True, backend=backend)
    ).to(device)
    padded_model = copy.deepcopy(packed_model)
    steps = T + 2
    lengths = torch.tensor(LENGTHS)
    valid = (torch.arange(steps)[None, :] < lengths[:, None])[..., None].to(device)  # (B, steps, 1)
    x = torch.randn(B, steps, D, device=device)
    w_out, w_state = torch.randn(B, steps, 2 * H, device=device), torch.randn(4, B, H, device=device)

    x_packed = x.clone().requires_grad_()
    out, h_n = packed_model(pack_padded_sequence(x_packed, lengths, batch_first=True, enforce_sorted=False))
    want_out, _ = pad_packed_sequence(out, batch_first=True, total_length=steps)
    ((want_out * w_out).sum() + (h_n * w_state).sum()).backward()

    x_padded = torch.where(valid, x, 1e3).requires_grad_()
    given = lengths.to(device, torch.int32) if lengths_on_device else lengths
    out, h_n_padded = padded_model(x_padded, None, given)
    ((out * w_out).sum() + (h_n_padded * w_state).sum()).backward()

    assert torch.all(out[~valid.expand_as(out)] == 0) and torch.all(x_padded.grad[~valid.expand_as(x)] == 0)
    assert _rel_err(out, want_out) < 1e-5 and _rel_err(h_n_padded, h_n) < 1e-5
    assert _rel_err(x_padded.grad, x_packed.grad) < 1e-5
    for (name, got), want in zip(padded_model.named_parameters(), packed_model.parameters(), strict=True):
        assert _rel_err(got.grad, want.grad) < 1e-5, name
    for (name, got), want in zip(padded_model.named_buffers(), packed_model.buffers(), strict=True):
        assert _rel_err(got, want) < 1e-5, name


# ---------------------------------------------------------------------------- custom operators


@pytest.mark.slow
@pytest.mark.triton
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


@pytest.mark.slow
@pytest.mark.triton
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


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch", TRITON])
def test_compiled_lengths_path_traces_whole(backend, device):
    """torch.compile(fullgraph=True) of a bidirectional IndRNN with BatchNorm given a padded batch
    and lengths: no graph break, one graph for batches of other lengths, and outputs, h_n and
    gradients equal to eager packed input's. A PackedSequence breaks the graph, as the docstring
    says. `aot_eager` traces as any torch.compile does (dynamo, then AOTAutograd's forward and
    backward graphs) without inductor's code generation, which alone takes seconds on a CPU."""
    torch._dynamo.reset()
    model = _randomised(IndRNN(D, H, 1, bidirectional=True, batch_norm=True, backend=backend)).to(device)
    w_out = torch.randn(T, B, 2 * H, device=device)

    def loss(out: torch.Tensor, h_n: torch.Tensor) -> torch.Tensor:
        return (out * w_out).sum() + h_n.square().sum()

    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(lambda x, lengths: loss(*model(x, lengths=lengths)), fullgraph=True, backend=counter)
    for lengths in (torch.tensor(LENGTHS), torch.tensor((7, 1, 5))):
        x = torch.randn(T, B, D, device=device)
        model.zero_grad()
        x_packed = x.clone().requires_grad_()
        out, h_n = model(pack_padded_sequence(x_packed, lengths, enforce_sorted=False))
        eager = loss(pad_packed_sequence(out, total_length=T)[0], h_n)
        eager.backward()
        eager_grads = [x_packed.grad, *(p.grad.clone() for p in model.parameters())]

        model.zero_grad()
        x_padded = x.clone().requires_grad_()
        traced = compiled(x_padded, lengths)
        traced.backward()
        assert _rel_err(traced, eager) < 1e-5
        for got, want in zip([x_padded.grad, *(p.grad for p in model.parameters())], eager_grads, strict=True):
            assert _rel_err(got, want) < 1e-5
    assert counter.frame_count == 1

    packed = pack_padded_sequence(torch.randn(T, B, D, device=device), torch.tensor(LENGTHS), enforce_sorted=False)
    with pytest.raises(torch._dynamo.exc.Unsupported, match="pad_packed_sequence"):
        torch.compile(lambda p: model(p)[1].sum(), fullgraph=True, backend="aot_eager")(packed)


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
