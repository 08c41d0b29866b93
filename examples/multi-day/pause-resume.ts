/**
 * A long run driven from code: start it, pause it once it has a checkpoint (training stops, the GPU is free, the
 * workflow waits, for days if need be), resume it, and wait for the result.
 *
 *   npx tuneflow dev                                   # in another terminal
 *   npx tsx examples/multi-day/pause-resume.ts         # or with a run id to attach to: … pause-resume.ts my-run
 */
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from '@temporalio/client';
import { connectClient, type FineTuneResult, getRunStatus, homeLayout, loadSpec, pauseRun, resumeRun, type RunSpec, startFineTune } from '../../src/index.ts';

export const specPath = fileURLToPath(new URL('./spec.yaml', import.meta.url));

export interface PauseResumeOptions {
  workflowId: string;
  artifactRootUri: string;
  /** How long the run stays paused; in production this is "until the GPU is ours again". */
  pausedMilliseconds: number;
  log?: (line: string) => void;
}

export async function pauseAndResume(client: Client, spec: RunSpec, options: PauseResumeOptions): Promise<FineTuneResult> {
  const log = options.log ?? console.log;
  const handle = await startFineTune(client, spec, { workflowId: options.workflowId, artifactRootUri: options.artifactRootUri });
  log(`started ${handle.workflowId}`);
  // Pausing before the first checkpoint is allowed too (the train activity writes one as it stops); waiting for
  // one here shows that the pause keeps what was trained.
  while (((await getRunStatus(client, handle.workflowId)).last_checkpoint?.step ?? 0) === 0) await sleep(500);
  await pauseRun(client, handle.workflowId);
  const paused = await getRunStatus(client, handle.workflowId);
  log(`${paused.status} at step ${paused.step} (checkpoint ${paused.last_checkpoint?.step})`);
  await sleep(options.pausedMilliseconds);
  await resumeRun(client, handle.workflowId);
  log('resumed');
  return handle.result();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const client = await connectClient();
  const result = await pauseAndResume(client, loadSpec(specPath), {
    workflowId: process.argv[2] ?? `multi-day-${Date.now()}`,
    artifactRootUri: homeLayout().artifactRootUri,
    pausedMilliseconds: 10_000,
  });
  console.log(`done: ${result.training.final_step} steps, resumed ${result.progress.resumes}×, tuned validation loss ${result.metrics.tuned_val_loss}`);
  await client.connection.close();
}
