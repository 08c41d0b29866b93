/**
 * Starting, watching and controlling sweeps from Node (the CLI is built on these). Not part of src/sweep/index.ts,
 * which workflows import: this module talks to the Temporal server.
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TaskQueue } from '../contract/index.ts';
import { RunLayout } from '../runtime/layout.ts';
import { writeFileAtomic } from '../runtime/atomic-write.ts';
import type { RunSpec } from '../spec/schema.ts';
import {
  checkpointNowSignal,
  pauseSignal,
  resumeSignal,
  type SweepInput,
  type SweepResult,
  type SweepState,
  sweep,
  sweepStateQuery,
} from '../../workflows/index.ts';
import type { SweepPlan, SweepTable } from './schema.ts';

export interface StartSweepOptions {
  workflowId?: string;
  artifactRootUri: string;
}

export function defaultSweepId(spec: RunSpec): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  return `tuneflow-sweep-${spec.name ?? 'run'}-${stamp}`;
}

/** Starts a sweep of `plan` (planSweep's) over the validated base spec. */
export function startSweep(client: Client, spec: RunSpec, plan: SweepPlan, options: StartSweepOptions): Promise<WorkflowHandle<typeof sweep>> {
  const input: SweepInput = { spec, sweep: plan, artifact_root_uri: options.artifactRootUri };
  return client.workflow.start(sweep, { taskQueue: TaskQueue.Orchestration, workflowId: options.workflowId ?? defaultSweepId(spec), args: [input] });
}

/** The sweep's live state; null while no worker answers (the query is retried by the caller's next poll). */
export const querySweepState = (client: Client, workflowId: string): Promise<SweepState | null> =>
  client.workflow
    .getHandle<typeof sweep>(workflowId)
    .query(sweepStateQuery)
    .catch(() => null);

/** Waits for the sweep's result, calling onState with its state every interval (planned trials, then each rung). */
export async function waitForSweep(
  client: Client,
  workflowId: string,
  onState: (state: SweepState) => void,
  intervalMilliseconds = 2_000,
): Promise<SweepResult> {
  const result = client.workflow.getHandle<typeof sweep>(workflowId).result();
  let done = false;
  void result.then(
    () => (done = true),
    () => (done = true),
  );
  while (!done) {
    await Promise.race([result.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, intervalMilliseconds))]);
    if (done) break;
    const state = await querySweepState(client, workflowId);
    if (state) onState(state);
  }
  return result;
}

/** A finished sweep's table, read from its history (no worker needed). */
export const sweepResult = (client: Client, workflowId: string): Promise<SweepResult> => client.workflow.getHandle<typeof sweep>(workflowId).result();

/** Pause: every training trial checkpoints and stops, and no rung starts until resumed. */
export const pauseSweep = (client: Client, workflowId: string) => client.workflow.getHandle(workflowId).signal(pauseSignal);
export const resumeSweep = (client: Client, workflowId: string) => client.workflow.getHandle(workflowId).signal(resumeSignal);
export const checkpointSweep = (client: Client, workflowId: string) => client.workflow.getHandle(workflowId).signal(checkpointNowSignal);
/** Cancel: the training trials checkpoint and stop; the sweep ends CANCELLED, every trial's checkpoints kept. */
export async function cancelSweep(client: Client, workflowId: string): Promise<void> {
  const handle = client.workflow.getHandle(workflowId);
  await handle.cancel();
  await handle.result().catch(() => undefined);
}

/**
 * Writes the table as `runs/<sweep id>/sweep.json` beside its trials' run folders (a local artifact store only);
 * returns the path, or null on object storage.
 */
export async function writeSweepTable(
  artifactRootUri: string,
  workflowId: string,
  table: SweepTable,
  about: Record<string, unknown> = {},
): Promise<string | null> {
  const root = RunLayout.of(artifactRootUri, workflowId).root;
  if (!root.startsWith('file://')) return null;
  const path = `${fileURLToPath(root)}/sweep.json`;
  await mkdir(dirname(path), { recursive: true });
  await writeFileAtomic(path, `${JSON.stringify({ workflow_id: workflowId, ...about, ...table }, null, 2)}\n`);
  return path;
}
