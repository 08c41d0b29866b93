import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import * as activities from '../activities/index.ts';
import { TaskQueue } from './contract/index.ts';
import { workflowsPath } from './workflows-path.ts';

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
