import { FailureType } from '../contract/vocabulary.ts';
import { hasFailureType, TuneflowError } from './tuneflow-error.ts';

/** The run's checkpoints were written by a different configuration than the one resuming from them. */
export class IncompatibleCheckpointError extends TuneflowError {
  readonly failureType = FailureType.IncompatibleCheckpoint;
}
export const isIncompatibleCheckpointError = (error: unknown): error is IncompatibleCheckpointError =>
  hasFailureType(error, FailureType.IncompatibleCheckpoint);
