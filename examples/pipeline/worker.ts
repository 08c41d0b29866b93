/**
 * The workers this pipeline needs, in one process: ours (our workflows and our activity, on our task queue),
 * tuneflow's orchestration worker (the training child workflow and the bookkeeping activities the stages call)
 * and tuneflow's Python GPU worker (everything that touches weights), as a child process (`startWorkersWithTuneflow`).
 *
 *   npx tsx examples/pipeline/worker.ts        # against the Temporal server at TEMPORAL_ADDRESS (default localhost:7233)
 */
import { fileURLToPath } from 'node:url';
import { startWorkersWithTuneflow, type WorkersWithTuneflow } from 'tuneflow/worker';
import * as activities from './activities.ts';
import { pipelineTaskQueue } from './workflows.ts';

export type PipelineWorkers = WorkersWithTuneflow;

export function startPipelineWorkers(options: { address: string; logDirectory: string }): Promise<PipelineWorkers> {
  // Our workflow file is bundled like any other: it reaches tuneflow's stages through `tuneflow/workflow`.
  return startWorkersWithTuneflow({
    ...options,
    taskQueue: pipelineTaskQueue,
    workflowsPath: fileURLToPath(new URL('./workflows.ts', import.meta.url)),
    activities,
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const workers = await startPipelineWorkers({ address: process.env.TEMPORAL_ADDRESS ?? 'localhost:7233', logDirectory: process.cwd() });
  console.log(`workers ready on ${pipelineTaskQueue}, tuneflow and tuneflow-gpu; Ctrl-C stops them`);
  process.once('SIGINT', () => void workers.shutdown());
  await workers.running;
}
