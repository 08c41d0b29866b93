/**
 * The fineTune workflow: prepare → plan → train → checkpoint → merge → evaluate, each a stage from `./stages/`,
 * the same stages a user's own workflow composes.
 *
 * The workflow only orchestrates: every byte of data and every weight lives in the artifact store and travels as a
 * URI. Training runs in the trainAdapter child workflow, which owns pause, out-of-memory recovery and
 * continue-as-new, so this workflow's history stays a few dozen events however long the run.
 *
 * Control and progress between the two: pause, resume and checkpointNow sent to this workflow are forwarded to the
 * child (`acceptRunControl`): a few events per signal a person sends. Progress goes the other way without any
 * message: the child's id is deterministic (`trainingWorkflowId`), and a client asks the child directly (its
 * `trainingStateQuery`, its pending train activity's heartbeat) while this workflow is in the train stage; the
 * child's result brings the final progress back. Forwarding every checkpoint to this workflow instead would grow
 * its history with the run's length, and only the child can continue as new.
 */
import {
  defineQuery,
  deprecatePatch,
  isCancellation,
  patched,
  setCurrentDetails,
  setHandler,
  upsertMemo,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { CheckpointBook } from '../activities/index.ts';
import type { ControlState, EvaluationResult, MergeResult, ResolvedModel, TokenStatistics, TrainingSetup, TrainResult } from '../src/contract/index.ts';
import { SearchAttribute, Stage } from '../src/contract/index.ts';
import type { Plan } from '../src/planner/index.ts';
import type { RunQuality } from '../src/quality/index.ts';
import type { RunSpec } from '../src/spec/schema.ts';
import { describeRunDetails } from './current-details.ts';
import { describeFailure } from './failures.ts';
import { emptyProgress, type RunStatus, type TrainingProgressState } from './progress.ts';
import { qualitySuitesPatch, recordQuality } from './quality.ts';
import { acceptRunControl } from './run-control.ts';
import { evaluate, merge, type PreparedDataset, plan, prepare, recordCheckpoints, runDirectoryUri, train } from './stages/index.ts';
import { trainingWorkflowId } from './train-adapter.ts';
import { currentSpec } from './upgrade.ts';

export interface FineTuneInput {
  spec: RunSpec;
  /** file:// URI of the artifact store root; the run (the workflow's default run) writes under runs/<workflow id>/. */
  artifact_root_uri: string;
  /** History length at which the training child continues as new (default 8,000, well under the 10,000 budget). */
  max_history_events?: number;
}

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
    /** dpo runs: the held-out pairs' reward accuracy and margin, base vs tuned (evaluate's `preference`). */
    preference?: NonNullable<EvaluationResult['preference']>;
  };
  samples: EvaluationResult['samples'];
  /** The spec's evaluation suites on base and candidate, and its gates judged on them; null without suites. */
  quality?: RunQuality | null;
  dataset: PreparedDataset;
  tokens: TokenStatistics;
  /** How the run trained: device, backend, quantization, dtype, checkpointing, optimizer. */
  setup: TrainingSetup;
  /** The plan training ran with: after an out-of-memory recovery, the replanned one. */
  plan: Plan;
  model: ResolvedModel;
  training: TrainResult;
  merge: MergeResult | null;
  progress: TrainingProgressState;
  /** Executions of the training child, counting each continue-as-new. */
  executions: number;
}

export interface FineTuneState {
  stage: Stage;
  /** This workflow's status; while training, the training child's status says whether a pause has taken effect. */
  status: RunStatus;
  run_uri: string;
  model: string;
  /** Where the train stage runs, once it has started: query it for live training progress. */
  training_workflow_id: string | null;
  total_steps: number | null;
  plan: Plan | null;
  dataset: PreparedDataset | null;
  training: TrainResult | null;
  /** Progress as of the end of training; during training, the child's trainingStateQuery has it. */
  progress: TrainingProgressState;
  control: ControlState;
  executions: number;
  result: FineTuneResult | null;
  error: string | null;
}

/** The run's stage and what each finished stage produced. */
export const stateQuery = defineQuery<FineTuneState>('state');
/** Training progress as this workflow knows it; live step and loss come from the training child and its heartbeat. */
export const progressQuery = defineQuery<TrainingProgressState & { stage: Stage; status: RunStatus }>('progress');

/**
 * Marked executions that ran the stages, when executions of the code before them were still live. Every execution
 * of the previous release carries the marker, and the code before the stages is gone (docs/upgrading.md): the
 * patch is deprecated, its marker is still written so that workers of the previous release can replay executions
 * started here during a rolling upgrade; it is removed once none of those workers is left.
 */
const stagesPatch = 'tuneflow-stages';
/** Marks executions that upsert TuneflowStep and TuneflowLoss from the training child's result. */
const stepAndLossFromTrainingPatch = 'tuneflow-step-and-loss-from-training';

export async function fineTune(input: FineTuneInput): Promise<FineTuneResult> {
  deprecatePatch(stagesPatch);
  const spec = currentSpec(input.spec);
  const { workflowId } = workflowInfo();
  const state: FineTuneState = {
    stage: Stage.Prepare,
    status: 'running',
    run_uri: runDirectoryUri(input.artifact_root_uri),
    model: spec.model.source,
    training_workflow_id: null,
    total_steps: null,
    plan: null,
    dataset: null,
    training: null,
    progress: emptyProgress(),
    control: { paused: false, checkpoint_requests: 0 },
    executions: 1,
    result: null,
    error: null,
  };
  // The Temporal UI's "Current Details": the metadata query serves it, so keeping it current adds no events.
  const showDetails = () =>
    setCurrentDetails(
      describeRunDetails({
        stage: state.stage,
        status: state.status,
        model: state.model,
        progress: state.progress,
        plan: state.plan,
        training_workflow_id: state.stage === Stage.Train ? state.training_workflow_id : null,
      }),
    );
  const upsertStatus = () => {
    upsertSearchAttributes({
      [SearchAttribute.Stage.name]: [state.stage],
      [SearchAttribute.Status.name]: [state.status],
      [SearchAttribute.Model.name]: [spec.model.source],
    });
    showDetails();
  };
  const control = acceptRunControl((changed) => {
    state.control = { ...changed };
    // A finished run (completed, failed, cancelled) keeps its final status.
    if (state.status === 'running' || state.status === 'paused') state.status = changed.paused ? 'paused' : 'running';
    upsertStatus();
  });
  /** Waits out a pause, then enters the stage. */
  const enter = async (stage: Stage) => {
    await control.untilResumed();
    state.stage = stage;
    upsertStatus();
  };
  setHandler(stateQuery, () => state);
  setHandler(progressQuery, () => ({ ...state.progress, stage: state.stage, status: state.status }));

  try {
    await enter(Stage.Prepare);
    const dataset = await prepare(spec, { artifactRootUri: input.artifact_root_uri });
    state.dataset = dataset;

    await enter(Stage.Plan);
    const run = await plan(spec, dataset, { artifactRootUri: input.artifact_root_uri });
    state.plan = run.plan;
    upsertMemo({
      plan: { fits: run.plan.fits, peak_vram_gib: run.plan.peak_vram_gib, tokens_per_s: run.plan.tokens_per_s, eta_seconds: run.plan.eta_seconds },
    });

    // Not `enter`: a pause during planning reaches the child, which starts paused and holds no GPU.
    state.stage = Stage.Train;
    upsertStatus();
    state.training_workflow_id = trainingWorkflowId(workflowId);
    showDetails();
    const trained = await train(run, { control, ...(input.max_history_events === undefined ? {} : { maxHistoryEvents: input.max_history_events }) });
    Object.assign(state, {
      training: trained.training,
      plan: trained.run.plan,
      progress: trained.progress,
      executions: trained.executions,
      total_steps: trained.training.total_steps,
    });
    // The child upserts step and loss on itself as it trains; the run's own list row needs the final ones.
    if (patched(stepAndLossFromTrainingPatch)) {
      upsertSearchAttributes({
        [SearchAttribute.Step.name]: [trained.training.final_step],
        ...(trained.training.train_loss === null ? {} : { [SearchAttribute.Loss.name]: [trained.training.train_loss] }),
      });
    }

    await enter(Stage.Checkpoint);
    const book: CheckpointBook = await recordCheckpoints(run, trained);

    let merged: MergeResult | null = null;
    if (spec.merge.enabled) {
      await enter(Stage.Merge);
      merged = await merge(run, trained);
    }

    let evaluation: EvaluationResult | null = null;
    if (spec.evaluate.enabled) {
      await enter(Stage.Evaluate);
      evaluation = await evaluate(run, trained);
    }
    const quality = evaluation?.suites && patched(qualitySuitesPatch) ? await recordQuality(run.run_uri, spec.evaluate.gates, evaluation.suites) : null;

    const { training } = trained;
    state.result = {
      status: 'completed',
      run_uri: state.run_uri,
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
        ...(evaluation?.preference === undefined ? {} : { preference: evaluation.preference }),
      },
      samples: evaluation?.samples ?? [],
      quality,
      dataset,
      tokens: run.tokens,
      setup: run.setup,
      plan: trained.run.plan,
      model: run.model,
      training,
      merge: merged,
      progress: trained.progress,
      executions: trained.executions,
    };
    state.status = 'completed';
    state.stage = Stage.Done;
    upsertStatus();
    return state.result;
  } catch (error) {
    state.status = isCancellation(error) ? 'cancelled' : 'failed';
    state.error = describeFailure(error);
    upsertSearchAttributes({ [SearchAttribute.Status.name]: [state.status] });
    showDetails();
    throw error;
  }
}
