import { ApplicationFailure, TemporalFailure } from '@temporalio/workflow';

/**
 * One line for a failed stage: the tuneflow failure type and message at the root of the chain (a child workflow's
 * failure wraps its activity's failure, which wraps the application failure the activity raised).
 */
export function describeFailure(error: unknown): string {
  for (let cause: unknown = error; cause instanceof TemporalFailure; cause = cause.cause) {
    if (cause instanceof ApplicationFailure) return `${cause.type ?? 'failure'}: ${cause.message}`;
  }
  return error instanceof Error ? error.message : String(error);
}
