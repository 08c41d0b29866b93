import { ApplicationFailure } from '@temporalio/common';
import { isTuneflowError } from './tuneflow-error.ts';

/**
 * Runs an activity's work and turns tuneflow's typed errors into Temporal failures whose type is in the contract,
 * so bad input fails once, clearly, instead of retrying. Every TypeScript activity goes through it.
 */
export async function typedFailures<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (isTuneflowError(error)) {
      throw ApplicationFailure.create({
        type: error.failureType,
        message: error.message,
        nonRetryable: error.nonRetryable,
        details: [error.details],
        cause: error,
      });
    }
    throw error;
  }
}
