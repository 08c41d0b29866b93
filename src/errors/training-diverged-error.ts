import { FailureType } from '../contract/vocabulary.ts';
import { hasFailureType, TuneflowError } from './tuneflow-error.ts';

/**
 * Training diverged past train.rollback.max_rollbacks: a NaN/infinite or spiking loss or gradient norm came back
 * after every rollback. `details.rollback` is the step that failed (its rows, loss, gradient norm and the window's
 * medians), `details.rollbacks` the earlier ones.
 */
export class TrainingDivergedError extends TuneflowError {
  readonly failureType = FailureType.TrainingDiverged;
}
export const isTrainingDivergedError = (error: unknown): error is TrainingDivergedError => hasFailureType(error, FailureType.TrainingDiverged);
