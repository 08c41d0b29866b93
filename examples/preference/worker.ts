/**
 * The workers the preference pipeline needs, in one process: ours (the preferenceTune workflow, on our task
 * queue), tuneflow's orchestration worker (the training children and the bookkeeping activities) and tuneflow's
 * Python worker (everything that touches weights), as a child process (`startWorkersWithTuneflow`).
 *
 *   npx tsx examples/preference/worker.ts      # against the Temporal server at TEMPORAL_ADDRESS (default localhost:7233)
 */
import { fileURLToPath } from 'node:url';
import { startWorkersWithTuneflow, type WorkersWithTuneflow } from 'tuneflow/worker';
import { preferenceTaskQueue } from './workflows.ts';

export type PreferenceWorkers = WorkersWithTuneflow;

export function startPreferenceWorkers(options: { address: string; logDirectory: string }): Promise<PreferenceWorkers> {
  return startWorkersWithTuneflow({ ...options, taskQueue: preferenceTaskQueue, workflowsPath: fileURLToPath(new URL('./workflows.ts', import.meta.url)) });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const workers = await startPreferenceWorkers({ address: process.env.TEMPORAL_ADDRESS ?? 'localhost:7233', logDirectory: process.cwd() });
  console.log(`workers ready on ${preferenceTaskQueue}, tuneflow and tuneflow-gpu; Ctrl-C stops them`);
  process.once('SIGINT', () => void workers.shutdown());
  await workers.running;
}
