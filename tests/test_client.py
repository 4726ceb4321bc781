"""A client program written for nn.LSTM runs with IndRNN swapped in by name.

The client is a small word-level language model in the manner of PyTorch's word_language_model
example: an embedding encoder, a recurrent layer built by name from `torch.nn`, a decoder, an
`init_hidden` that returns LSTM's (h, c) pair and one tensor for every other layer, training by
truncated backpropagation through time (the state carried from batch to batch, detached), and
the model saved whole and as a state dict, reloaded, and `flatten_parameters()` called after
loading. What the swap changes in it is only the line that picks the layer class: the README's
recipe.
"""

import pickle

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kernels import IndRec, IndRNN

VOCAB, EMBED, HIDDEN, LAYERS = 11, 8, 16, 2
BATCH, BPTT = 4, 6
# What a client lists for `torch.load` of a whole model: its own classes, then those its recurrent
# layer is made of (the README's recipe names the IndRNN's).
CLIENT_CLASSES = [nn.Embedding, nn.Dropout, nn.Linear]
LAYER_CLASSES = {"LSTM": [nn.LSTM], "IndRNN": [IndRNN, IndRec, nn.ModuleList, nn.Linear, nn.Dropout]}


class LanguageModel(nn.Module):
    """Embedding -> recurrent layer -> linear decoder, giving log-probabilities of the next token."""

    def __init__(self, rnn_type: str, dropout: float = 0.1) -> None:
        super().__init__()
        self.rnn_type = rnn_type
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(VOCAB, EMBED)
        rnn_class = {"IndRNN": IndRNN}.get(rnn_type) or getattr(nn, rnn_type)  # the one line the swap adds
        self.rnn = rnn_class(EMBED, HIDDEN, LAYERS, dropout=dropout)
        self.decoder = nn.Linear(HIDDEN, VOCAB)

    def forward(self, tokens: torch.Tensor, hidden):
        output, hidden = self.rnn(self.drop(self.encoder(tokens)), hidden)
        logits = self.decoder(self.drop(output))
        return F.log_softmax(logits.view(-1, VOCAB), dim=1), hidden

    def init_hidden(self, batch: int):
        zeros = next(self.parameters()).new_zeros(LAYERS, batch, HIDDEN)
        return (zeros, zeros.clone()) if self.rnn_type == "LSTM" else zeros


def built(rnn_type: str) -> LanguageModel:
    """The client's model; an IndRNN on the torch backend, whose loop the kernels are tested
    against elsewhere: through the Triton interpreter, a training loop would take most of a minute."""
    model = LanguageModel(rnn_type)
    if rnn_type == "IndRNN":
        model.rnn.backend = "torch"
    return model


def repackage_hidden(hidden):
    """The state cut off from the batch that made it, so the next backward stops there."""
    if isinstance(hidden, torch.Tensor):
        return hidden.detach()
    return tuple(repackage_hidden(h) for h in hidden)


def corpus(n_tokens: int, seed: int) -> torch.Tensor:
    """Token columns (n_tokens // BATCH, BATCH) of a stream where each token mostly follows from the
    one before by a fixed rule, with some noise: something a small recurrent model learns quickly."""
    generator = torch.Generator().manual_seed(seed)
    successor = torch.randperm(VOCAB, generator=torch.Generator().manual_seed(0))
    tokens = [0]
    noise = torch.rand(n_tokens, generator=generator) < 0.1
    random = torch.randint(VOCAB, (n_tokens,), generator=generator)
    for i in range(1, n_tokens):
        tokens.append(int(random[i]) if noise[i] else int(successor[tokens[-1]]))
    stream = torch.tensor(tokens[: n_tokens // BATCH * BATCH])
    return stream.view(BATCH, -1).t().contiguous()


def batches(source: torch.Tensor):
    """(input, target) pairs of up to BPTT steps; the target is the input shifted one step on."""
    for i in range(0, source.shape[0] - 1, BPTT):
        n = min(BPTT, source.shape[0] - 1 - i)
        yield source[i : i + n], source[i + 1 : i + 1 + n].reshape(-1)


def evaluate(model: LanguageModel, source: torch.Tensor) -> float:
    model.eval()
    total, hidden = 0.0, model.init_hidden(BATCH)
    with torch.no_grad():
        for data, targets in batches(source):
            output, hidden = model(data, hidden)
            total += len(data) * F.nll_loss(output, targets).item()
    return total / (source.shape[0] - 1)


def train_epoch(model: LanguageModel, source: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
    model.train()
    hidden = model.init_hidden(BATCH)
    for data, targets in batches(source):
        hidden = repackage_hidden(hidden)
        model.zero_grad()
        output, hidden = model(data, hidden)
        F.nll_loss(output, targets).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()


@pytest.mark.parametrize("rnn_type", ["LSTM", "IndRNN"])
def test_client_trains_saves_and_reloads(rnn_type, tmp_path):
    """The same client code with nn.LSTM and with IndRNN: the validation loss falls over a few
    epochs of truncated BPTT, and the model saved whole (loaded with the classes the README names)
    or as a state dict gives, after `flatten_parameters()`, the output the trained model gives."""
    torch.manual_seed(0)
    train_data, valid_data = corpus(480, seed=1), corpus(160, seed=2)
    model = built(rnn_type)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    before = evaluate(model, valid_data)  # about ln(VOCAB) = 2.4 untrained
    for _ in range(3):
        train_epoch(model, train_data, optimizer)
    after = evaluate(model, valid_data)
    assert after < 0.75 * before, (before, after)

    torch.save(model, tmp_path / "model.pt")
    torch.save(model.state_dict(), tmp_path / "state.pt")
    with torch.serialization.safe_globals([LanguageModel, *CLIENT_CLASSES, *LAYER_CLASSES[rnn_type]]):
        whole = torch.load(tmp_path / "model.pt")
    whole.rnn.flatten_parameters()
    from_state = built(rnn_type)
    from_state.load_state_dict(torch.load(tmp_path / "state.pt"))
    from_state.rnn.flatten_parameters()

    data = valid_data[:BPTT]
    model.eval()
    want_output, want_hidden = model(data, model.init_hidden(BATCH))
    for loaded in (whole.eval(), from_state.eval()):
        output, hidden = loaded(data, loaded.init_hidden(BATCH))
        assert torch.equal(output, want_output)
        for got, want in zip(repackage_hidden(hidden), repackage_hidden(want_hidden), strict=True):
            assert torch.equal(got, want)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_a_saved_indrnn_needs_the_classes_the_readme_names(batch_norm, tmp_path):
    """torch.load (weights_only, its default) of a whole IndRNN of any architecture needs exactly the
    classes the README names, and nn.BatchNorm1d with batch_norm: it loads with them and fails
    without any one of them."""
    classes = LAYER_CLASSES["IndRNN"] + ([nn.BatchNorm1d] if batch_norm else [])
    for kwargs in (dict(bidirectional=True), dict(architecture="residual"), dict(architecture="dense")):
        torch.save(IndRNN(EMBED, HIDDEN, 3, batch_norm=batch_norm, **kwargs), tmp_path / "rnn.pt")
        with torch.serialization.safe_globals(classes):
            assert isinstance(torch.load(tmp_path / "rnn.pt"), IndRNN)
        for missing in classes:
            allowed = [c for c in classes if c is not missing]
            with (
                torch.serialization.safe_globals(allowed),
                pytest.raises(pickle.UnpicklingError, match=missing.__name__),
            ):
                torch.load(tmp_path / "rnn.pt")
