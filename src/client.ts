import { Client, Connection, type WorkflowHandle, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { displayLocation } from './artifacts/index.ts';
import { AcceleratorActivity, isTrainHeartbeat, type RollbackRecord, Stage, TaskQueue, type TrainHeartbeat } from './contract/index.ts';
import { TemporalUnreachableError } from './errors/index.ts';
import { temporalConnectConfig } from './runtime/home.ts';
import type { RunsSpec } from './spec/load.ts';
import type { RunSpec } from './spec/schema.ts';
import {
  checkpointNowSignal,
  type FineTuneInput,
  type FineTuneResult,
  type FineTuneRunState,
  type FineTuneState,
  fineTune,
  pauseSignal,
  progressQuery,
  resumeSignal,
  stateQuery,
  trainingStateQuery,
} from '../workflows/index.ts';

/**
 * Connects to the Temporal server of the environment configuration (address, namespace, TLS, API key: see
 * temporalConnectConfig), or to `address` when given; throws `TemporalUnreachableError` when none answers.
 */
export async function connectClient(address?: string, namespace?: string): Promise<Client> {
  const configured = temporalConnectConfig();
  const options = { ...configured.connectionOptions, ...(address ? { address } : {}) };
  namespace ??= configured.namespace;
  const connection = await Connection.connect(options).catch((error: unknown) => {
    throw new TemporalUnreachableError(options.address, { cause: error });
  });
  return new Client({ connection, namespace });
}

export interface StartOptions {
  workflowId?: string;
  artifactRootUri: string;
}

export function defaultWorkflowId(spec: { name?: string | null }): string {
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  return `tuneflow-${spec.name ?? 'run'}-${stamp}`;
}

/** Starts a fine-tune; the spec must be validated and its paths absolute (see loadSpec). */
export function startFineTune(client: Client, spec: RunSpec, options: StartOptions): Promise<WorkflowHandle<typeof fineTune>> {
  const input: FineTuneInput = { spec, artifact_root_uri: options.artifactRootUri };
  return client.workflow.start(fineTune, {
    taskQueue: TaskQueue.Orchestration,
    workflowId: options.workflowId ?? defaultWorkflowId(spec),
    args: [input],
  });
}

/**
 * Starts a fine-tune of several runs (a spec with `runs:`, see loadSpecFile): one fineTune workflow trains them in
 * order, each in its own folder and training child, a run with `from` on that earlier run's merged model.
 */
export function startFineTuneRuns(client: Client, runs: RunsSpec, options: StartOptions): Promise<WorkflowHandle<typeof fineTune>> {
  const input: FineTuneInput = { runs: runs.runs, artifact_root_uri: options.artifactRootUri };
  return client.workflow.start(fineTune, {
    taskQueue: TaskQueue.Orchestration,
    workflowId: options.workflowId ?? defaultWorkflowId(runs),
    args: [input],
  });
}

/** What `tuneflow status --json` prints. Artifact locations are plain paths, or s3:// URIs on object storage. */
export interface RunStatusReport {
  workflow_id: string;
  status: string;
  stage: string | null;
  step: number | null;
  total_steps: number | null;
  loss: number | null;
  val_loss: number | null;
  resumes: number;
  steps_redone: number;
  /** Each rollback of the run (train.rollback): the refused step, its values, the rows skipped from then on. */
  rollbacks: RollbackRecord[];
  /** The trainer's steady-state real (non-padding) tokens/s; null before its warm-up steps are past. */
  tokens_per_second: number | null;
  /** Of the tokens the model computes on, the share that is padding (the trainer's, same window). */
  padding_fraction: number | null;
  eta_seconds: number | null;
  last_checkpoint: { step: number; path: string } | null;
  train_attempt: number | null;
  error: string | null;
  artifacts?: { adapter: string; merged: string | null; run: string; run_manifest: string; checkpoints: { step: number; path: string }[] };
  metrics?: FineTuneResult['metrics'];
  samples?: FineTuneResult['samples'];
  /** The suites' scores and the gates judged on them (each judge naming its opponent); null without suites. */
  quality?: FineTuneResult['quality'];
  /** A workflow of several runs: each run, in training order; the fields above follow the current (at the end, the last) run. */
  runs?: RunStatusEntry[];
}

/** One run of several, as `tuneflow status` lists it. */
export interface RunStatusEntry {
  name: string;
  from: string | null;
  objective: string;
  /** 'waiting' until it trains, then its stage; 'done' once its stages finished. */
  stage: string;
  run: string;
  training_workflow_id: string;
  /** Its plan: made for every run before the first one trains. */
  plan: { fits: boolean; steps: number | null; peak_vram_gib: number; available_gib: number; eta_seconds: number | null; device: string } | null;
  final_step: number | null;
  train_loss: number | null;
  metrics: FineTuneResult['metrics'] | null;
}

/** The status of each run of a workflow of several. */
function runEntries(runs: readonly FineTuneRunState[]): RunStatusEntry[] {
  return runs.map((run) => ({
    name: run.name,
    from: run.from,
    objective: run.objective,
    stage: run.stage,
    run: toPath(run.run_uri),
    training_workflow_id: run.training_workflow_id,
    plan: run.plan && {
      fits: run.plan.fits,
      steps: run.plan.run_time?.steps ?? null,
      peak_vram_gib: run.plan.peak_vram_gib,
      available_gib: run.plan.available_gib,
      eta_seconds: run.plan.eta_seconds ?? null,
      device: run.plan.device.name,
    },
    final_step: run.result?.training.final_step ?? null,
    train_loss: run.result?.training.train_loss ?? null,
    metrics: run.result?.metrics ?? null,
  }));
}

const toPath = displayLocation;

/** The train activity's latest heartbeat, if training is in progress: step, loss and speed live there. */
async function trainingHeartbeat(handle: WorkflowHandle): Promise<{ progress: TrainHeartbeat | null; attempt: number | null }> {
  const description = await handle.describe().catch((error: unknown) => {
    if (error instanceof WorkflowNotFoundError) return null; // the training child has not started yet
    throw error;
  });
  if (description === null) return { progress: null, attempt: null };
  const pending = description.raw.pendingActivities?.find((activity) => activity.activityType?.name === AcceleratorActivity.Train);
  const payload = pending?.heartbeatDetails?.payloads?.[0];
  const details: unknown = payload ? defaultPayloadConverter.fromPayload(payload) : null;
  // While it loads the model the train activity heartbeats its phase only; progress starts with the first step.
  return { progress: isTrainHeartbeat(details) ? details : null, attempt: pending?.attempt ?? null };
}

/**
 * The run's state as its workflow reports it, with the training child's view laid over it while the run is in the
 * train stage: the child alone knows progress as of its last checkpoint, the replanned plan, and whether a pause
 * has taken effect. The two workflows exchange no message per checkpoint (see workflows/fine-tune.ts): this is
 * where their views meet. Null when the workflow has no state to query (it failed before its first task).
 */
export async function queryRunState(client: Client, workflowId: string): Promise<FineTuneState | null> {
  const state = await client.workflow
    .getHandle(workflowId)
    .query(stateQuery)
    .catch(() => null);
  if (state === null || state.stage !== Stage.Train || !state.training_workflow_id) return state;
  // Before the child's first workflow task, or once the parent moved on, the parent's own state stands.
  const training = await client.workflow
    .getHandle(state.training_workflow_id)
    .query(trainingStateQuery)
    .catch(() => null);
  if (training === null) return state;
  const trainingStatus = training.status === 'completed' ? state.status : training.status;
  return {
    ...state,
    status: state.status === 'running' || state.status === 'paused' ? trainingStatus : state.status,
    plan: training.run.plan,
    total_steps: training.progress.total_steps,
    progress: training.progress,
    control: training.control,
    executions: training.executions,
  };
}

export async function getRunStatus(client: Client, workflowId: string): Promise<RunStatusReport> {
  const handle = client.workflow.getHandle(workflowId);
  const description = await handle.describe();
  const temporalStatus = description.status.name.toLowerCase();
  const state = await queryRunState(client, workflowId);
  // Temporal says RUNNING for a paused run too; the workflow's own status tells them apart.
  const status = temporalStatus === 'running' && (state?.status === 'paused' || state?.status === 'pausing') ? state.status : temporalStatus;
  // The train activity belongs to the training child (runs started before the stages scheduled it themselves).
  const trainingHandle = state?.training_workflow_id ? client.workflow.getHandle(state.training_workflow_id) : handle;
  const { progress, attempt } = temporalStatus === 'running' ? await trainingHeartbeat(trainingHandle) : { progress: null, attempt: null };
  const result = state?.result ?? null;
  const step = progress?.step ?? result?.training.final_step ?? state?.progress.step ?? null;
  const totalSteps = progress?.total_steps ?? state?.total_steps ?? null;
  const rate = progress?.tokens_per_second ?? null;
  const lastCheckpoint = progress?.last_checkpoint ?? state?.progress.last_checkpoint ?? null;
  // The trainer's own: the steps left (max_steps and epochs) at its steady-state seconds per step.
  const etaSeconds = progress?.eta_seconds ?? null;
  return {
    workflow_id: workflowId,
    status,
    stage: state?.stage ?? null,
    step,
    total_steps: totalSteps,
    loss: progress?.loss ?? result?.training.train_loss ?? state?.progress.loss ?? null,
    val_loss: progress?.val_loss ?? state?.progress.val_loss ?? null,
    resumes: state?.progress.resumes ?? 0,
    steps_redone: progress?.steps_redone ?? state?.progress.steps_redone ?? 0,
    rollbacks: result?.training.rollbacks ?? state?.progress.rollbacks ?? [],
    tokens_per_second: rate,
    padding_fraction: progress?.padding_fraction ?? null,
    eta_seconds: etaSeconds,
    last_checkpoint: lastCheckpoint ? { step: lastCheckpoint.step, path: toPath(lastCheckpoint.uri) } : null,
    train_attempt: attempt,
    error: state?.error ?? null,
    ...(result
      ? {
          artifacts: {
            adapter: toPath(result.artifacts.adapter),
            merged: result.artifacts.merged ? toPath(result.artifacts.merged) : null,
            run: toPath(result.run_uri),
            run_manifest: toPath(result.artifacts.run_manifest),
            checkpoints: result.artifacts.checkpoints.map(({ step: checkpointStep, uri }) => ({ step: checkpointStep, path: toPath(uri) })),
          },
          metrics: result.metrics,
          samples: result.samples,
          quality: result.quality ?? null,
        }
      : {}),
    ...(state?.runs ? { runs: runEntries(state.runs) } : {}),
  };
}

/**
 * Pause: the train activity writes a checkpoint and stops, freeing the GPU and the worker slot; the workflow
 * waits (for days if need be) until resumed. Resolves once the workflow reports itself paused.
 */
export async function pauseRun(client: Client, workflowId: string): Promise<void> {
  const handle = client.workflow.getHandle(workflowId);
  await handle.signal(pauseSignal);
  await waitForState(client, workflowId, (state) => state.status !== 'running' && state.status !== 'pausing');
}

/** Resume a paused run: training restarts from the checkpoint the pause wrote. */
export async function resumeRun(client: Client, workflowId: string): Promise<void> {
  await client.workflow.getHandle(workflowId).signal(resumeSignal);
}

/** Ask the train activity for a checkpoint at its next step, without stopping. */
export async function checkpointRun(client: Client, workflowId: string): Promise<void> {
  await client.workflow.getHandle(workflowId).signal(checkpointNowSignal);
}

/**
 * Cancel: the train activity checkpoints and stops, artifacts are kept, and the workflow ends CANCELLED.
 * Resolves once it has ended.
 */
export async function cancelRun(client: Client, workflowId: string): Promise<void> {
  const handle = client.workflow.getHandle(workflowId);
  await handle.cancel();
  await handle.result().catch(() => undefined);
}

/** Progress as of the last checkpoint: step, losses (downsampled history), resumes, steps redone. */
export async function getProgress(client: Client, workflowId: string) {
  const state = await queryRunState(client, workflowId);
  // No state to merge (a run started before the stages answers its own progress query).
  if (state === null) return client.workflow.getHandle(workflowId).query(progressQuery);
  return { ...state.progress, stage: state.stage, status: state.status };
}

async function waitForState(client: Client, workflowId: string, done: (state: FineTuneState) => boolean, timeoutMilliseconds = 600_000) {
  for (const deadline = Date.now() + timeoutMilliseconds; Date.now() < deadline; ) {
    // A query can time out while the worker is busy (a loaded machine, a workflow task in flight): ask again.
    const state = await queryRunState(client, workflowId);
    if (state && done(state)) return;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  throw new Error(`${workflowId} did not reach the expected state within ${timeoutMilliseconds} ms`);
}

/** Waits for the result, calling onStatus every interval with the live status (the CLI's progress line). */
export async function waitForResult(
  client: Client,
  workflowId: string,
  onStatus: (status: RunStatusReport) => void,
  intervalMilliseconds = 2_000,
): Promise<FineTuneResult> {
  const handle = client.workflow.getHandle<typeof fineTune>(workflowId);
  const result = handle.result();
  let done = false;
  void result.then(
    () => (done = true),
    () => (done = true),
  );
  while (!done) {
    await Promise.race([result.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, intervalMilliseconds))]);
    if (!done) onStatus(await getRunStatus(client, workflowId));
  }
  return result;
}

export { WorkflowFailedError };
