/**
 * Workflow histories in tests.
 * - How long each execution of a workflow grew (`historyLengths`), with the fake trainer's facts and workers that
 *   the history-bound tests (a million-step run, a sweep of 120 trials) share.
 * - Histories of real runs, committed under test/histories/ and replayed by test/replay.test.ts against the current
 *   workflow code: a change that would break a run in flight fails there (use `patched()` for such changes).
 *   Recorded only when TUNEFLOW_RECORD_HISTORIES=1, by the e2e tests that produce them, with the temporal CLI's own
 *   JSON export (the format `historyFromJSON` reads).
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, inject } from 'vitest';
import { readyEnvironment } from '../../scripts/python-environment.mjs';
import { type ResolvedModel, TaskQueue, type TokenStatistics } from '../../src/contract/index.ts';
import { createOrchestrationWorker } from '../../src/worker.ts';
import { workflowTestNamespace } from '../workflows/support/namespace.ts';
import { tinyLlamaConfig } from '../workflows/support/fake-run.ts';

export const historiesDirectory = fileURLToPath(new URL('../histories/', import.meta.url));

export function recordHistory(workflowId: string, name: string): void {
  if (process.env.TUNEFLOW_RECORD_HISTORIES !== '1') return;
  const json = execFileSync(
    readyEnvironment().temporal,
    ['workflow', 'show', '--workflow-id', workflowId, '--address', inject('temporalAddress'), '--output', 'json'],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  writeFileSync(`${historiesDirectory}${name}.json`, json);
}

/**
 * The number of events in each execution of `workflowId`, in the order visibility lists them: a workflow that
 * continued as new has one entry per execution, so a test sees both how often it rolled over and how long each
 * history grew.
 */
export async function historyLengths(client: Client, workflowId: string): Promise<number[]> {
  const lengths: number[] = [];
  for await (const execution of client.workflow.list({ query: `WorkflowId = "${workflowId}"` })) {
    const history = await client.workflow.getHandle(execution.workflowId, execution.runId).fetchHistory();
    lengths.push(history.events?.length ?? 0);
  }
  return lengths;
}

/**
 * The Python worker's model and tokeniser facts as a fake trainer gives them (the tiny two-layer Llama on a CPU),
 * for the history tests that run thousands of training steps without Python.
 */
export const fakeResolvedModel: ResolvedModel = {
  model_uri: 'file:///fake/model',
  source: 'fake',
  config: tinyLlamaConfig,
  tokenizer_identity: '0'.repeat(64),
  device: { kind: 'cpu', name: 'cpu', memory_gib: 16, count: 1, cores: 2 },
  cuda_bf16_supported: false,
  unsloth_importable: false,
  bitsandbytes_importable: false,
};

const fakeSplit = { rows: 100, total_tokens: 10_000, trainable_tokens: 5_000, max: 128, rows_trained: 100, tokens_trained: 10_000, length_histogram: [] };
export const fakeTokenStatistics: TokenStatistics = {
  train: fakeSplit,
  val: fakeSplit,
  train_tokens_uri: 'file:///fake/tokens/train',
  val_tokens_uri: 'file:///fake/tokens/val',
};

/**
 * tuneflow's orchestration worker (real workflows and bookkeeping activities, from the run's workflow bundle) and a
 * fake accelerator worker, for one test file of the `history-bound` project: on the dev server of its global setup
 * (test/workflows/global-setup.ts), in the namespace of the vitest worker, so the two files run side by side. The
 * returned function gives the client once `beforeAll` has run.
 */
export function useFakeAcceleratorWorkers(
  accelerator: (client: Client) => object,
  options: Pick<WorkerOptions, 'maxHeartbeatThrottleInterval' | 'defaultHeartbeatThrottleInterval'> = {},
): () => Client {
  let client: Client | undefined;
  let stop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const address = inject('workflowTestAddress');
    const namespace = workflowTestNamespace();
    const nativeConnection = await NativeConnection.connect({ address });
    const connection = await Connection.connect({ address });
    const connected = new Client({ connection, namespace });
    const orchestration = await createOrchestrationWorker({
      connection: nativeConnection,
      namespace,
      workflowBundle: { codePath: inject('workflowTestBundlePath') },
    });
    const acceleratorWorker = await Worker.create({
      connection: nativeConnection,
      namespace,
      taskQueue: TaskQueue.Accelerator,
      activities: accelerator(connected),
      ...options,
    });
    const running = [orchestration.run(), acceleratorWorker.run()];
    client = connected;
    stop = async () => {
      orchestration.shutdown();
      acceleratorWorker.shutdown();
      await Promise.all(running);
      await connection.close();
      await nativeConnection.close();
    };
  });
  afterAll(async () => {
    await stop?.();
  });
  return () => {
    if (!client) throw new Error('the fake accelerator workers are not running');
    return client;
  };
}
