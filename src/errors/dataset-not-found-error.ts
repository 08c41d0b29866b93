import { FailureType } from '../contract/vocabulary.ts';
import { hasFailureType, TuneflowError } from './tuneflow-error.ts';

/** The dataset file or directory cannot be read. */
export class DatasetNotFoundError extends TuneflowError {
  readonly failureType = FailureType.DatasetNotFound;
}
export const isDatasetNotFoundError = (error: unknown): error is DatasetNotFoundError => hasFailureType(error, FailureType.DatasetNotFound);
