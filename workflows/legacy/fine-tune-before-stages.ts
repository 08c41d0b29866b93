/**
 * FROZEN. fineTune as it was before the stages (prepare, plan, the trainAdapter child, ...) existed. Executions
 * started by that code carry no `tuneflow-stages` patch marker; `fineTune` runs them here so that their histories
 * (test/histories/, and any run still in flight when the new code was deployed) replay command for command.
 * Do not edit: any change to the commands this code issues breaks those replays. Its payload types are frozen
 * here too, so that later changes to the activities' shapes cannot change it. Delete it once no execution
 * started before the stages can still be running or replayed.
 */
import {
  ActivityCancellationType,
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  condition,
  ContinueAsNew,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  proxyActivities,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import { FailureType, nonRetryableFailureTypes, SearchAttribute, Stage, TaskQueue, WorkflowMessage } from '../../src/contract/index.ts';
import type { RunSpec } from '../../src/spec/schema.ts';

/** The activity payloads as this code read them: only the fields it uses, the rest passes through untouched. */
type Payload = Record<string, unknown>;
type PreparedDataset = Payload & { train_uri: string; val_uri: string };
type ResolvedModel = Payload & { model_uri: string };
type TokenStatistics = Payload;
type RunPlan = Payload & { fits: boolean; peak_vram_gib: number; tokens_per_s: number; eta_seconds: number };
type TrainResult = Payload & { adapter_uri: string; final_step: number; total_steps: number; train_loss: number | null };
type MergeResult = Payload & { merged_uri: string };
type EvaluationResult = Payload & {
  base_val_loss: number | null;
  tuned_val_loss: number | null;
  base_perplexity: number | null;
  tuned_perplexity: number | null;
  samples: unknown[];
};
type Replan = { micro_batch_size: number; gradient_accumulation_steps: number; plan: RunPlan };
type CheckpointBook = { checkpoints: { step: number; uri: string }[]; run_manifest_uri: string };

interface FrozenBookkeeping {
  prepareDataset(request: { spec: RunSpec; artifact_root_uri: string }): Promise<PreparedDataset>;
  planRun(request: { spec: RunSpec; model: ResolvedModel; tokens: TokenStatistics }): Promise<RunPlan>;
  replanAfterOutOfMemory(request: { spec: RunSpec; model: ResolvedModel; tokens: TokenStatistics }): Promise<Replan | null>;
  recordCheckpoints(request: { run_uri: string; summary: Payload }): Promise<CheckpointBook>;
}
interface FrozenAccelerator {
  resolve_model(request: { spec: RunSpec }): Promise<ResolvedModel>;
  token_statistics(request: { spec: RunSpec; model_uri: string; train_uri: string; val_uri: string }): Promise<TokenStatistics>;
  train(request: { spec: RunSpec; model_uri: string; train_uri: string; val_uri: string; run_uri: string }): Promise<TrainResult>;
  merge(request: { spec: RunSpec; model_uri: string; adapter_uri: string; run_uri: string }): Promise<MergeResult>;
  evaluate(request: { spec: RunSpec; model_uri: string; adapter_uri: string; val_uri: string }): Promise<EvaluationResult>;
}

interface PreparedRun {
  dataset: PreparedDataset;
  model: ResolvedModel;
  tokens: TokenStatistics;
  plan: RunPlan;
}

/** The input of executions started before the stages; `carried` is set by their own continue-as-new. */
export interface FineTuneBeforeStagesInput {
  spec: RunSpec;
  artifact_root_uri: string;
  max_history_events?: number;
  carried?: { prepared: PreparedRun; progress: TrainingProgressState; control: ControlState; executions: number };
}

type RunStatus = 'running' | 'pausing' | 'paused' | 'completed' | 'failed' | 'cancelled';

interface TrainingProgressState {
  step: number;
  total_steps: number | null;
  loss: number | null;
  val_loss: number | null;
  best: { val_loss: number; step: number } | null;
  tokens_per_second: number | null;
  last_checkpoint: { step: number; uri: string } | null;
  resumes: number;
  steps_redone: number;
  loss_history: [number, number][];
  out_of_memory_recoveries: { from_micro_batch_size: number; micro_batch_size: number; gradient_accumulation_steps: number; peak_vram_gib: number }[];
}

interface ControlState {
  paused: boolean;
  checkpoint_requests: number;
}

interface FineTuneResult {
  status: 'completed';
  run_uri: string;
  artifacts: Payload;
  metrics: Payload;
  samples: unknown[];
  dataset: PreparedDataset;
  tokens: TokenStatistics;
  plan: RunPlan;
  model: ResolvedModel;
  training: TrainResult;
  merge: MergeResult | null;
  progress: TrainingProgressState;
  executions: number;
}

interface FineTuneState {
  stage: Stage;
  status: RunStatus;
  run_uri: string;
  model: string;
  total_steps: number | null;
  plan: RunPlan | null;
  dataset: PreparedDataset | null;
  training: TrainResult | null;
  progress: TrainingProgressState;
  control: ControlState;
  executions: number;
  result: FineTuneResult | null;
  error: string | null;
}

interface TrainingProgressMessage {
  event: 'checkpoint' | 'resumed';
  attempt: number;
  step: number;
  total_steps: number;
  loss: number | null;
  val_loss: number | null;
  best: { val_loss: number; step: number } | null;
  tokens_per_second: number;
  last_checkpoint: { step: number; uri: string } | null;
  resumed_from_step: number;
  steps_redone: number;
  losses: [number, number][];
}

const stateQuery = defineQuery<FineTuneState>('state');
const progressQuery = defineQuery<TrainingProgressState & { stage: Stage; status: RunStatus }>('progress');
const trainingControlQuery = defineQuery<ControlState>(WorkflowMessage.TrainingControl);
const trainingProgressSignal = defineSignal<[TrainingProgressMessage]>(WorkflowMessage.TrainingProgress);
const pauseSignal = defineSignal('pause');
const resumeSignal = defineSignal('resume');
const checkpointNowSignal = defineSignal('checkpointNow');

const lossHistoryLimit = 256;
/** Out-of-memory recoveries before the run fails: each halves the micro-batch or so, 8 is more than 256 → 1. */
const maxOutOfMemoryRecoveries = 8;
const defaultMaxHistoryEvents = 8_000;

// Infrastructure failures (a killed worker, a lost connection) retry without limit, backing off to a minute;
// the contract's non-retryable failure types (bad input, bad spec, a plan that cannot fit) fail at once.
const retry = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '1 minute',
  nonRetryableErrorTypes: [...nonRetryableFailureTypes],
};

const bookkeeping = proxyActivities<FrozenBookkeeping>({
  taskQueue: TaskQueue.Orchestration,
  startToCloseTimeout: '30 minutes',
  retry,
});

function accelerator(heartbeatTimeoutSeconds: number, startToCloseTimeout: string) {
  return proxyActivities<FrozenAccelerator>({
    taskQueue: TaskQueue.Accelerator,
    startToCloseTimeout,
    // A worker killed mid-activity stops heartbeating; after this long the activity is retried elsewhere.
    heartbeatTimeout: `${heartbeatTimeoutSeconds} seconds`,
    // A cancelled activity (pause, cancel) is waited for: it writes its checkpoint before acknowledging.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    // Out of memory comes back to the workflow at once: the same micro-batch would fail again, a smaller one won't.
    retry: { ...retry, nonRetryableErrorTypes: [...retry.nonRetryableErrorTypes, FailureType.OutOfMemory] },
  });
}

const isOutOfMemory = (error: unknown) =>
  error instanceof ActivityFailure && error.cause instanceof ApplicationFailure && error.cause.type === FailureType.OutOfMemory;

function appendLosses(history: [number, number][], losses: [number, number][]): [number, number][] {
  let merged = [...history, ...losses];
  while (merged.length > lossHistoryLimit) {
    const halved: [number, number][] = [];
    for (let index = 0; index + 1 < merged.length; index += 2) {
      const [, first] = merged[index]!;
      const [step, second] = merged[index + 1]!;
      halved.push([step, (first + second) / 2]);
    }
    if (merged.length % 2 === 1) halved.push(merged.at(-1)!);
    merged = halved;
  }
  return merged;
}

const emptyProgress = (): TrainingProgressState => ({
  step: 0,
  total_steps: null,
  loss: null,
  val_loss: null,
  best: null,
  tokens_per_second: null,
  last_checkpoint: null,
  resumes: 0,
  steps_redone: 0,
  loss_history: [],
  out_of_memory_recoveries: [],
});

export async function fineTuneBeforeStages(input: FineTuneBeforeStagesInput): Promise<FineTuneResult> {
  const { spec } = input;
  /** The spec training runs with: out-of-memory recoveries change its micro-batch and accumulation. */
  let trainingSpec = spec;
  const root = CancellationScope.current();
  const runUri = `${input.artifact_root_uri.replace(/\/$/, '')}/runs/${encodeURIComponent(workflowInfo().workflowId)}`;
  const state: FineTuneState = {
    stage: input.carried ? Stage.Train : Stage.Prepare,
    status: input.carried?.control.paused ? 'paused' : 'running',
    run_uri: runUri,
    model: spec.model.source,
    total_steps: input.carried?.progress.total_steps ?? null,
    plan: input.carried?.prepared.plan ?? null,
    dataset: input.carried?.prepared.dataset ?? null,
    training: null,
    progress: input.carried?.progress ?? emptyProgress(),
    control: input.carried?.control ?? { paused: false, checkpoint_requests: 0 },
    executions: (input.carried?.executions ?? 0) + 1,
    result: null,
    error: null,
  };
  let trainingScope: CancellationScope | undefined;
  let rolloverRequested = false;

  const upsertStatus = (extra: Record<string, unknown[]> = {}) =>
    upsertSearchAttributes({
      [SearchAttribute.Stage.name]: [state.stage],
      [SearchAttribute.Status.name]: [state.status],
      [SearchAttribute.Model.name]: [spec.model.source],
      ...extra,
    });
  const enter = (stage: Stage, extra: Record<string, unknown[]> = {}) => {
    state.stage = stage;
    upsertStatus(extra);
  };

  setHandler(stateQuery, () => state);
  setHandler(progressQuery, () => ({ ...state.progress, stage: state.stage, status: state.status }));
  setHandler(trainingControlQuery, () => state.control);
  setHandler(pauseSignal, () => {
    if (state.control.paused || state.result) return;
    state.control.paused = true;
    // While training, the run is 'pausing' until the activity has written its checkpoint and stopped.
    state.status = trainingScope ? 'pausing' : 'paused';
    upsertStatus();
    trainingScope?.cancel();
  });
  setHandler(resumeSignal, () => {
    if (!state.control.paused) return;
    state.control.paused = false;
    state.status = 'running';
    upsertStatus();
  });
  setHandler(checkpointNowSignal, () => {
    state.control.checkpoint_requests += 1;
  });
  setHandler(trainingProgressSignal, (message) => {
    const progress = state.progress;
    progress.step = message.step;
    progress.total_steps = message.total_steps;
    progress.loss = message.loss;
    progress.val_loss = message.val_loss;
    progress.best = message.best;
    progress.tokens_per_second = message.tokens_per_second;
    progress.last_checkpoint = message.last_checkpoint;
    progress.steps_redone = message.steps_redone;
    progress.loss_history = appendLosses(progress.loss_history, message.losses);
    if (message.event === 'resumed') progress.resumes += 1;
    state.total_steps = message.total_steps;
    if (message.event === 'checkpoint') {
      upsertSearchAttributes({
        [SearchAttribute.Step.name]: [message.step],
        ...(message.loss === null ? {} : { [SearchAttribute.Loss.name]: [message.loss] }),
      });
    }
    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength >= (input.max_history_events ?? defaultMaxHistoryEvents)) {
      // Checkpoint-and-stop the activity, then continue as new; the next execution resumes from that checkpoint.
      rolloverRequested = true;
      trainingScope?.cancel();
    }
  });

  const heartbeatSeconds = spec.train.heartbeat_timeout_seconds;
  const python = accelerator(heartbeatSeconds, '1 day');
  const trainer = accelerator(heartbeatSeconds, '90 days');
  const whileNotPaused = () => condition(() => !state.control.paused);

  /** After an out-of-memory failure: the planner's next smaller micro-batch, or a final failure with the plan. */
  const recoverFromOutOfMemory = async (prepared: PreparedRun, error: unknown) => {
    const failedMicroBatch = trainingSpec.train.micro_batch_size;
    const replan =
      state.progress.out_of_memory_recoveries.length < maxOutOfMemoryRecoveries
        ? await bookkeeping.replanAfterOutOfMemory({ spec: trainingSpec, model: prepared.model, tokens: prepared.tokens })
        : null;
    if (replan === null) {
      throw ApplicationFailure.create({
        type: FailureType.OutOfMemory,
        nonRetryable: true,
        message: `out of memory at micro_batch_size ${failedMicroBatch} after ${state.progress.out_of_memory_recoveries.length} recoveries; no smaller micro-batch keeps the effective batch: lower sequence length or rank, quantize, or use a bigger GPU`,
        details: [{ plan: state.plan, recoveries: state.progress.out_of_memory_recoveries }],
        cause: error instanceof Error ? error : undefined,
      });
    }
    trainingSpec = {
      ...trainingSpec,
      train: { ...trainingSpec.train, micro_batch_size: replan.micro_batch_size, gradient_accumulation_steps: replan.gradient_accumulation_steps },
    };
    state.plan = replan.plan;
    state.progress.out_of_memory_recoveries.push({
      from_micro_batch_size: failedMicroBatch,
      micro_batch_size: replan.micro_batch_size,
      gradient_accumulation_steps: replan.gradient_accumulation_steps,
      peak_vram_gib: replan.plan.peak_vram_gib,
    });
  };

  /** Trains until done; a pause stops the activity (after its checkpoint) and waits for resume. */
  const trainUntilDone = async (prepared: PreparedRun): Promise<TrainResult> => {
    for (;;) {
      await whileNotPaused();
      trainingScope = new CancellationScope();
      try {
        return await trainingScope.run(() =>
          trainer.train({
            spec: trainingSpec,
            model_uri: prepared.model.model_uri,
            train_uri: prepared.dataset.train_uri,
            val_uri: prepared.dataset.val_uri,
            run_uri: runUri,
          }),
        );
      } catch (error) {
        if (isOutOfMemory(error)) {
          await recoverFromOutOfMemory(prepared, error);
          continue;
        }
        if (!isCancellation(error) || root.consideredCancelled) throw error;
        if (state.control.paused) {
          state.status = 'paused';
          upsertStatus();
        }
        if (rolloverRequested) {
          await continueAsNew<typeof fineTuneBeforeStages>({
            ...input,
            spec: trainingSpec,
            carried: { prepared, progress: state.progress, control: state.control, executions: state.executions },
          });
        }
      } finally {
        trainingScope = undefined;
      }
    }
  };

  try {
    let prepared: PreparedRun;
    if (input.carried) {
      prepared = input.carried.prepared;
      upsertStatus();
    } else {
      enter(Stage.Prepare);
      const dataset = await bookkeeping.prepareDataset({ spec, artifact_root_uri: input.artifact_root_uri });
      state.dataset = dataset;

      enter(Stage.Plan);
      const model = await python.resolve_model({ spec });
      const tokens = await python.token_statistics({ spec, model_uri: model.model_uri, train_uri: dataset.train_uri, val_uri: dataset.val_uri });
      const plan = await bookkeeping.planRun({ spec, model, tokens });
      state.plan = plan;
      upsertMemo({ plan: { fits: plan.fits, peak_vram_gib: plan.peak_vram_gib, tokens_per_s: plan.tokens_per_s, eta_seconds: plan.eta_seconds } });
      prepared = { dataset, model, tokens, plan };
      enter(Stage.Train, { [SearchAttribute.Step.name]: [0] });
    }

    const training = await trainUntilDone(prepared);
    state.training = training;
    state.total_steps = training.total_steps;
    state.progress.step = training.final_step;

    enter(Stage.Checkpoint, {
      [SearchAttribute.Step.name]: [training.final_step],
      ...(training.train_loss === null ? {} : { [SearchAttribute.Loss.name]: [training.train_loss] }),
    });
    const book = await bookkeeping.recordCheckpoints({
      run_uri: runUri,
      summary: { workflow_id: workflowInfo().workflowId, spec, ...prepared, training, progress: state.progress },
    });

    let merged: MergeResult | null = null;
    if (spec.merge.enabled) {
      await whileNotPaused();
      enter(Stage.Merge);
      merged = await python.merge({ spec, model_uri: prepared.model.model_uri, adapter_uri: training.adapter_uri, run_uri: runUri });
    }

    let evaluation: EvaluationResult | null = null;
    if (spec.evaluate.enabled) {
      await whileNotPaused();
      enter(Stage.Evaluate);
      evaluation = await python.evaluate({ spec, model_uri: prepared.model.model_uri, adapter_uri: training.adapter_uri, val_uri: prepared.dataset.val_uri });
    }

    const result: FineTuneResult = {
      status: 'completed',
      run_uri: runUri,
      artifacts: {
        adapter: training.adapter_uri,
        merged: merged?.merged_uri ?? null,
        run_manifest: book.run_manifest_uri,
        checkpoints: book.checkpoints.map(({ step, uri }) => ({ step, uri })),
        prepared_train: prepared.dataset.train_uri,
        prepared_val: prepared.dataset.val_uri,
      },
      metrics: {
        base_val_loss: evaluation?.base_val_loss ?? null,
        tuned_val_loss: evaluation?.tuned_val_loss ?? null,
        base_perplexity: evaluation?.base_perplexity ?? null,
        tuned_perplexity: evaluation?.tuned_perplexity ?? null,
        final_train_loss: training.train_loss,
      },
      samples: evaluation?.samples ?? [],
      ...prepared,
      training,
      merge: merged,
      progress: state.progress,
      executions: state.executions,
    };
    state.status = 'completed';
    state.result = result;
    enter(Stage.Done);
    return result;
  } catch (error) {
    if (error instanceof ContinueAsNew) throw error;
    state.status = isCancellation(error) ? 'cancelled' : 'failed';
    state.error = describeFailure(error);
    upsertSearchAttributes({ [SearchAttribute.Status.name]: [state.status] });
    throw error;
  }
}

function describeFailure(error: unknown): string {
  if (error instanceof ActivityFailure && error.cause instanceof ApplicationFailure) {
    return `${error.cause.type ?? 'failure'}: ${error.cause.message}`;
  }
  return error instanceof Error ? error.message : String(error);
}
