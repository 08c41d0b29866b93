/**
 * The fineTune workflow: prepare → plan → train → checkpoint → merge → evaluate, each stage an activity.
 *
 * The workflow only orchestrates: every byte of data and every weight lives in the artifact store and travels
 * as a URI. Training progress travels in the train activity's heartbeats (visible through `describe()` and the
 * Web UI's pending activities), never as one history event per step, so history stays small however long the run.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  defineQuery,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type * as orchestration from '../activities/index.ts';
import type { AcceleratorActivities, EvaluationResult, MergeResult, ResolvedModel, TokenStatistics, TrainResult } from '../src/accelerator.ts';
import { nonRetryableFailureTypes, SearchAttribute, Stage, TaskQueue } from '../src/contract.ts';
import type { RunSpec } from '../src/spec/schema.ts';

export interface FineTuneInput {
  spec: RunSpec;
  /** file:// URI of the artifact store root; the run writes under runs/<workflow id>/. */
  artifact_root_uri: string;
}

export type RunStatus = 'running' | 'completed' | 'failed';

export interface FineTuneResult {
  status: 'completed';
  run_uri: string;
  artifacts: {
    adapter: string;
    merged: string | null;
    run_manifest: string;
    checkpoints: { step: number; uri: string }[];
    prepared_train: string;
    prepared_val: string;
  };
  metrics: {
    base_val_loss: number | null;
    tuned_val_loss: number | null;
    base_perplexity: number | null;
    tuned_perplexity: number | null;
    final_train_loss: number | null;
  };
  samples: EvaluationResult['samples'];
  dataset: Awaited<ReturnType<typeof orchestration.prepareDataset>>;
  tokens: TokenStatistics;
  plan: Awaited<ReturnType<typeof orchestration.planRun>>;
  model: ResolvedModel;
  training: TrainResult;
  merge: MergeResult | null;
}

export interface FineTuneState {
  stage: Stage;
  status: RunStatus;
  run_uri: string;
  model: string;
  total_steps: number | null;
  plan: FineTuneResult['plan'] | null;
  dataset: FineTuneResult['dataset'] | null;
  training: TrainResult | null;
  result: FineTuneResult | null;
  error: string | null;
}

/** The run's stage and what each finished stage produced; live step/loss come from the train heartbeat. */
export const stateQuery = defineQuery<FineTuneState>('state');

// Infrastructure failures (a killed worker, a lost connection) retry without limit, backing off to a minute;
// the contract's non-retryable failure types (bad input, bad spec, a plan that cannot fit) fail at once.
const retry = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '1 minute',
  nonRetryableErrorTypes: [...nonRetryableFailureTypes],
};

const bookkeeping = proxyActivities<typeof orchestration>({
  taskQueue: TaskQueue.Orchestration,
  startToCloseTimeout: '30 minutes',
  retry,
});

function accelerator(heartbeatTimeoutSeconds: number, startToCloseTimeout: string) {
  return proxyActivities<AcceleratorActivities>({
    taskQueue: TaskQueue.Accelerator,
    startToCloseTimeout,
    // A worker killed mid-activity stops heartbeating; after this long the activity is retried elsewhere.
    heartbeatTimeout: `${heartbeatTimeoutSeconds} seconds`,
    retry,
  });
}

export async function fineTune(input: FineTuneInput): Promise<FineTuneResult> {
  const { spec } = input;
  const runUri = `${input.artifact_root_uri.replace(/\/$/, '')}/runs/${encodeURIComponent(workflowInfo().workflowId)}`;
  const state: FineTuneState = {
    stage: Stage.Prepare,
    status: 'running',
    run_uri: runUri,
    model: spec.model.source,
    total_steps: null,
    plan: null,
    dataset: null,
    training: null,
    result: null,
    error: null,
  };
  setHandler(stateQuery, () => state);

  const enter = (stage: Stage, extra: Record<string, unknown[]> = {}) => {
    state.stage = stage;
    upsertSearchAttributes({
      [SearchAttribute.Stage.name]: [stage],
      [SearchAttribute.Status.name]: [state.status],
      [SearchAttribute.Model.name]: [spec.model.source],
      ...extra,
    });
  };

  const heartbeatSeconds = spec.train.heartbeat_timeout_seconds;
  const python = accelerator(heartbeatSeconds, '1 day');
  const trainer = accelerator(heartbeatSeconds, '90 days');

  try {
    enter(Stage.Prepare);
    const dataset = await bookkeeping.prepareDataset({ spec, artifact_root_uri: input.artifact_root_uri });
    state.dataset = dataset;

    enter(Stage.Plan);
    const model = await python.resolve_model({ spec });
    const tokens = await python.token_statistics({ spec, model_uri: model.model_uri, train_uri: dataset.train_uri, val_uri: dataset.val_uri });
    const plan = await bookkeeping.planRun({ spec, model, tokens });
    state.plan = plan;
    upsertMemo({ plan: { fits: plan.fits, peak_vram_gib: plan.peak_vram_gib, tokens_per_s: plan.tokens_per_s, eta_seconds: plan.eta_seconds } });

    enter(Stage.Train, { [SearchAttribute.Step.name]: [0] });
    const training = await trainer.train({ spec, model_uri: model.model_uri, train_uri: dataset.train_uri, run_uri: runUri });
    state.training = training;
    state.total_steps = training.total_steps;

    enter(Stage.Checkpoint, {
      [SearchAttribute.Step.name]: [training.final_step],
      ...(training.train_loss === null ? {} : { [SearchAttribute.Loss.name]: [training.train_loss] }),
    });
    const book = await bookkeeping.recordCheckpoints({
      run_uri: runUri,
      summary: { workflow_id: workflowInfo().workflowId, spec, dataset, plan, training },
    });

    let merged: MergeResult | null = null;
    if (spec.merge.enabled) {
      enter(Stage.Merge);
      merged = await python.merge({ spec, model_uri: model.model_uri, adapter_uri: training.adapter_uri, run_uri: runUri });
    }

    let evaluation: EvaluationResult | null = null;
    if (spec.evaluate.enabled) {
      enter(Stage.Evaluate);
      evaluation = await python.evaluate({ spec, model_uri: model.model_uri, adapter_uri: training.adapter_uri, val_uri: dataset.val_uri });
    }

    const result: FineTuneResult = {
      status: 'completed',
      run_uri: runUri,
      artifacts: {
        adapter: training.adapter_uri,
        merged: merged?.merged_uri ?? null,
        run_manifest: book.run_manifest_uri,
        checkpoints: book.checkpoints.map(({ step, uri }) => ({ step, uri })),
        prepared_train: dataset.train_uri,
        prepared_val: dataset.val_uri,
      },
      metrics: {
        base_val_loss: evaluation?.base_val_loss ?? null,
        tuned_val_loss: evaluation?.tuned_val_loss ?? null,
        base_perplexity: evaluation?.base_perplexity ?? null,
        tuned_perplexity: evaluation?.tuned_perplexity ?? null,
        final_train_loss: training.train_loss,
      },
      samples: evaluation?.samples ?? [],
      dataset,
      tokens,
      plan,
      model,
      training,
      merge: merged,
    };
    state.status = 'completed';
    state.result = result;
    enter(Stage.Done);
    return result;
  } catch (error) {
    state.status = 'failed';
    state.error = describeFailure(error);
    upsertSearchAttributes({ [SearchAttribute.Status.name]: ['failed'] });
    throw error;
  }
}

function describeFailure(error: unknown): string {
  if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure) {
    return `${error.cause.type ?? 'failure'}: ${error.cause.message}`;
  }
  return error instanceof Error ? error.message : String(error);
}
