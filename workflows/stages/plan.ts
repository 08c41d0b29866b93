import { ActivityFailure, ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import type { ResolvedModel, TokenStatistics, TrainingSetup } from '../../src/contract/index.ts';
import { FailureType, Stage } from '../../src/contract/index.ts';
import type { Plan } from '../../src/planner/index.ts';
import { RunLayout } from '../../src/runtime/layout.ts';
import type { RunSpec } from '../../src/spec/schema.ts';
import { activitySummary, python, summarizedBookkeeping } from '../activities.ts';
import { currentSetup, currentSpec } from '../upgrade.ts';
import type { PreparedDataset } from './prepare.ts';

/** Everything training needs, decided before it starts: what every later stage receives. */
export interface PlannedRun {
  /**
   * The run's name within its workflow: null for the workflow's default run (fineTune's), else the name given to
   * `plan`. It places the run's folder and its training child's id, so one workflow holds several runs.
   */
  name?: string | null;
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

/**
 * Where a workflow's run writes: `<artifact root>/runs/<workflow id>` for its default run, `…/<workflow id>/<run
 * name>` for a named one; the id escaped to one path segment.
 */
export const runDirectoryUri = (artifactRootUri: string, workflowId = workflowInfo().workflowId, runName: string | null = null) =>
  RunLayout.of(artifactRootUri, workflowId, runName).root;

/** A planned run's name: null for the default run, and for runs planned before runs had names. */
export const runNameOf = (run: PlannedRun): string | null => run.name ?? null;

export interface PlanOptions {
  artifactRootUri: string;
  /**
   * Names the run, so that one workflow can train several: each named run has its own folder
   * (`runs/<workflow id>/<run>/`), checkpoints and training child (`<workflow id>/train/<run>`). Absent: the
   * workflow's default run, as fineTune trains. Give each run of a workflow its own name.
   */
  run?: string;
}

/**
 * Plan stage: resolves the model on the Python worker (the weights, the facts of the device it will train on),
 * measures the prepared dataset in the model's tokens, decides the training setup and plans memory and time. A plan that cannot fit the device fails
 * here, non-retryably, with the cheapest change that would fit, before any GPU time is spent. The run will write
 * under `runDirectoryUri(artifactRootUri)`.
 */
export async function plan(givenSpec: RunSpec, dataset: PreparedDataset, options: PlanOptions): Promise<PlannedRun> {
  const spec = currentSpec(givenSpec);
  const name = options.run ?? null;
  const problem = name === null ? null : RunLayout.runNameProblem(name);
  if (problem !== null) throw ApplicationFailure.create({ type: FailureType.InvalidSpec, nonRetryable: true, message: problem, details: [{ field: 'run' }] });
  const summary = activitySummary(Stage.Plan, spec.model.source, name ?? undefined);
  const { model, tokens } = await measure(spec, dataset, summary);
  const { setup, plan } = await summarizedBookkeeping(summary)
    .planRun({ spec, model, tokens })
    .catch((error: unknown) => {
      throw name === null ? error : namingTheRun(error, name);
    });
  // A plan an earlier release made (replayed from a live run's history) decided no micro-batch: currentSetup adds the spec's.
  return {
    name,
    spec,
    run_uri: runDirectoryUri(options.artifactRootUri, workflowInfo().workflowId, name),
    dataset,
    model,
    tokens,
    setup: currentSetup(setup, givenSpec),
    plan,
  };
}

/** A named run's planning failure says which run of its workflow it is ("run dpo: the run does not fit …"), type and details kept. */
function namingTheRun(error: unknown, name: string): unknown {
  const cause = error instanceof ActivityFailure ? error.cause : error;
  if (!(cause instanceof ApplicationFailure)) return error;
  return ApplicationFailure.create({
    type: cause.type ?? undefined,
    nonRetryable: true,
    message: `run ${name}: ${cause.message}`,
    details: cause.details as unknown[],
    cause: error as Error,
  });
}

/**
 * The plan stage's first half: the model resolved on the Python worker and the prepared dataset measured (and
 * tokenised, once) in its tokens. What several runs of the same model and data share: a sweep measures once and
 * plans each trial from it.
 */
export async function measure(
  spec: RunSpec,
  dataset: PreparedDataset,
  summary = activitySummary(Stage.Plan, spec.model.source),
): Promise<{ model: ResolvedModel; tokens: TokenStatistics }> {
  const accelerator = python(spec.train.heartbeat_timeout_seconds, summary);
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
