/**
 * The trainAdapter child workflow: trains one LoRA adapter for a planned run, and owns everything that happens
 * while it trains. Pause checkpoints and stops the train activity (freeing the GPU and the worker slot) until
 * resumed; checkpointNow asks for a checkpoint without stopping; CUDA out of memory replans to a smaller
 * micro-batch with the same effective batch; and before its history grows large the workflow continues as new,
 * carrying the run as it is now (so a replanned micro-batch and its plan survive the rollover).
 *
 * The train activity talks to the workflow that scheduled it, which is this one: it signals
 * `trainingProgressSignal` at each checkpoint and resume and asks `trainingControlQuery` every few seconds
 * (queries add no history events). Those messages, and the control signals, are defined here beside it.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  ContinueAsNew,
  continueAsNew,
  defineQuery,
  defineSignal,
  isCancellation,
  setCurrentDetails,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ControlState, TrainingProgressMessage, TrainResult } from '../src/contract/index.ts';
import { FailureType, SearchAttribute, Stage, WorkflowMessage } from '../src/contract/index.ts';
import { activitySummary, bookkeeping, isOutOfMemory, trainer } from './activities.ts';
import { describeRunDetails } from './current-details.ts';
import { applyProgressMessage, emptyProgress, type RunStatus, type TrainingProgressState } from './progress.ts';
import type { PlannedRun } from './stages/plan.ts';
import { currentRun } from './upgrade.ts';

export interface TrainAdapterInput {
  /** The run to train. After an out-of-memory recovery its setup (micro-batch, checkpointing) and plan are the replanned ones. */
  run: PlannedRun;
  /** Pause and checkpoint requests already made of the calling workflow before training started. */
  control: ControlState;
  /** History length at which training continues as new (default 8,000, well under the 10,000 budget). */
  max_history_events?: number;
  /** Stop after this step (a sweep's rung), checkpointed, though the spec's max_steps is further; absent: train to the end. */
  stop_at_step?: number;
  /** Set by continue-as-new: the progress of earlier executions, and how many there were. */
  progress?: TrainingProgressState;
  executions?: number;
}

export interface TrainedAdapter {
  training: TrainResult;
  /** The run as trained: the setup and plan of the last out-of-memory recovery, if there was one. */
  run: PlannedRun;
  progress: TrainingProgressState;
  /** Executions of this child, counting each continue-as-new. */
  executions: number;
}

export interface TrainAdapterState {
  status: RunStatus;
  run: PlannedRun;
  progress: TrainingProgressState;
  control: ControlState;
  executions: number;
  training: TrainResult | null;
}

/**
 * The id of the training child of a workflow's run (its default run when `runName` is null): deterministic, so a
 * client that knows the workflow id and the run's name finds the child (its live progress, its pending train
 * activity) without any message between the two workflows.
 */
export const trainingWorkflowId = (parentWorkflowId: string, runName: string | null = null) =>
  runName === null ? `${parentWorkflowId}/train` : `${parentWorkflowId}/train/${runName}`;

/** Training as this workflow knows it: the run being trained, progress as of the last checkpoint, control. */
export const trainingStateQuery = defineQuery<TrainAdapterState>('trainingState');
/** Asked by the train activity every few seconds: queries add no history events. */
export const trainingControlQuery = defineQuery<ControlState>(WorkflowMessage.TrainingControl);
/** Sent by the train activity at each checkpoint and each resume. */
export const trainingProgressSignal = defineSignal<[TrainingProgressMessage]>(WorkflowMessage.TrainingProgress);
/** Checkpoint now, stop training and free the GPU; the paused run holds no worker slot until resumed. */
export const pauseSignal = defineSignal('pause');
export const resumeSignal = defineSignal('resume');
/** Write a checkpoint at the next step without stopping. */
export const checkpointNowSignal = defineSignal('checkpointNow');

/** Out-of-memory recoveries before the run fails: each halves the micro-batch or so, 8 is more than 256 → 1. */
const maxOutOfMemoryRecoveries = 8;
const defaultMaxHistoryEvents = 8_000;

export async function trainAdapter(input: TrainAdapterInput): Promise<TrainedAdapter> {
  const root = CancellationScope.current();
  const state: TrainAdapterState = {
    status: input.control.paused ? 'paused' : 'running',
    // A run handed over by an earlier release (a live run across an upgrade) is trained with today's spec.
    run: currentRun(input.run),
    progress: input.progress ?? emptyProgress(),
    control: { ...input.control },
    executions: (input.executions ?? 0) + 1,
    training: null,
  };
  let trainingScope: CancellationScope | undefined;
  let rolloverRequested = false;
  // The Temporal UI's "Current Details", kept current at each checkpoint, resume, pause: adds no history events.
  const showDetails = () =>
    setCurrentDetails(
      describeRunDetails({ stage: Stage.Train, status: state.status, model: state.run.spec.model.source, progress: state.progress, plan: state.run.plan }),
    );
  showDetails();

  setHandler(trainingStateQuery, () => state);
  setHandler(trainingControlQuery, () => state.control);
  setHandler(pauseSignal, () => {
    if (state.control.paused) return;
    state.control.paused = true;
    // While the activity runs, training is 'pausing' until it has written its checkpoint and stopped.
    state.status = trainingScope ? 'pausing' : 'paused';
    trainingScope?.cancel();
    showDetails();
  });
  setHandler(resumeSignal, () => {
    if (!state.control.paused) return;
    state.control.paused = false;
    state.status = 'running';
    showDetails();
  });
  setHandler(checkpointNowSignal, () => {
    state.control.checkpoint_requests += 1;
  });
  setHandler(trainingProgressSignal, (message) => {
    applyProgressMessage(state.progress, message);
    if (message.event === 'checkpoint') {
      upsertSearchAttributes({
        [SearchAttribute.Step.name]: [message.step],
        ...(message.loss === null ? {} : { [SearchAttribute.Loss.name]: [message.loss] }),
      });
    }
    showDetails();
    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength >= (input.max_history_events ?? defaultMaxHistoryEvents)) {
      // Checkpoint-and-stop the activity, then continue as new; the next execution resumes from that checkpoint.
      rolloverRequested = true;
      trainingScope?.cancel();
    }
  });

  /** The train activity, summarised in the UI by the steps it has left: from the last checkpoint to the end. */
  const trainFromHere = () => {
    const { step, total_steps } = state.progress;
    const steps = `steps ${step}–${total_steps ?? state.run.spec.train.max_steps ?? 'end'}`;
    return trainer(state.run.spec.train.heartbeat_timeout_seconds, activitySummary(Stage.Train, state.run.spec.model.source, steps));
  };

  /** After an out-of-memory failure: the planner's next smaller micro-batch, or a final failure with the plan. */
  const recoverFromOutOfMemory = async (error: unknown) => {
    const { run } = state;
    const failedMicroBatch = run.setup.micro_batch_size;
    const recoveries = state.progress.out_of_memory_recoveries;
    const replan =
      recoveries.length < maxOutOfMemoryRecoveries
        ? await bookkeeping.replanAfterOutOfMemory({ spec: run.spec, model: run.model, tokens: run.tokens, setup: run.setup })
        : null;
    if (replan === null) {
      throw ApplicationFailure.create({
        type: FailureType.OutOfMemory,
        nonRetryable: true,
        message: `out of memory at micro_batch_size ${failedMicroBatch} with gradient checkpointing ${run.setup.gradient_checkpointing ? 'on' : 'off'} after ${recoveries.length} recoveries; no smaller micro-batch keeps the effective batch: lower sequence length or rank, quantize, or use a bigger GPU`,
        details: [{ plan: run.plan, recoveries }],
        cause: error instanceof Error ? error : undefined,
      });
    }
    const { setup } = replan;
    state.run = { ...run, setup, plan: replan.plan };
    recoveries.push({
      from_micro_batch_size: failedMicroBatch,
      micro_batch_size: setup.micro_batch_size,
      gradient_accumulation_steps: setup.gradient_accumulation_steps,
      gradient_checkpointing: setup.gradient_checkpointing,
      peak_vram_gib: replan.plan.peak_vram_gib,
    });
  };

  /** Trains until done; a pause stops the activity (after its checkpoint) and waits for resume. */
  const trainUntilDone = async (): Promise<TrainResult> => {
    for (;;) {
      await condition(() => !state.control.paused);
      const { run } = state;
      trainingScope = new CancellationScope();
      try {
        return await trainingScope.run(() =>
          trainFromHere().train({
            spec: run.spec,
            setup: run.setup,
            model_uri: run.model.model_uri,
            train_tokens_uri: run.tokens.train_tokens_uri,
            val_tokens_uri: run.tokens.val_tokens_uri,
            run_uri: run.run_uri,
            ...(input.stop_at_step === undefined ? {} : { stop_at_step: input.stop_at_step }),
          }),
        );
      } catch (error) {
        // The activity has stopped: from here on a pause takes effect at once (no 'pausing' while replanning).
        trainingScope = undefined;
        if (isOutOfMemory(error)) {
          await recoverFromOutOfMemory(error);
          continue;
        }
        if (!isCancellation(error) || root.consideredCancelled) throw error;
        if (state.control.paused) state.status = 'paused';
        showDetails();
        if (rolloverRequested) {
          // The run as it is now, replanned micro-batch and plan included: not the run this execution started with.
          await continueAsNew<typeof trainAdapter>({
            ...input,
            run: state.run,
            control: state.control,
            progress: state.progress,
            executions: state.executions,
          });
        }
      }
    }
  };

  try {
    const training = await trainUntilDone();
    state.training = training;
    state.progress.step = training.final_step;
    state.progress.total_steps = training.total_steps;
    state.status = 'completed';
    showDetails();
    return { training, run: state.run, progress: state.progress, executions: state.executions };
  } catch (error) {
    if (!(error instanceof ContinueAsNew)) {
      state.status = isCancellation(error) ? 'cancelled' : 'failed';
      showDetails();
    }
    throw error;
  }
}
