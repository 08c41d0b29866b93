import type { CheckpointBook } from '../../activities/index.ts';
import { workflowInfo } from '@temporalio/workflow';
import { bookkeeping } from '../activities.ts';
import type { TrainedAdapter } from '../train-adapter.ts';
import type { PlannedRun } from './plan.ts';

/**
 * Checkpoint stage: verifies every checkpoint the training left and writes the run's manifest (`run.json`) beside
 * them, with the run's summary: what a later retraining or an audit reads.
 */
export function recordCheckpoints(run: PlannedRun, trained: TrainedAdapter, summary: Record<string, unknown> = {}): Promise<CheckpointBook> {
  const { spec, dataset, model, tokens, plan } = trained.run;
  return bookkeeping.recordCheckpoints({
    run_uri: run.run_uri,
    summary: { workflow_id: workflowInfo().workflowId, spec, dataset, model, tokens, plan, training: trained.training, progress: trained.progress, ...summary },
  });
}
