/**
 * fineTune's and trainAdapter's decisions with fake activities (test/workflows/support): the stage order, what a
 * disabled stage skips, a failing stage, pause/resume/checkpointNow/cancel at each point of a run, out-of-memory
 * replanning, continue-as-new and sticky merge/evaluation. Real workflow code on a real dev server; no Python.
 */
import { ApplicationFailure, CancelledFailure } from '@temporalio/client';
import { describe, expect } from 'vitest';
import { cancelRun, checkpointRun, pauseRun, resumeRun, startFineTune } from '../../src/client.ts';
import { FailureType, SearchAttribute, Stage, TaskQueue } from '../../src/contract/index.ts';
import { failureOf, isOutOfMemoryError } from '../../src/errors/index.ts';
import { type fineTune, stateQuery, trainingStateQuery, trainingWorkflowId } from '../../workflows/index.ts';
import type { ActivityRequest } from './support/contract.ts';
import { type FakeRun, lossAt } from './support/fake-run.ts';
import { testSpec, type SpecChanges } from './support/specs.ts';
import { rootFailure, trainRequests } from './support/outcomes.ts';
import { eventually, trainingWorkerQueue, useWorkflowTestbed } from './support/testbed.ts';

const { testbed, it } = useWorkflowTestbed();

async function start(run: FakeRun, changes: SpecChanges = {}, maxHistoryEvents?: number) {
  const { client } = testbed();
  const spec = testSpec(changes);
  if (maxHistoryEvents === undefined) return startFineTune(client, spec, { workflowId: run.workflowId, artifactRootUri: await testbed().artifactRootUri() });
  return client.workflow.start<typeof fineTune>('fineTune', {
    taskQueue: TaskQueue.Orchestration,
    workflowId: run.workflowId,
    args: [{ spec, artifact_root_uri: await testbed().artifactRootUri(), max_history_events: maxHistoryEvents }],
  });
}

const trainingStateOf = (run: FakeRun) => testbed().client.workflow.getHandle(trainingWorkflowId(run.workflowId)).query(trainingStateQuery);
const untilCalled = (run: FakeRun, activity: Parameters<FakeRun['callsTo']>[0], times = 1) =>
  eventually(() => (run.callsTo(activity).length >= times ? true : undefined), `${times} call(s) of ${activity}`);

describe.concurrent('fineTune: the stages', () => {
  it('runs prepare → plan → train → checkpoint → merge → evaluate in order and returns what each produced', async ({ fakeRun }) => {
    const run = fakeRun('stages');
    const handle = await start(run);
    const result = await handle.result();

    expect(run.sequence).toEqual([
      'prepareDataset',
      'resolve_model',
      'token_statistics',
      'planRun',
      'train',
      'verify_checkpoints',
      'recordCheckpoints',
      'merge',
      'evaluate',
    ]);
    // Each stage's input is the previous stage's output.
    const [tokens] = run.callsTo('token_statistics');
    const [prepared] = run.callsTo('prepareDataset');
    expect((tokens!.request as ActivityRequest<'token_statistics'>).train_uri).toMatch(/datasets\/[0-9a-f]{64}\/train\.jsonl$/);
    expect(prepared!.taskQueue).toBe(TaskQueue.Orchestration);
    expect(trainRequests(run)[0]!.train_tokens_uri).toMatch(/\.tokens-[0-9a-f]{8}$/);
    expect(run.callsTo('train')[0]!.taskQueue).toBe(TaskQueue.Accelerator);

    expect(result.status).toBe('completed');
    expect(result.training.final_step).toBe(12);
    expect(result.artifacts.adapter).toBe(`${result.run_uri}/adapter`);
    expect(result.artifacts.merged).toBe(`${result.run_uri}/merged`);
    expect(result.artifacts.checkpoints.map(({ step }) => step)).toEqual([4, 8, 12]);
    expect(result.metrics).toMatchObject({ base_val_loss: 2.5, tuned_val_loss: 1.25, final_train_loss: lossAt(12) });
    expect(result.samples).toHaveLength(1);
    expect(result.executions).toBe(1);
    expect(result.progress).toMatchObject({ step: 12, total_steps: 12, resumes: 0, last_checkpoint: { step: 12 } });

    const state = await handle.query(stateQuery);
    expect(state).toMatchObject({ stage: Stage.Done, status: 'completed', error: null });
    const { searchAttributes } = await handle.describe();
    expect(searchAttributes[SearchAttribute.Status.name]).toEqual(['completed']);
    expect(searchAttributes[SearchAttribute.Step.name]).toEqual([12]);
  });

  it('skips merge and evaluate when the spec disables them', async ({ fakeRun }) => {
    const run = fakeRun('no-merge');
    const result = await (await start(run, { merge: { enabled: false }, evaluate: { enabled: false } })).result();
    expect(run.callsTo('merge')).toHaveLength(0);
    expect(run.callsTo('evaluate')).toHaveLength(0);
    expect(result.artifacts.merged).toBeNull();
    expect(result.metrics).toMatchObject({ base_val_loss: null, tuned_val_loss: null, final_train_loss: lossAt(12) });
    expect(result.samples).toEqual([]);
  });

  it('fails at prepare, touching no GPU, when the dataset is invalid; the state names the failure', async ({ fakeRun }) => {
    const run = fakeRun('invalid-data', {
      handlers: {
        prepareDataset: async () => {
          throw ApplicationFailure.create({ type: FailureType.InvalidDataset, message: 'data.jsonl row 3: messages: missing', nonRetryable: true });
        },
      },
    });
    const handle = await start(run);
    const cause = await rootFailure(handle.result());
    expect(cause).toMatchObject({ type: FailureType.InvalidDataset });
    expect(run.sequence).toEqual(['prepareDataset']);
    const state = await handle.query(stateQuery);
    expect(state).toMatchObject({ stage: Stage.Prepare, status: 'failed', error: 'TuneflowInvalidDataset: data.jsonl row 3: messages: missing' });
  });

  it('fails at plan, before any training, when the planner says the run cannot fit the device', async ({ fakeRun }) => {
    const run = fakeRun('does-not-fit');
    const resolve = run.defaultHandler('resolve_model');
    run.handlers.resolve_model = async (request) => {
      const facts = await resolve(request);
      return { ...facts, device: { ...facts.device, memory_gib: 0.001 } };
    };
    const handle = await start(run);
    const cause = await rootFailure(handle.result());
    expect(cause).toMatchObject({ type: FailureType.PlanDoesNotFit });
    expect(run.callsTo('train')).toHaveLength(0);
    expect(await handle.query(stateQuery)).toMatchObject({ stage: Stage.Plan, status: 'failed' });
  });
});

describe.concurrent('fineTune and trainAdapter: pause, resume, checkpointNow, cancel', () => {
  it('a pause during prepare holds the run before plan until resumed', async ({ fakeRun }) => {
    const run = fakeRun('pause-prepare');
    const release = run.hold('prepareDataset');
    const handle = await start(run);
    await untilCalled(run, 'prepareDataset');
    await handle.signal('pause');
    release();
    await eventually(async () => ((await handle.query(stateQuery)).dataset ? true : undefined), 'prepare to finish');
    expect(await handle.query(stateQuery)).toMatchObject({ stage: Stage.Prepare, status: 'paused', control: { paused: true } });
    expect(run.sequence).toEqual(['prepareDataset']);
    const { searchAttributes } = await handle.describe();
    expect(searchAttributes[SearchAttribute.Status.name]).toEqual(['paused']);

    await resumeRun(testbed().client, run.workflowId);
    const result = await handle.result();
    expect(result.status).toBe('completed');
    expect(run.callsTo('train')).toHaveLength(1);
  });

  it('a pause during planning starts training paused: no train activity (no GPU held) until resumed', async ({ fakeRun }) => {
    const run = fakeRun('pause-plan');
    const release = run.hold('token_statistics');
    const handle = await start(run);
    await untilCalled(run, 'token_statistics');
    await handle.signal('pause');
    release();
    const child = await eventually(async () => {
      const state = await trainingStateOf(run).catch(() => undefined);
      return state?.status === 'paused' ? state : undefined;
    }, 'the training child to start paused');
    expect(child.control.paused).toBe(true);
    expect(run.callsTo('train')).toHaveLength(0);

    await resumeRun(testbed().client, run.workflowId);
    await handle.result();
    expect(run.callsTo('train')).toHaveLength(1);
    expect(trainRequests(run)[0]!.setup.micro_batch_size).toBe(4);
  });

  it('a pause during training checkpoints and stops the train activity; resume trains on from that checkpoint', async ({ fakeRun }) => {
    const run = fakeRun('pause-train', { train: [{ outcome: 'until-stopped' }, { outcome: 'complete' }] });
    const handle = await start(run);
    await eventually(() => (run.checkpoints.length >= 1 ? true : undefined), 'a first checkpoint');
    await pauseRun(testbed().client, run.workflowId);

    const paused = await trainingStateOf(run);
    expect(paused.status).toBe('paused');
    const pausedAt = run.checkpoints.at(-1)!;
    expect(paused.progress.last_checkpoint?.step).toBe(pausedAt);
    expect(await handle.query(stateQuery)).toMatchObject({ stage: Stage.Train, status: 'paused' });
    // The stopped activity is not retried while paused.
    expect(run.callsTo('train')).toHaveLength(1);

    await resumeRun(testbed().client, run.workflowId);
    const result = await handle.result();
    expect(run.callsTo('train')).toHaveLength(2);
    expect(result.training.resumed_from_step).toBe(pausedAt);
    expect(result.progress.resumes).toBe(pausedAt > 0 ? 1 : 0);
    expect(result.training.final_step).toBe(12);
  });

  it('checkpointNow during training reaches the train activity through its control query, without stopping it', async ({ fakeRun }) => {
    const run = fakeRun('checkpoint-now', { train: [{ outcome: 'until-checkpoint-requested' }] });
    const handle = await start(run);
    await untilCalled(run, 'train');
    await checkpointRun(testbed().client, run.workflowId);
    const result = await handle.result();
    expect(run.seenCheckpointRequests).toBe(1);
    expect(run.callsTo('train')).toHaveLength(1);
    expect(result.status).toBe('completed');
  });

  it('checkpointNow asked before training starts is handed to the training child when it starts', async ({ fakeRun }) => {
    const run = fakeRun('checkpoint-early', { train: [{ outcome: 'until-checkpoint-requested' }] });
    const release = run.hold('prepareDataset');
    const handle = await start(run);
    await untilCalled(run, 'prepareDataset');
    await checkpointRun(testbed().client, run.workflowId);
    release();
    await handle.result();
    expect(run.seenCheckpointRequests).toBe(1);
    expect((await trainingStateOf(run)).control.checkpoint_requests).toBe(1);
  });

  it('cancel during training checkpoints, stops, and ends the run cancelled without merging', async ({ fakeRun }) => {
    const run = fakeRun('cancel', { train: [{ outcome: 'until-stopped' }] });
    const handle = await start(run);
    await eventually(() => (run.checkpoints.length >= 1 ? true : undefined), 'a first checkpoint');
    const checkpointsBefore = run.checkpoints.length;
    await cancelRun(testbed().client, run.workflowId);
    const cause = await rootFailure(handle.result());
    expect(cause).toBeInstanceOf(CancelledFailure);
    // The activity acknowledged the cancellation only after its checkpoint (WAIT_CANCELLATION_COMPLETED).
    expect(run.checkpoints.length).toBeGreaterThanOrEqual(checkpointsBefore);
    expect(run.callsTo('merge')).toHaveLength(0);
    expect(await handle.query(stateQuery)).toMatchObject({ status: 'cancelled' });
    expect((await trainingStateOf(run)).status).toBe('cancelled');
  });
});

describe.concurrent('trainAdapter: out of memory', () => {
  /** What each train attempt ran with: micro-batch, accumulation and gradient checkpointing. */
  const attempts = (run: FakeRun) =>
    trainRequests(run).map((request) => [request.setup.micro_batch_size, request.setup.gradient_accumulation_steps, request.setup.gradient_checkpointing]);

  it('turns gradient checkpointing on first, then replans to a smaller micro-batch with the same effective batch', async ({ fakeRun }) => {
    const run = fakeRun('oom', { train: [{ outcome: 'out-of-memory' }, { outcome: 'out-of-memory' }, { outcome: 'complete' }] });
    const result = await (await start(run)).result();
    // auto chose checkpointing off (it fits this CPU and is faster); the first recovery keeps the micro-batch.
    expect(attempts(run)).toEqual([
      [4, 1, false],
      [4, 1, true],
      [2, 2, true],
    ]);
    const [replan] = run.callsTo('replanAfterOutOfMemory');
    expect((replan!.request as ActivityRequest<'replanAfterOutOfMemory'>).setup.micro_batch_size).toBe(4);
    // The spec stays as the user wrote it: the replanned split travels in the setup.
    expect(trainRequests(run).map((request) => request.spec.train.micro_batch_size)).toEqual([4, 4, 4]);
    expect(
      result.progress.out_of_memory_recoveries.map(({ from_micro_batch_size, micro_batch_size, gradient_checkpointing }) => [
        from_micro_batch_size,
        micro_batch_size,
        gradient_checkpointing,
      ]),
    ).toEqual([
      [4, 4, true],
      [4, 2, true],
    ]);
    // The result's plan is the replanned one: the one training ran with.
    expect(result.plan.peak_vram_gib).toBe(result.progress.out_of_memory_recoveries.at(-1)!.peak_vram_gib);
    expect(result.plan.effective_batch_size).toBe(4);
    expect(result.status).toBe('completed');
  });

  it('with micro_batch_size auto, trains the split the plan chose and recovers from it in the same order, keeping train.batch_size', async ({ fakeRun }) => {
    const run = fakeRun('oom-auto', { train: [{ outcome: 'out-of-memory' }, { outcome: 'out-of-memory' }, { outcome: 'complete' }] });
    const result = await (await start(run, { train: { micro_batch_size: 'auto', batch_size: 8 } })).result();
    // The first attempt trains the plan's choice (checkpointing off fits this CPU); the spec's micro_batch_size stays auto.
    const [first, second, third] = attempts(run);
    expect(first![2]).toBe(false);
    expect(trainRequests(run).every((request) => request.spec.train.micro_batch_size === 'auto')).toBe(true);
    expect(second).toEqual([first![0], first![1], true]);
    expect(third![2]).toBe(true);
    expect(third![0]).toBeLessThan(first![0] as number);
    for (const [micro, accumulation] of attempts(run)) expect((micro as number) * (accumulation as number)).toBe(8);
    expect(result.plan.effective_batch_size).toBe(8);
  });

  it('fails, naming the recoveries, when no smaller micro-batch keeps the effective batch', async ({ fakeRun }) => {
    const outOfMemory = { outcome: 'out-of-memory' } as const;
    const run = fakeRun('oom-final', { train: [outOfMemory, outOfMemory, outOfMemory, outOfMemory] });
    const handle = await start(run);
    const cause = await rootFailure(handle.result());
    expect(cause).toMatchObject({ type: FailureType.OutOfMemory });
    expect((cause as Error).message).toContain('out of memory at micro_batch_size 1 with gradient checkpointing on after 3 recoveries');
    expect(attempts(run)).toEqual([
      [4, 1, false],
      [4, 1, true],
      [2, 2, true],
      [1, 4, true],
    ]);
    expect(run.callsTo('merge')).toHaveLength(0);
    // failureOf maps the run's failure back to tuneflow's typed error, with the plan and the recoveries attached.
    const error = failureOf(await handle.result().catch((caught: unknown) => caught));
    expect(isOutOfMemoryError(error)).toBe(true);
    const details = error!.details as { plan: { peak_vram_gib: number; fits: boolean }; recoveries: unknown[] };
    expect(details.plan.peak_vram_gib).toBeGreaterThan(0);
    expect(details.recoveries).toHaveLength(3);
    expect(await handle.query(stateQuery)).toMatchObject({ status: 'failed', error: expect.stringContaining(FailureType.OutOfMemory) });
  });
});

describe.concurrent('trainAdapter: continue-as-new', () => {
  it('continues as new before its history reaches the bound, carrying progress; the run completes once', async ({ fakeRun }) => {
    const run = fakeRun('rollover');
    const result = await (await start(run, { train: { max_steps: 40 }, checkpoint: { every_steps: 2 } }, 60)).result();
    expect(result.executions).toBeGreaterThanOrEqual(2);
    expect(run.callsTo('train')).toHaveLength(result.executions);
    expect(result.progress.resumes).toBe(result.executions - 1);
    expect(result.training.final_step).toBe(40);
    expect(result.progress.loss_history.at(-1)).toEqual([40, lossAt(40)]);
    // Each execution resumed where the previous one checkpointed: from the start, then ever further.
    expect(run.resumedFrom[0]).toBe(0);
    for (let index = 1; index < run.resumedFrom.length; index += 1) expect(run.resumedFrom[index]).toBeGreaterThan(run.resumedFrom[index - 1]!);
  });

  it('carries a replanned micro-batch across continue-as-new', async ({ fakeRun }) => {
    const run = fakeRun('rollover-oom', { train: [{ outcome: 'out-of-memory' }, { outcome: 'out-of-memory' }] });
    const result = await (await start(run, { train: { max_steps: 40 }, checkpoint: { every_steps: 2 } }, 60)).result();
    expect(result.executions).toBeGreaterThanOrEqual(2);
    const microBatches = trainRequests(run).map((request) => request.setup.micro_batch_size);
    // Checkpointing on at micro-batch 4, then micro-batch 2: every later execution keeps both.
    expect(microBatches).toEqual([4, 4, ...Array(microBatches.length - 2).fill(2)]);
    expect(trainRequests(run).map((request) => request.setup.gradient_checkpointing)).toEqual([false, ...Array(microBatches.length - 1).fill(true)]);
    expect(result.progress.out_of_memory_recoveries).toHaveLength(2);
    // The plan the run reports is the plan of the micro-batch it trained with, not the one it started with.
    expect(result.plan.peak_vram_gib).toBe(result.progress.out_of_memory_recoveries.at(-1)!.peak_vram_gib);
  });
});

describe.concurrent('merge and evaluate: sticky routing to the worker that trained', () => {
  it('offers merge and evaluate to the training worker’s own task queue first', async ({ fakeRun }) => {
    const run = fakeRun('sticky');
    run.trainedOnQueue = trainingWorkerQueue;
    await (await start(run)).result();
    expect(run.callsTo('merge').map((call) => call.taskQueue)).toEqual([trainingWorkerQueue]);
    expect(run.callsTo('evaluate').map((call) => call.taskQueue)).toEqual([trainingWorkerQueue]);
  });

  it('falls back to every GPU worker when the training worker’s attempt fails for a reason another worker may not meet', async ({ fakeRun }) => {
    const run = fakeRun('sticky-fallback');
    run.trainedOnQueue = trainingWorkerQueue;
    const merge = run.defaultHandler('merge');
    run.handlers.merge = async (request) => {
      if (run.callsTo('merge').length === 1) throw ApplicationFailure.create({ message: 'disk full on the training worker' });
      return merge(request);
    };
    const result = await (await start(run)).result();
    expect(run.callsTo('merge').map((call) => call.taskQueue)).toEqual([trainingWorkerQueue, TaskQueue.Accelerator]);
    expect(result.artifacts.merged).toBe(`${result.run_uri}/merged`);
  });

  it('does not retry elsewhere a failure every worker would meet (out of memory in evaluation)', async ({ fakeRun }) => {
    const run = fakeRun('sticky-oom');
    run.trainedOnQueue = trainingWorkerQueue;
    run.handlers.evaluate = async () => {
      throw ApplicationFailure.create({ type: FailureType.OutOfMemory, message: 'CUDA out of memory in evaluation', nonRetryable: true });
    };
    const cause = await rootFailure((await start(run)).result());
    expect(cause).toMatchObject({ type: FailureType.OutOfMemory });
    expect(run.callsTo('evaluate').map((call) => call.taskQueue)).toEqual([trainingWorkerQueue]);
  });
});
