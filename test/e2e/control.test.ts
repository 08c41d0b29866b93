/**
 * Pause, resume, checkpoint-now and cancel, from the TypeScript client, on a real server with real workers.
 */
import { WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, inject, it } from 'vitest';
import { cancelRun, checkpointRun, getProgress, getRunStatus, pauseRun, resumeRun, startFineTune } from '../../src/client.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { trainingWorkflowId } from '../../workflows/index.ts';
import type { RunSpec } from '../../src/spec/schema.ts';
import { type TestCluster, useTestCluster } from '../support/cluster.ts';
import { recordHistory } from '../support/histories.ts';

const runFile = promisify(execFile);
const tiny = loadSpec(fileURLToPath(new URL('../../examples/tiny/spec.yaml', import.meta.url)));

function longRun(): RunSpec {
  return {
    ...tiny,
    train: { ...tiny.train, epochs: 100, max_steps: 5000, heartbeat_timeout_seconds: 10 },
    checkpoint: { ...tiny.checkpoint, every_steps: 1000 },
    merge: { ...tiny.merge, enabled: false },
    evaluate: { ...tiny.evaluate, enabled: false },
  };
}

async function waitForStep(cluster: TestCluster, workflowId: string, step: number): Promise<void> {
  for (const deadline = Date.now() + 180_000; Date.now() < deadline; await sleep(250)) {
    if (((await getRunStatus(cluster.client, workflowId)).step ?? 0) >= step) return;
  }
  throw new Error(`${workflowId} never reached step ${step}`);
}

const checkpointSteps = (runUri: string) =>
  existsSync(join(fileURLToPath(runUri), 'checkpoints'))
    ? readdirSync(join(fileURLToPath(runUri), 'checkpoints'))
        .filter((name) => name.startsWith('step-'))
        .map((name) => Number(name.slice(5)))
    : [];

// One cluster (one Python worker start, ~11 s of imports) for the file: each test's run ends (cancelled or completed)
// before the next starts, and each has its own workflow id.
const cluster = useTestCluster('control');

describe('run control', () => {
  it('checkpoints on request, pauses (checkpoint, activity stopped), resumes from that checkpoint, and cancels', async () => {
    const workflowId = `control-${Date.now()}`;
    const handle = await startFineTune(cluster().client, longRun(), { workflowId, artifactRootUri: cluster().artifactRootUri });
    await waitForStep(cluster(), workflowId, 3);

    // checkpointNow: a checkpoint appears although every_steps is 1000, and training goes on.
    await checkpointRun(cluster().client, workflowId);
    let state = await getProgress(cluster().client, workflowId);
    for (const deadline = Date.now() + 60_000; state.last_checkpoint === null && Date.now() < deadline; await sleep(250)) {
      state = await getProgress(cluster().client, workflowId);
    }
    expect(state.last_checkpoint?.step).toBeGreaterThan(0);
    const requestedCheckpoint = state.last_checkpoint!.step;

    // pause: a checkpoint at the step where it stopped, no train activity left running.
    await pauseRun(cluster().client, workflowId);
    const paused = await getRunStatus(cluster().client, workflowId);
    expect(paused.status).toBe('paused');
    // Training runs in the run's child workflow: its train activity is the one that must have stopped.
    const training = cluster().client.workflow.getHandle(trainingWorkflowId(workflowId));
    expect((await training.describe()).raw.pendingActivities ?? []).toHaveLength(0);
    // The pause checkpoint is at the step where training stopped (the requested one, if it stopped right there).
    const pausedProgress = await getProgress(cluster().client, workflowId);
    const pausedAt = pausedProgress.last_checkpoint!.step;
    expect(pausedAt).toBeGreaterThanOrEqual(requestedCheckpoint);
    const runUri = (await handle.query<{ run_uri: string }>('state')).run_uri;
    expect(checkpointSteps(runUri)).toContain(pausedAt);
    await sleep(3_000);
    expect((await getProgress(cluster().client, workflowId)).last_checkpoint!.step).toBe(pausedAt);

    // resume: training restarts from the pause checkpoint (a resume, no step redone).
    await resumeRun(cluster().client, workflowId);
    await waitForStep(cluster(), workflowId, pausedAt + 3);
    const resumed = await getRunStatus(cluster().client, workflowId);
    expect(resumed.status).toBe('running');
    expect(resumed.resumes).toBe(1);
    expect(resumed.steps_redone).toBe(0);

    // cancel: a final checkpoint, the workflow ends CANCELLED, artifacts stay.
    await cancelRun(cluster().client, workflowId);
    const failure = await handle.result().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    // The cancellation reached the training child, which checkpointed before it stopped.
    expect((await training.describe()).status.name).toBe('CANCELLED');
    recordHistory(workflowId, 'fine-tune-stages-paused-resumed-cancelled');
    recordHistory(trainingWorkflowId(workflowId), 'train-adapter-paused-resumed-cancelled');
    const final = await getRunStatus(cluster().client, workflowId);
    expect(final.status).toBe('cancelled');
    const stateAfter = await handle.query<{ run_uri: string; status: string }>('state');
    expect(stateAfter.status).toBe('cancelled');
    expect(Math.max(...checkpointSteps(runUri))).toBeGreaterThan(pausedAt);
  });
});

describe('run control before training', () => {
  it('holds a run paused before training at its next stage, starting no training until resumed', async () => {
    const spec: RunSpec = { ...longRun(), train: { ...longRun().train, epochs: 1, max_steps: 4 } };
    const workflowId = `control-early-${Date.now()}`;
    const handle = await startFineTune(cluster().client, spec, { workflowId, artifactRootUri: cluster().artifactRootUri });
    await pauseRun(cluster().client, workflowId);
    expect((await getRunStatus(cluster().client, workflowId)).status).toBe('paused');
    await sleep(5_000);
    const held = await getRunStatus(cluster().client, workflowId);
    expect(held).toMatchObject({ status: 'paused' });
    expect(['prepare', 'plan']).toContain(held.stage);
    // No training child exists while the run is held.
    const training = cluster().client.workflow.getHandle(trainingWorkflowId(workflowId));
    expect(await training.describe().catch((error: unknown) => error)).toBeInstanceOf(WorkflowNotFoundError);

    await resumeRun(cluster().client, workflowId);
    const result = await handle.result();
    expect(result.training.final_step).toBe(4);
    expect(result.progress.resumes).toBe(0);
  });
});

describe('run control from the CLI', () => {
  // Asynchronous on purpose: the TypeScript worker runs in this process, and a synchronous child would block the
  // event loop that must answer the CLI's queries.
  const tuneflow = async (...args: string[]) =>
    (
      await runFile('node', [fileURLToPath(new URL('../../scripts/tuneflow.mjs', import.meta.url)), ...args], {
        encoding: 'utf8',
        env: { ...process.env, TEMPORAL_ADDRESS: inject('temporalAddress'), TUNEFLOW_HOME: cluster().home },
      })
    ).stdout;

  it('run --detach, checkpoint, pause, status --json, resume, cancel', async () => {
    const specPath = join(cluster().home, 'long.json');
    writeFileSync(specPath, JSON.stringify(longRun()));
    const workflowId = `control-cli-${Date.now()}`;
    expect(JSON.parse(await tuneflow('run', specPath, '--id', workflowId, '--detach', '--json'))).toEqual({ workflow_id: workflowId });
    await waitForStep(cluster(), workflowId, 3);

    await tuneflow('checkpoint', workflowId);
    await tuneflow('pause', workflowId);
    const paused = JSON.parse(await tuneflow('status', workflowId, '--json'));
    expect(paused).toMatchObject({ workflow_id: workflowId, status: 'paused', stage: 'train' });
    expect(paused.last_checkpoint.step).toBeGreaterThan(0);

    await tuneflow('resume', workflowId);
    await waitForStep(cluster(), workflowId, paused.last_checkpoint.step + 2);
    expect(JSON.parse(await tuneflow('status', workflowId, '--json')).resumes).toBe(1);

    await tuneflow('cancel', workflowId);
    expect(JSON.parse(await tuneflow('status', workflowId, '--json')).status).toBe('cancelled');
  });
});
