/**
 * The workflows under test on a real Temporal dev server (the project's global setup starts one; Temporal's
 * time-skipping test server is a binary downloaded at run time, which nothing here may fetch), with every activity
 * a fake of one test's FakeRun. One set of workers per test file, in the file's own namespace, serves every test:
 * each activity call is routed to the FakeRun whose id begins the calling workflow's id, so tests never see each
 * other's calls, and a file's tests run at the same time (`describe.concurrent`): a test is a chain of round trips
 * to the server, mostly waiting. Each test takes its fakes from its own `fakeRun` fixture, which checks them against
 * the contract when the test ends. Timers a test must wait on (an approval timeout) are made short through the
 * workflow's input.
 */
import { Client, Connection } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { DefaultLogger, NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, expect, inject, test } from 'vitest';
import { TaskQueue } from '../../../src/contract/index.ts';
import type { GateEvaluationRequest, GateEvaluationResult } from '../../../workflows/index.ts';
import { type ActivityName, activitySchemas, bookkeepingActivitySchemas } from './contract.ts';
import { callingWorkflowId, FakeRun, type FakeHandlers, type TrainAttempt } from './fake-run.ts';
import { workflowTestNamespace } from './namespace.ts';

/** The task queue of the Python worker that trained a run, as a train result names it (sticky merge and evaluation). */
export const trainingWorkerQueue = 'tuneflow-gpu/fake-host/worker-1';
/** Where a retrain gate's own evaluation activity runs. */
export const judgeQueue = 'gate-judges';
export const judgeActivity = 'judgeChallenger';

export interface WorkflowTestbed {
  client: Client;
  namespace: string;
  /** A fresh directory for the test's artifacts (the registry writes here); file:// URI. */
  artifactRootUri(): Promise<string>;
  root: string;
}

/** Makes one test's fakes; `fake.workflowId` is the id to start its workflow with. */
export type MakeFakeRun = (name: string, options?: { handlers?: FakeHandlers; train?: TrainAttempt[] }) => FakeRun;

/**
 * Polls until `probe` returns a value (not undefined), failing after `timeoutMilliseconds`: a hang check, just under
 * the project's test timeout, since a file's tests all start at once and on a loaded machine the last reaches its
 * stage after tens of seconds (20 s was once too short for a retrain to await approval, at load 8).
 */
export async function eventually<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, timeoutMilliseconds = 50_000): Promise<T> {
  const deadline = Date.now() + timeoutMilliseconds;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    // Each probe is usually a query, a workflow task of its own: often enough to notice, not so often as to load the worker.
    await sleep(25);
  }
}

let runtimeInstalled = false;

/**
 * Starts the file's workers before its tests and stops them after. Returns the running testbed and the `it` its tests
 * are written with: `it('…', async ({ fakeRun }) => …)`.
 */
export function useWorkflowTestbed() {
  const runs: FakeRun[] = [];
  let testbed: WorkflowTestbed | undefined;
  let stop: (() => Promise<void>) | undefined;

  const runOf = (workflowId: string): FakeRun => {
    const run = runs.find((candidate) => workflowId.startsWith(candidate.workflowId));
    if (!run) throw ApplicationFailure.create({ message: `no fake run for workflow ${workflowId}`, nonRetryable: true });
    return run;
  };
  const routed = (names: readonly ActivityName[]) =>
    Object.fromEntries(names.map((name) => [name, (request: never) => runOf(callingWorkflowId()).invoke(name, request)]));

  beforeAll(async () => {
    if (!runtimeInstalled) {
      // The workers' own logs would drown the test output; warnings and errors still show.
      Runtime.install({ logger: new DefaultLogger('WARN') });
      runtimeInstalled = true;
    }
    const address = inject('workflowTestAddress');
    const namespace = workflowTestNamespace();
    const root = await mkdtemp(join(inject('workflowTestRoot'), 'file-'));
    const nativeConnection = await NativeConnection.connect({ address });
    const connection = await Connection.connect({ address });
    const client = new Client({ connection, namespace });
    const common = {
      connection: nativeConnection,
      namespace,
      // Cancellation reaches an activity in a heartbeat's reply: a pause lands within milliseconds.
      maxHeartbeatThrottleInterval: '20 milliseconds',
      defaultHeartbeatThrottleInterval: '20 milliseconds',
    } as const;
    const accelerator = routed(Object.keys(activitySchemas).filter((name) => !(name in bookkeepingActivitySchemas)) as ActivityName[]);
    const workers = await Promise.all([
      Worker.create({
        ...common,
        taskQueue: TaskQueue.Orchestration,
        workflowBundle: { codePath: inject('workflowTestBundlePath') },
        activities: routed(Object.keys(bookkeepingActivitySchemas) as ActivityName[]),
      }),
      Worker.create({ ...common, taskQueue: TaskQueue.Accelerator, activities: accelerator }),
      Worker.create({ ...common, taskQueue: trainingWorkerQueue, activities: accelerator }),
      Worker.create({
        ...common,
        taskQueue: judgeQueue,
        activities: {
          [judgeActivity]: (request: GateEvaluationRequest): Promise<GateEvaluationResult> => {
            const run = runOf(callingWorkflowId());
            if (!run.judge) throw ApplicationFailure.create({ message: 'this test has no gate judge', nonRetryable: true });
            return run.judge(request);
          },
        },
      }),
    ]);
    const running = workers.map((worker) => worker.run());
    testbed = {
      client,
      namespace,
      root,
      artifactRootUri: async () => pathToFileURL(await mkdtemp(join(root, 'artifacts-'))).href,
    };
    stop = async () => {
      for (const worker of workers) worker.shutdown();
      await Promise.all(running);
      await connection.close();
      await nativeConnection.close();
    };
  });

  afterAll(async () => {
    await stop?.();
  });

  const running = (): WorkflowTestbed => {
    if (!testbed) throw new Error('the workflow testbed is not running');
    return testbed;
  };

  // A fixture, not an afterEach over a shared list: the tests run concurrently, so each test checks its own fakes.
  const it = test.extend<{ fakeRun: MakeFakeRun }>({
    // biome-ignore lint/correctness/noEmptyPattern: vitest reads a fixture's dependencies from this pattern; it has none.
    fakeRun: async ({}, use) => {
      const own: FakeRun[] = [];
      await use((name, options = {}) => {
        const run = new FakeRun(`${name}-${randomBytes(4).toString('hex')}`, running().client, options.handlers, options.train);
        runs.push(run);
        own.push(run);
        return run;
      });
      // Every request the test's workflows made, and every result its fakes gave, kept to the contract.
      for (const run of own) expect(run.violations, `contract violations of ${run.workflowId}`).toEqual([]);
    },
  });

  return { testbed: running, it };
}
