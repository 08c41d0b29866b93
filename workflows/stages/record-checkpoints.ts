import { patched, workflowInfo } from '@temporalio/workflow';
import type { CheckpointBook } from '../../activities/index.ts';
import { Stage } from '../../src/contract/index.ts';
import { activitySummary, python, summarizedBookkeeping } from '../activities.ts';
import type { TrainedAdapter } from '../train-adapter.ts';
import { type PlannedRun, runNameOf } from './plan.ts';

/** Histories recorded before verification moved to Python scheduled no verify_checkpoints. */
const pythonVerifiesCheckpoints = 'python-verifies-checkpoints';

/**
 * Checkpoint stage: the Python worker verifies every checkpoint the training left (sha256 manifests: verification
 * lives there alone), then the run's manifest (`run.json`) is written beside them with the run's summary: what a
 * later retraining or an audit reads.
 */
export async function recordCheckpoints(run: PlannedRun, trained: TrainedAdapter, summary: Record<string, unknown> = {}): Promise<CheckpointBook> {
  const { spec, dataset, model, tokens, plan } = trained.run;
  const activity = activitySummary(Stage.Checkpoint, spec.model.source, `step ${trained.training.final_step}`);
  const checkpoints = patched(pythonVerifiesCheckpoints)
    ? await python(spec.train.heartbeat_timeout_seconds, activity).verify_checkpoints({ run_uri: run.run_uri })
    : { checkpoints: [], corrupt: [] };
  return summarizedBookkeeping(activity).recordCheckpoints({
    run_uri: run.run_uri,
    summary: {
      workflow_id: workflowInfo().workflowId,
      run_name: runNameOf(run),
      spec,
      dataset,
      model,
      tokens,
      plan,
      training: trained.training,
      progress: trained.progress,
      ...summary,
    },
    checkpoints,
  });
}
