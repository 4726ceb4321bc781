"""The paper's recurrent-weight constraint and inits: bounds, ranges, in-place behaviour, bad arguments."""

import math

import pytest
import torch

from kernels import IndRNN, clamp_recurrent_weight_, init_recurrent_weight_, recurrent_bound


@pytest.mark.parametrize("seq_len, gamma", [(1, 2.0), (784, 2.0), (1000, 10.0), (5, 0.5)])
def test_bound_limits_growth_to_gamma(seq_len, gamma):
    bound = recurrent_bound(seq_len, gamma)
    assert math.isclose(bound**seq_len, gamma, rel_tol=1e-9)


def test_init_ranges():
    u = torch.empty(20_000, dtype=torch.float64)
    high = recurrent_bound(100, 2.0)
    assert init_recurrent_weight_(u, 100) is u
    assert 0.0 <= u.min() and u.max() <= high
    assert u.max() > 0.99 * high  # fills the range, not a corner of it

    low = recurrent_bound(100, 1e-3)
    init_recurrent_weight_(u, 100, eps=1e-3)
    assert low <= u.min() and u.max() <= high
    assert u.min() < low + 0.01 * (high - low)


def test_clamp_in_place_keeps_grad_and_sign():
    u = torch.tensor([-3.0, -0.5, 0.0, 0.7, 2.0], requires_grad=True)
    out = clamp_recurrent_weight_(u, 1.0)
    assert out is u and u.requires_grad
    assert torch.equal(u.detach(), torch.tensor([-1.0, -0.5, 0.0, 0.7, 1.0]))


@pytest.mark.parametrize(
    "call",
    [
        lambda: recurrent_bound(0),
        lambda: recurrent_bound(2.5),
        lambda: recurrent_bound(10, gamma=0.0),
        lambda: clamp_recurrent_weight_(torch.zeros(3), -1.0),
        lambda: init_recurrent_weight_(torch.zeros(3), 10, gamma=2.0, eps=3.0),
        lambda: IndRNN(3, 4).init_last_layer_(1e-3),  # no seq_len to derive the bound from
    ],
)
def test_bad_arguments_raise(call):
    with pytest.raises(ValueError):
        call()


def test_layer_uses_the_bound():
    model = IndRNN(3, 64, 3, seq_len=50, gamma=2.0)
    bound = recurrent_bound(50, 2.0)
    for unit in model.recurrences:
        assert 0.0 <= unit.weight_hh.min() and unit.weight_hh.max() <= bound

    with torch.no_grad():
        for unit in model.recurrences:
            unit.weight_hh.mul_(-3.0)
    model.clamp_recurrent_weights_()
    for unit in model.recurrences:
        assert unit.weight_hh.abs().max() <= bound
        assert unit.weight_hh.min() == -bound  # clamped, not wrapped or re-initialised

    model.init_last_layer_(eps=0.1)
    assert model.recurrences[-1].weight_hh.min() >= recurrent_bound(50, 0.1)


def test_layer_default_bound_is_one():
    model = IndRNN(3, 32)
    with torch.no_grad():
        model.recurrences[0].weight_hh.fill_(5.0)
    model.clamp_recurrent_weights_()
    assert torch.all(model.recurrences[0].weight_hh == 1.0)
