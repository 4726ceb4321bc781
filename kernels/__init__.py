"""IndRNN kernels: the recurrence in Triton, its torch reference, and IndRNN layers."""

from kernels.recurrence import indrnn_recurrence, interpreter_enabled, resolve_backend
from kernels.reference import recurrence_reference

__all__ = ["indrnn_recurrence", "interpreter_enabled", "recurrence_reference", "resolve_backend"]
