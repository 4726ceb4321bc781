"""The host side of one layer's forward + backward, counted with the Triton launches stubbed out
(suite/sweep/host_time.py): what it launches, allocates, fills, reduces, copies to the device and
waits for, on each schedule's path. Counts only, on the meta device (a device apart from the host,
as a GPU is); the host times themselves are a benchmark (`run_bench.py host-time`), never asserted.
"""

import pytest
import torch
from torch.nn.utils.rnn import pack_sequence

from kernels import IndRNN
from suite.sweep.host_time import SCHEDULES, auto_schedule, count_call, layer_step, minimal_step, network_step

SMALL_SIZE = (16, 4, 32)
LAUNCHES = {"sequential": 2, "scan": 6}  # forward + backward: the walk's two kernels, the scan's three each way


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_one_layer_does_what_the_minimal_function_does(schedule):
    """Forward + backward of one layer on either schedule: its kernels' launches, nothing
    zero-filled (the backward kernels write every partial sum and dh0 themselves), one reduction
    for du and dbias together, no custom operator eagerly, and exactly the tensors the schedule's
    minimal autograd.Function allocates."""
    layer = count_call(layer_step(SMALL_SIZE, "meta", schedule))
    minimal = count_call(minimal_step(SMALL_SIZE, "meta", schedule))
    assert (layer.launches, layer.fills, layer.reductions, layer.custom_ops) == (LAUNCHES[schedule], 0, 1, 0)
    assert minimal.launches == LAUNCHES[schedule]
    assert (layer.syncs, layer.host_to_device) == (0, 0)
    assert layer.fresh_tensors == minimal.fresh_tensors


def test_auto_takes_the_gpus_schedule_and_every_kernel_is_stubbed():
    """schedule="auto" decides as on the GPU the stubs stand for: the scan at the paper's size (its
    columns fill too little of that GPU), the walk at a short T; at a size where it takes the scan,
    all six launches are stubs (a kernel left unstubbed would run, and fail, on the meta device)."""
    assert auto_schedule((1024, 32, 128)) == "scan"
    assert auto_schedule(SMALL_SIZE) == "sequential"
    assert count_call(layer_step((256, 4, 32), "meta", "auto")).launches == LAUNCHES["scan"]


def test_packed_batch_norm_never_waits_for_the_device():
    """BatchNorm over the valid frames of a packed batch (lengths on the device): no value is read
    back and no copy is made, so nothing waits for the device."""
    counts = count_call(layer_step(SMALL_SIZE, "meta", "sequential", packed_batch_norm=True))
    assert counts.launches == 2 and counts.syncs == 0 and counts.host_to_device == 0


@pytest.mark.parametrize("batch_norm", [False, True])
def test_a_network_copies_lengths_to_the_device_once(batch_norm):
    """A packed IndRNN moves its lengths to the device once per forward, whatever its depth: that
    copy is the only wait for the device in forward + backward."""
    for layers in (2, 3):
        counts = count_call(network_step(SMALL_SIZE, "meta", "sequential", num_layers=layers, batch_norm=batch_norm))
        assert counts.launches == 2 * layers
        assert counts.host_to_device == 1 and counts.syncs == 1


@pytest.mark.parametrize("lengths_on", ["cpu", "meta"])
def test_a_padded_batch_with_lengths_copies_them_at_most_once(lengths_on):
    """Lengths given with a padded batch: on the host they are copied to the device once per
    forward (the only wait), already on the device never; nothing reads them back either way."""
    T, B, H = SMALL_SIZE
    model = IndRNN(H, H, 2, batch_norm=True, backend="triton").to("meta")
    x, d_out = torch.randn(T, B, H, device="meta", requires_grad=True), torch.randn(T, B, H, device="meta")
    lengths = torch.arange(T, T - B, -1).clamp_min(1).to(lengths_on)
    inputs = (x, *model.parameters())
    counts = count_call(lambda: torch.autograd.grad(model(x, lengths=lengths)[0], inputs, d_out))
    assert counts.launches == 4
    assert (counts.host_to_device, counts.syncs) == ((1, 1) if lengths_on == "cpu" else (0, 0))


def test_packing_the_output_reads_nothing_back():
    """The output of an unsorted packed batch is packed in the input's order with the lengths
    sorted on the host, not by reading the sort order back from the device."""
    packed = pack_sequence([torch.randn(n, 3) for n in (2, 5, 3)], enforce_sorted=False)
    on_device = packed._replace(
        data=packed.data.to("meta"),
        sorted_indices=packed.sorted_indices.to("meta"),
        unsorted_indices=packed.unsorted_indices.to("meta"),
    )
    model = IndRNN(3, 4).to("meta")
    padded, lengths = torch.randn(5, 3, 4, device="meta"), torch.tensor([2, 5, 3])
    counts = count_call(lambda: model._pack_like(on_device, padded, lengths))
    assert counts.syncs == 0 and counts.host_to_device == 0


def test_counts_see_syncs_copies_and_fills():
    """The counter is not blind: a boolean index and a scalar read (meta refuses both; they are
    counted first), a blocking copy to the device, a zero fill and a reduction are each seen."""
    x, lengths = torch.randn(4, 3, device="meta"), torch.tensor([1, 2, 3])

    def step():
        lengths.to("meta")
        torch.zeros(3, device="meta")
        for read_back in (lambda: x[x > 0], lambda: x.sum().item()):
            try:
                read_back()
            except (NotImplementedError, RuntimeError):
                pass

    counts = count_call(step)
    assert (counts.host_to_device, counts.syncs, counts.fills, counts.reductions) == (1, 3, 1, 1)
