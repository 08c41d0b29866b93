import type { EvaluationResult } from '../../src/contract/index.ts';
import { python } from '../activities.ts';
import type { TrainedAdapter } from '../train-adapter.ts';
import type { PreparedDataset } from './prepare.ts';
import type { PlannedRun } from './plan.ts';

/**
 * Evaluate stage: validation loss and perplexity of the base model and of the adapter, and the spec's sample
 * prompts answered by both. Scores the run's own validation split unless `dataset` names another prepared one
 * (a held-out set, prepared by the prepare stage).
 */
export function evaluate(run: PlannedRun, trained: TrainedAdapter, options: { dataset?: PreparedDataset } = {}): Promise<EvaluationResult> {
  return python(run.spec.train.heartbeat_timeout_seconds).evaluate({
    spec: run.spec,
    setup: run.setup,
    model_uri: run.model.model_uri,
    adapter_uri: trained.training.adapter_uri,
    val_uri: (options.dataset ?? run.dataset).val_uri,
  });
}
