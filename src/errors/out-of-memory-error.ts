import { FailureType } from '../contract/vocabulary.ts';
import { hasFailureType, TuneflowError } from './tuneflow-error.ts';

/** CUDA ran out of memory at micro-batch 1, after every recovery; details carry the plan and the recoveries tried. */
export class OutOfMemoryError extends TuneflowError {
  readonly failureType = FailureType.OutOfMemory;
}
export const isOutOfMemoryError = (error: unknown): error is OutOfMemoryError => hasFailureType(error, FailureType.OutOfMemory);
