/**
 * `tuneflow/worker`: the processes a deployment runs. The orchestration worker (tuneflow's workflows and bookkeeping
 * activities, task queue `tuneflow`), the Python GPU worker (task queue `tuneflow-gpu`), and the embedded dev
 * server. A user's own pipeline runs on a worker of its own (its workflows, its activities, its task queue) beside
 * these: the stages it calls run on tuneflow's queues.
 */
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { join } from 'node:path';
import * as activities from '../activities/index.ts';
import { TaskQueue } from './contract/index.ts';
import { startGpuWorker } from './runtime/gpu-worker.ts';
import { tuneflowWorkflowBundle } from './runtime/workflow-bundle.ts';
import { workflowsPath } from './workflows-path.ts';

export { startDevServer } from './runtime/dev-server.ts';
export type { DevServer, DevServerOptions } from './runtime/dev-server.ts';
export { startGpuWorker };
export type { GpuWorkerOptions } from './runtime/gpu-worker.ts';
export type { ManagedProcess } from './runtime/processes.ts';
export { workflowsPath };

export interface OrchestrationWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  /** A prebuilt bundle; otherwise tuneflow's cached bundle of this code (built once: runtime/workflow-bundle.ts). */
  workflowBundle?: WorkerOptions['workflowBundle'];
}

/** The TypeScript worker: workflows and the bookkeeping activities, on task queue `tuneflow`. */
export async function createOrchestrationWorker(options: OrchestrationWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? 'default',
    taskQueue: TaskQueue.Orchestration,
    activities,
    workflowBundle: options.workflowBundle ?? (await tuneflowWorkflowBundle()),
  });
}

export interface WorkersWithTuneflowOptions {
  /** The Temporal server, e.g. localhost:7233. */
  address: string;
  /** Your worker's task queue: your workflows and activities. */
  taskQueue: string;
  /** Your workflow file; it reaches tuneflow's stages through `tuneflow/workflow`, and is bundled at start. */
  workflowsPath: string;
  /** Your activities, if your workflows call any. */
  activities?: object;
  /** Where the Python worker writes gpu-worker.log. */
  logDirectory: string;
}

export interface WorkersWithTuneflow {
  /** Resolves when every worker has stopped. */
  running: Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * A pipeline's workers in one process: yours (your workflows and activities, on your task queue) beside tuneflow's
 * orchestration worker (the training children and the bookkeeping activities the stages call) and tuneflow's
 * Python worker (everything that touches weights), as a child process. `shutdown` stops all three.
 */
export async function startWorkersWithTuneflow(options: WorkersWithTuneflowOptions): Promise<WorkersWithTuneflow> {
  const connection = await NativeConnection.connect({ address: options.address });
  const yours = await Worker.create({
    connection,
    taskQueue: options.taskQueue,
    workflowsPath: options.workflowsPath,
    ...(options.activities === undefined ? {} : { activities: options.activities }),
  });
  const tuneflow = await createOrchestrationWorker({ connection });
  const gpu = await startGpuWorker({ address: options.address, logFile: join(options.logDirectory, 'gpu-worker.log') });
  const running = Promise.all([yours.run(), tuneflow.run()]).then(() => undefined);
  return {
    running,
    async shutdown() {
      yours.shutdown();
      tuneflow.shutdown();
      await Promise.all([running, gpu.stop()]);
      await connection.close();
    },
  };
}
