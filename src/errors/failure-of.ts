import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { FailureType } from '../contract/vocabulary.ts';
import { DatasetNotFoundError } from './dataset-not-found-error.ts';
import { IncompatibleCheckpointError } from './incompatible-checkpoint-error.ts';
import { InvalidDatasetError } from './invalid-dataset-error.ts';
import { InvalidSpecError } from './invalid-spec-error.ts';
import { ModelNotFoundError } from './model-not-found-error.ts';
import { OutOfMemoryError } from './out-of-memory-error.ts';
import { PlanDoesNotFitError } from './plan-does-not-fit-error.ts';
import { TrainingDivergedError } from './training-diverged-error.ts';
import type { TuneflowError } from './tuneflow-error.ts';

type TuneflowErrorClass = new (message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) => TuneflowError;

/** The final failure types, each with its error class. WorkerLost is absent: it is retried, never final. */
const errorClasses: Partial<Record<FailureType, TuneflowErrorClass>> = {
  [FailureType.InvalidSpec]: InvalidSpecError,
  [FailureType.DatasetNotFound]: DatasetNotFoundError,
  [FailureType.InvalidDataset]: InvalidDatasetError,
  [FailureType.ModelNotFound]: ModelNotFoundError,
  [FailureType.PlanDoesNotFit]: PlanDoesNotFitError,
  [FailureType.IncompatibleCheckpoint]: IncompatibleCheckpointError,
  [FailureType.OutOfMemory]: OutOfMemoryError,
  [FailureType.TrainingDiverged]: TrainingDivergedError,
};

/**
 * The typed tuneflow error behind a failed run, or null when the run failed for another reason (cancelled,
 * timed out, a bug). Temporal wraps the error an activity raised once per boundary it crossed — the activity
 * (ActivityFailure), a child workflow (ChildWorkflowFailure), the run itself (WorkflowFailedError) — and this
 * unwraps to the first application failure whose type is tuneflow's. Its message and details (file, row, plan…)
 * come back as they were raised; the Temporal failure is the cause.
 *
 * ```ts
 * const error = await handle.result().catch(failureOf);
 * if (isPlanDoesNotFitError(error)) console.log(error.details.plan);
 * ```
 */
export function failureOf(error: unknown): TuneflowError | null {
  for (let cause: unknown = error; cause instanceof Error; cause = cause.cause) {
    if (!(cause instanceof ApplicationFailure)) {
      // WorkflowFailedError is the client's wrapper, not a TemporalFailure; every other wrapper is one.
      if (cause instanceof TemporalFailure || cause instanceof WorkflowFailedError) continue;
      return null;
    }
    const errorClass = cause.type ? errorClasses[cause.type as FailureType] : undefined;
    if (errorClass) {
      const [details] = (cause.details ?? []) as [Record<string, unknown>?];
      return new errorClass(cause.message, details ?? {}, { cause });
    }
  }
  return null;
}
