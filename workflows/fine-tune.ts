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
  ApplicationFailure,
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
import { FailureType, type ObjectiveKind, SearchAttribute, Stage } from '../src/contract/index.ts';
import type { Plan } from '../src/planner/index.ts';
import type { RunQuality } from '../src/quality/index.ts';
import { type NamedRunSpec, referenceIssues } from '../src/spec/runs.ts';
import type { RunSpec } from '../src/spec/schema.ts';
import { describeRunDetails } from './current-details.ts';
import { describeFailure } from './failures.ts';
import { emptyProgress, type RunStatus, type TrainingProgressState } from './progress.ts';
import { qualitySuitesPatch, recordQuality } from './quality.ts';
import { acceptRunControl } from './run-control.ts';
import {
  evaluate,
  merge,
  type PlannedRun,
  type PreparedDataset,
  plan,
  prepare,
  recordCheckpoints,
  runDirectoryUri,
  type StartingPoint,
  startFrom,
  startingPointOf,
  train,
} from './stages/index.ts';
import { type TrainedAdapter, trainingWorkflowId } from './train-adapter.ts';
import { currentSpec } from './upgrade.ts';

interface FineTuneOptions {
  /** file:// URI of the artifact store root; the default run writes under runs/<workflow id>/, a named one under runs/<workflow id>/<run>/. */
  artifact_root_uri: string;
  /** History length at which the training children continue as new (default 8,000, well under the 10,000 budget). */
  max_history_events?: number;
}

/**
 * One run (`spec`: the workflow's default run), or several trained in order (`runs`: a spec with `runs:`), each
 * with its own name, folder, training child, checkpoints and metrics, a run with `from` training on that earlier
 * run's merged model.
 */
export type FineTuneInput = FineTuneOptions & ({ spec: RunSpec; runs?: undefined } | { runs: NamedRunSpec[]; spec?: undefined });

/** What one run produced. */
export interface FineTuneRunResult {
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

/** One named run's result, in a workflow of several runs. */
export interface NamedRunResult {
  name: string;
  /** The earlier run whose merged model this run trained on. */
  from: string | null;
  result: FineTuneRunResult;
}

/** The run's result; with several runs, the last run's, and each run's own in `runs` (training order). */
export interface FineTuneResult extends FineTuneRunResult {
  runs?: NamedRunResult[];
}

/** Where one run of several stands: what `tuneflow status` lists per run. */
export interface FineTuneRunState {
  name: string;
  from: string | null;
  objective: ObjectiveKind;
  run_uri: string;
  training_workflow_id: string;
  /** 'waiting' until the run starts training, then the stage it is in; Done once its stages finished. */
  stage: Stage | 'waiting';
  /** Planned before any run trained; a run started from another is planned again on that run's merged model. */
  plan: Plan | null;
  result: FineTuneRunResult | null;
}

export interface FineTuneState {
  stage: Stage;
  /** This workflow's status; while training, the training child's status says whether a pause has taken effect. */
  status: RunStatus;
  /** The run in progress (with several runs, the current one). */
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
  /** A workflow of several runs: each run, in training order; absent for one run. */
  runs?: FineTuneRunState[];
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

/** One run as the workflow trains it: the default run (name null) or a named one of several. */
interface RunToTrain {
  name: string | null;
  from: string | null;
  spec: RunSpec;
}

export async function fineTune(input: FineTuneInput): Promise<FineTuneResult> {
  deprecatePatch(stagesPatch);
  const runs: RunToTrain[] =
    input.runs === undefined
      ? [{ name: null, from: null, spec: currentSpec(input.spec) }]
      : input.runs.map((run) => ({ name: run.name, from: run.from, spec: currentSpec(run.spec) }));
  const several = input.runs !== undefined;
  // Before anything else: runs that cannot train in this order fail the workflow at once, naming the runs.
  if (several) refuseBadReferences(runs);
  const first = runs[0]!;
  const { workflowId } = workflowInfo();
  const artifactRootUri = input.artifact_root_uri;
  const state: FineTuneState = {
    stage: Stage.Prepare,
    status: 'running',
    run_uri: runDirectoryUri(artifactRootUri, workflowId, first.name),
    model: first.spec.model.source,
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
    ...(several
      ? {
          runs: runs.map(({ name, from, spec }) => ({
            name: name!,
            from,
            objective: spec.train.objective.kind,
            run_uri: runDirectoryUri(artifactRootUri, workflowId, name),
            training_workflow_id: trainingWorkflowId(workflowId, name),
            stage: 'waiting' as const,
            plan: null,
            result: null,
          })),
        }
      : {}),
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
      [SearchAttribute.Model.name]: [first.spec.model.source],
    });
    showDetails();
  };
  const control = acceptRunControl((changed) => {
    state.control = { ...changed };
    // A finished run (completed, failed, cancelled) keeps its final status.
    if (state.status === 'running' || state.status === 'paused') state.status = changed.paused ? 'paused' : 'running';
    upsertStatus();
  });
  /** The state of run `index` of several (undefined for the default run). */
  const runState = (index: number) => state.runs?.[index];
  /** Waits out a pause, then enters the stage. */
  const enter = async (stage: Stage, index?: number) => {
    await control.untilResumed();
    state.stage = stage;
    const entry = index === undefined ? undefined : runState(index);
    if (entry) entry.stage = stage;
    upsertStatus();
  };
  setHandler(stateQuery, () => state);
  setHandler(progressQuery, () => ({ ...state.progress, stage: state.stage, status: state.status }));

  try {
    await enter(Stage.Prepare);
    // Every run's data is prepared, and every run planned, before any run trains: a run that cannot fit, or bad
    // data in the last run, fails the workflow before the first GPU second.
    const datasets = await Promise.all(runs.map(({ spec }) => prepare(spec, { artifactRootUri })));
    state.dataset = datasets[0]!;

    await enter(Stage.Plan);
    // A run started from another is planned on the model that run starts from: its merged model has the same
    // architecture and tokenizer, and does not exist yet. It is planned again on that model once it does.
    const plannedSource = new Map<string, string>();
    const planned: PlannedRun[] = [];
    for (const [index, run] of runs.entries()) {
      const source = run.from === null ? run.spec.model.source : plannedSource.get(run.from)!;
      if (run.name !== null) plannedSource.set(run.name, source);
      const spec = source === run.spec.model.source ? run.spec : { ...run.spec, model: { ...run.spec.model, source } };
      planned.push(await plan(spec, datasets[index]!, { artifactRootUri, ...(run.name === null ? {} : { run: run.name }) }));
      const entry = runState(index);
      if (entry) entry.plan = planned[index]!.plan;
    }
    const summaryOf = (plan: Plan) => ({ fits: plan.fits, peak_vram_gib: plan.peak_vram_gib, tokens_per_s: plan.tokens_per_s, eta_seconds: plan.eta_seconds });
    upsertMemo(
      several
        ? { runs: runs.map(({ name, from, spec }, index) => ({ name, from, objective: spec.train.objective.kind, plan: summaryOf(planned[index]!.plan) })) }
        : { plan: summaryOf(planned[0]!.plan) },
    );

    /** Each finished named run's merged model, where the runs after it may start. */
    const startingPoints = new Map<string, StartingPoint>();
    const results: NamedRunResult[] = [];
    let last: FineTuneRunResult | null = null;
    for (const [index, entry] of runs.entries()) {
      const startingPoint = entry.from === null ? null : startingPoints.get(entry.from)!;
      let run = planned[index]!;
      state.run_uri = run.run_uri;
      state.dataset = run.dataset;
      if (startingPoint !== null) {
        await enter(Stage.Plan, index);
        run = await plan(startFrom(entry.spec, startingPoint), run.dataset, { artifactRootUri, run: entry.name! });
        runState(index)!.plan = run.plan;
      }
      state.plan = run.plan;
      state.model = run.spec.model.source;

      // Not `enter`: a pause during planning reaches the child, which starts paused and holds no GPU.
      state.stage = Stage.Train;
      const entryState = runState(index);
      if (entryState) entryState.stage = Stage.Train;
      upsertStatus();
      state.training_workflow_id = trainingWorkflowId(workflowId, entry.name);
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

      await enter(Stage.Checkpoint, index);
      const book: CheckpointBook = await recordCheckpoints(run, trained, startingPoint === null ? {} : { started_from: startingPoint });

      let merged: MergeResult | null = null;
      if (run.spec.merge.enabled) {
        await enter(Stage.Merge, index);
        merged = await merge(run, trained);
      }

      let evaluation: EvaluationResult | null = null;
      if (run.spec.evaluate.enabled) {
        await enter(Stage.Evaluate, index);
        evaluation = await evaluate(run, trained);
      }
      const quality = evaluation?.suites && patched(qualitySuitesPatch) ? await recordQuality(run.run_uri, run.spec.evaluate.gates, evaluation.suites) : null;

      const result = runResult(run, trained, book, merged, evaluation, quality);
      last = result;
      if (entry.name !== null) {
        if (merged !== null) startingPoints.set(entry.name, startingPointOf(run, merged));
        results.push({ name: entry.name, from: entry.from, result });
        runState(index)!.stage = Stage.Done;
        runState(index)!.result = result;
      }
    }

    state.result = several ? { ...last!, runs: results } : last!;
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

/**
 * Runs given by a program rather than a parsed spec file: the same reference rules the parser applies, checked
 * before anything starts, failing the workflow non-retryably naming the runs.
 */
function refuseBadReferences(runs: readonly RunToTrain[]): void {
  const named = runs.map(({ name, from, spec }) => ({ name: name ?? '', from, merges: spec.merge.enabled }));
  const issues = referenceIssues(named);
  if (runs.length === 0) issues.push({ path: ['runs'], message: 'give at least one run' });
  if (issues.length === 0) return;
  throw ApplicationFailure.create({
    type: FailureType.InvalidSpec,
    nonRetryable: true,
    message: issues.map(({ path, message }) => `${path.join('.')}: ${message}`).join('; '),
    details: issues.map(({ path, message }) => ({ field: path.join('.'), message })),
  });
}

/** What a run's stages produced, as its result reports it. */
function runResult(
  run: PlannedRun,
  trained: TrainedAdapter,
  book: CheckpointBook,
  merged: MergeResult | null,
  evaluation: EvaluationResult | null,
  quality: RunQuality | null,
): FineTuneRunResult {
  const { training } = trained;
  return {
    status: 'completed',
    run_uri: run.run_uri,
    artifacts: {
      adapter: training.adapter_uri,
      merged: merged?.merged_uri ?? null,
      run_manifest: book.run_manifest_uri,
      checkpoints: book.checkpoints.map(({ step, uri }) => ({ step, uri })),
      prepared_train: run.dataset.train_uri,
      prepared_val: run.dataset.val_uri,
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
    dataset: run.dataset,
    tokens: run.tokens,
    setup: run.setup,
    plan: trained.run.plan,
    model: run.model,
    training,
    merge: merged,
    progress: trained.progress,
    executions: trained.executions,
  };
}
