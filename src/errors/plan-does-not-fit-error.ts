import { FailureType } from '../contract/vocabulary.ts';
import { hasFailureType, TuneflowError } from './tuneflow-error.ts';

/** The planner found that the run cannot fit the device; details carry the plan and the changes that would fit. */
export class PlanDoesNotFitError extends TuneflowError {
  readonly failureType = FailureType.PlanDoesNotFit;
}
export const isPlanDoesNotFitError = (error: unknown): error is PlanDoesNotFitError => hasFailureType(error, FailureType.PlanDoesNotFit);
