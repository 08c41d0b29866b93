import { FailureType } from '../contract/vocabulary.ts';
import { hasFailureType, TuneflowError } from './tuneflow-error.ts';

/** The run spec does not validate; the message names each bad field by its path. */
export class InvalidSpecError extends TuneflowError {
  readonly failureType = FailureType.InvalidSpec;
}
export const isInvalidSpecError = (error: unknown): error is InvalidSpecError => hasFailureType(error, FailureType.InvalidSpec);
