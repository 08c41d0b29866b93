/**
 * Real workers against the run's real dev server: the TypeScript worker in this process, the Python worker as
 * a child process that a test may SIGKILL and start again.
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, inject } from 'vitest';
import { startGpuWorker } from '../../src/runtime/gpu-worker.ts';
import type { ManagedProcess } from '../../src/runtime/processes.ts';
import { createOrchestrationWorker } from '../../src/worker.ts';

export interface TestCluster {
  client: Client;
  home: string;
  artifactRootUri: string;
  gpuWorker: () => ManagedProcess;
  /** SIGKILLs the Python worker: no goodbye, no cleanup, as when a machine dies. */
  killGpuWorker(): Promise<void>;
  stopGpuWorker(): Promise<void>;
  /** Starts a Python worker; environment adds variables (test hooks) to the worker's environment. */
  startGpuWorker(environment?: Record<string, string>): Promise<ManagedProcess>;
  stop(): Promise<void>;
}

export async function startTestCluster(name: string, gpuWorkerEnvironment: Record<string, string> = {}): Promise<TestCluster> {
  const address = inject('temporalAddress');
  const home = await mkdtemp(join(inject('testRoot'), `${name}-`));
  const artifactRoot = join(home, 'artifacts');
  const nativeConnection = await NativeConnection.connect({ address });
  const worker = await createOrchestrationWorker({
    connection: nativeConnection,
    workflowBundle: { codePath: inject('workflowBundlePath') },
  });
  const running = worker.run();
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  let gpuWorker: ManagedProcess | undefined;
  let generation = 0;
  const startPython = async (environment: Record<string, string> = gpuWorkerEnvironment) => {
    generation += 1;
    gpuWorker = await startGpuWorker({ address, environment, logFile: join(home, 'logs', `gpu-worker-${generation}.log`) });
    return gpuWorker;
  };
  await startPython();
  return {
    client,
    home,
    artifactRootUri: pathToFileURL(artifactRoot).href,
    gpuWorker: () => {
      if (!gpuWorker) throw new Error('no gpu worker');
      return gpuWorker;
    },
    killGpuWorker: async () => gpuWorker?.kill(),
    startGpuWorker: startPython,
    stopGpuWorker: async () => gpuWorker?.stop(),
    stop: async () => {
      await gpuWorker?.stop();
      worker.shutdown();
      await running;
      await connection.close();
      await nativeConnection.close();
    },
  };
}

/** A cluster started before the file's tests and stopped after them; call the returned function inside a test. */
export function useTestCluster(name: string, gpuWorkerEnvironment: Record<string, string> = {}): () => TestCluster {
  let cluster: TestCluster | undefined;
  beforeAll(async () => {
    cluster = await startTestCluster(name, gpuWorkerEnvironment);
  });
  afterAll(async () => {
    await cluster?.stop();
  });
  return () => {
    if (!cluster) throw new Error(`test cluster ${name} is not running`);
    return cluster;
  };
}
