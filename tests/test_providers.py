"""Providers: every one builds the same config and runs a step; each declares its role."""

from __future__ import annotations

import pytest
import torch
from harness_helpers import cfg

from suite.core.schema import ROLES
from suite.sweep import measure
from suite.sweep.providers import PROVIDERS, Provider, attention_heads, param_count, role_of

# ---------------------------------------------------------------------------- providers and steps


@pytest.mark.parametrize("name", ["indrnn_torch", "indrnn_residual", "indrnn_dense", "lstm", "gru", "transformer"])
def test_providers_share_the_config_and_run_a_train_step(name):
    c = cfg(name, hidden=16, input_size=3, depth=3 if name == "indrnn_residual" else 1)
    built = PROVIDERS[name].build(c, torch.device("cpu"))
    assert param_count(built.model) > 0
    x = measure.random_input(c, torch.device("cpu"), built.batch_first)
    out = built.forward(x)
    time_axis = 1 if built.batch_first else 0
    assert out.shape[time_axis] == c.seq_len and out.shape[-1] == built.output_size
    if name in ("indrnn_torch", "indrnn_residual", "lstm", "gru", "transformer"):
        assert built.output_size == c.hidden


def test_train_step_zeroes_gradients_between_iterations():
    built = PROVIDERS["lstm"].build(cfg("lstm"), torch.device("cpu"))
    step = measure.model_step(built, cfg("lstm"), torch.device("cpu"))
    step()
    first = [p.grad.clone() for p in built.model.parameters()]
    step()  # same input and weights: the same gradients, not twice them
    for g, p in zip(first, built.model.parameters(), strict=True):
        torch.testing.assert_close(p.grad, g)


def test_attention_heads_divide_hidden():
    for hidden in (8, 16, 48, 128, 200, 2048):
        assert hidden % attention_heads(hidden) == 0


def test_every_provider_declares_its_role_and_one_indrnn_is_preferred():
    roles = {p.role for p in PROVIDERS.values()}
    assert roles <= set(ROLES) and {"indrnn", "baseline", "variant"} <= roles
    indrnns = sorted((p.preference, p.name) for p in PROVIDERS.values() if p.role == "indrnn")
    assert indrnns[0][1] == "indrnn_triton" and len({pref for pref, _ in indrnns}) == len(indrnns)
    assert PROVIDERS["indrnn_compile"].role == "variant" and PROVIDERS["lstm"].role == "baseline"
    assert role_of("someone_elses_model") == "baseline"


def test_a_role_is_checked_when_a_provider_is_declared():
    with pytest.raises(ValueError, match="role must be one of"):
        Provider("x", "bad", lambda c, d: None, lambda c, d: None, role="winner")
    with pytest.raises(ValueError, match="preference"):
        Provider("x", "indrnn without a preference", lambda c, d: None, lambda c, d: None, role="indrnn")
