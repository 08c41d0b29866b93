/**
 * `tuneflow/worker`: the processes a deployment runs. The orchestration worker (tuneflow's workflows and bookkeeping
 * activities, task queue `tuneflow`), the Python GPU worker (task queue `tuneflow-gpu`), and the embedded dev
 * server. A user's own pipeline runs on a worker of its own (its workflows, its activities, its task queue) beside
 * these: the stages it calls run on tuneflow's queues.
 */
import { type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import * as activities from '../activities/index.ts';
import { TaskQueue } from './contract/index.ts';
import { workflowsPath } from './workflows-path.ts';

export { startDevServer } from './runtime/dev-server.ts';
export type { DevServer, DevServerOptions } from './runtime/dev-server.ts';
export { startGpuWorker } from './runtime/gpu-worker.ts';
export type { GpuWorkerOptions } from './runtime/gpu-worker.ts';
export type { ManagedProcess } from './runtime/processes.ts';
export { workflowsPath };

export interface OrchestrationWorkerOptions {
  connection: NativeConnection;
  namespace?: string;
  /** A prebuilt bundle (tests build one per run); otherwise the workflows are bundled at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
}

/** The TypeScript worker: workflows and the bookkeeping activities, on task queue `tuneflow`. */
export function createOrchestrationWorker(options: OrchestrationWorkerOptions): Promise<Worker> {
  return Worker.create({
    connection: options.connection,
    namespace: options.namespace ?? 'default',
    taskQueue: TaskQueue.Orchestration,
    activities,
    ...(options.workflowBundle ? { workflowBundle: options.workflowBundle } : { workflowsPath }),
  });
}
