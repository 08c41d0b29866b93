/**
 * The workers this pipeline needs, in one process: ours (our workflows and our activity, on our task queue),
 * tuneflow's orchestration worker (the training child workflow and the bookkeeping activities the stages call)
 * and tuneflow's Python GPU worker (everything that touches weights), as a child process.
 *
 *   npx tsx examples/pipeline/worker.ts        # against the Temporal server at TEMPORAL_ADDRESS (default localhost:7233)
 */
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOrchestrationWorker, startGpuWorker } from 'tuneflow/worker';
import * as activities from './activities.ts';
import { pipelineTaskQueue } from './workflows.ts';

export interface PipelineWorkers {
  /** Resolves when every worker has stopped. */
  running: Promise<void>;
  shutdown(): Promise<void>;
}

export async function startPipelineWorkers(options: { address: string; logDirectory: string }): Promise<PipelineWorkers> {
  const connection = await NativeConnection.connect({ address: options.address });
  // Our workflow file is bundled like any other: it reaches tuneflow's stages through `tuneflow/workflow`.
  const { code } = await bundleWorkflowCode({ workflowsPath: fileURLToPath(new URL('./workflows.ts', import.meta.url)) });
  const ours = await Worker.create({ connection, taskQueue: pipelineTaskQueue, workflowBundle: { code }, activities });
  const tuneflow = await createOrchestrationWorker({ connection });
  const gpu = await startGpuWorker({ address: options.address, logFile: join(options.logDirectory, 'gpu-worker.log') });
  const running = Promise.all([ours.run(), tuneflow.run()]).then(() => undefined);
  return {
    running,
    async shutdown() {
      ours.shutdown();
      tuneflow.shutdown();
      await Promise.all([running, gpu.stop()]);
      await connection.close();
    },
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const workers = await startPipelineWorkers({ address: process.env.TEMPORAL_ADDRESS ?? 'localhost:7233', logDirectory: process.cwd() });
  console.log(`workers ready on ${pipelineTaskQueue}, tuneflow and tuneflow-gpu; Ctrl-C stops them`);
  process.once('SIGINT', () => void workers.shutdown());
  await workers.running;
}
