import type { Client } from '@temporalio/client';
import { setTimeout as sleep } from 'node:timers/promises';
import { getRunStatus, type RunStatusReport } from '../client.ts';
import type { fineTune } from '../../workflows/index.ts';
import { progressView } from './progress.ts';

export type FollowOutcome = { ended: true; status: RunStatusReport } | { ended: false };

/**
 * Draws a run's progress until it ends (its result settles, across continue-as-new) or `interrupted` resolves.
 * A status that cannot be read for a moment (a restarting server, a busy worker) is skipped, not fatal; an
 * unknown run fails at once.
 */
export async function followRun(client: Client, workflowId: string, interrupted: Promise<unknown>, intervalMilliseconds = 1_000): Promise<FollowOutcome> {
  const view = progressView();
  let ended = false;
  // The result's long poll is aborted on the way out: left running, it would retry on the closed connection.
  const abort = new AbortController();
  const result = client.withAbortSignal(abort.signal, () => client.workflow.getHandle<typeof fineTune>(workflowId).result());
  const settled = result.then(
    () => (ended = true),
    () => (ended = true),
  );
  let wasInterrupted = false;
  const interruption = interrupted.then(() => (wasInterrupted = true));
  try {
    view.update(await getRunStatus(client, workflowId));
    while (!ended && !wasInterrupted) {
      await Promise.race([settled, interruption, sleep(intervalMilliseconds)]);
      if (ended || wasInterrupted) break;
      const status = await getRunStatus(client, workflowId).catch(() => null);
      if (status) view.update(status);
    }
    if (wasInterrupted) return { ended: false };
    const status = await getRunStatus(client, workflowId);
    view.update(status);
    return { ended: true, status };
  } finally {
    abort.abort();
    view.stop();
  }
}
