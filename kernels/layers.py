"""IndRNN layers: a drop-in shaped like `nn.LSTM`, with the deep architectures of arXiv 1910.06251.

Every network here is built from two pieces:

    Weight   a projection without bias, applied to all T steps at once: one GEMM over (T*B, C)
    IndRec   optional BatchNorm over the (T*B) frames, then h_t = act(x_t + u * h_{t-1} + b)
             through `indrnn_recurrence` (the Triton kernels or the torch loop)

and arranged as one of three architectures:

    plain      (Weight - BN - IndRec) x num_layers
    residual   Weight, then (num_layers - 1) / 2 pre-activation blocks
               x + Weight(IndRec(BN(Weight(IndRec(BN(x)))))), then a final BN - IndRec
    dense      Weight - BN - IndRec, then dense blocks; each dense layer is a bottleneck
               Weight - BN - IndRec (4k units) - Weight - BN - IndRec (k units) whose k outputs
               are concatenated to its input (k = growth_rate); between blocks a transition
               Weight - BN - IndRec halves the width

The recurrent state of a network is the last state of each IndRec in the order they run.
Dropout is applied to the input of every Weight except the first, so for the plain stack it
acts between layers exactly as in `nn.LSTM`.

What `nn.LSTM` users swap in also works: a bidirectional plain stack (each layer's Weight
projects to both directions at once, a forward and a reverse-time IndRec read their halves in
place, and their outputs are concatenated), variable lengths, as a `PackedSequence` or as a
padded tensor with its lengths (each sequence runs its own number of steps; BatchNorm counts
only the valid frames), unbatched (T, I) input, and `batch_first`, where activations stay in
the batch-first layout and the recurrence reads them in place.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from kernels.constraint import clamp_recurrent_weight_, init_recurrent_weight_, recurrent_bound
from kernels.recurrence import BACKENDS, _check_lengths, check_schedule, indrnn_recurrence
from kernels.reference import ACTIVATIONS, valid_steps

ARCHITECTURES = ("plain", "residual", "dense")
States = torch.Tensor | Sequence[torch.Tensor]


class IndRec(nn.Module):
    """One IndRNN recurrence over a (T, B, H) input: optional BatchNorm, then the recurrence.

    Parameters: `weight_hh` (H,) the recurrent weights u, `bias` (H,) or None, and the
    BatchNorm's affine parameters when `batch_norm` is set.
    """

    def __init__(
        self, hidden_size: int, *, bias: bool, batch_norm: bool, activation: str, recurrent_max: float
    ) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.activation = activation
        self.norm = nn.BatchNorm1d(hidden_size) if batch_norm else None
        self.weight_hh = nn.Parameter(torch.empty(hidden_size))
        self.bias = nn.Parameter(torch.zeros(hidden_size)) if bias else None
        with torch.no_grad():
            self.weight_hh.uniform_(0.0, recurrent_max)

    def forward(
        self,
        x: torch.Tensor,
        h0: torch.Tensor | None = None,
        backend: str = "auto",
        lengths: torch.Tensor | None = None,
        reverse: bool = False,
        schedule: str = "auto",
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (T, B, H) (any time and batch strides), h0: (B, H) or None, lengths: (B,) or None,
        reverse: walk time backwards, schedule: as in `indrnn_recurrence`. Returns (h of shape
        (T, B, H), h_last of shape (B, H))."""
        if self.norm is not None:
            x = self._normalise(x, lengths)
        return indrnn_recurrence(
            x,
            self.weight_hh,
            h0,
            self.bias,
            self.activation,
            backend,
            lengths=lengths,
            reverse=reverse,
            schedule=schedule,
        )

    def _normalise(self, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
        """BatchNorm1d over the frames: T*B samples of H features, or only each row's valid steps."""
        if lengths is not None:
            return masked_batch_norm(self.norm, x, lengths.to(x.device))
        # Frames in memory order, so a batch-first x viewed time first is not copied.
        frames = x.transpose(0, 1) if x.stride(1) > x.stride(0) else x
        normed = self.norm(frames.reshape(-1, self.hidden_size)).view(frames.shape)
        return normed.transpose(0, 1) if frames is not x else normed


def masked_batch_norm(norm: nn.BatchNorm1d, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`norm` over the valid frames of x (T, B, H), those of step t < lengths[b], as nn.BatchNorm1d
    over x[valid] computes it, running statistics included; the other frames pass through.

    The statistics are masked sums divided by the number of valid frames, which stays on the
    device: x[valid] would read that number back to size its output (a sync per call). As in
    nn.BatchNorm1d, normalisation uses the biased variance and the running variance the unbiased
    one, and momentum None means a cumulative average (here without reading num_batches_tracked
    back to the host). A single valid frame, which nn.BatchNorm1d refuses in training, adds a
    running variance of 0 here: refusing it would need the count on the host.
    """
    T, B, _ = x.shape
    if norm.training and T * B == 1:
        raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
    valid = valid_steps(lengths, T)
    if norm.training or norm.running_mean is None:
        count = lengths.sum()
        mean = torch.where(valid, x, 0.0).sum((0, 1), dtype=torch.float32) / count
        centred = torch.where(valid, x - mean, 0.0)
        var = centred.square().sum((0, 1)) / count
        if norm.training and norm.track_running_stats:
            with torch.no_grad():
                norm.num_batches_tracked.add_(1)
                factor = 1.0 / norm.num_batches_tracked if norm.momentum is None else norm.momentum
                unbiased = var * (count / (count - 1).clamp_min(1))
                norm.running_mean.mul_(1 - factor).add_(mean * factor)
                norm.running_var.mul_(1 - factor).add_(unbiased * factor)
    else:
        mean, var = norm.running_mean, norm.running_var
        centred = x - mean
    scale = torch.rsqrt(var + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight
    normed = centred * scale if norm.bias is None else torch.addcmul(norm.bias, centred, scale)
    return torch.where(valid, normed.to(x.dtype), x)


class IndRNN(nn.Module):
    """A stack of IndRNN layers, shaped like `nn.LSTM`: `output, h_n = model(input, h0)`.

    Args:
        input_size: features of each input step, I.
        hidden_size: H, the width of every IndRec in "plain" and "residual"; the width of the
            first IndRec (before the dense blocks) in "dense".
        num_layers: "plain": IndRec layers. "residual": IndRec layers, odd, 2 per block plus
            the final one. "dense": dense layers (each holds 2 IndRec), split by `dense_blocks`.
        bias: give every IndRec a bias (the projections never have one: the IndRec bias or
            BatchNorm shift already plays that role).
        batch_first: input and output are (B, T, ...) instead of (T, B, ...). States are
            always (..., B, H). Activations stay batch first; the recurrence reads them in place.
        bidirectional: "plain" only. Every layer also runs a reverse-time IndRec; the output
            concatenates both directions (2 * hidden_size features) and the states are ordered
            as in nn.LSTM: layer 0 forward, layer 0 backward, layer 1 forward, ...
        dropout: probability of dropping the input of each projection but the first.
        batch_norm: BatchNorm over the T*B frames before every recurrence.
        activation: "relu" (the papers' choice) or "tanh".
        architecture: "plain", "residual" or "dense" (see the module docstring).
        growth_rate: k for "dense" (features each dense layer adds); default hidden_size // 4 (at least 1).
        dense_blocks: dense layers per block for "dense", summing to num_layers; default one block.
        seq_len, gamma: when seq_len is given, recurrent weights start in U(0, gamma^(1/seq_len))
            and `clamp_recurrent_weights_` keeps |u| within gamma^(1/seq_len); otherwise the
            bound is 1.
        backend: "auto", "triton" or "torch", as in `indrnn_recurrence`; may be changed later.
        schedule: "auto", "sequential" or "scan" (relu only), as in `indrnn_recurrence`; may be
            changed later.

    Forward: `output, h_n = model(input, h0=None, lengths=None)`
        input: (T, B, I), or (B, T, I) with batch_first; (T, I), one unbatched sequence, to
            which batch_first does not apply (as in nn.RNN); or a PackedSequence, in which case
            output is packed the same way and h_n holds each sequence's state after its last
            step. torch.compile cannot trace `pad_packed_sequence`, so a PackedSequence breaks
            the graph there (as it does around nn.RNN): a compiled model passes `lengths`.
        h0: initial states, or None for zeros: a (R, B, H) tensor ((R, H) unbatched) when all
            R recurrences have the same width ("plain", "residual"), or a sequence of R tensors
            of (B, width) ((width,) unbatched), widths as in `state_sizes`.
        lengths: (B,) integer steps of each sequence of a padded batched input, in [1, T], on
            the CPU or on the input's device: the result of packing those sequences, without
            the packing. Row b runs its first lengths[b] steps; its later outputs are 0, h_n
            holds its states after its last step, BatchNorm counts only valid frames, and the
            gradients are those of the packed input. The lengths are copied to the device once
            per forward and checked against T where that waits for nothing (on the CPU, outside
            a compiled graph). torch.compile(fullgraph=True) traces this path.
        Returns output (T, B, output_size) (or batch first; (T, output_size) unbatched) and
        h_n, in the form h0 takes (a stacked tensor when the widths are equal, else a tuple).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        *,
        bias: bool = True,
        batch_first: bool = False,
        bidirectional: bool = False,
        dropout: float = 0.0,
        batch_norm: bool = False,
        activation: str = "relu",
        architecture: str = "plain",
        growth_rate: int | None = None,
        dense_blocks: Sequence[int] | None = None,
        seq_len: int | None = None,
        gamma: float = 2.0,
        backend: str = "auto",
        schedule: str = "auto",
    ) -> None:
        super().__init__()
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        check_schedule(schedule, activation)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
        if architecture == "residual" and num_layers % 2 == 0:
            raise ValueError(
                f"a residual IndRNN has 2 IndRec per block plus 1: num_layers must be odd, got {num_layers}"
            )
        if architecture != "dense" and (growth_rate is not None or dense_blocks is not None):
            raise ValueError("growth_rate and dense_blocks apply only to architecture='dense'")
        if bidirectional and architecture != "plain":
            raise ValueError(
                f"bidirectional=True supports architecture='plain' only, got architecture={architecture!r}"
            )

        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.bidirectional = bidirectional
        self.num_directions = 2 if bidirectional else 1
        self.architecture = architecture
        self.backend = backend
        self.schedule = schedule
        self.recurrent_max = 1.0 if seq_len is None else recurrent_bound(seq_len, gamma)
        self.seq_len, self.gamma = seq_len, gamma
        self.dropout = nn.Dropout(dropout)
        # Both lists hold modules in the order forward uses them; forward walks them with iterators.
        self.projections = nn.ModuleList()
        self.recurrences = nn.ModuleList()

        def weight(n_in: int, n_out: int) -> int:
            self.projections.append(nn.Linear(n_in, n_out, bias=False))
            return n_out

        def indrec(width: int) -> int:
            unit = IndRec(
                width, bias=bias, batch_norm=batch_norm, activation=activation, recurrent_max=self.recurrent_max
            )
            self.recurrences.append(unit)
            return width

        if architecture == "plain":
            width = input_size
            for _ in range(num_layers):
                weight(width, self.num_directions * hidden_size)  # both directions in one GEMM
                width = sum(indrec(hidden_size) for _ in range(self.num_directions))
        elif architecture == "residual":
            weight(input_size, hidden_size)
            for _ in range(num_layers // 2):
                weight(indrec(hidden_size), hidden_size)
                weight(indrec(hidden_size), hidden_size)
            width = indrec(hidden_size)
        else:
            k = max(1, hidden_size // 4) if growth_rate is None else growth_rate
            blocks = (num_layers,) if dense_blocks is None else tuple(dense_blocks)
            if isinstance(k, bool) or not isinstance(k, int) or k < 1:
                raise ValueError(f"growth_rate must be a positive integer, got {growth_rate!r}")
            if not blocks or any(n < 1 for n in blocks) or sum(blocks) != num_layers:
                raise ValueError(
                    f"dense_blocks must be positive counts summing to num_layers={num_layers}, got {blocks}"
                )
            self.growth_rate, self.dense_blocks = k, blocks
            width = indrec(weight(input_size, hidden_size))
            for i, n in enumerate(blocks):
                for _ in range(n):
                    indrec(weight(indrec(weight(width, 4 * k)), k))
                    width += k
                if i < len(blocks) - 1:  # transition: halve the width (at least 1)
                    width = indrec(weight(width, max(1, width // 2)))
        self.output_size = width
        self.state_sizes = tuple(unit.hidden_size for unit in self.recurrences)

    @torch.no_grad()
    def clamp_recurrent_weights_(self) -> None:
        """Clamp every recurrent weight to |u| <= recurrent_max; call after each optimiser step."""
        for unit in self.recurrences:
            clamp_recurrent_weight_(unit.weight_hh, self.recurrent_max)

    @torch.no_grad()
    def init_last_layer_(self, eps: float) -> None:
        """The papers' classifier init for the last recurrence: u ~ U(eps^(1/T), gamma^(1/T)).
        Needs seq_len."""
        if self.seq_len is None:
            raise ValueError("init_last_layer_ needs the model to be built with seq_len")
        init_recurrent_weight_(self.recurrences[-1].weight_hh, self.seq_len, self.gamma, eps)

    def flatten_parameters(self) -> None:
        """Does nothing, so that code written for nn.RNN, nn.GRU and nn.LSTM, which calls this
        after loading or moving a model, runs unchanged. Those modules copy their weights into
        one contiguous buffer for cuDNN; here every projection and recurrent weight is already
        the tensor its GEMM or kernel reads."""

    def _initial_states(
        self, h0: States | None, batch: int, like: torch.Tensor, unbatched: bool
    ) -> list[torch.Tensor | None]:
        """h0 as one (B, width) tensor or None per recurrence; unbatched states get a batch of 1."""
        n = len(self.state_sizes)
        if h0 is None:
            return [None] * n
        if isinstance(h0, torch.Tensor):
            rank, kind = (2, "unbatched 2-D") if unbatched else (3, "batched 3-D")
            if h0.dim() != rank:
                raise ValueError(f"h0 must be {rank}-D for {kind} input, got a {h0.dim()}-D tensor")
            states = list(h0.unbind(0))
        else:
            states = list(h0)
        if len(states) != n:
            raise ValueError(f"h0 must hold {n} states (one per recurrence), got {len(states)}")
        for i, (state, width) in enumerate(zip(states, self.state_sizes, strict=True)):
            if not isinstance(state, torch.Tensor):
                raise TypeError(f"h0[{i}] must be a torch.Tensor, got {type(state).__name__}")
            shape = (width,) if unbatched else (batch, width)
            if tuple(state.shape) != shape:
                raise ValueError(f"h0[{i}] must have shape {shape}, got {tuple(state.shape)}")
            if state.device != like.device:
                raise ValueError(f"h0[{i}] is on {state.device} but input is on {like.device}")
        return [state[None] for state in states] if unbatched else states

    def forward(
        self,
        input: torch.Tensor | PackedSequence,
        h0: States | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor | PackedSequence, States]:
        packed = None
        if isinstance(input, PackedSequence):
            if lengths is not None:
                raise ValueError("lengths cannot be given with a PackedSequence, which holds its own")
            packed = input
            input, lengths = pad_packed_sequence(packed, batch_first=self.batch_first)  # lengths on the CPU
        if not isinstance(input, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor or a PackedSequence, got {type(input).__name__}")
        if input.dim() not in (2, 3) or input.shape[-1] != self.input_size:
            layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
            raise ValueError(
                f"input must have shape {layout} or (T, I) with I={self.input_size}, got {tuple(input.shape)}"
            )
        unbatched = input.dim() == 2
        if unbatched and lengths is not None:
            raise ValueError("lengths apply to batched 3-D input, got unbatched 2-D input")
        # Activations keep the input's layout; each recurrence gets a time-first view of them.
        batch_first = self.batch_first and not unbatched
        time_first = (lambda t: t.transpose(0, 1)) if batch_first else (lambda t: t)
        x = input[:, None] if unbatched else input
        states_in = iter(self._initial_states(h0, time_first(x).shape[1], x, unbatched))
        # Once for every layer: a copy to a GPU waits for it.
        device_lengths = None if lengths is None else _check_lengths(lengths, time_first(x))
        projections, recurrences = iter(self.projections), iter(self.recurrences)
        states_out: list[torch.Tensor] = []

        def weight(x: torch.Tensor, first: bool = False) -> torch.Tensor:
            return next(projections)(x if first else self.dropout(x))

        def indrec(x: torch.Tensor, reverse: bool = False) -> torch.Tensor:
            h, h_last = next(recurrences)(
                time_first(x), next(states_in), self.backend, device_lengths, reverse, self.schedule
            )
            states_out.append(h_last)
            return time_first(h)

        if self.architecture == "plain":
            for i in range(self.num_layers):
                x = weight(x, first=i == 0)
                if self.bidirectional:  # each direction reads its half of the projection in place
                    forward, backward = x.split(self.hidden_size, dim=-1)
                    x = torch.cat([indrec(forward), indrec(backward, reverse=True)], dim=-1)
                else:
                    x = indrec(x)
        elif self.architecture == "residual":
            x = weight(x, first=True)
            for _ in range(self.num_layers // 2):
                x = x + weight(indrec(weight(indrec(x))))
            x = indrec(x)
        else:
            x = indrec(weight(x, first=True))
            for i, n in enumerate(self.dense_blocks):
                for _ in range(n):
                    x = torch.cat([x, indrec(weight(indrec(weight(x))))], dim=-1)
                if i < len(self.dense_blocks) - 1:
                    x = indrec(weight(x))

        if unbatched:
            x, states_out = x[:, 0], [state[0] for state in states_out]
        output = x if packed is None else self._pack_like(packed, x, lengths)
        if len(set(self.state_sizes)) == 1:
            return output, torch.stack(states_out)
        return output, tuple(states_out)

    def _pack_like(self, packed: PackedSequence, padded: torch.Tensor, lengths: torch.Tensor) -> PackedSequence:
        """padded (in the input's batch order) packed exactly as the input was: same batch sizes
        and sort order, as nn.LSTM returns it."""
        order = packed.sorted_indices
        if order is not None:
            padded = padded.index_select(0 if self.batch_first else 1, order)
            lengths = lengths.sort(descending=True).values  # lengths[order], without reading order back
        data = pack_padded_sequence(padded, lengths, batch_first=self.batch_first, enforce_sorted=True).data
        return packed._replace(data=data)
