import type { FailureType } from '../contract/vocabulary.ts';

const marker = Symbol.for('tuneflow.error');

/**
 * Base of tuneflow's errors. Each subclass names the contract's failure type it becomes when it crosses an
 * activity boundary, and whether a retry could ever help.
 */
export abstract class TuneflowError extends Error {
  readonly [marker] = true;
  abstract readonly failureType: FailureType;
  /** Bad input stays bad: such errors fail the activity at once instead of retrying. */
  readonly nonRetryable: boolean = true;

  /** Structured facts for the failure's details (file, row, field, plan…). JSON-serialisable. */
  readonly details: Record<string, unknown>;

  constructor(message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.details = details;
  }
}

export function isTuneflowError(error: unknown): error is TuneflowError {
  return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
}

export function hasFailureType(error: unknown, failureType: FailureType): boolean {
  return isTuneflowError(error) && error.failureType === failureType;
}
