/**
 * The workers the preference pipeline needs, in one process: ours (the preferenceTune workflow, on our task
 * queue), tuneflow's orchestration worker (the training children and the bookkeeping activities) and tuneflow's
 * Python worker (everything that touches weights), as a child process.
 *
 *   npx tsx examples/preference/worker.ts      # against the Temporal server at TEMPORAL_ADDRESS (default localhost:7233)
 */
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createOrchestrationWorker, startGpuWorker } from 'tuneflow/worker';
import { preferenceTaskQueue } from './workflows.ts';

export interface PreferenceWorkers {
  running: Promise<void>;
  shutdown(): Promise<void>;
}

export async function startPreferenceWorkers(options: { address: string; logDirectory: string }): Promise<PreferenceWorkers> {
  const connection = await NativeConnection.connect({ address: options.address });
  const { code } = await bundleWorkflowCode({ workflowsPath: fileURLToPath(new URL('./workflows.ts', import.meta.url)) });
  const ours = await Worker.create({ connection, taskQueue: preferenceTaskQueue, workflowBundle: { code } });
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
  const workers = await startPreferenceWorkers({ address: process.env.TEMPORAL_ADDRESS ?? 'localhost:7233', logDirectory: process.cwd() });
  console.log(`workers ready on ${preferenceTaskQueue}, tuneflow and tuneflow-gpu; Ctrl-C stops them`);
  process.once('SIGINT', () => void workers.shutdown());
  await workers.running;
}
