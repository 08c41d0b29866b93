"""Test-only fault injection, so the fault suite and the tests can prove the rollback (rollback.py) on a CPU. Read
from the Python worker's environment, never from a spec or a request: no run spec can turn it on, and a worker started
without the variables never injects anything.

    TUNEFLOW_TEST_ONLY_NAN_LOSS_AT_STEPS=7,19          steps (numbered as train_log.jsonl numbers them, from 1) whose
                                                       loss and gradients become NaN, as after an overflow
    TUNEFLOW_TEST_ONLY_LOSS_SPIKE_FILE=poisoned.jsonl  a dataset file whose rows' loss (and gradients) are multiplied
                                                       by SPIKE_FACTOR wherever a micro-batch trains them

The tiny random model of the tests cannot learn far enough below a uniform guess (its output head is random and frozen)
for rows of noise to spike its loss by themselves, as they would on a real model: the second variable makes such
rows spike. A poisoned step or row poisons each time it is trained, so a run that skips its rows after a rollback
trains on cleanly.
"""

import os
from collections.abc import Sequence
from typing import Any, Protocol

NAN_LOSS_AT_STEPS = "TUNEFLOW_TEST_ONLY_NAN_LOSS_AT_STEPS"
LOSS_SPIKE_FILE = "TUNEFLOW_TEST_ONLY_LOSS_SPIKE_FILE"
SPIKE_FACTOR = 1000.0


class HasSource(Protocol):
    @property
    def source(self) -> dict[str, Any]: ...


def poisons_step(step_number: int) -> bool:
    value = os.environ.get(NAN_LOSS_AT_STEPS, "")
    return step_number in {int(step) for step in value.split(",") if step.strip()}


def poison_gradients(trainable: list[Any]) -> float:
    """Turns this step's gradients into NaN; returns the step's (NaN) loss."""
    nan = float("nan")
    for parameter in trainable:
        if parameter.grad is not None:
            parameter.grad.fill_(nan)
    return nan


def loss_factor(sequences: Sequence[Sequence[HasSource]]) -> float:
    """What a micro-batch's loss is multiplied by: SPIKE_FACTOR when it trains a row of the spiking file, else 1."""
    spiking = os.environ.get(LOSS_SPIKE_FILE)
    if not spiking:
        return 1.0
    return SPIKE_FACTOR if any(example.source.get("file") == spiking for sequence in sequences for example in sequence) else 1.0
