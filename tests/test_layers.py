"""IndRNN layers: shapes, the architectures' structure, state plumbing, backend equality, errors.

Shapes are tiny and odd (B*H never a multiple of the kernel's block) so masks are exercised;
without CUDA the triton backend runs through the interpreter (see conftest.py).
"""

import pytest
import torch

import kernels.layers
from kernels import IndRNN, indrnn_recurrence

T, B, D, H = 6, 3, 5, 7  # steps, batch, input features, hidden units
ARCHS = {
    "plain": dict(architecture="plain", num_layers=2),
    "residual": dict(architecture="residual", num_layers=3),
    "dense": dict(architecture="dense", num_layers=3, growth_rate=2, dense_blocks=(2, 1)),
}
# Relative error (to the largest magnitude) tolerated between backends, per dtype.
# fp32: two summation orders through up to 7 recurrences and BatchNorms differ by a few 1e-6
# (1.07e-5 seen once in 22 runs on a 2-element gradient); a real wiring error is O(1).
TOL = {torch.float32: 1e-4, torch.float16: 1e-2, torch.bfloat16: 5e-2}


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


def _randomise(model: IndRNN) -> IndRNN:
    """Negative, |u| > 1 and nonzero-bias entries: the cases a fresh init never produces."""
    with torch.no_grad():
        for unit in model.recurrences:
            unit.weight_hh.uniform_(-1.2, 1.2)
            unit.bias.uniform_(-0.3, 0.3)
    return model


def _states(h):
    return [h] if isinstance(h, torch.Tensor) else list(h)


@pytest.mark.parametrize("arch", ARCHS)
def test_shapes_and_state_sizes(arch):
    model = IndRNN(D, H, **ARCHS[arch])
    out, h_n = model(torch.randn(T, B, D))
    assert out.shape == (T, B, model.output_size)
    states = list(h_n.unbind(0)) if isinstance(h_n, torch.Tensor) else list(h_n)
    assert [tuple(s.shape) for s in states] == [(B, w) for w in model.state_sizes]
    # The last recurrence's final state is the output's last step wherever the output is that recurrence.
    if arch != "dense":
        assert torch.equal(states[-1], out[-1])


def test_dense_widths():
    model = IndRNN(D, 8, 5, architecture="dense", growth_rate=3, dense_blocks=(3, 2))
    # stem 8, +3 x3 = 17, transition 8, +3 x2 = 14
    assert model.output_size == 14
    assert model.state_sizes == (8, 12, 3, 12, 3, 12, 3, 8, 12, 3, 12, 3)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_parameter_gets_a_gradient(arch):
    model = IndRNN(D, H, batch_norm=True, **ARCHS[arch])
    out, h_n = model(torch.randn(T, B, D))
    (out.square().sum() + sum(s.sum() for s in _states(h_n))).backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_plain_matches_float64_loop():
    model = _randomise(IndRNN(D, H, 2, backend="auto"))
    x = torch.randn(T, B, D)
    h0 = torch.randn(2, B, H)
    out, h_n = model(x, h0)

    # The definition written out: h_t = relu(W x_t + u * h_{t-1} + b), layer by layer.
    layer_in = x.double()
    for layer, (proj, unit) in enumerate(zip(model.projections, model.recurrences, strict=True)):
        w, u, b = (p.detach().double() for p in (proj.weight, unit.weight_hh, unit.bias))
        state, steps = h0[layer].double(), []
        for t in range(T):
            state = torch.relu(layer_in[t] @ w.T + u * state + b)
            steps.append(state)
        layer_in = torch.stack(steps)
        assert _rel_err(h_n[layer], state) < 1e-5
    assert _rel_err(out, layer_in) < 1e-5


def test_residual_block_is_identity_when_its_last_weight_is_zero():
    model = _randomise(IndRNN(D, H, 3, architecture="residual"))
    stem, _, block_out = model.projections
    with torch.no_grad():
        block_out.weight.zero_()
    x = torch.randn(T, B, D)
    out, _ = model(x)
    expected, _ = model.recurrences[-1](stem(x), None, model.backend)
    assert torch.allclose(out, expected, rtol=1e-6, atol=1e-6)


def test_dense_keeps_earlier_features():
    model = _randomise(IndRNN(D, H, 2, architecture="dense", growth_rate=2))
    x = torch.randn(T, B, D)
    out, _ = model(x)
    stem, _ = model.recurrences[0](model.projections[0](x), None, model.backend)
    assert torch.equal(out[..., :H], stem)
    assert out.shape[-1] == H + 2 * 2


@pytest.mark.parametrize("arch", ARCHS)
def test_state_carries_across_calls(arch):
    """Running T steps at once equals running them in two pieces, feeding h_n back as h0."""
    model = _randomise(IndRNN(D, H, **ARCHS[arch]))
    x = torch.randn(T, B, D)
    full, h_full = model(x)
    first, h_mid = model(x[:2])
    second, h_end = model(x[2:], h_mid)
    assert torch.allclose(torch.cat([first, second]), full, rtol=1e-5, atol=1e-6)
    for a, b in zip(_states(h_end), _states(h_full), strict=True):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6)


def test_batch_first():
    model = _randomise(IndRNN(D, H, 2))
    model_bf = IndRNN(D, H, 2, batch_first=True)
    model_bf.load_state_dict(model.state_dict())
    x = torch.randn(T, B, D)
    out, h_n = model(x)
    out_bf, h_n_bf = model_bf(x.transpose(0, 1))
    # Not bit-equal: batch first, the projection GEMMs take their rows in (B, T) order, which the
    # BLAS may sum in another order (1 ulp seen).
    assert torch.allclose(out_bf, out.transpose(0, 1), rtol=1e-6, atol=1e-6)
    assert torch.allclose(h_n_bf, h_n, rtol=1e-6, atol=1e-6)


def test_dropout_acts_between_layers_only():
    one_layer = IndRNN(D, H, 1, dropout=0.5).train()
    x = torch.randn(T, B, D)
    assert torch.equal(one_layer(x)[0], one_layer(x)[0])  # no projection after the first: no dropout

    two_layers = IndRNN(D, H, 2, dropout=0.5).train()
    assert not torch.equal(two_layers(x)[0], two_layers(x)[0])
    two_layers.eval()
    assert torch.equal(two_layers(x)[0], two_layers(x)[0])


def _run_backends(make, dtype: torch.dtype, device: str) -> dict[str, list[torch.Tensor]]:
    """Outputs, final states, input gradient and every parameter gradient of one model (same
    parameters, same input) under each backend."""
    reference = _randomise(make("torch")).to(device=device, dtype=dtype)
    x = torch.randn(T, B, D, device=device, dtype=dtype)
    results = {}
    for backend in ("torch", "triton"):
        model = make(backend).to(device=device, dtype=dtype)
        model.load_state_dict(reference.state_dict())
        xb = x.clone().requires_grad_()
        out, h_n = model(xb)
        (out.float().square().sum() + sum(s.float().sum() for s in _states(h_n))).backward()
        results[backend] = [out, *_states(h_n), xb.grad] + [p.grad for p in model.parameters()]
    return results


@pytest.mark.triton
@pytest.mark.parametrize("arch", ARCHS)
def test_backends_agree(arch, device):
    """Every architecture, with BatchNorm, in fp32: triton and torch agree on every output and gradient."""
    activation = "tanh" if arch == "residual" else "relu"
    make = lambda backend: IndRNN(D, H, batch_norm=True, activation=activation, backend=backend, **ARCHS[arch])
    results = _run_backends(make, torch.float32, device)
    for got, want in zip(results["triton"], results["torch"], strict=True):
        assert _rel_err(got, want) < TOL[torch.float32]


@pytest.mark.triton
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_backends_agree_low_precision(dtype, device):
    """Two plain layers without BatchNorm: deeper low-precision nets differ by rounding noise
    amplified through the fp16/bf16 projections and norms, whichever backend runs the recurrence."""
    make = lambda backend: IndRNN(D, H, 2, backend=backend)
    results = _run_backends(make, dtype, device)
    for got, want in zip(results["triton"], results["torch"], strict=True):
        assert _rel_err(got, want) < TOL[dtype]


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(architecture="recurrent"),
        dict(architecture="residual", num_layers=2),
        dict(architecture="dense", num_layers=3, dense_blocks=(1, 1)),
        dict(architecture="dense", growth_rate=0),
        dict(architecture="plain", growth_rate=4),
        dict(num_layers=0),
        dict(activation="sigmoid"),
        dict(backend="cuda"),
        dict(dropout=1.0),
    ],
)
def test_bad_construction_raises(kwargs):
    with pytest.raises(ValueError):
        IndRNN(D, H, **kwargs)


def test_bad_forward_inputs_raise():
    model = IndRNN(D, H, 2)
    with pytest.raises(ValueError, match="input"):
        model(torch.randn(T, B, D + 1))
    for shape in ((D,), (T, B, 1, D)):  # (T, I) is one unbatched sequence, (T, B, I) a batch
        with pytest.raises(ValueError, match="input"):
            model(torch.randn(shape))
    with pytest.raises(TypeError, match="input"):
        model([[1.0]])
    with pytest.raises(ValueError, match="h0"):
        model(torch.randn(T, B, D), torch.zeros(3, B, H))  # 3 states for 2 recurrences
    with pytest.raises(ValueError, match="h0"):
        model(torch.randn(T, B, D), torch.zeros(2, B + 1, H))


@pytest.mark.triton
def test_backend_reaches_every_recurrence(monkeypatch):
    seen = []

    def recording(*args, **kwargs):
        seen.append(args[-1])
        return indrnn_recurrence(*args, **kwargs)

    monkeypatch.setattr(kernels.layers, "indrnn_recurrence", recording)
    model = IndRNN(D, H, **ARCHS["dense"], backend="torch")
    model(torch.randn(T, B, D))
    model.backend = "triton"  # switchable after construction, for benchmarks
    model(torch.randn(T, B, D))
    n = len(model.recurrences)
    assert seen == ["torch"] * n + ["triton"] * n
