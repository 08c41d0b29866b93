import { FailureType } from '../contract/vocabulary.ts';
import { hasFailureType, TuneflowError } from './tuneflow-error.ts';

/** A payload does not match its schema in the contract; the message names the payload, the field and why. */
export class ContractViolationError extends TuneflowError {
  readonly failureType = FailureType.ContractViolation;
}
export const isContractViolationError = (error: unknown): error is ContractViolationError => hasFailureType(error, FailureType.ContractViolation);
