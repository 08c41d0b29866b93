import type { MergeResult } from '../../src/contract/index.ts';
import { Stage } from '../../src/contract/index.ts';
import { activitySummary, onTrainingWorkerFirst } from '../activities.ts';
import type { TrainedAdapter } from '../train-adapter.ts';
import type { PlannedRun } from './plan.ts';

/** Merge stage: folds the adapter into the base weights and writes a standalone model under `<run>/merged`. */
export function merge(run: PlannedRun, trained: TrainedAdapter): Promise<MergeResult> {
  return onTrainingWorkerFirst(trained.training, run.spec.train.heartbeat_timeout_seconds, activitySummary(Stage.Merge, run.spec.model.source), (accelerator) =>
    accelerator.merge({
      spec: run.spec,
      setup: run.setup,
      model_uri: run.model.model_uri,
      adapter_uri: trained.training.adapter_uri,
      run_uri: run.run_uri,
    }),
  );
}
