/**
 * examples/scheduled-retraining on the real dev server, real workers and the tiny model, in the order a team
 * lives it: a short-interval schedule takes its first run (no champion yet: promoted); a trigger with nothing
 * changed is skipped without any GPU work; grown data with a stronger spec trains a challenger that waits for
 * approval across a restart of both workers and is promoted (a local judge model comparing its answers with the
 * champion's, the judge gate naming champion v1); a rollback restores the previous champion. The
 * workflow's other decisions (a worse challenger registered but kept out, a rejection, an approval timeout, a lost
 * compare-and-swap) are tested with fake activities in test/workflows/retrain.test.ts.
 */
import type { Client } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { TaskQueue } from '../../src/contract/index.ts';
import { ModelRegistry } from '../../src/registry/index.ts';
import {
  createRetrainSchedule,
  decideApproval,
  deleteSchedule,
  describeSchedule,
  pauseSchedule,
  retrainInput,
  type RetrainScheduleOptions,
  triggerSchedule,
} from '../../src/schedules/index.ts';
import type { GateEvaluationRequest, GateEvaluationResult, RetrainResult } from '../../workflows/retrain.ts';
import { retrainStateQuery } from '../../workflows/retrain.ts';
import { startTestCluster, type TestCluster } from '../support/cluster.ts';

const exampleSpec = fileURLToPath(new URL('../../examples/scheduled-retraining/spec.yaml', import.meta.url));
const quickstartRows = fileURLToPath(new URL('../../examples/quickstart/data.jsonl', import.meta.url));
/** A learning rate at which 8 steps leave the random model where it started: a challenger that must lose. */
const weakLearningRate = 1e-6;

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 120_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

async function scheduledGpuWork(client: Client, workflowId: string) {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).filter(
    (event) =>
      event.activityTaskScheduledEventAttributes?.taskQueue?.name === TaskQueue.Accelerator || event.startChildWorkflowExecutionInitiatedEventAttributes,
  );
}

describe('scheduled retraining', () => {
  let cluster: TestCluster;
  let directory: string;
  let registry: ModelRegistry;
  /** The first cluster's store: the restarted workers keep using it, as a real deployment's would. */
  let artifactRootUri: string;
  const name = `people-${Date.now().toString(36)}`;

  /** Writes the example's spec with the first `rows` quickstart rows as its dataset, at the given learning rate. */
  async function writeSpec(file: string, rows: number, learningRate: number, evaluate: Record<string, unknown> = {}): Promise<string> {
    const lines = (await readFile(quickstartRows, 'utf8')).split('\n').slice(0, rows);
    await writeFile(join(directory, 'data.jsonl'), `${lines.join('\n')}\n`);
    const spec = parseYaml(await readFile(exampleSpec, 'utf8'));
    spec.dataset.path = 'data.jsonl';
    spec.train.learning_rate = learningRate;
    spec.evaluate = { ...spec.evaluate, ...evaluate };
    const path = join(directory, file);
    await writeFile(path, stringifyYaml(spec));
    return path;
  }

  const options = (specPath: string): RetrainScheduleOptions => ({ name, specPath, artifactRootUri, every: '2s' });

  async function runDirectly(specPath: string, extra: Partial<RetrainScheduleOptions>, label: string) {
    return cluster.client.workflow.start('retrain', {
      workflowId: `retrain-${name}-${label}`,
      taskQueue: TaskQueue.Orchestration,
      args: [retrainInput({ ...options(specPath), ...extra })],
    });
  }

  beforeAll(async () => {
    cluster = await startTestCluster('retrain');
    directory = await mkdtemp(join(inject('testRoot'), 'retrain-data-'));
    artifactRootUri = cluster.artifactRootUri;
    registry = new ModelRegistry(artifactRootUri);
  });
  afterAll(async () => {
    await deleteSchedule(cluster.client, name).catch(() => undefined);
    await cluster?.stop();
  });

  it('a short-interval schedule starts a retrain; with no champion its model is promoted', async () => {
    const weak = await writeSpec('weak.yaml', 120, weakLearningRate);
    await createRetrainSchedule(cluster.client, options(weak));
    const first = await until('the schedule to take a run', async () => (await describeSchedule(cluster.client, name)).recent_runs[0]?.workflow_id);
    const result: RetrainResult = await cluster.client.workflow.getHandle(first).result();
    await pauseSchedule(cluster.client, name);
    // Every 2 s while a retrain trains for longer: the overlap policy skipped those runs instead of stacking them.
    const schedule = await until('no run in progress', async () => {
      const report = await describeSchedule(cluster.client, name);
      return report.running.length === 0 ? report : undefined;
    });
    expect(schedule.runs_skipped_overlap).toBeGreaterThan(0);
    expect(result).toMatchObject({ outcome: 'promoted', model_name: name, champion: null, challenger: { version: 1 } });
    const champion = await registry.champion(name);
    expect(champion?.version).toBe(1);
    expect(champion?.lineage).toMatchObject({ base_model: 'tiny-random-llama', spec_hash: result.spec_hash, dataset_hash: result.dataset_hash });
    expect(champion?.lineage.parent_checkpoint).toMatch(/checkpoints\/step-/);
  });

  it('a trigger with spec and data unchanged is skipped, with no GPU activity or child run scheduled', async () => {
    const before = new Set((await describeSchedule(cluster.client, name)).recent_runs.map((run) => run.workflow_id));
    await triggerSchedule(cluster.client, name);
    const triggered = await until('the triggered run', async () =>
      (await describeSchedule(cluster.client, name)).recent_runs.map((run) => run.workflow_id).find((id) => !before.has(id)),
    );
    const result: RetrainResult = await cluster.client.workflow.getHandle(triggered).result();
    expect(result).toMatchObject({ outcome: 'skipped', challenger: null, champion: { version: 1 } });
    expect(await scheduledGpuWork(cluster.client, triggered)).toEqual([]);
    expect((await registry.model(name)).versions).toHaveLength(1);
    await deleteSchedule(cluster.client, name);
  });

  it('grown data and a better spec: the challenger waits for approval across a worker restart, then is promoted and exported', async () => {
    // A local judge model compares the challenger's answers with the champion's (the champion's evaluation judges the
    // answers the challenger's evaluation kept); its gate only asks that it ran against the champion.
    const strong = await writeSpec('strong.yaml', 160, 0.02, {
      suites: [{ kind: 'judge', model: 'smollm2-135m-instruct' }],
      suite_rows: 3,
      gates: ['judge.win_rate >= 0'],
    });
    // A user's own evaluation activity on its own worker and task queue: the gate asks it too.
    const judged: GateEvaluationRequest[] = [];
    const judgeQueue = `judge-${name}`;
    const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
    const judge = await Worker.create({
      connection,
      taskQueue: judgeQueue,
      activities: {
        judgeChallenger: async (request: GateEvaluationRequest): Promise<GateEvaluationResult> => {
          judged.push(request);
          return { passes: true, reason: 'answers look right' };
        },
      },
    });
    const judging = judge.run();
    const started = await runDirectly(
      strong,
      { gate: { require_approval: true, margin: 0.01, evaluation: { activity: 'judgeChallenger', task_queue: judgeQueue } }, exportFormats: ['q8_0'] },
      'approval',
    );
    const proposal = await until(
      'the approval wait',
      async () => {
        const state = await started.query(retrainStateQuery);
        return state.stage === 'awaiting_approval' ? state.proposal : undefined;
      },
      240_000,
    );
    expect(proposal).toMatchObject({ challenger: 2, champion: 1 });
    expect(judged.map((request) => [request.challenger.version, request.champion?.version])).toEqual([[2, 1]]);
    judge.shutdown();
    await judging;
    await connection.close();
    expect(proposal?.challenger_val_loss).toBeLessThan(proposal?.champion_val_loss ?? 0);

    // Both workers go away and come back: the wait is a durable timer in the server, not state in a process.
    await cluster.stop();
    cluster = await startTestCluster('retrain-restarted');
    const handle = cluster.client.workflow.getHandle(started.workflowId);
    expect((await handle.query(retrainStateQuery)).stage).toBe('awaiting_approval');
    await decideApproval(cluster.client, handle.workflowId, { approved: true, by: 'test' });

    const result: RetrainResult = await handle.result();
    expect(result).toMatchObject({ outcome: 'promoted', champion: { version: 1 }, challenger: { version: 2 } });
    expect(result.judged_against).toEqual({ judge: { kind: 'champion', version: 1 } });
    expect(result.quality?.checks[0]).toMatchObject({ passed: true, against: { kind: 'champion', version: 1 } });
    expect(result.quality?.checks[0]?.reason).toMatch(/^judge\.win_rate [\d.]+ >= 0 against champion v1$/);
    const champion = await registry.champion(name);
    expect(champion?.version).toBe(2);
    expect(champion?.judged_against).toEqual({ judge: { kind: 'champion', version: 1 } });
    expect(champion?.metrics['judge.win_rate']).toBeGreaterThanOrEqual(0);
    expect(champion?.exports.map((entry) => entry.format)).toEqual(['q8_0']);
    expect(existsSync(fileURLToPath(champion?.exports[0]?.uri ?? 'file:///missing'))).toBe(true);
    expect((await registry.model(name)).history.at(-1)?.reason).toMatch(/≤.*judgeChallenger: answers look right/);
  });

  it('rollback restores the previous champion', async () => {
    await registry.rollback(name, { reason: 'test' });
    expect((await registry.champion(name))?.version).toBe(1);
  });
});
