/**
 * History stays bounded however long a run is. A million-step run is simulated by a fast fake trainer (used only
 * here: real training would take weeks) that behaves like the Python train activity on the wire: it signals the
 * workflow that scheduled it (the run's training child) at every checkpoint, heartbeats, and on cancellation
 * "checkpoints" and stops. The training child must continue as new before any execution reaches 10,000 events,
 * carrying its progress across executions, while the run's own workflow stays small.
 */
import type { Client } from '@temporalio/client';
import { CancelledFailure, Context } from '@temporalio/activity';
import { beforeAll, describe, expect, inject, it } from 'vitest';
import type { ResolvedModel, TokenStatistics, TrainingProgressMessage, TrainRequest, TrainResult, VerifiedCheckpoints } from '../../src/contract/index.ts';
import { startFineTune } from '../../src/client.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { trainingProgressSignal, trainingWorkflowId } from '../../workflows/index.ts';
import { fakeResolvedModel, fakeTokenStatistics, historyLengths, useFakeAcceleratorWorkers } from '../support/histories.ts';
import { fileURLToPath } from 'node:url';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const totalSteps = 1_000_000;
const stepsPerCheckpoint = 250;

function fakeAccelerator(client: Client) {
  // The fake's "checkpoints": the last step each run reached, as the real trainer's checkpoint directory would hold.
  const checkpoints = new Map<string, number>();
  const message = (event: TrainingProgressMessage['event'], step: number, resumedFrom: number): TrainingProgressMessage => ({
    event,
    attempt: Context.current().info.attempt,
    step,
    total_steps: totalSteps,
    epoch: 0,
    loss: 1 / (1 + step / 1000),
    val_loss: null,
    best: null,
    tokens_per_second: 1e6,
    padded_tokens_per_second: 1e6,
    padding_fraction: 0,
    eta_seconds: null,
    last_checkpoint: { step, uri: `file:///fake/step-${step}` },
    resumed_from_step: resumedFrom,
    steps_redone: 0,
    losses: [[step, 1 / (1 + step / 1000)]],
  });
  return {
    resolve_model: async (): Promise<ResolvedModel> => fakeResolvedModel,
    token_statistics: async (): Promise<TokenStatistics> => fakeTokenStatistics,
    async verify_checkpoints(): Promise<VerifiedCheckpoints> {
      return { checkpoints: [], corrupt: [] };
    },
    async train(request: TrainRequest): Promise<TrainResult> {
      const context = Context.current();
      const workflowId = context.info.workflowExecution!.workflowId;
      const handle = client.workflow.getHandle(workflowId);
      const resumedFrom = checkpoints.get(workflowId) ?? 0;
      if (resumedFrom > 0) await handle.signal(trainingProgressSignal, message('resumed', resumedFrom, resumedFrom));
      for (let step = resumedFrom + stepsPerCheckpoint; step <= totalSteps; step += stepsPerCheckpoint) {
        checkpoints.set(workflowId, step);
        await handle.signal(trainingProgressSignal, message('checkpoint', step, resumedFrom));
        context.heartbeat({ step });
        if (context.cancellationSignal.aborted) throw new CancelledFailure(`stopped at step ${step}`);
      }
      return {
        adapter_uri: `${request.run_uri}/adapter`,
        final_step: totalSteps,
        total_steps: totalSteps,
        stopped_early: false,
        train_loss: 0.001,
        val_loss: null,
        best: null,
        resumed_from_step: resumedFrom,
        steps_trained: totalSteps - resumedFrom,
        steps_redone: 0,
        corrupt_checkpoints_skipped: 0,
        last_checkpoint_uri: null,
        backend: 'hf-peft',
        device: 'cpu',
        dtype: 'float32',
        optimizer: 'adamw_torch',
        gradient_checkpointing: false,
        train_rows: 100,
        packing: false,
        train_sequences: 100,
        processes: 1,
        parallelism: 'single',
        tokens_per_second: 1e6,
        model_load_seconds: 0,
        seconds_to_first_step: 0,
      };
    },
  };
}

describe('a million-step run', () => {
  // Cancellation reaches an activity in a heartbeat's reply: heartbeat often so a rollover is prompt.
  const client = useFakeAcceleratorWorkers(fakeAccelerator, {
    maxHeartbeatThrottleInterval: '200 milliseconds',
    defaultHeartbeatThrottleInterval: '200 milliseconds',
  });
  let artifactRoot: string;
  beforeAll(async () => {
    artifactRoot = await mkdtemp(join(inject('workflowTestRoot'), 'history-'));
  });

  it('continues as new, carrying its progress, and keeps every execution under 10,000 events', { timeout: 900_000 }, async () => {
    const dataset = fileURLToPath(new URL('../../examples/quickstart/data.jsonl', import.meta.url));
    const spec = parseSpec(
      {
        model: { source: 'tiny-random-llama' },
        dataset: { path: dataset },
        train: { heartbeat_timeout_seconds: 30 },
        merge: { enabled: false },
        evaluate: { enabled: false },
      },
      '/',
    );
    const workflowId = `million-steps-${Date.now()}`;
    const handle = await startFineTune(client(), spec, { workflowId, artifactRootUri: pathToFileURL(artifactRoot).href });
    const result = await handle.result();

    expect(result.training.final_step).toBe(totalSteps);
    expect(result.executions).toBeGreaterThanOrEqual(2);
    expect(result.progress.step).toBe(totalSteps);
    expect(result.progress.resumes).toBe(result.executions - 1);
    expect(result.progress.loss_history.length).toBeLessThanOrEqual(256);
    expect(result.progress.loss_history.at(-1)![0]).toBe(totalSteps);

    // The training child continues as new; the run's own workflow runs once, its history a few dozen events.
    const trainingHistories = await historyLengths(client(), trainingWorkflowId(workflowId));
    expect(trainingHistories).toHaveLength(result.executions);
    for (const length of trainingHistories) expect(length).toBeLessThan(10_000);
    const [runHistory, ...more] = await historyLengths(client(), workflowId);
    expect(more).toEqual([]);
    expect(runHistory).toBeLessThan(100);
  });
});
