/**
 * History stays bounded however long a run is. A million-step run is simulated by a fast fake trainer (used only
 * here: real training would take weeks) that behaves like the Python train activity on the wire: it signals the
 * workflow that scheduled it (the run's training child) at every checkpoint, heartbeats, and on cancellation
 * "checkpoints" and stops. The training child must continue as new before any execution reaches 10,000 events,
 * carrying its progress across executions, while the run's own workflow stays small.
 */
import { Client, Connection } from '@temporalio/client';
import { CancelledFailure, Context } from '@temporalio/activity';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { ResolvedModel, TokenStatistics, TrainingProgressMessage, TrainRequest, TrainResult, VerifiedCheckpoints } from '../../src/contract/index.ts';
import { startFineTune } from '../../src/client.ts';
import { TaskQueue } from '../../src/contract/index.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { createOrchestrationWorker } from '../../src/worker.ts';
import { trainingProgressSignal, trainingWorkflowId } from '../../workflows/index.ts';
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
    async resolve_model(): Promise<ResolvedModel> {
      return {
        model_uri: 'file:///fake/model',
        source: 'fake',
        config: {
          model_type: 'llama',
          num_hidden_layers: 2,
          hidden_size: 64,
          intermediate_size: 128,
          num_attention_heads: 4,
          num_key_value_heads: 2,
          vocab_size: 49152,
          tie_word_embeddings: true,
        },
        tokenizer_identity: '0'.repeat(64),
        device: { kind: 'cpu', name: 'cpu', memory_gib: 16, count: 1, cores: 2 },
        cuda_bf16_supported: false,
        unsloth_importable: false,
        bitsandbytes_importable: false,
      };
    },
    async token_statistics(): Promise<TokenStatistics> {
      const split = { rows: 100, total_tokens: 10_000, trainable_tokens: 5_000, max: 128, rows_trained: 100, tokens_trained: 10_000, length_histogram: [] };
      return { train: split, val: split, train_tokens_uri: 'file:///fake/tokens/train', val_tokens_uri: 'file:///fake/tokens/val' };
    },
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
  let stop: () => Promise<void>;
  let client: Client;
  let artifactRoot: string;
  beforeAll(async () => {
    const address = inject('temporalAddress');
    artifactRoot = await mkdtemp(join(inject('testRoot'), 'history-'));
    const nativeConnection = await NativeConnection.connect({ address });
    const connection = await Connection.connect({ address });
    client = new Client({ connection });
    const orchestration = await createOrchestrationWorker({ connection: nativeConnection, workflowBundle: { codePath: inject('workflowBundlePath') } });
    const accelerator = await Worker.create({
      connection: nativeConnection,
      taskQueue: TaskQueue.Accelerator,
      activities: fakeAccelerator(client),
      // Cancellation reaches an activity in a heartbeat's reply: heartbeat often so a rollover is prompt.
      maxHeartbeatThrottleInterval: '200 milliseconds',
      defaultHeartbeatThrottleInterval: '200 milliseconds',
    });
    const running = [orchestration.run(), accelerator.run()];
    stop = async () => {
      orchestration.shutdown();
      accelerator.shutdown();
      await Promise.all(running);
      await connection.close();
      await nativeConnection.close();
    };
  });
  afterAll(async () => {
    await stop?.();
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
    const handle = await startFineTune(client, spec, { workflowId, artifactRootUri: pathToFileURL(artifactRoot).href });
    const result = await handle.result();

    expect(result.training.final_step).toBe(totalSteps);
    expect(result.executions).toBeGreaterThanOrEqual(2);
    expect(result.progress.step).toBe(totalSteps);
    expect(result.progress.resumes).toBe(result.executions - 1);
    expect(result.progress.loss_history.length).toBeLessThanOrEqual(256);
    expect(result.progress.loss_history.at(-1)![0]).toBe(totalSteps);

    // The training child continues as new; the run's own workflow runs once, its history a few dozen events.
    const executions = [];
    for await (const execution of client.workflow.list({ query: `WorkflowId = "${trainingWorkflowId(workflowId)}"` })) executions.push(execution);
    expect(executions).toHaveLength(result.executions);
    for (const execution of executions) {
      const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
      expect(history.events!.length).toBeLessThan(10_000);
    }
    expect((await client.workflow.getHandle(workflowId).fetchHistory()).events!.length).toBeLessThan(100);
  });
});
