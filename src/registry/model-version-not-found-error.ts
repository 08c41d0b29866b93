import { FailureType } from '../contract/index.ts';
import { hasFailureType, TuneflowError } from '../errors/tuneflow-error.ts';

/** The registry has no such model, version, or earlier champion to roll back to. */
export class ModelVersionNotFoundError extends TuneflowError {
  readonly failureType = FailureType.ModelVersionNotFound;
}
export const isModelVersionNotFoundError = (error: unknown): error is ModelVersionNotFoundError => hasFailureType(error, FailureType.ModelVersionNotFound);
