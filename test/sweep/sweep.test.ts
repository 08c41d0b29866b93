/**
 * A sweep end to end with the tiny model: 4 trials (2 ranks x 2 learning rates) halved over rungs of 3 and 6 steps.
 * First as a user composes it, inside a workflow of their own that imports `tuneflow/workflow` (bundled from the
 * built package, on their own task queue); then the same sweep started directly, with the Python worker SIGKILLed
 * once a rung has finished. The second sweep must finish with the same table: the same trials stopped and kept,
 * and byte-identical losses at every rung (exact resume, no finished rung lost).
 */
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { RunLayout } from '../../src/runtime/layout.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { querySweepState, startSweep } from '../../src/sweep/client.ts';
import { planSweep, type SweepTable, TrialOutcome } from '../../src/sweep/index.ts';
import { type SweepResult, trialWorkflowId } from '../../workflows/index.ts';
import { useTestCluster } from '../support/cluster.ts';

const runFile = promisify(execFile);
const tiny = loadSpec(fileURLToPath(new URL('../../examples/tiny/spec.yaml', import.meta.url)));
const spec = { ...tiny, checkpoint: { ...tiny.checkpoint, every_steps: 2 }, merge: { ...tiny.merge, enabled: false } };
const grid = ['lora.r=4,8', 'train.learning_rate=0.01,0.02'];

/** What must not change when a worker dies: per trial, its outcome and the losses at each rung. */
const outcomes = (table: SweepTable) =>
  Object.fromEntries(
    table.trials.map((row) => [
      row.key,
      { outcome: row.outcome, rungs: row.rungs.map(({ steps, val_loss, train_loss }) => ({ steps, val_loss, train_loss })) },
    ]),
  );

describe('a sweep', () => {
  const cluster = useTestCluster('sweep');
  let uninterrupted: SweepResult;

  it('runs inside a user workflow through tuneflow/workflow, halving 4 trials to the best one', { timeout: 900_000 }, async () => {
    await runFile(process.execPath, [fileURLToPath(new URL('../../scripts/build.mjs', import.meta.url))]);
    const { code } = await bundleWorkflowCode({ workflowsPath: fileURLToPath(new URL('./user-workflows.ts', import.meta.url)) });
    const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
    const worker = await Worker.create({ connection, taskQueue: 'user-sweep', workflowBundle: { code } });
    try {
      uninterrupted = await worker.runUntil(
        cluster().client.workflow.execute('tuneGrid', {
          taskQueue: 'user-sweep',
          workflowId: `user-sweep-${Date.now()}`,
          args: [spec, grid, cluster().artifactRootUri],
        }) as Promise<SweepResult>,
      );
    } finally {
      await connection.close();
    }
    const { table } = uninterrupted;
    expect(table.rungs).toEqual([3, 6]);
    expect(table.trials.map(({ key }) => key)).toEqual([
      'lora.r=4,train.learning_rate=0.01',
      'lora.r=4,train.learning_rate=0.02',
      'lora.r=8,train.learning_rate=0.01',
      'lora.r=8,train.learning_rate=0.02',
    ]);
    expect(table.trials.filter((row) => row.outcome === TrialOutcome.Completed)).toHaveLength(2);
    expect(table.trials.filter((row) => row.outcome === TrialOutcome.Stopped)).toHaveLength(2);
    // Halving spent fewer steps than training all four to the end.
    expect(table.steps_spent).toBe(4 * 3 + 2 * 3);
    expect(table.steps_without_halving).toBe(4 * 6);
    // The survivors had the lower validation loss at the first rung, and the best is a survivor.
    const atFirstRung = (key: string) => table.trials.find((row) => row.key === key)!.rungs[0]!.val_loss!;
    const completed = table.trials.filter((row) => row.outcome === TrialOutcome.Completed).map(({ key }) => key);
    const stopped = table.trials.filter((row) => row.outcome === TrialOutcome.Stopped).map(({ key }) => key);
    expect(Math.max(...completed.map(atFirstRung))).toBeLessThanOrEqual(Math.min(...stopped.map(atFirstRung)));
    expect(completed).toContain(table.best);
    expect(table.pareto_front).toContain(table.best);
    for (const row of table.trials) {
      expect(row.planned!.peak_vram_gib).toBeGreaterThan(0);
      expect(row.adapter_parameters).toBeGreaterThan(0);
      // A stopped trial keeps its checkpoint at its last rung: training its spec again resumes there.
      expect(existsSync(fileURLToPath(row.last_checkpoint_uri!))).toBe(true);
      expect(row.last_checkpoint_uri).toMatch(new RegExp(`step-0*${row.rungs.at(-1)!.steps}$`));
    }
    expect(uninterrupted.text).toContain('★ best');
  });

  it('finishes with the same table when the Python worker is killed mid-sweep', { timeout: 900_000 }, async () => {
    expect(uninterrupted).toBeDefined();
    const plan = planSweep(spec, grid, { steps: 6, rungs: [3, 6] });
    const workflowId = `sweep-crash-${Date.now()}`;
    const handle = await startSweep(cluster().client, spec, plan, { workflowId, artifactRootUri: cluster().artifactRootUri });
    let finishedRungsAtKill = 0;
    for (const deadline = Date.now() + 600_000; Date.now() < deadline && finishedRungsAtKill === 0; await sleep(200)) {
      const state = await querySweepState(cluster().client, workflowId);
      finishedRungsAtKill = state?.records.reduce((sum, trial) => sum + trial.rungs.length, 0) ?? 0;
    }
    expect(finishedRungsAtKill).toBeGreaterThanOrEqual(1);
    await cluster().killGpuWorker();
    await cluster().startGpuWorker();

    const { table } = await handle.result();
    expect(outcomes(table)).toEqual(outcomes(uninterrupted.table));
    expect(table.best).toBe(uninterrupted.table.best);
    expect(table.pareto_front).toEqual(uninterrupted.table.pareto_front);
    // Each trial's folder is one folder under runs/, named by its escaped workflow id (`<sweep id>/trial-<parameters>`),
    // and its checkpoint URIs read back (Node's fileURLToPath refuses an encoded '/').
    for (const row of table.trials) {
      const folder = RunLayout.of(cluster().artifactRootUri, trialWorkflowId(workflowId, row.key)).checkpoints;
      expect(fileURLToPath(row.last_checkpoint_uri!)).toContain(`${fileURLToPath(folder)}/`);
    }
  });
});
