/**
 * tuneflow's activities as a workflow calls them, with their retry policies. Every stage goes through these
 * proxies, so a user's workflow that composes the stages gets the same retries and timeouts as `fineTune`. The
 * activities run on tuneflow's own task queues, whatever queue the calling workflow runs on.
 */
import { ActivityCancellationType, ActivityFailure, ApplicationFailure, isCancellation, patched, proxyActivities } from '@temporalio/workflow';
import type * as orchestration from '../activities/index.ts';
import type { AcceleratorActivities, TrainResult } from '../src/contract/index.ts';
import { FailureType, nonRetryableFailureTypes, TaskQueue } from '../src/contract/index.ts';

// Infrastructure failures (a killed worker, a lost connection) retry without limit, backing off to a minute;
// the contract's non-retryable failure types (bad input, bad spec, a plan that cannot fit) fail at once.
export const retry = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '1 minute',
  nonRetryableErrorTypes: [...nonRetryableFailureTypes],
};

/**
 * The one-line summary the Temporal UI shows beside an activity: the stage, the model and, where it applies, what
 * part of the run it covers (a step range).
 */
export const activitySummary = (stage: string, model: string, detail?: string) => [stage, model, detail].filter(Boolean).join(' · ');

const bookkeepingOptions = { taskQueue: TaskQueue.Orchestration, startToCloseTimeout: '30 minutes', retry };

/** The TypeScript worker's activities: dataset preparation, planning, checkpoint bookkeeping. */
export const bookkeeping = proxyActivities<typeof orchestration>(bookkeepingOptions);

/** The same activities, each call shown in the Temporal UI with `summary` (see activitySummary). */
export const summarizedBookkeeping = (summary: string) => proxyActivities<typeof orchestration>({ ...bookkeepingOptions, summary });

function accelerator(heartbeatTimeoutSeconds: number, startToCloseTimeout: string, summary: string | undefined) {
  return proxyActivities<AcceleratorActivities>({
    taskQueue: TaskQueue.Accelerator,
    startToCloseTimeout,
    ...(summary === undefined ? {} : { summary }),
    // A worker killed mid-activity stops heartbeating; after this long the activity is retried elsewhere.
    heartbeatTimeout: `${heartbeatTimeoutSeconds} seconds`,
    // A cancelled activity (pause, cancel) is waited for: it writes its checkpoint before acknowledging.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    // Out of memory comes back to the workflow at once: the same micro-batch would fail again, a smaller one won't.
    retry: { ...retry, nonRetryableErrorTypes: [...retry.nonRetryableErrorTypes, FailureType.OutOfMemory] },
  });
}

/** The Python worker's activities that finish within a day: model resolution, token statistics, merge, evaluation. */
export const python = (heartbeatTimeoutSeconds: number, summary?: string) => accelerator(heartbeatTimeoutSeconds, '1 day', summary);

/** The Python worker's train activity: a run may train for months, heartbeating all along. */
export const trainer = (heartbeatTimeoutSeconds: number, summary?: string) => accelerator(heartbeatTimeoutSeconds, '90 days', summary);

export const isOutOfMemory = (error: unknown) =>
  error instanceof ActivityFailure && error.cause instanceof ApplicationFailure && error.cause.type === FailureType.OutOfMemory;

/** How long a run's merge or evaluation waits for the worker that trained it (and holds its files) to take it. */
const stickyScheduleToStart = '30 seconds';

/** A failure that another worker would meet too (bad input, out of memory) or a cancellation: not worth retrying elsewhere. */
const failsEverywhere = (error: unknown) =>
  isCancellation(error) ||
  (error instanceof ActivityFailure &&
    error.cause instanceof ApplicationFailure &&
    [...nonRetryableFailureTypes, FailureType.OutOfMemory].includes(error.cause.type as FailureType));

/**
 * Sticky routing: a step that reads the run's trained files (merge, evaluate) is offered first to the worker that
 * trained, on its own task queue (it holds the adapter and the run's mirror), tried once; when that worker is gone
 * or busy past the schedule-to-start timeout, or its attempt failed for a reason another worker may not meet, the
 * step goes to every GPU worker, which read the files from the artifact store.
 */
export async function onTrainingWorkerFirst<T>(
  training: TrainResult,
  heartbeatTimeoutSeconds: number,
  summary: string,
  step: (activities: AcceleratorActivities) => Promise<T>,
): Promise<T> {
  if (!training.worker_task_queue || !patched('sticky-merge-evaluate')) return step(python(heartbeatTimeoutSeconds, summary));
  const trainingWorker = proxyActivities<AcceleratorActivities>({
    taskQueue: training.worker_task_queue,
    scheduleToStartTimeout: stickyScheduleToStart,
    startToCloseTimeout: '1 day',
    heartbeatTimeout: `${heartbeatTimeoutSeconds} seconds`,
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: { ...retry, maximumAttempts: 1 },
    summary,
  });
  try {
    return await step(trainingWorker);
  } catch (error) {
    if (failsEverywhere(error)) throw error;
    return step(python(heartbeatTimeoutSeconds, summary));
  }
}
