import { workflowInfo } from '@temporalio/workflow';
import type { ResolvedModel, TokenStatistics, TrainingSetup } from '../../src/contract/index.ts';
import { Stage } from '../../src/contract/index.ts';
import type { Plan } from '../../src/planner/index.ts';
import { RunLayout } from '../../src/runtime/layout.ts';
import type { RunSpec } from '../../src/spec/schema.ts';
import { activitySummary, python, summarizedBookkeeping } from '../activities.ts';
import type { PreparedDataset } from './prepare.ts';

/** Everything training needs, decided before it starts: what every later stage receives. */
export interface PlannedRun {
  spec: RunSpec;
  /** file:// URI of the run's directory: checkpoints, the adapter, the merged model and run.json go under it. */
  run_uri: string;
  dataset: PreparedDataset;
  model: ResolvedModel;
  tokens: TokenStatistics;
  /** How the run trains (device, backend, quantization, dtype, checkpointing, optimizer): every Python request carries it. */
  setup: TrainingSetup;
  plan: Plan;
}

/** Where a workflow's run writes: `<artifact root>/runs/<workflow id>`, the id escaped to one path segment. */
export const runDirectoryUri = (artifactRootUri: string, workflowId = workflowInfo().workflowId) => RunLayout.of(artifactRootUri, workflowId).root;

/**
 * Plan stage: resolves the model on the Python worker (the weights, the facts of the device it will train on),
 * measures the prepared dataset in the model's tokens, decides the training setup and plans memory and time. A plan that cannot fit the device fails
 * here, non-retryably, with the cheapest change that would fit, before any GPU time is spent. The run will write
 * under `runDirectoryUri(artifactRootUri)`.
 */
export async function plan(spec: RunSpec, dataset: PreparedDataset, options: { artifactRootUri: string }): Promise<PlannedRun> {
  const { model, tokens } = await measure(spec, dataset);
  const { setup, plan } = await summarizedBookkeeping(activitySummary(Stage.Plan, spec.model.source)).planRun({ spec, model, tokens });
  return { spec, run_uri: runDirectoryUri(options.artifactRootUri), dataset, model, tokens, setup, plan };
}

/**
 * The plan stage's first half: the model resolved on the Python worker and the prepared dataset measured (and
 * tokenised, once) in its tokens. What several runs of the same model and data share: a sweep measures once and
 * plans each trial from it.
 */
export async function measure(spec: RunSpec, dataset: PreparedDataset): Promise<{ model: ResolvedModel; tokens: TokenStatistics }> {
  const accelerator = python(spec.train.heartbeat_timeout_seconds, activitySummary(Stage.Plan, spec.model.source));
  const model = await accelerator.resolve_model({ spec });
  const tokens = await accelerator.token_statistics({
    spec,
    model_uri: model.model_uri,
    tokenizer_identity: model.tokenizer_identity,
    train_uri: dataset.train_uri,
    val_uri: dataset.val_uri,
  });
  return { model, tokens };
}
