/**
 * The faults of issue 4, one scenario each. A scenario waits for its moment, breaks one thing, brings it back and
 * says what shows the fault landed where it was meant to. Adding one (pause → restart everything → resume, once
 * the workflow has those signals) is one more entry in `scenarios`, built from the helpers here.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pauseRun, resumeRun } from '../../src/client.ts';
import {
  type FaultInjection,
  type FaultScenario,
  faultRunShape,
  onDirectoryEntry,
  readTrainLog,
  type RestartedProcess,
  type TrainLogRecord,
  type TrialContext,
  trainHeartbeat,
  waitFor,
} from './harness.ts';
import { nanLossAtStep, poisonedFile } from './poisoned.ts';

/** Faults mid-training wait for this step: two checkpoints written, well before the end. */
const midTrainingStep = 12;

const isCheckpointStep = (step: number) => step % faultRunShape.checkpointEverySteps === 0;
const lastStep = (log: TrainLogRecord[]) => log.at(-1)?.step ?? 0;
/** The trial's last step: a fault seen at or after it landed after training. */
const finalStep = (trial: TrialContext) => trial.cluster.suite.specs.sft.train.max_steps ?? faultRunShape.maxSteps;
const checkpointsOnDisk = (trial: TrialContext) => {
  const directory = join(trial.runDirectory, 'checkpoints');
  return existsSync(directory) ? readdirSync(directory).sort() : [];
};

/** Waits until training has logged at least `step`, returning the log. */
function waitForStep(trial: TrialContext, step: number, intervalMilliseconds = 100): Promise<TrainLogRecord[]> {
  return waitFor(
    () => {
      const log = readTrainLog(trial.runDirectory);
      return lastStep(log) >= step ? log : undefined;
    },
    { deadline: trial.deadline, intervalMilliseconds, what: `training step ${step}` },
  );
}

/** A new Python worker, started as soon as the old one is dead; Temporal retries the activity on it. */
async function replaceAcceleratorWorker(trial: TrialContext, faultAt: number, evidence: Record<string, unknown>, landed: boolean): Promise<FaultInjection> {
  await trial.cluster.killAcceleratorWorker();
  const restarted = await trial.cluster.startAcceleratorWorker();
  return { faultAt, restarted, evidence, landed };
}

/**
 * SIGKILLs the Python worker the moment a temporary directory matching `prefix` appears in `directory` (from the
 * inotify callback, so within about a millisecond), then records whether the kill caught the write in progress:
 * the temporary directory left behind and the finished one absent.
 */
async function killPythonWorkerDuringWrite(
  trial: TrialContext,
  directory: string,
  accept: (name: string) => boolean,
  finishedName: (temporary: string) => string,
): Promise<FaultInjection> {
  let faultAt = 0;
  const temporary = await onDirectoryEntry(
    directory,
    accept,
    () => {
      faultAt = Date.now();
      void trial.cluster.killAcceleratorWorker();
    },
    { deadline: trial.deadline, what: `a temporary directory in ${directory}` },
  );
  await trial.cluster.killAcceleratorWorker();
  const temporaryLeftBehind = existsSync(join(directory, temporary));
  const finishedExists = existsSync(join(directory, finishedName(temporary)));
  const evidence = {
    temporary_directory: temporary,
    temporary_left_behind: temporaryLeftBehind,
    finished_directory_existed: finishedExists,
    last_step_at_kill: lastStep(readTrainLog(trial.runDirectory)),
  };
  return replaceAcceleratorWorker(trial, faultAt, evidence, temporaryLeftBehind && !finishedExists);
}

const temporaryCheckpoint = /^\.tmp-(step-(\d+))-/;

export const pythonWorkerDuringModelLoad: FaultScenario = {
  name: 'python-kill-model-load',
  description: 'SIGKILL the Python worker while the train activity loads the model (first heartbeat seen, no step yet)',
  async inject(trial) {
    const { client } = trial.cluster;
    const phase = await waitFor(
      async () => {
        const heartbeat = await trainHeartbeat(client, trial.workflowId);
        return heartbeat && typeof heartbeat.phase === 'string' ? heartbeat.phase : undefined;
      },
      { deadline: trial.deadline, intervalMilliseconds: 50, what: 'the train activity to start loading the model' },
    );
    const faultAt = Date.now();
    await trial.cluster.killAcceleratorWorker();
    const stepsLoggedAtKill = readTrainLog(trial.runDirectory).length;
    const evidence = { heartbeat_phase: phase, steps_logged_at_kill: stepsLoggedAtKill, checkpoints_at_kill: checkpointsOnDisk(trial) };
    return replaceAcceleratorWorker(trial, faultAt, evidence, phase === 'loading model' && stepsLoggedAtKill === 0);
  },
};

export const pythonWorkerMidStep: FaultScenario = {
  name: 'python-kill-mid-step',
  description: `SIGKILL the Python worker half-way through a training step after step ${midTrainingStep}, away from checkpoint boundaries`,
  async inject(trial) {
    // The step in progress (last + 1) and the one just logged must not be checkpoint steps, so the kill hits
    // forward/backward computation rather than a checkpoint write; and the kill comes 40–60 % of a typical step
    // after the last one was logged. Polling at 10 ms keeps re-reading, since steps vary (a checkpoint takes ~1 s).
    let stepSeconds = 0;
    const log = await waitFor(
      () => {
        const current = readTrainLog(trial.runDirectory);
        const last = lastStep(current);
        if (last < midTrainingStep || isCheckpointStep(last) || isCheckpointStep(last + 1)) return undefined;
        stepSeconds = typicalStepSeconds(current);
        const intoStep = Date.now() / 1000 - current.at(-1)!.time;
        return intoStep >= 0.4 * stepSeconds && intoStep <= 0.6 * stepSeconds ? current : undefined;
      },
      { deadline: trial.deadline, intervalMilliseconds: 10, what: `the middle of a non-checkpoint step after ${midTrainingStep}` },
    );
    const faultAt = Date.now();
    await trial.cluster.killAcceleratorWorker();
    const logAtKill = readTrainLog(trial.runDirectory);
    const evidence = {
      last_step_at_kill: lastStep(logAtKill),
      step_in_progress: lastStep(logAtKill) + 1,
      typical_step_seconds: stepSeconds,
      seconds_into_step: faultAt / 1000 - logAtKill.at(-1)!.time,
    };
    // Landed if no step finished between the decision and the kill.
    return replaceAcceleratorWorker(trial, faultAt, evidence, lastStep(logAtKill) === lastStep(log));
  },
};

/** The median time between logged steps: a checkpoint write's extra second does not skew it. */
function typicalStepSeconds(log: TrainLogRecord[]): number {
  const intervals = log
    .slice(1)
    .map((record, index) => record.time - log[index]!.time)
    .sort((a, b) => a - b);
  return intervals[Math.floor(intervals.length / 2)] ?? 0;
}

export const pythonWorkerDuringCheckpointWrite: FaultScenario = {
  name: 'python-kill-checkpoint-write',
  description: `SIGKILL the Python worker the moment the checkpoint after step ${midTrainingStep - 2} starts being written (.tmp-step-* appears)`,
  inject: (trial) =>
    killPythonWorkerDuringWrite(
      trial,
      join(trial.runDirectory, 'checkpoints'),
      (name) => Number(temporaryCheckpoint.exec(name)?.[2] ?? 0) >= midTrainingStep - 2,
      (name) => temporaryCheckpoint.exec(name)![1]!,
    ),
};

export const pythonWorkerDuringMerge: FaultScenario = {
  name: 'python-kill-merge',
  description: 'SIGKILL the Python worker the moment the merged model starts being written (.tmp-merged-* appears)',
  inject: (trial) =>
    killPythonWorkerDuringWrite(
      trial,
      trial.runDirectory,
      (name) => name.startsWith('.tmp-merged-'),
      () => 'merged',
    ),
};

export const typescriptWorkerMidTraining: FaultScenario = {
  name: 'ts-worker-kill',
  description: `SIGKILL the TypeScript (workflow) worker after step ${midTrainingStep} and start a new one`,
  async inject(trial) {
    await waitForStep(trial, midTrainingStep);
    const faultAt = Date.now();
    await trial.cluster.killOrchestrationWorker();
    const lastAtKill = lastStep(readTrainLog(trial.runDirectory));
    const restarted = await trial.cluster.startOrchestrationWorker();
    return { faultAt, restarted, evidence: { last_step_at_kill: lastAtKill }, landed: lastAtKill < finalStep(trial) };
  },
};

export const serverRestartMidTraining: FaultScenario = {
  name: 'server-restart',
  description: `stop the Temporal dev server (SIGTERM) after step ${midTrainingStep} and start it again on the same SQLite file and port`,
  async inject(trial) {
    const { cluster } = trial;
    await waitForStep(trial, midTrainingStep);
    const faultAt = Date.now();
    await cluster.stopServer();
    const lastAtStop = lastStep(readTrainLog(trial.runDirectory));
    const serverDownSeconds = (Date.now() - faultAt) / 1000;
    const restarted = await cluster.startServer();
    // Workers are expected to reconnect by themselves; give them a moment to show they did not die instead.
    await sleep(2_000);
    const survivors = cluster.running();
    const restartedWorkers: Record<string, RestartedProcess> = {};
    if (!survivors.acceleratorWorker) restartedWorkers.accelerator = await cluster.startAcceleratorWorker();
    if (!survivors.orchestrationWorker) restartedWorkers.orchestration = await cluster.startOrchestrationWorker();
    const evidence = {
      last_step_at_stop: lastAtStop,
      seconds_to_stop: serverDownSeconds,
      workers_alive_after_restart: { accelerator: survivors.acceleratorWorker, orchestration: survivors.orchestrationWorker },
      workers_restarted: restartedWorkers,
    };
    return { faultAt, restarted, evidence, landed: lastAtStop < finalStep(trial) };
  },
};

export const pauseRestartEverythingResume: FaultScenario = {
  name: 'pause-restart-resume',
  description: `pause after step ${midTrainingStep} (tuneflow pause), stop everything (both workers SIGKILLed, server SIGTERM), start everything, resume`,
  async inject(trial) {
    const { cluster } = trial;
    await waitForStep(trial, midTrainingStep);
    await pauseRun(cluster.client, trial.workflowId);
    const lastAtPause = lastStep(readTrainLog(trial.runDirectory));
    const faultAt = Date.now();
    await cluster.stopEverything();
    const restarted = await cluster.startEverything();
    await resumeRun(cluster.client, trial.workflowId);
    const evidence = { last_step_at_pause: lastAtPause, checkpoints_at_pause: checkpointsOnDisk(trial) };
    return { faultAt, restarted, evidence, landed: lastAtPause < finalStep(trial) };
  },
};

/**
 * The mid-step kill on a DPO run (issue 21): the pair objective's resume (its schedule of pairs, the reference's
 * scores recomputed, the optimizer and RNG states) must end byte-identical to an uninterrupted DPO run.
 */
export const pythonWorkerMidStepDpo: FaultScenario = {
  ...pythonWorkerMidStep,
  name: 'python-kill-mid-step-dpo',
  description: `${pythonWorkerMidStep.description}, training DPO on preference pairs`,
  run: 'dpo',
};

/**
 * Issue 23's rollback, with a crash on top: the poisoned run (poisoned.ts: a NaN injected at one step, rows of noise
 * whose loss spikes) refuses both, rolls back to its last checkpoint and skips the rows. The Python worker is
 * SIGKILLed as soon as the first rollback shows in the train log (a step logged again), before a checkpoint records
 * it: the resumed run meets the poison again and must roll back the same way. Every run ends byte-identical to the
 * uninterrupted poisoned run (the reference), and each must have rolled back both faults (poisoned.poisonedRunProblem).
 */
export const poisonedBatchRollback: FaultScenario = {
  name: 'poisoned-batch-rollback',
  description: `NaN loss at step ${nanLossAtStep} and rows of noise (${poisonedFile}) whose loss spikes: rolled back and skipped; SIGKILL the Python worker right after the first rollback`,
  run: 'poisoned',
  async inject(trial) {
    // A rollback shows as a step logged again by the same attempt: training went back to its checkpoint.
    const logAtRollback = await waitFor(
      () => {
        const log = readTrainLog(trial.runDirectory);
        const last = log.at(-1);
        return last && log.slice(0, -1).some((record) => record.attempt === last.attempt && record.step >= last.step) ? log : undefined;
      },
      { deadline: trial.deadline, intervalMilliseconds: 10, what: 'the first rollback (a step trained again)' },
    );
    const faultAt = Date.now();
    await trial.cluster.killAcceleratorWorker();
    const logAtKill = readTrainLog(trial.runDirectory);
    const redone = logAtRollback.at(-1)!.step;
    const evidence = {
      step_trained_again: redone,
      refused_step_before: lastStep(logAtRollback.slice(0, -1)) + 1,
      last_step_at_kill: lastStep(logAtKill),
      checkpoints_at_kill: checkpointsOnDisk(trial),
    };
    // Landed if the kill came before the first checkpoint step after the rollback: every checkpoint predates it.
    const nextCheckpoint = Math.ceil(redone / faultRunShape.checkpointEverySteps) * faultRunShape.checkpointEverySteps;
    return replaceAcceleratorWorker(trial, faultAt, evidence, lastStep(logAtKill) < nextCheckpoint);
  },
};

export const scenarios: readonly FaultScenario[] = [
  pythonWorkerDuringModelLoad,
  pythonWorkerMidStep,
  pythonWorkerDuringCheckpointWrite,
  pythonWorkerDuringMerge,
  typescriptWorkerMidTraining,
  serverRestartMidTraining,
  pauseRestartEverythingResume,
  pythonWorkerMidStepDpo,
  poisonedBatchRollback,
];

export function scenariosNamed(names: readonly string[] | undefined): FaultScenario[] {
  if (!names?.length) return [...scenarios];
  return names.map((name) => {
    const scenario = scenarios.find((candidate) => candidate.name === name);
    if (!scenario) throw new Error(`unknown scenario ${name}; known: ${scenarios.map((candidate) => candidate.name).join(', ')}`);
    return scenario;
  });
}
