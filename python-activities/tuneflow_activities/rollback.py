"""Loss-spike and NaN rollback: the rule that judges each training step before it is applied, and the state it keeps.

The engine (training.py) asks `Rollbacks.judge` with a step's loss and gradient norm before the optimizer step. A value
that is NaN or infinite is refused at once; a finite loss is refused when its robust z-score — its distance above the
median of the last `window_steps` judged steps, in units of their median absolute deviation scaled to a standard
deviation (with a floor, below) — exceeds `z_threshold`, once `min_history_steps` steps are in the window; a finite
gradient norm likewise above `gradient_norm_z_threshold`, when the spec sets one. Medians, not means: one earlier
spike in the window does not hide the next. On a refusal the engine restores its last checkpoint, skips the step's
rows for the rest of the run and goes on (`rolled_back`); after `max_rollbacks` the next refusal fails the run with a
typed, non-retryable TRAINING_DIVERGED naming the step, its rows and the values.

Everything here is part of the checkpoint dict (`as_checkpoint`): the window, the skipped rows and the rollbacks so
far, so a run killed after a rollback resumes exactly as it would have gone on. The rule's parameters are the spec's
`train.rollback`, decided in TypeScript (src/spec/schema.ts).
"""

import math
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, TypedDict

from .contract import FailureType
from .errors import failure
from .payloads import RollbackSpec

RollbackReason = Literal["loss_not_finite", "gradient_norm_not_finite", "loss_spike", "gradient_norm_spike"]
# JSON has no NaN or infinity: a non-finite value travels as its name (the contract's observedValueSchema).
ObservedValue = float | Literal["NaN", "Infinity", "-Infinity"]

# The median absolute deviation of a normal distribution is 0.6745 of its standard deviation: this makes the robust
# z-score comparable to an ordinary one.
MAD_TO_STANDARD_DEVIATION = 1.4826
# A window of nearly equal values (a loss that has flattened out) has a deviation near zero, which would make any
# wobble a spike: the scale is at least this share of the median. A loss spike is then at least 1 + 0.1 z times the
# median (twice it at the default z of 10).
LOSS_SCALE_FLOOR = 0.1
# Gradient norms vary more from step to step than the loss and trend upward early in LoRA training (B starts at zero,
# so at first only B has a gradient): their scale is at least the median itself, so a gradient-norm spike is at least
# 1 + z times the median (11 times at the default z of 10). Real explosions are orders of magnitude.
GRADIENT_NORM_SCALE_FLOOR = 1.0


def observed(value: float) -> ObservedValue:
    """A loss or norm as the contract carries it: the number, or the name of the non-finite value."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def robust_z_score(value: float, window: list[float], floor: float) -> tuple[float, float]:
    """How far `value` lies above the window's median in robust standard deviations (at least `floor` times the median),
    and that median."""
    median = statistics.median(window)
    deviation = statistics.median(abs(entry - median) for entry in window)
    scale = max(MAD_TO_STANDARD_DEVIATION * deviation, floor * abs(median), 1e-12)
    return (value - median) / scale, median


@dataclass(frozen=True)
class Verdict:
    """The judgement of one step: `reason` is None when it may be applied."""

    reason: RollbackReason | None
    z_score: float | None
    loss_median: float | None
    gradient_norm_median: float | None


class RowSource(TypedDict):
    file: str
    row: int


class RollbackRecord(TypedDict):
    """One rollback as the train result, the workflow's progress and a TRAINING_DIVERGED failure list it."""

    step: int
    reason: RollbackReason
    loss: ObservedValue
    gradient_norm: ObservedValue
    loss_median: float | None
    gradient_norm_median: float | None
    z_score: float | None
    restored_step: int
    rows: list[RowSource]
    learning_rate_scale: float
    attempt: int


class SavedRollbacks(TypedDict):
    """The rule's part of a checkpoint dict (`Rollbacks.as_checkpoint`)."""

    losses: list[float]
    gradient_norms: list[float]
    skipped_rows: list[int]
    records: list[RollbackRecord]


@dataclass
class Rollbacks:
    """The rule with its state: the window of judged steps, the rows skipped and the rollbacks made."""

    spec: RollbackSpec
    losses: deque[float] = field(init=False)
    gradient_norms: deque[float] = field(init=False)
    skipped_rows: set[int] = field(default_factory=set[int])
    records: list[RollbackRecord] = field(default_factory=list[RollbackRecord])

    def __post_init__(self) -> None:
        self.losses = deque(maxlen=self.spec.window_steps)
        self.gradient_norms = deque(maxlen=self.spec.window_steps)

    @property
    def learning_rate_scale(self) -> float:
        """The learning rate's multiplier: learning_rate_factor once per rollback so far."""
        return self.spec.learning_rate_factor ** len(self.records)

    def judge(self, loss: float, gradient_norm: float) -> Verdict:
        """Whether a step with this loss and gradient norm may be applied; an applied step joins the window (`record`)."""
        if not self.spec.enabled:
            return Verdict(None, None, None, None)
        enough = len(self.losses) >= self.spec.min_history_steps
        loss_median = statistics.median(self.losses) if enough else None
        norm_median = statistics.median(self.gradient_norms) if enough else None
        if not math.isfinite(loss):
            return Verdict("loss_not_finite", None, loss_median, norm_median)
        if not math.isfinite(gradient_norm):
            return Verdict("gradient_norm_not_finite", None, loss_median, norm_median)
        if not enough:
            return Verdict(None, None, None, None)
        loss_z, _ = robust_z_score(loss, list(self.losses), LOSS_SCALE_FLOOR)
        if loss_z > self.spec.z_threshold:
            return Verdict("loss_spike", loss_z, loss_median, norm_median)
        norm_threshold = self.spec.gradient_norm_z_threshold
        if norm_threshold is not None:
            norm_z, _ = robust_z_score(gradient_norm, list(self.gradient_norms), GRADIENT_NORM_SCALE_FLOOR)
            if norm_z > norm_threshold:
                return Verdict("gradient_norm_spike", norm_z, loss_median, norm_median)
        return Verdict(None, None, loss_median, norm_median)

    def record(self, loss: float, gradient_norm: float) -> None:
        """An applied step's values join the window."""
        self.losses.append(loss)
        self.gradient_norms.append(gradient_norm)

    def rolled_back(self, record: RollbackRecord, rows: list[int]) -> None:
        """Counts a rollback and skips its step's rows (indices of the run's examples) from now on. Fails the run,
        non-retryably, when it would be one more than max_rollbacks."""
        if len(self.records) >= self.spec.max_rollbacks:
            raise diverged(record, self.records, self.spec.max_rollbacks)
        self.records.append(record)
        self.skipped_rows.update(rows)

    def as_checkpoint(self) -> SavedRollbacks:
        """Part of the checkpoint dict: everything a resume needs to judge and skip as this run would have."""
        return {
            "losses": list(self.losses),
            "gradient_norms": list(self.gradient_norms),
            "skipped_rows": sorted(self.skipped_rows),
            "records": [RollbackRecord(**record) for record in self.records],
        }

    def restore(self, saved: SavedRollbacks | None) -> None:
        """Resume: the checkpoint's window, skipped rows and rollbacks (a checkpoint written before rollback existed has
        none: nothing was skipped)."""
        self.restore_window(saved)
        self.skipped_rows = set(saved["skipped_rows"]) if saved else set[int]()
        self.records = [RollbackRecord(**record) for record in saved["records"]] if saved else []

    def restore_window(self, saved: SavedRollbacks | None) -> None:
        """A rollback: the window as it was at the restored checkpoint; the skipped rows and rollbacks stay this run's."""
        self.losses = deque(saved["losses"] if saved else [], maxlen=self.spec.window_steps)
        self.gradient_norms = deque(saved["gradient_norms"] if saved else [], maxlen=self.spec.window_steps)


def diverged(record: RollbackRecord, earlier: list[RollbackRecord], max_rollbacks: int) -> Exception:
    """TRAINING_DIVERGED for the step in `record`, after `earlier` rollbacks."""
    rows = ", ".join(f"{row['file']}:{row['row']}" for row in record["rows"][:10])
    more = f" and {len(record['rows']) - 10} more" if len(record["rows"]) > 10 else ""
    median = f", window median loss {record['loss_median']:.4g}" if record["loss_median"] is not None else ""
    return failure(
        FailureType.TRAINING_DIVERGED,
        f"training diverged at step {record['step']} ({record['reason'].replace('_', ' ')}: loss {record['loss']}, gradient norm "
        f"{record['gradient_norm']}{median}) after {len(earlier)} rollbacks (train.rollback.max_rollbacks is {max_rollbacks}); "
        f"the step trained rows {rows}{more}. Lower the learning rate, set train.rollback.learning_rate_factor below 1, "
        "or look at those rows.",
        rollback=record,
        rollbacks=list(earlier),
    )
