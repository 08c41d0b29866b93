import { FailureType } from '../contract/vocabulary.ts';
import { hasFailureType, TuneflowError } from './tuneflow-error.ts';

/** The model source is neither a builtin model, a Hugging Face directory nor a GGUF file. */
export class ModelNotFoundError extends TuneflowError {
  readonly failureType = FailureType.ModelNotFound;
}
export const isModelNotFoundError = (error: unknown): error is ModelNotFoundError => hasFailureType(error, FailureType.ModelNotFound);
