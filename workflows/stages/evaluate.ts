import type { EvaluationResult } from '../../src/contract/index.ts';
import { Stage } from '../../src/contract/index.ts';
import { activitySummary, onTrainingWorkerFirst, python } from '../activities.ts';
import type { TrainedAdapter } from '../train-adapter.ts';
import type { PlannedRun } from './plan.ts';
import type { PreparedDataset } from './prepare.ts';

/**
 * Evaluate stage: validation loss and perplexity of the base model and of the adapter, and the spec's sample
 * prompts answered by both. Scores the run's own validation split unless `dataset` names another prepared one
 * (a held-out set, prepared by the prepare stage), which is tokenised first, once, like the run's own data.
 */
export async function evaluate(run: PlannedRun, trained: TrainedAdapter, options: { dataset?: PreparedDataset } = {}): Promise<EvaluationResult> {
  const summary = activitySummary(Stage.Evaluate, run.spec.model.source, 'base vs tuned');
  const accelerator = python(run.spec.train.heartbeat_timeout_seconds, summary);
  const valTokensUri = options.dataset
    ? (
        await accelerator.token_statistics({
          spec: run.spec,
          model_uri: run.model.model_uri,
          tokenizer_identity: run.model.tokenizer_identity,
          train_uri: options.dataset.train_uri,
          val_uri: options.dataset.val_uri,
        })
      ).val_tokens_uri
    : run.tokens.val_tokens_uri;
  return onTrainingWorkerFirst(trained.training, run.spec.train.heartbeat_timeout_seconds, summary, (activities) =>
    activities.evaluate({
      spec: run.spec,
      setup: run.setup,
      model_uri: run.model.model_uri,
      adapter_uri: trained.training.adapter_uri,
      val_tokens_uri: valTokensUri,
    }),
  );
}
