"""Test-only fault injection: a NaN loss at chosen training steps, so the fault suite and the tests can prove the
rollback (rollback.py) on a CPU. Read from the Python worker's environment, never from a spec or a request: no run
spec can turn it on, and a worker started without the variable never injects anything.

    TUNEFLOW_TEST_ONLY_NAN_LOSS_AT_STEPS=7,19   (steps as train_log.jsonl numbers them, from 1)

A poisoned step gets a NaN loss and NaN gradients, as a step whose forward pass overflowed would; it is poisoned each
time it trains rows, so a run that skips the step's rows after a rollback trains the step without them, cleanly.
"""

import os
from typing import Any

NAN_LOSS_AT_STEPS = "TUNEFLOW_TEST_ONLY_NAN_LOSS_AT_STEPS"


def poisoned_steps() -> frozenset[int]:
    value = os.environ.get(NAN_LOSS_AT_STEPS, "")
    return frozenset(int(step) for step in value.split(",") if step.strip())


def poisons_step(step_number: int) -> bool:
    return step_number in poisoned_steps()


def poison_gradients(trainable: list[Any]) -> float:
    """Turns this step's gradients into NaN; returns the step's (NaN) loss."""
    nan = float("nan")
    for parameter in trainable:
        if parameter.grad is not None:
            parameter.grad.fill_(nan)
    return nan
