/** What a fake run's workflow did, read the same way by every workflow test file. */
import { ActivityFailure, ChildWorkflowFailure, WorkflowFailedError } from '@temporalio/client';
import { expect } from 'vitest';
import type { ActivityRequest } from './contract.ts';
import type { FakeRun } from './fake-run.ts';

/** The train requests the run's workflows sent, in order. */
export const trainRequests = (run: FakeRun) => run.callsTo('train').map((call) => call.request as ActivityRequest<'train'>);

/** The failure at the root of a failed run: workflow → child workflow → activity → application failure. */
export async function rootFailure(promise: Promise<unknown>): Promise<unknown> {
  const error = await promise.then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(WorkflowFailedError);
  let cause: unknown = error;
  while ((cause instanceof WorkflowFailedError || cause instanceof ChildWorkflowFailure || cause instanceof ActivityFailure) && cause.cause)
    cause = cause.cause;
  return cause;
}
