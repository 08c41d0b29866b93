import { FailureType } from '../contract/index.ts';
import { hasFailureType, TuneflowError } from '../errors/tuneflow-error.ts';

/**
 * A compare-and-swap on the registry lost: the champion changed between reading it and writing the promotion.
 * Retrying the same request cannot help; the caller decides again from the new champion.
 */
export class RegistryConflictError extends TuneflowError {
  readonly failureType = FailureType.RegistryConflict;
}
export const isRegistryConflictError = (error: unknown): error is RegistryConflictError => hasFailureType(error, FailureType.RegistryConflict);
