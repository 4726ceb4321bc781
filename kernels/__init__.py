"""IndRNN kernels: the recurrence in Triton, its torch reference, and IndRNN layers."""

from kernels import op  # noqa: F401 - registers the indrnn:: custom operators the triton backend calls
from kernels.common import interpreter_enabled
from kernels.constraint import clamp_recurrent_weight_, init_recurrent_weight_, recurrent_bound
from kernels.layers import IndRec, IndRNN
from kernels.recurrence import indrnn_recurrence, resolve_backend, resolve_schedule
from kernels.reference import recurrence_reference

__all__ = [
    "IndRNN",
    "IndRec",
    "clamp_recurrent_weight_",
    "indrnn_recurrence",
    "init_recurrent_weight_",
    "interpreter_enabled",
    "recurrence_reference",
    "recurrent_bound",
    "resolve_backend",
    "resolve_schedule",
]
