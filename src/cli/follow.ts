import type { Client } from '@temporalio/client';
import { setTimeout as sleep } from 'node:timers/promises';
import { getRunStatus, type RunStatusReport } from '../client.ts';
import { progressView } from './progress.ts';

export type FollowOutcome = { ended: true; status: RunStatusReport } | { ended: false };

/** Statuses of a run still going: Temporal says RUNNING for all three; a continued-as-new run is followed to its latest execution. */
const ongoing = new Set(['running', 'pausing', 'paused']);

/**
 * Draws a run's progress until it ends or `interrupted` resolves. A status that cannot be read for a moment (a
 * restarting server, a busy worker) is skipped, not fatal; an unknown run fails at once.
 */
export async function followRun(client: Client, workflowId: string, interrupted: Promise<unknown>, intervalMilliseconds = 1_000): Promise<FollowOutcome> {
  const view = progressView();
  let wasInterrupted = false;
  const interruption = interrupted.then(() => (wasInterrupted = true));
  try {
    let status = await getRunStatus(client, workflowId);
    view.update(status);
    while (ongoing.has(status.status)) {
      await Promise.race([interruption, sleep(intervalMilliseconds)]);
      if (wasInterrupted) return { ended: false };
      status = (await getRunStatus(client, workflowId).catch(() => null)) ?? status;
      view.update(status);
    }
    return { ended: true, status };
  } finally {
    view.stop();
  }
}
