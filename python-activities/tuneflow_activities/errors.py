"""Typed failures raised by activities. Each becomes a Temporal ApplicationError whose type is in the contract."""

from typing import Any

from temporalio.exceptions import ApplicationError

from .contract import NON_RETRYABLE_FAILURE_TYPES, FailureType


def is_out_of_memory(error: BaseException) -> bool:
    """CUDA ran out of memory (the typed error, or the message other kernels raise it with)."""
    import torch

    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def failure(failure_type: FailureType, message: str, **details: Any) -> ApplicationError:
    """An ApplicationError of a contract failure type; non-retryable exactly when the contract says so."""
    return ApplicationError(
        message,
        details,
        type=failure_type.value,
        non_retryable=failure_type in NON_RETRYABLE_FAILURE_TYPES,
    )
