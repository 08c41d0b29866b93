/**
 * A scale-out cluster for tests: the run's dev server, one TypeScript worker in this process, and several Python
 * GPU workers, each with a working directory (its cache) of its own, all sharing one bucket of a real S3 server.
 * The AWS variables go into this process's environment too: the TypeScript activities (prepare, record) read the
 * standard configuration like any AWS client.
 */
import { CreateBucketCommand, GetObjectCommand } from '@aws-sdk/client-s3';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { inject } from 'vitest';
import { ObjectLocation, s3ClientFromEnvironment } from '../../src/artifacts/index.ts';
import { AcceleratorActivity } from '../../src/contract/index.ts';
import { startGpuWorker, workerZygoteVariable } from '../../src/runtime/gpu-worker.ts';
import type { ManagedProcess } from '../../src/runtime/processes.ts';
import { createOrchestrationWorker } from '../../src/worker.ts';
import { awsEnvironment, type S3Credentials } from '../support/s3-server.ts';

export interface GpuWorker {
  name: string;
  cache: string;
  process: ManagedProcess;
}

export interface ScaleCluster {
  client: Client;
  home: string;
  bucket: string;
  workers: GpuWorker[];
  /** The GPU worker whose process holds the run's train attempt now, once it has one. */
  trainingWorker(workflowId: string): Promise<GpuWorker | null>;
  startGpuWorker(name: string): Promise<GpuWorker>;
  stop(): Promise<void>;
}

export async function createBucket(bucket: string): Promise<void> {
  await s3ClientFromEnvironment().send(new CreateBucketCommand({ Bucket: bucket }));
}

export async function objectBytes(uri: string): Promise<Buffer> {
  const location = ObjectLocation.parse(uri);
  const response = await s3ClientFromEnvironment().send(new GetObjectCommand({ Bucket: location.bucket, Key: location.key }));
  return Buffer.from(await response.Body!.transformToByteArray());
}

export async function startScaleCluster(name: string, s3: S3Credentials, gpuWorkerNames: string[]): Promise<ScaleCluster> {
  Object.assign(process.env, awsEnvironment(s3));
  const address = inject('temporalAddress');
  const home = await mkdtemp(join(inject('testRoot'), `${name}-`));
  process.env.TUNEFLOW_WORKER_CACHE = join(home, 'orchestration-cache');
  const bucket = `${name}-${Date.now()}`;
  await createBucket(bucket);
  const nativeConnection = await NativeConnection.connect({ address });
  const worker = await createOrchestrationWorker({ connection: nativeConnection, workflowBundle: { codePath: inject('workflowBundlePath') } });
  const running = worker.run();
  const connection = await Connection.connect({ address });
  const client = new Client({ connection });
  const workers: GpuWorker[] = [];
  const startNamed = async (workerName: string): Promise<GpuWorker> => {
    const cache = join(home, workerName);
    await mkdir(cache, { recursive: true });
    const started = {
      name: workerName,
      cache,
      process: await startGpuWorker({
        address,
        logFile: join(home, 'logs', `${workerName}-${workers.length}.log`),
        // Not forked from the test run's zygote: trainingWorker finds a worker by its pid, the ManagedProcess's own.
        environment: { ...awsEnvironment(s3), TUNEFLOW_WORKER_CACHE: cache, [workerZygoteVariable]: '' },
      }),
    };
    workers.push(started);
    return started;
  };
  await Promise.all(gpuWorkerNames.map(startNamed));
  return {
    client,
    home,
    bucket,
    workers,
    startGpuWorker: startNamed,
    trainingWorker: async (workflowId: string) => {
      // The train activity may run in a child workflow of the run: look at every running workflow of this run.
      for await (const execution of client.workflow.list({ query: 'ExecutionStatus="Running"' })) {
        if (!execution.workflowId.startsWith(workflowId)) continue;
        const description = await client.workflow.getHandle(execution.workflowId, execution.runId).describe();
        const pending = description.raw.pendingActivities?.find((activity) => activity.activityType?.name === AcceleratorActivity.Train);
        const pid = Number(pending?.lastWorkerIdentity?.split('/')[4]);
        const holder = workers.find((candidate) => candidate.process.child.pid === pid && candidate.process.child.exitCode === null);
        if (holder) return holder;
      }
      return null;
    },
    stop: async () => {
      await Promise.all(workers.map((gpuWorker) => gpuWorker.process.stop()));
      worker.shutdown();
      await running;
      await connection.close();
      await nativeConnection.close();
    },
  };
}
