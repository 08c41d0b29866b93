/**
 * The promise: a run survives a killed worker and resumes from its last checkpoint. The Python worker is
 * SIGKILLed mid-training (no cleanup, no goodbye), a new one is started, and the run must complete without
 * training any step at or before the checkpoint again. The heartbeat timeout is the default two minutes: the new
 * worker proves its predecessor dead and takes the attempt over, so training restarts within the model's load
 * time plus 5 s of the new worker being ready, not when the heartbeat timeout runs out. The same with two training
 * processes (device.cpu_processes: the multi-GPU path, on gloo): the ranks die with the killed worker, and the new
 * worker's ranks resume from the checkpoint.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { getRunStatus, startFineTune } from '../../src/client.ts';
import { FailureType } from '../../src/contract/index.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { trainingWorkflowId } from '../../workflows/index.ts';
import { useTestCluster } from '../support/cluster.ts';

const tinySpecPath = fileURLToPath(new URL('../../examples/tiny/spec.yaml', import.meta.url));
const totalSteps = 30;
/** The tiny spec's micro-batch of 4, one step's rows: split over the processes, each trains its share. */
const rowsPerStep = 4;

interface LogRecord {
  attempt: number;
  step: number;
  /** Unix seconds. */
  time: number;
}

describe('a Python worker killed mid-training', () => {
  const cluster = useTestCluster('worker-crash');

  it.each([1, 2])('resumes on a new worker from the last checkpoint and never retrains a checkpointed step (%i processes)', async (processes) => {
    const base = loadSpec(tinySpecPath);
    const spec = {
      ...base,
      // The same 4 rows per step either way (each process trains its own micro-batches): 30 steps fit the one epoch,
      // and leave 20 after the checkpoint at step 10 where the kill lands.
      train: { ...base.train, max_steps: totalSteps, micro_batch_size: rowsPerStep / processes },
      checkpoint: { ...base.checkpoint, every_steps: 5 },
      merge: { ...base.merge, enabled: false },
      device: { ...base.device, cpu_processes: processes },
    };
    const workflowId = `crash-${processes}-${Date.now()}`;
    const handle = await startFineTune(cluster().client, spec, { workflowId, artifactRootUri: cluster().artifactRootUri });

    let checkpointAtKill = 0;
    for (const deadline = Date.now() + 240_000; Date.now() < deadline; await sleep(200)) {
      const status = await getRunStatus(cluster().client, workflowId);
      if ((status.last_checkpoint?.step ?? 0) >= 10) {
        checkpointAtKill = status.last_checkpoint!.step;
        break;
      }
    }
    expect(checkpointAtKill).toBeGreaterThanOrEqual(10);
    expect(spec.train.heartbeat_timeout_seconds).toBe(120);
    await cluster().killGpuWorker();
    await cluster().startGpuWorker();
    const readyAt = Date.now();

    const result = await handle.result();
    expect(result.training.final_step).toBe(totalSteps);
    expect([result.training.processes, result.training.parallelism]).toEqual(processes === 1 ? [1, 'single'] : [processes, 'ddp']);
    expect(result.training.resumed_from_step).toBeGreaterThanOrEqual(checkpointAtKill);
    expect(result.training.steps_trained).toBe(totalSteps - result.training.resumed_from_step);

    const log: LogRecord[] = readFileSync(join(fileURLToPath(result.run_uri), 'train_log.jsonl'), 'utf8')
      .split('\n')
      .filter((line) => line.trim())
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as LogRecord];
        } catch {
          return []; // the killed process may have died mid-line
        }
      });
    const attempts = [...new Set(log.map((record) => record.attempt))];
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    const resumed = result.training.resumed_from_step;
    for (let step = 1; step <= resumed; step += 1) {
      expect(
        log.filter((record) => record.step === step),
        `step ${step}`,
      ).toHaveLength(1);
    }
    const lastAttempt = Math.max(...attempts);
    const retrained = log.filter((record) => record.attempt === lastAttempt).map((record) => record.step);
    expect(retrained[0]).toBe(resumed + 1);
    expect(retrained.at(-1)).toBe(totalSteps);

    // Taken over, not timed out: the dead attempt failed as TuneflowWorkerLost (retried attempts leave no events of
    // their own; the started event of the attempt that finished carries the last failure), and training restarted quickly.
    const history = await cluster().client.workflow.getHandle(trainingWorkflowId(workflowId)).fetchHistory();
    const failureTypes = (history.events ?? []).map((event) => event.activityTaskStartedEventAttributes?.lastFailure?.applicationFailureInfo?.type);
    expect(failureTypes).toContain(FailureType.WorkerLost);
    const firstNewStep = log.find((record) => record.attempt === lastAttempt)!;
    const readyToFirstStepSeconds = firstNewStep.time - readyAt / 1000;
    // Several processes also start their interpreters (torch, transformers) before the load the result times.
    expect(readyToFirstStepSeconds).toBeLessThanOrEqual(result.training.model_load_seconds + (processes === 1 ? 5 : 30));
  });
});
