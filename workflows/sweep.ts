/**
 * The sweep workflow: a grid of trials, each a training run of the same prepared data (prepared and tokenised once),
 * planned before anything trains and trained by successive halving.
 *
 * Every trial is planned first: one that the planner says cannot fit is never started (its row says why), and a
 * budget the planned sweep cannot meet fails the sweep at once, naming the trials to drop. Then rung by rung every
 * live trial trains to the rung's steps in its own trainAdapter child (`<sweep id>/trial-<parameters>`, its own run
 * folder, checkpoints and search attributes), stopping there checkpointed; the best fraction by validation loss at
 * that step goes on and resumes exactly from that checkpoint. A stopped trial keeps its checkpoints: training its
 * spec again under its run folder resumes it.
 *
 * Durable as fineTune is: a killed worker retries its train activity from the last checkpoint, and a finished rung
 * is in this workflow's history. Pause, resume and checkpointNow sent to the sweep reach every training trial;
 * cancelling the sweep cancels them (each checkpoints first). Once its history has grown long, the sweep takes no
 * more trials, lets those training finish their rung and continues as new carrying what it knows (mid-rung too), so
 * its history stays bounded however many trials it has.
 */
import {
  ActivityFailure,
  ApplicationFailure,
  ContinueAsNew,
  continueAsNew,
  defineQuery,
  isCancellation,
  setHandler,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ResolvedModel, TokenStatistics, TrainingSetup } from '../src/contract/index.ts';
import { FailureType, SearchAttribute, Stage, TaskQueue } from '../src/contract/index.ts';
import type { Plan } from '../src/planner/index.ts';
import type { RunSpec } from '../src/spec/schema.ts';
import {
  checkBudget,
  formatSweepTable,
  type SweepPlan,
  type SweepTable,
  selectSurvivors,
  type Trial,
  sweepTable,
  type TrialCost,
  TrialOutcome,
  type TrialRecord,
  trialSecondsThroughAllRungs,
  trialSpec,
} from '../src/sweep/index.ts';
import { summarizedBookkeeping, activitySummary } from './activities.ts';
import { describeFailure } from './failures.ts';
import type { RunStatus } from './progress.ts';
import { acceptRunControl, type RunControl } from './run-control.ts';
import { measure, type PlannedRun, type PreparedDataset, prepare, runDirectoryUri, train } from './stages/index.ts';

export interface SweepInput {
  /** The base spec: every trial is it with the trial's parameters set (planSweep validated them all). */
  spec: RunSpec;
  /** The trials and rungs, from planSweep. */
  sweep: SweepPlan;
  artifact_root_uri: string;
  /** History length at which the sweep continues as new at a rung's end (default 8,000). */
  max_history_events?: number;
  /** Set by continue-as-new: what the earlier executions found and trained. */
  carried?: SweepCarried;
}

/** What the sweep knows after planning, carried across continue-as-new. */
export interface SweepCarried {
  dataset: PreparedDataset;
  model: ResolvedModel;
  tokens: TokenStatistics;
  /** How each fitting trial trains, as planned. */
  setups: Record<string, { setup: TrainingSetup; plan: Plan }>;
  records: TrialRecord[];
  /** Trials going on to rung `rung_index`. */
  live: string[];
  rung_index: number;
  planned_seconds: number;
  /** Workflow time the sweep started, in ms since the epoch. */
  started_at: number;
  paused: boolean;
  executions: number;
}

export const SweepPhase = {
  Preparing: 'preparing',
  Planning: 'planning',
  Training: 'training',
  Done: 'done',
} as const;
export type SweepPhase = (typeof SweepPhase)[keyof typeof SweepPhase];

export interface SweepState {
  phase: SweepPhase;
  status: RunStatus;
  rungs: number[];
  /** The rung being trained (index into rungs), once training. */
  rung_index: number | null;
  live: string[];
  records: TrialRecord[];
  planned_seconds: number | null;
  table: SweepTable | null;
  executions: number;
  error: string | null;
}

export interface SweepResult {
  status: 'completed';
  table: SweepTable;
  /** The table as `tuneflow sweep show` prints it. */
  text: string;
  executions: number;
}

/** The sweep's phase, its trials as planned and trained so far, and at the end its table. */
export const sweepStateQuery = defineQuery<SweepState>('sweepState');

/** A trial's workflow id: its training child's, and the name of its run folder (`runs/<this id>/`). */
export const trialWorkflowId = (sweepWorkflowId: string, key: string) => `${sweepWorkflowId}/trial-${key}`;

const defaultMaxHistoryEvents = 8_000;

/** What a rung adds besides its steps: the model load and compile of a fresh train activity, the final checkpoint. */
const rungOverheadSeconds = (plan: Plan) =>
  plan.run_time ? plan.run_time.model_load_seconds + plan.run_time.compile_seconds + plan.run_time.finish_seconds : 0;

const doesNotFit = (error: unknown) =>
  error instanceof ActivityFailure && error.cause instanceof ApplicationFailure && error.cause.type === FailureType.PlanDoesNotFit;

export async function sweep(input: SweepInput): Promise<SweepResult> {
  const { spec, sweep: plan } = input;
  const lastRung = plan.rungs.at(-1)!;
  const state: SweepState = {
    phase: input.carried ? SweepPhase.Training : SweepPhase.Preparing,
    status: input.carried?.paused ? 'paused' : 'running',
    rungs: plan.rungs,
    rung_index: input.carried?.rung_index ?? null,
    live: input.carried?.live ?? [],
    records: input.carried?.records ?? [],
    planned_seconds: input.carried?.planned_seconds ?? null,
    table: null,
    executions: input.carried?.executions ?? 1,
    error: null,
  };
  const upsertStatus = () => upsertSearchAttributes({ [SearchAttribute.Status.name]: [state.status], [SearchAttribute.Model.name]: [spec.model.source] });
  // A pause carried over continue-as-new holds the next execution too.
  const control = acceptRunControl(
    (changed) => {
      if (state.status === 'running' || state.status === 'paused') state.status = changed.paused ? 'paused' : 'running';
      upsertStatus();
    },
    { paused: input.carried?.paused ?? false, checkpoint_requests: 0 },
  );
  setHandler(sweepStateQuery, () => state);
  upsertStatus();

  try {
    const historyIsLong = () => {
      const info = workflowInfo();
      return info.continueAsNewSuggested || info.historyLength >= (input.max_history_events ?? defaultMaxHistoryEvents);
    };
    const carried = input.carried ?? (await planTrials(input, state));
    state.phase = SweepPhase.Training;
    const record = (key: string) => carried.records.find((trial) => trial.key === key)!;

    for (let index = carried.rung_index; index < plan.rungs.length; index += 1) {
      const rung = plan.rungs[index]!;
      state.rung_index = carried.rung_index = index;
      state.live = carried.live;
      await control.untilResumed();
      // The rung's trials not trained yet: all of them, or after a continue-as-new mid-rung, those left.
      const queue = carried.live.filter((key) => record(key).rungs.length <= index && record(key).outcome !== TrialOutcome.Failed);
      // A long history stops taking trials (after at least one, so every execution makes progress): the ones in
      // flight finish, then the sweep continues as new mid-rung.
      let taken = 0;
      const nextTrial = () => {
        if (taken > 0 && historyIsLong()) return undefined;
        taken += 1;
        return queue.shift();
      };
      const trainNext = async (): Promise<void> => {
        for (let key = nextTrial(); key !== undefined; key = nextTrial()) {
          const trial = record(key);
          const planned = carried.setups[key]!;
          const run: PlannedRun = {
            spec: trialSpec(spec, trial, lastRung),
            run_uri: trial.run_uri,
            dataset: carried.dataset,
            model: carried.model,
            tokens: carried.tokens,
            ...planned,
          };
          const startedAt = Date.now();
          try {
            const trained = await train(run, { control, workflowId: trial.workflow_id, stopAtStep: rung });
            const { training } = trained;
            trial.rungs.push({
              steps: rung,
              val_loss: training.val_loss,
              train_loss: training.train_loss,
              tokens_per_second: training.tokens_per_second,
              wall_seconds: (Date.now() - startedAt) / 1000,
              steps_trained: training.steps_trained,
            });
            trial.adapter_uri = training.adapter_uri;
            trial.last_checkpoint_uri = training.last_checkpoint_uri;
            trial.outcome = index === plan.rungs.length - 1 ? TrialOutcome.Completed : TrialOutcome.Running;
          } catch (error) {
            if (isCancellation(error)) throw error;
            trial.outcome = TrialOutcome.Failed;
            trial.reason = describeFailure(error);
          }
        }
      };
      await Promise.all(Array.from({ length: Math.min(plan.parallel, queue.length) }, trainNext));
      if (queue.length > 0)
        await continueAsNew<typeof sweep>({ ...input, carried: { ...carried, paused: control.state.paused, executions: state.executions + 1 } });

      const trained = carried.live.map(record).filter((trial) => trial.outcome !== TrialOutcome.Failed);
      const survivors =
        index === plan.rungs.length - 1
          ? []
          : selectSurvivors(
              trained.map((trial) => ({ key: trial.key, val_loss: trial.rungs.at(-1)?.val_loss ?? null })),
              plan.reduction_factor,
            );
      for (const trial of trained) {
        if (trial.outcome === TrialOutcome.Running && !survivors.includes(trial.key)) {
          trial.outcome = TrialOutcome.Stopped;
          trial.reason = `stopped by halving after ${rung} steps (validation loss ${trial.rungs.at(-1)?.val_loss?.toFixed(4) ?? '—'}); resumable from ${trial.last_checkpoint_uri ?? 'its run folder'}`;
        }
      }
      carried.live = survivors;
      carried.rung_index = index + 1;
      state.live = survivors;

      if (index < plan.rungs.length - 1 && historyIsLong()) {
        await continueAsNew<typeof sweep>({ ...input, carried: { ...carried, paused: control.state.paused, executions: state.executions + 1 } });
      }
    }

    const table = sweepTable(carried.records, plan.rungs, carried.planned_seconds, (Date.now() - carried.started_at) / 1000);
    Object.assign(state, { table, phase: SweepPhase.Done, status: 'completed', rung_index: null, live: [] });
    upsertStatus();
    return { status: 'completed', table, text: formatSweepTable(table), executions: state.executions };
  } catch (error) {
    if (error instanceof ContinueAsNew) throw error;
    state.status = isCancellation(error) ? 'cancelled' : 'failed';
    state.error = describeFailure(error);
    upsertStatus();
    throw error;
  }
}

export interface SweepOptions {
  artifactRootUri: string;
  /** The sweep child's workflow id; by default `<calling workflow id>/sweep`. */
  workflowId?: string;
  /** The calling workflow's run control (acceptRunControl): its pause and resume reach the sweep and its trials. */
  control?: RunControl;
}

/**
 * Sweep stage, for a workflow of one's own: runs the sweep (planSweep's trials and rungs over `spec`) as a child
 * workflow on tuneflow's task queue and returns its result table. Cancelling the caller cancels the sweep, whose
 * trials checkpoint before they stop.
 */
export async function runSweep(spec: RunSpec, plan: SweepPlan, options: SweepOptions): Promise<SweepResult> {
  const known = { paused: options.control?.state.paused ?? false, checkpoint_requests: options.control?.state.checkpoint_requests ?? 0 };
  const child = await startChild(sweep, {
    workflowId: options.workflowId ?? `${workflowInfo().workflowId}/sweep`,
    taskQueue: TaskQueue.Orchestration,
    staticSummary: activitySummary('sweep', spec.model.source, `${plan.trials.length} trials, rungs ${plan.rungs.join('/')}`),
    args: [{ spec, sweep: plan, artifact_root_uri: options.artifactRootUri }],
  });
  const detach = options.control?.attach(child, known);
  try {
    return await child.result();
  } finally {
    detach?.();
  }
}

/**
 * Prepares the data once, measures it once, and plans every trial: the trials that fit, what the sweep will cost,
 * and whether that meets the budget.
 */
async function planTrials(input: SweepInput, state: SweepState): Promise<SweepCarried> {
  const { spec, sweep: plan } = input;
  const { workflowId } = workflowInfo();
  const startedAt = Date.now();
  const dataset = await prepare(spec, { artifactRootUri: input.artifact_root_uri });
  state.phase = SweepPhase.Planning;
  const { model, tokens } = await measure(spec, dataset);
  const lastRung = plan.rungs.at(-1)!;
  const setups: SweepCarried['setups'] = {};
  const costs = new Map<string, TrialCost>();
  // Planned all at once: a few events per trial, and the planner's answers come back together.
  const planOne = async (trial: Trial): Promise<void> => {
    const id = trialWorkflowId(workflowId, trial.key);
    const record: TrialRecord = {
      ...trial,
      outcome: TrialOutcome.Running,
      reason: null,
      workflow_id: id,
      run_uri: runDirectoryUri(input.artifact_root_uri, id),
      planned: null,
      rungs: [],
      adapter_uri: null,
      last_checkpoint_uri: null,
    };
    // Pushed before the first await: the records are in the grid's order.
    state.records.push(record);
    try {
      const planned = await summarizedBookkeeping(activitySummary(Stage.Plan, spec.model.source, trial.key)).planRun({
        spec: trialSpec(spec, trial, lastRung),
        model,
        tokens,
      });
      setups[trial.key] = planned;
      const cost = { key: trial.key, step_seconds: planned.plan.step_seconds, rung_overhead_seconds: rungOverheadSeconds(planned.plan) };
      costs.set(trial.key, cost);
      record.planned = {
        peak_vram_gib: planned.plan.peak_vram_gib,
        available_gib: planned.plan.available_gib,
        step_seconds: planned.plan.step_seconds,
        seconds: trialSecondsThroughAllRungs(cost, plan.rungs),
        trainable_parameters: planned.plan.trainable_parameters,
      };
    } catch (error) {
      if (!doesNotFit(error)) throw error;
      record.outcome = TrialOutcome.DoesNotFit;
      record.reason = describeFailure(error);
    }
  };
  await Promise.all(plan.trials.map(planOne));
  // In the grid's order, whatever order the plans came back in.
  const fitting = plan.trials.flatMap(({ key }) => costs.get(key) ?? []);
  if (fitting.length === 0) {
    throw ApplicationFailure.create({
      type: FailureType.PlanDoesNotFit,
      nonRetryable: true,
      message: `no trial of the sweep fits: ${state.records.map((record) => `${record.key}: ${record.reason}`).join('; ')}`,
    });
  }
  const verdict = checkBudget(fitting, plan.rungs, plan.reduction_factor, plan.parallel, plan.budget_seconds ?? Number.POSITIVE_INFINITY);
  state.planned_seconds = verdict.planned_seconds;
  if (verdict.drop.length > 0) {
    const after = verdict.planned_seconds_after_drop === null ? 'no trial fits it' : `planned ${Math.round(verdict.planned_seconds_after_drop)} s without them`;
    throw ApplicationFailure.create({
      type: FailureType.PlanDoesNotFit,
      nonRetryable: true,
      message: `the sweep is planned at ${Math.round(verdict.planned_seconds)} s, over its budget of ${Math.round(plan.budget_seconds!)} s: drop ${verdict.drop.join(' ; ')} (${after})`,
      details: [{ ...verdict, budget_seconds: plan.budget_seconds, trials: state.records }],
    });
  }
  return {
    dataset,
    model,
    tokens,
    setups,
    records: state.records,
    live: fitting.map(({ key }) => key),
    rung_index: 0,
    planned_seconds: verdict.planned_seconds,
    started_at: startedAt,
    paused: false,
    executions: 1,
  };
}
