/**
 * fineTune with several runs (a spec's `runs:`), with fake activities (test/workflows/support): the order of the
 * stages over the runs (every run prepared and planned before the first trains), a run started from another
 * trained on that run's merged model, each run in its own folder and training child, a run that cannot fit refused
 * before any training, a pause in the second run resuming that run from its own checkpoint, and runs given by a
 * program checked like a parsed spec's. Real workflow code on a real dev server; no Python.
 */
import { ApplicationFailure } from '@temporalio/client';
import { fileURLToPath } from 'node:url';
import { describe, expect } from 'vitest';
import { getRunStatus, pauseRun, resumeRun, startFineTuneRuns } from '../../src/client.ts';
import { FailureType, Stage, TaskQueue } from '../../src/contract/index.ts';
import { parseSpecFile, type RunsSpec } from '../../src/spec/load.ts';
import { stateQuery, trainingStateQuery, trainingWorkflowId } from '../../workflows/index.ts';
import type { ActivityRequest } from './support/contract.ts';
import type { FakeRun } from './support/fake-run.ts';
import { rootFailure, trainRequests } from './support/outcomes.ts';
import { eventually, useWorkflowTestbed } from './support/testbed.ts';

const { testbed, it } = useWorkflowTestbed();
const example = (name: string) => fileURLToPath(new URL(`../../examples/preference/${name}`, import.meta.url));

/** SFT then DPO on the SFT model, as examples/preference/spec.yaml says it, on the tiny model: 8 and 12 steps. */
function sftThenDpo(): RunsSpec {
  const file = parseSpecFile(
    {
      name: 'pipeline',
      model: { source: 'tiny-random-llama', max_seq_length: 128 },
      dataset: { path: example('sft.jsonl'), val_count: 8, seed: 7 },
      train: { micro_batch_size: 4, heartbeat_timeout_seconds: 30 },
      checkpoint: { every_steps: 4 },
      runs: [
        { name: 'sft', train: { max_steps: 8 }, evaluate: { enabled: false } },
        { name: 'dpo', from: 'sft', dataset: { path: example('pairs.jsonl'), val_count: 12 }, train: { max_steps: 12, objective: { kind: 'dpo', beta: 0.2 } } },
      ],
    },
    '/',
  );
  if (file.kind !== 'runs') throw new Error('expected a spec of several runs');
  return file.runs;
}

const start = async (run: FakeRun, runs: RunsSpec = sftThenDpo()) =>
  startFineTuneRuns(testbed().client, runs, { workflowId: run.workflowId, artifactRootUri: await testbed().artifactRootUri() });

describe.concurrent('fineTune: several runs', () => {
  it('prepares and plans every run before training any, then trains each run in order, the dpo run on the sft run’s merged model', async ({ fakeRun }) => {
    const run = fakeRun('sft-dpo');
    const handle = await start(run);
    const result = await handle.result();

    const planning = ['resolve_model', 'token_statistics', 'planRun'];
    expect(run.sequence).toEqual([
      'prepareDataset',
      'prepareDataset',
      ...planning, // sft
      ...planning, // dpo, on the model it will start from, before any training
      'train',
      'verify_checkpoints',
      'recordCheckpoints',
      'merge',
      ...planning, // dpo again, on the sft run's merged model
      'train',
      'verify_checkpoints',
      'recordCheckpoints',
      'merge',
      'evaluate',
    ]);
    const [sftTrain, dpoTrain] = trainRequests(run);
    const workflowFolder = sftTrain!.run_uri.replace(/\/sft$/, '');
    expect(sftTrain!.run_uri).toBe(`${workflowFolder}/sft`);
    expect(dpoTrain!.run_uri).toBe(`${workflowFolder}/dpo`);
    expect(workflowFolder).toMatch(new RegExp(`/runs/${encodeURIComponent(run.workflowId)}$`));
    // Preflight planned dpo on the base; it trained on sft's merged model (decoded to the path Python loads).
    const resolved = run.callsTo('resolve_model').map((call) => (call.request as ActivityRequest<'resolve_model'>).spec.model.source);
    expect(resolved).toEqual(['tiny-random-llama', 'tiny-random-llama', fileURLToPath(`${sftTrain!.run_uri}/merged`)]);
    expect(sftTrain!.spec.train.objective.kind).toBe('sft');
    expect(dpoTrain!.spec.train.objective).toEqual({ kind: 'dpo', beta: 0.2, loss_type: 'sigmoid', label_smoothing: 0 });
    expect(dpoTrain!.spec.model.source).toBe(fileURLToPath(`${sftTrain!.run_uri}/merged`));
    // Each run in its own training child, with its own checkpoints, and its manifest says where it started.
    expect(run.callsTo('train').map((call) => call.workflowId)).toEqual([trainingWorkflowId(run.workflowId, 'sft'), trainingWorkflowId(run.workflowId, 'dpo')]);
    expect(run.callsTo('train').map((call) => call.taskQueue)).toEqual([TaskQueue.Accelerator, TaskQueue.Accelerator]);
    const manifests = run.callsTo('recordCheckpoints').map((call) => call.request as ActivityRequest<'recordCheckpoints'>);
    expect(manifests.map(({ summary }) => summary.run_name)).toEqual(['sft', 'dpo']);
    expect(manifests[1]!.summary.started_from).toEqual({ run: 'sft', run_uri: sftTrain!.run_uri, merged_uri: `${sftTrain!.run_uri}/merged` });
    expect(manifests[1]!.checkpoints.checkpoints.map(({ step }) => step)).toEqual([4, 8, 12]);

    // The result: the last run's at the top, every run's in `runs`.
    expect(result.runs?.map(({ name, from, result: runResult }) => [name, from, runResult.training.final_step, runResult.run_uri])).toEqual([
      ['sft', null, 8, sftTrain!.run_uri],
      ['dpo', 'sft', 12, dpoTrain!.run_uri],
    ]);
    expect(result.run_uri).toBe(dpoTrain!.run_uri);
    expect(result.runs![0]!.result.artifacts.checkpoints.map(({ step }) => step)).toEqual([4, 8]);
    expect(result.runs![0]!.result.metrics.base_val_loss).toBeNull();
    expect(result.runs![1]!.result.metrics.tuned_val_loss).toBe(1.25);

    const state = await handle.query(stateQuery);
    expect(state.runs?.map(({ name, stage, plan }) => [name, stage, plan?.fits])).toEqual([
      ['sft', Stage.Done, true],
      ['dpo', Stage.Done, true],
    ]);
    const status = await getRunStatus(testbed().client, run.workflowId);
    expect(
      status.runs?.map(({ name, from, objective, stage, final_step, plan }) => ({ name, from, objective, stage, final_step, steps: plan?.steps })),
    ).toEqual([
      { name: 'sft', from: null, objective: 'sft', stage: 'done', final_step: 8, steps: 8 },
      { name: 'dpo', from: 'sft', objective: 'dpo', stage: 'done', final_step: 12, steps: 12 },
    ]);
    for (const name of ['sft', 'dpo']) {
      expect((await testbed().client.workflow.getHandle(trainingWorkflowId(run.workflowId, name)).describe()).status.name).toBe('COMPLETED');
    }
  });

  it('refuses a run that cannot fit at plan, before the first run trains', async ({ fakeRun }) => {
    const run = fakeRun('dpo-does-not-fit');
    const resolve = run.defaultHandler('resolve_model');
    let resolved = 0;
    // The second model resolved is the dpo run's preflight: its device has no room.
    run.handlers.resolve_model = async (request) => {
      const facts = await resolve(request);
      resolved += 1;
      return resolved === 2 ? { ...facts, device: { ...facts.device, memory_gib: 0.001 } } : facts;
    };
    const handle = await start(run);
    const cause = await rootFailure(handle.result());
    expect(cause).toMatchObject({ type: FailureType.PlanDoesNotFit });
    expect((cause as ApplicationFailure).message).toMatch(/^run dpo: the run does not fit/);
    expect(run.callsTo('train')).toHaveLength(0);
    expect(run.callsTo('planRun')).toHaveLength(2);
    const state = await handle.query(stateQuery);
    expect(state).toMatchObject({ stage: Stage.Plan, status: 'failed' });
    expect(state.runs?.map(({ stage }) => stage)).toEqual(['waiting', 'waiting']);
  });

  it('a pause during the second run stops that run; resume trains it on from its own checkpoint, the first run untouched', async ({ fakeRun }) => {
    const run = fakeRun('pause-dpo', { train: [{ outcome: 'complete' }, { outcome: 'until-stopped' }, { outcome: 'complete' }] });
    const handle = await start(run);
    await eventually(() => (run.callsTo('train').length === 2 && run.checkpoints.length >= 3 ? true : undefined), 'a first checkpoint of the dpo run');
    await pauseRun(testbed().client, run.workflowId);
    const paused = await testbed().client.workflow.getHandle(trainingWorkflowId(run.workflowId, 'dpo')).query(trainingStateQuery);
    expect(paused.status).toBe('paused');
    const pausedAt = paused.progress.last_checkpoint!.step;
    expect(pausedAt).toBeGreaterThan(0);

    await resumeRun(testbed().client, run.workflowId);
    const result = await handle.result();
    const requests = trainRequests(run);
    expect(requests.map(({ run_uri }) => run_uri.split('/').at(-1))).toEqual(['sft', 'dpo', 'dpo']);
    // The dpo run resumed from its own checkpoint, not from the sft run's last step.
    expect(run.resumedFrom).toEqual([0, 0, pausedAt]);
    expect(result.runs![1]!.result.training.resumed_from_step).toBe(pausedAt);
    expect(result.runs![0]!.result.training.final_step).toBe(8);
  });

  it('checks runs given by a program as the spec parser does: a `from` that is not an earlier run fails at once', async ({ fakeRun }) => {
    const run = fakeRun('bad-from');
    const [sft, dpo] = sftThenDpo().runs;
    const handle = await start(run, { name: null, runs: [{ ...dpo!, from: 'sft' }, sft!] });
    const cause = await rootFailure(handle.result());
    expect(cause).toBeInstanceOf(ApplicationFailure);
    expect(cause).toMatchObject({ type: FailureType.InvalidSpec, nonRetryable: true });
    expect((cause as ApplicationFailure).message).toMatch(/^runs\.0\.from: run "dpo" starts from "sft", which is not an earlier run/);
    expect(run.calls).toHaveLength(0);
  });
});
