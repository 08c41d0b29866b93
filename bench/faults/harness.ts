/**
 * Fault-injection harness (issue 4): real Temporal dev server, real workers, the tiny model on a CPU.
 *
 * Every trial gets a cluster of its own — a TUNEFLOW_HOME, a dev server with its own SQLite file and ports, the
 * TypeScript worker and the Python worker as child processes — starts one fine-tune, lets its scenario break
 * something at a chosen moment and bring it back, and waits for the result. A trial succeeds when the run
 * completes with an adapter (and merged model) byte-identical to an uninterrupted run's: training on a CPU is
 * bit-exact across resume, so any difference is a durability bug.
 *
 * Both workers are child processes even when a scenario does not kill them: one way of running them for every
 * scenario, and the harness's own event loop stays free to SIGKILL within milliseconds of a file system event.
 */
import { Client, Connection, WorkflowFailedError, WorkflowNotFoundError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readdirSync, readFileSync, watch } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { getRunStatus, startFineTune } from '../../src/client.ts';
import { AcceleratorActivity } from '../../src/contract/index.ts';
import { type DevServer, startDevServer } from '../../src/runtime/dev-server.ts';
import { startGpuWorker } from '../../src/runtime/gpu-worker.ts';
import { homeLayout, type HomeLayout } from '../../src/runtime/home.ts';
import { type ManagedProcess, startProcess } from '../../src/runtime/processes.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { type RunSpec, trainSpecSchema } from '../../src/spec/schema.ts';
import { tuneflowWorkflowBundle } from '../../src/runtime/workflow-bundle.ts';
import { freePort } from '../../test/setup/global-setup.ts';
import { type FineTuneResult, trainingWorkflowId } from '../../workflows/index.ts';
import { poisonedFaultSpec, poisonedRunProblem, poisonedWorkerEnvironment, writePoisonedDataset } from './poisoned.ts';

const tinySpecPath = fileURLToPath(new URL('../../examples/tiny/spec.yaml', import.meta.url));
const orchestrationWorkerScript = fileURLToPath(new URL('./ts-worker.ts', import.meta.url));

/** The run every trial makes: long enough to kill mid-way, checkpointed often, merged, not evaluated. */
export const faultRunShape = {
  maxSteps: 40,
  checkpointEverySteps: 5,
} as const;

/**
 * The product's default heartbeat timeout (two minutes). A killed Python worker's attempt does not wait for it: the
 * next worker on the machine proves its predecessor dead and takes the attempt over at once
 * (python-activities/tuneflow_activities/takeover.py), so recovery times measure tuneflow, not this setting.
 */
export const defaultHeartbeatTimeoutSeconds = trainSpecSchema.parse({}).heartbeat_timeout_seconds;

export function faultSpec(heartbeatTimeoutSeconds = defaultHeartbeatTimeoutSeconds, maxSteps: number = faultRunShape.maxSteps): RunSpec {
  const base = loadSpec(tinySpecPath);
  return {
    ...base,
    // Packed, so that every scenario also proves exact resume with packing (issue 12): packs are a pure function of
    // (seed, epoch), like the rows of each step.
    train: { ...base.train, max_steps: maxSteps, heartbeat_timeout_seconds: heartbeatTimeoutSeconds, packing: true },
    checkpoint: { ...base.checkpoint, every_steps: faultRunShape.checkpointEverySteps },
    merge: { ...base.merge, enabled: true },
    // Evaluation adds time and no durability question that merge does not already ask.
    evaluate: { ...base.evaluate, enabled: false },
  };
}

const preferencePairsPath = fileURLToPath(new URL('../../examples/preference/pairs.jsonl', import.meta.url));

/**
 * The same run shape with the dpo objective, on examples/preference's pairs: 36 training pairs, 18 steps an epoch
 * at micro-batch 2 (4 sequences and their reference scores a step, about an SFT step's work), so three epochs cross
 * epoch boundaries as the steps run to maxSteps. Unpacked (pairs do not pack).
 */
export function dpoFaultSpec(heartbeatTimeoutSeconds = defaultHeartbeatTimeoutSeconds, maxSteps: number = faultRunShape.maxSteps): RunSpec {
  const base = faultSpec(heartbeatTimeoutSeconds, maxSteps);
  return {
    ...base,
    dataset: { ...base.dataset, path: preferencePairsPath, format: 'auto', val_count: 12 },
    train: { ...base.train, objective: { kind: 'dpo', beta: 0.1, loss_type: 'sigmoid', label_smoothing: 0 }, packing: 'auto', micro_batch_size: 2, epochs: 3 },
  };
}

/** Which run a scenario faults: the SFT run every scenario shares, the DPO one, or the poisoned SFT run (poisoned.ts). */
export type FaultRun = 'sft' | 'dpo' | 'poisoned';

// ---------------------------------------------------------------------------------------------------------------
// Processes: every child the harness starts is SIGKILLed if the harness itself exits, so a failed or interrupted
// suite leaves nothing running (the children lead their own process groups and would otherwise outlive it).

const liveProcesses = new Set<ManagedProcess>();
process.once('exit', () => {
  for (const managed of liveProcesses) managed.child.kill('SIGKILL');
});

function tracked(managed: ManagedProcess): ManagedProcess {
  liveProcesses.add(managed);
  void managed.exited.then(() => liveProcesses.delete(managed));
  return managed;
}

// ---------------------------------------------------------------------------------------------------------------
// The suite: built once, shared by its trials.

export interface Suite {
  root: string;
  workflowBundlePath: string;
  /** The run each scenario faults, by FaultScenario.run; each has its own uninterrupted reference. */
  specs: Record<FaultRun, RunSpec>;
  /** What the Python worker's environment adds for a run (the poisoned run's test-only NaN injection). */
  acceleratorEnvironment: Partial<Record<FaultRun, Record<string, string>>>;
  /** Why a finished run of this kind is not what its scenario is about (null: it is); a trial with a problem fails. */
  problemOf: Partial<Record<FaultRun, (training: FineTuneResult['training']) => string | null>>;
}

/**
 * Finds the workflow bundle (the cached one: src/runtime/workflow-bundle.ts) and makes the directory every trial
 * lives under. `maxSteps` shortens the run (the CI test trains 24 steps: every fault lands by step 13, and 11 steps
 * after it still show an exact resume); the benchmark's figures are for faultRunShape.maxSteps.
 */
export async function prepareSuite(options: { root?: string; heartbeatTimeoutSeconds?: number; maxSteps?: number } = {}): Promise<Suite> {
  const suiteRoot = options.root ?? (await mkdtemp(join(tmpdir(), 'tuneflow-faults-')));
  await mkdir(suiteRoot, { recursive: true });
  const { codePath: workflowBundlePath } = await tuneflowWorkflowBundle();
  const sft = faultSpec(options.heartbeatTimeoutSeconds, options.maxSteps);
  return {
    root: suiteRoot,
    workflowBundlePath,
    specs: {
      sft,
      dpo: dpoFaultSpec(options.heartbeatTimeoutSeconds, options.maxSteps),
      poisoned: poisonedFaultSpec(sft, await writePoisonedDataset(suiteRoot)),
    },
    acceleratorEnvironment: { poisoned: poisonedWorkerEnvironment },
    problemOf: { poisoned: poisonedRunProblem },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// A trial's cluster.

export interface RestartedProcess {
  /** Epoch milliseconds at which the process was started again. */
  startedAt: number;
  /** Seconds from start until it answered (dev server) or polled (workers). */
  readySeconds: number;
}

export class TrialCluster {
  private server: DevServer | undefined;
  private orchestrationWorker: ManagedProcess | undefined;
  private acceleratorWorker: ManagedProcess | undefined;
  private connection: Connection | undefined;
  private generation = { server: 0, orchestration: 0, accelerator: 0 };

  private constructor(
    readonly suite: Suite,
    readonly layout: HomeLayout,
    readonly port: number,
    readonly uiPort: number,
    /** Added to every Python worker's environment, restarts included. */
    readonly acceleratorEnvironment: Record<string, string>,
  ) {}

  static async start(suite: Suite, name: string, acceleratorEnvironment: Record<string, string> = {}): Promise<TrialCluster> {
    const home = await mkdtemp(join(suite.root, `${name}-`));
    const cluster = new TrialCluster(suite, homeLayout(home), await freePort(), await freePort(), acceleratorEnvironment);
    try {
      await cluster.startEverything();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  get client(): Client {
    if (!this.connection) throw new Error('the trial cluster is not connected');
    return new Client({ connection: this.connection });
  }

  private logFile(kind: keyof TrialCluster['generation']): string {
    this.generation[kind] += 1;
    return join(this.layout.logs, `${kind}-${this.generation[kind]}.log`);
  }

  private async timed(start: () => Promise<void>): Promise<RestartedProcess> {
    const startedAt = Date.now();
    await start();
    return { startedAt, readySeconds: (Date.now() - startedAt) / 1000 };
  }

  /** Starts the dev server; again after stopServer, on the same SQLite file and port, so runs carry on. */
  startServer(): Promise<RestartedProcess> {
    return this.timed(async () => {
      this.server = await startDevServer({
        databaseFile: this.layout.temporalDatabase,
        logFile: this.logFile('server'),
        port: this.port,
        uiPort: this.uiPort,
      });
      tracked(this.server.process);
      // grpc-js reconnects by itself, but a fresh connection per server start keeps a stale channel out of play.
      await this.connection?.close();
      this.connection = await Connection.connect({ address: this.address });
    });
  }

  /** SIGTERM, as an operator stopping the service would. */
  async stopServer(): Promise<void> {
    await this.server?.stop();
  }

  /** The server, then both workers side by side (their start-ups are independent and take seconds each). */
  startEverything(): Promise<RestartedProcess> {
    return this.timed(async () => {
      await this.startServer();
      await Promise.all([this.startOrchestrationWorker(), this.startAcceleratorWorker()]);
    });
  }

  /** As after a power cut: both workers SIGKILLed, the server stopped; nothing started again. */
  async stopEverything(): Promise<void> {
    await Promise.all([this.killAcceleratorWorker(), this.killOrchestrationWorker()]);
    await this.stopServer();
  }

  startOrchestrationWorker(): Promise<RestartedProcess> {
    return this.timed(async () => {
      this.orchestrationWorker = tracked(
        await startProcess(process.execPath, ['--import', 'tsx', orchestrationWorkerScript, this.address, this.suite.workflowBundlePath], {
          logFile: this.logFile('orchestration'),
          readyPattern: /ts-worker ready/,
          env: { ...process.env, TUNEFLOW_HOME: this.layout.home },
        }),
      );
    });
  }

  startAcceleratorWorker(): Promise<RestartedProcess> {
    return this.timed(async () => {
      this.acceleratorWorker = tracked(
        await startGpuWorker({
          address: this.address,
          logFile: this.logFile('accelerator'),
          environment: { ...this.acceleratorEnvironment, TUNEFLOW_HOME: this.layout.home },
        }),
      );
    });
  }

  /** SIGKILL: no goodbye, no cleanup, as when a machine dies. The signal is sent before this returns its promise. */
  killOrchestrationWorker(): Promise<void> {
    return this.orchestrationWorker?.kill() ?? Promise.resolve();
  }

  killAcceleratorWorker(): Promise<void> {
    return this.acceleratorWorker?.kill() ?? Promise.resolve();
  }

  /** Which of the trial's processes are still running (a scenario records whether the workers outlived the server). */
  running(): { server: boolean; orchestrationWorker: boolean; acceleratorWorker: boolean } {
    const alive = (managed: ManagedProcess | undefined) => managed !== undefined && managed.child.exitCode === null && managed.child.signalCode === null;
    return { server: alive(this.server?.process), orchestrationWorker: alive(this.orchestrationWorker), acceleratorWorker: alive(this.acceleratorWorker) };
  }

  /** Ends the trial: the run is over (or abandoned), so the workers are killed rather than drained — seconds saved per trial. */
  async stop(): Promise<void> {
    await this.connection?.close().catch(() => undefined);
    await this.stopEverything();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Watching a run.

export interface TrainLogRecord {
  attempt: number;
  step: number;
  /** Wall clock seconds (Python's time.time()). */
  time: number;
}

export function readTrainLog(runDirectory: string): TrainLogRecord[] {
  const path = join(runDirectory, 'train_log.jsonl');
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as TrainLogRecord];
      } catch {
        return []; // a process killed mid-line leaves half a record
      }
    });
}

export class DeadlineExceeded extends Error {}

export interface WaitOptions {
  deadline: number;
  intervalMilliseconds?: number;
  what: string;
}

/** Polls probe until it returns a value; throws DeadlineExceeded, naming what was awaited, at the deadline. */
export async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, options: WaitOptions): Promise<T> {
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > options.deadline) throw new DeadlineExceeded(`timed out waiting for ${options.what}`);
    await sleep(options.intervalMilliseconds ?? 100);
  }
}

/**
 * Calls onEntry synchronously, from inside the inotify callback, for the first entry of directory whose name
 * matches — so a SIGKILL sent there lands within a millisecond or so of the entry appearing. Resolves with the name.
 */
export async function onDirectoryEntry(
  directory: string,
  matches: (name: string) => boolean,
  onEntry: (name: string) => void,
  options: WaitOptions,
): Promise<string> {
  await waitFor(() => (existsSync(directory) ? true : undefined), { ...options, what: `${directory} to exist` });
  return new Promise<string>((resolve, reject) => {
    let settled = false;
    const settle = (name: string) => {
      if (settled) return;
      settled = true;
      onEntry(name);
      watcher.close();
      clearTimeout(timer);
      resolve(name);
    };
    const watcher = watch(directory, (_event, name) => {
      if (name !== null && matches(name)) settle(name);
    });
    const timer = setTimeout(
      () => {
        if (settled) return;
        settled = true;
        watcher.close();
        reject(new DeadlineExceeded(`timed out waiting for ${options.what}`));
      },
      Math.max(0, options.deadline - Date.now()),
    );
    // An entry made between the existence check and the watch would raise no event.
    const already = readdirSync(directory).find(matches);
    if (already !== undefined) settle(already);
  });
}

/**
 * The train activity's latest heartbeat details as the server holds them, read without a query (no workflow worker
 * needed). The activity belongs to the run's training child workflow, found by its deterministic id.
 */
export async function trainHeartbeat(client: Client, workflowId: string): Promise<Record<string, unknown> | null> {
  const description = await client.workflow
    .getHandle(trainingWorkflowId(workflowId))
    .describe()
    .catch((error: unknown) => {
      if (error instanceof WorkflowNotFoundError) return null; // training has not started yet
      throw error;
    });
  if (description === null) return null;
  const pending = description.raw.pendingActivities?.find((activity) => activity.activityType?.name === AcceleratorActivity.Train);
  const payload = pending?.heartbeatDetails?.payloads?.[0];
  return payload ? (defaultPayloadConverter.fromPayload(payload) as Record<string, unknown>) : null;
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios and trials.

/** What a scenario hands a trial's fault: the cluster, the run, the trial's deadline. */
export interface TrialContext {
  cluster: TrialCluster;
  workflowId: string;
  runDirectory: string;
  deadline: number;
}

export interface FaultInjection {
  /** Epoch milliseconds at which the fault was injected. */
  faultAt: number;
  /** The broken part started again: when, and how long until it was ready. Absent when nothing had to restart. */
  restarted: RestartedProcess | null;
  /** What shows the fault landed where it was meant to (e.g. a temporary checkpoint left behind). */
  evidence: Record<string, unknown>;
  /** Whether the evidence shows the fault hit the intended moment (a kill "during merge" after the merge finished did not). */
  landed: boolean;
}

export interface FaultScenario {
  name: string;
  description: string;
  /** The run it faults: the SFT run when absent. */
  run?: FaultRun;
  /** Waits for the moment, breaks something, brings it back; resolves once everything is running again. */
  inject(trial: TrialContext): Promise<FaultInjection>;
}

export interface ArtifactHashes {
  adapter: string;
  merged: string | null;
}

export interface TrialRecord {
  scenario: string;
  trial: number;
  success: boolean;
  failure: string | null;
  workflow_id: string;
  seconds: number;
  fault:
    | (Omit<FaultInjection, 'faultAt' | 'restarted'> & {
        fault_at: string;
        restarted_at: string | null;
        restart_ready_seconds: number | null;
      })
    | null;
  hashes: ArtifactHashes | null;
  adapter_matches_reference: boolean | null;
  merged_matches_reference: boolean | null;
  train_attempts: number[];
  /** Rollbacks of the finished run (train.rollback) and the rows they skipped; null when it did not finish. */
  rollbacks: number | null;
  rows_skipped: number | null;
  steps_logged: number;
  steps_redone: number;
  /** From the restart of the broken part to the first training step logged after it; null when training was over. */
  restart_to_first_step_seconds: number | null;
  /** From the restarted part being ready (server answering, worker polling) to that step. */
  ready_to_first_step_seconds: number | null;
  fault_to_first_step_seconds: number | null;
  /** The train result of the attempt that finished. */
  resumed_from_step: number | null;
  model_load_seconds: number | null;
  seconds_to_first_step: number | null;
  /**
   * The bound issue 4 sets, first step ≤ model load + 5 s after the restart, judged from the restarted process
   * being ready (a Python worker's own start-up, torch's import, is not model loading); null when not applicable.
   */
  first_step_within_model_load_plus_5s: boolean | null;
  logs: string;
}

export async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function artifactHashes(result: FineTuneResult): Promise<ArtifactHashes> {
  const adapter = await sha256OfFile(join(fileURLToPath(result.artifacts.adapter), 'adapter_model.safetensors'));
  const merged = result.artifacts.merged ? await sha256OfFile(join(fileURLToPath(result.artifacts.merged), 'model.safetensors')) : null;
  return { adapter, merged };
}

/** Steps trained more than once: a step logged n times was redone n - 1 times. */
export function stepsRedone(log: TrainLogRecord[]): number {
  const counts = new Map<number, number>();
  for (const { step } of log) counts.set(step, (counts.get(step) ?? 0) + 1);
  return [...counts.values()].reduce((sum, count) => sum + count - 1, 0);
}

/**
 * Waits for the workflow's result, riding out a result long-poll broken by a server restart. At the deadline the
 * call is aborted rather than abandoned: an abandoned call's retry timer would fire on a closed connection and
 * throw outside any promise.
 */
async function awaitResult(cluster: TrialCluster, workflowId: string, deadline: number): Promise<FineTuneResult> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), Math.max(0, deadline - Date.now()));
  try {
    for (;;) {
      const client = cluster.client;
      try {
        return (await client.withAbortSignal(abort.signal, () => client.workflow.getHandle(workflowId).result())) as FineTuneResult;
      } catch (error) {
        if (abort.signal.aborted) throw new DeadlineExceeded('timed out waiting for the run to finish');
        if (error instanceof WorkflowFailedError) throw error;
        await sleep(1_000);
      }
    }
  } finally {
    clearTimeout(timer);
  }
}

const isoTime = (epochMilliseconds: number) => new Date(epochMilliseconds).toISOString();

/**
 * Whether a retried train attempt logged steps (Temporal's attempt number, which train_log.jsonl records): only then
 * was the model loaded again. A pause's resume schedules a new activity at attempt 1, so it does not count here.
 */
export const trainingRestarted = (trainAttempts: number[]): boolean => trainAttempts.some((attempt) => attempt > 1);

const withinBound = (secondsToFirstStep: number | null, modelLoadSeconds: number | undefined) =>
  secondsToFirstStep === null || modelLoadSeconds === undefined ? null : secondsToFirstStep <= modelLoadSeconds + 5;

export interface TrialOptions {
  suite: Suite;
  scenario: FaultScenario | null;
  /** The run of an uninterrupted reference trial (scenario null); a scenario's own run otherwise. */
  run?: FaultRun;
  trial: number;
  reference: ArtifactHashes | null;
  timeoutSeconds: number;
  /** Keep the trial's home (database, artifacts, logs) even when it succeeded. */
  keep?: boolean;
}

/** One run with one fault (or none: the reference). Never throws; a failure is a record with success false. */
export async function runTrial(options: TrialOptions): Promise<TrialRecord> {
  const run: FaultRun = options.scenario?.run ?? options.run ?? 'sft';
  const name = options.scenario?.name ?? (run === 'sft' ? 'uninterrupted' : `uninterrupted-${run}`);
  const started = Date.now();
  const deadline = started + options.timeoutSeconds * 1000;
  const workflowId = `faults-${name}-${options.trial}`;
  let cluster: TrialCluster | undefined;
  let injection: FaultInjection | null = null;
  let result: FineTuneResult | null = null;
  let failure: string | null = null;
  let runDirectory: string | null = null;
  try {
    cluster = await TrialCluster.start(options.suite, `${name}-${options.trial}`, options.suite.acceleratorEnvironment[run]);
    runDirectory = join(cluster.layout.artifactRoot, 'runs', workflowId);
    await startFineTune(cluster.client, options.suite.specs[run], { workflowId, artifactRootUri: cluster.layout.artifactRootUri });
    if (options.scenario) injection = await options.scenario.inject({ cluster, workflowId, runDirectory, deadline });
    result = await awaitResult(cluster, workflowId, deadline);
  } catch (error) {
    failure = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    if (cluster && error instanceof DeadlineExceeded) {
      const status = await getRunStatus(cluster.client, workflowId).catch(() => null);
      if (status) failure += ` (stage ${status.stage}, step ${status.step}, train attempt ${status.train_attempt})`;
    }
  } finally {
    await cluster?.stop().catch(() => undefined);
  }

  const hashes = result ? await artifactHashes(result) : null;
  const log = runDirectory ? readTrainLog(runDirectory) : [];
  const firstStepAfter = (epochMilliseconds: number | undefined) =>
    epochMilliseconds === undefined ? undefined : log.find((record) => record.time * 1000 >= epochMilliseconds);
  const restartedAt = injection?.restarted?.startedAt;
  const firstNewStep = firstStepAfter(restartedAt ?? injection?.faultAt);
  const seconds = (from: number | undefined, record: TrainLogRecord | undefined) =>
    from === undefined || record === undefined ? null : record.time - from / 1000;
  const restartToFirstStep = seconds(restartedAt, firstNewStep);
  const readyAt = injection?.restarted ? injection.restarted.startedAt + injection.restarted.readySeconds * 1000 : undefined;
  const training = result?.training ?? null;
  const trainAttempts = [...new Set(log.map((record) => record.attempt))];

  const adapterMatches = hashes && options.reference ? hashes.adapter === options.reference.adapter : null;
  const mergedMatches = hashes && options.reference ? hashes.merged === options.reference.merged : null;
  if (!failure && result && options.reference && !(adapterMatches && mergedMatches)) {
    failure = `artifacts differ from the uninterrupted run's (adapter ${adapterMatches ? 'equal' : 'differs'}, merged ${mergedMatches ? 'equal' : 'differs'})`;
  }
  const problem = result ? (options.suite.problemOf[run]?.(result.training) ?? null) : null;
  if (!failure && problem) failure = problem;
  const success = failure === null && result !== null;
  if (cluster && success && !options.keep) await rm(cluster.layout.home, { recursive: true, force: true });

  return {
    scenario: name,
    trial: options.trial,
    success,
    failure,
    workflow_id: workflowId,
    seconds: (Date.now() - started) / 1000,
    fault: injection && {
      fault_at: isoTime(injection.faultAt),
      restarted_at: injection.restarted ? isoTime(injection.restarted.startedAt) : null,
      restart_ready_seconds: injection.restarted?.readySeconds ?? null,
      evidence: injection.evidence,
      landed: injection.landed,
    },
    hashes,
    adapter_matches_reference: adapterMatches,
    merged_matches_reference: mergedMatches,
    train_attempts: trainAttempts,
    rollbacks: training?.rollbacks?.length ?? null,
    rows_skipped: training?.rows_skipped ?? null,
    steps_logged: log.length,
    steps_redone: stepsRedone(log),
    restart_to_first_step_seconds: restartToFirstStep,
    ready_to_first_step_seconds: seconds(readyAt, firstNewStep),
    fault_to_first_step_seconds: seconds(injection?.faultAt, firstNewStep),
    resumed_from_step: training?.resumed_from_step ?? null,
    model_load_seconds: training?.model_load_seconds ?? null,
    seconds_to_first_step: training?.seconds_to_first_step ?? null,
    // Only a restarted train activity loads the model again; when training ran straight through the fault (a TS
    // worker or server restart) the bound has nothing to judge.
    first_step_within_model_load_plus_5s: trainingRestarted(trainAttempts) ? withinBound(seconds(readyAt, firstNewStep), training?.model_load_seconds) : null,
    logs: cluster ? cluster.layout.logs : '',
  };
}
