import { FailureType } from '../contract/vocabulary.ts';
import { hasFailureType, TuneflowError } from './tuneflow-error.ts';

/** Too many rows are invalid, or the file cannot be parsed as a dataset; details carry the report. */
export class InvalidDatasetError extends TuneflowError {
  readonly failureType = FailureType.InvalidDataset;
}
export const isInvalidDatasetError = (error: unknown): error is InvalidDatasetError => hasFailureType(error, FailureType.InvalidDataset);
