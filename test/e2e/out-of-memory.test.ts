/**
 * Out-of-memory recovery: the train activity reports CUDA OOM, the workflow asks the planner for gradient
 * checkpointing on (where the spec's auto had chosen it off, as on this CPU where it fits), then for the next smaller
 * micro-batch with the same effective batch, records each and trains on; when no smaller micro-batch is left the
 * run fails once, non-retryably, with the plan attached. The OOM is injected (a CPU has no CUDA memory to exhaust)
 * through the trainer's test hook TUNEFLOW_TEST_OUT_OF_MEMORY_ABOVE_MICRO_BATCH. A recovery must survive the
 * training child's continue-as-new: the next execution trains, and reports, the replanned micro-batch and plan.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure, ChildWorkflowFailure } from '@temporalio/common';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startFineTune } from '../../src/client.ts';
import { FailureType, TaskQueue } from '../../src/contract/index.ts';
import { failureOf, isOutOfMemoryError } from '../../src/errors/index.ts';
import type { FineTuneResult } from '../../workflows/index.ts';
import { loadSpec } from '../../src/spec/load.ts';
import type { RunSpec } from '../../src/spec/schema.ts';
import { useTestCluster } from '../support/cluster.ts';

const hook = 'TUNEFLOW_TEST_OUT_OF_MEMORY_ABOVE_MICRO_BATCH';
const tiny = loadSpec(fileURLToPath(new URL('../../examples/tiny/spec.yaml', import.meta.url)));
const spec: RunSpec = {
  ...tiny,
  train: { ...tiny.train, max_steps: 6, micro_batch_size: 8, gradient_accumulation_steps: 1 },
  merge: { ...tiny.merge, enabled: false },
  evaluate: { ...tiny.evaluate, enabled: false },
};

describe('out of memory', () => {
  const cluster = useTestCluster('out-of-memory', { [hook]: '2' });

  it('retries with smaller micro-batches at the same effective batch and completes', async () => {
    const handle = await startFineTune(cluster().client, spec, { workflowId: `oom-recovers-${Date.now()}`, artifactRootUri: cluster().artifactRootUri });
    const result = await handle.result();
    expect(
      result.progress.out_of_memory_recoveries.map(({ from_micro_batch_size, micro_batch_size, gradient_accumulation_steps, gradient_checkpointing }) => [
        from_micro_batch_size,
        micro_batch_size,
        gradient_accumulation_steps,
        gradient_checkpointing,
      ]),
    ).toEqual([
      // The injected OOM depends on the micro-batch only, so turning checkpointing on does not end it here.
      [8, 8, 1, true],
      [8, 4, 2, true],
      [4, 2, 4, true],
    ]);
    expect(result.training.final_step).toBe(6);
    expect(result.plan.fits).toBe(true);
  });

  it('carries the replanned micro-batch and its plan across continue-as-new', async () => {
    // A history limit of 1 event: every checkpoint rolls the training over to a new execution. The run is long enough
    // (24 steps, a checkpoint every 2) that a rollover's cancellation reaches the activity before training ends.
    const rollingSpec: RunSpec = { ...spec, train: { ...spec.train, max_steps: 24 }, checkpoint: { ...spec.checkpoint, every_steps: 2 } };
    const handle = await cluster().client.workflow.start('fineTune', {
      taskQueue: TaskQueue.Orchestration,
      workflowId: `oom-rollover-${Date.now()}`,
      args: [{ spec: rollingSpec, artifact_root_uri: cluster().artifactRootUri, max_history_events: 1 }],
    });
    const result = (await handle.result()) as FineTuneResult;
    expect(result.executions).toBeGreaterThanOrEqual(2);
    // A rollover that carried micro-batch 8 would run out of memory again and recover a third time.
    expect(result.progress.out_of_memory_recoveries.map(({ micro_batch_size }) => micro_batch_size)).toEqual([8, 4, 2]);
    expect(result.training.final_step).toBe(24);
    // The plan the run reports is the plan of the micro-batch it trained with, not the one it started with.
    expect(result.plan.peak_vram_gib).toBe(result.progress.out_of_memory_recoveries.at(-1)!.peak_vram_gib);
  });

  it('fails once, non-retryably, with the plan attached, when even micro-batch 1 runs out of memory', async () => {
    await cluster().stopGpuWorker();
    await cluster().startGpuWorker({ [hook]: '0' });
    const handle = await startFineTune(
      cluster().client,
      { ...spec, train: { ...spec.train, micro_batch_size: 2 } },
      { workflowId: `oom-fails-${Date.now()}`, artifactRootUri: cluster().artifactRootUri },
    );
    const failure = await handle.result().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    // The train stage's child workflow raised it: the run's failure wraps the child's, which is the OutOfMemory failure.
    const cause = (failure as WorkflowFailedError).cause;
    expect(cause).toBeInstanceOf(ChildWorkflowFailure);
    const outOfMemory = cause!.cause as ApplicationFailure;
    expect(outOfMemory).toBeInstanceOf(ApplicationFailure);
    expect(outOfMemory.type).toBe(FailureType.OutOfMemory);
    expect(outOfMemory.nonRetryable).toBe(true);
    // failureOf maps the run's failure back to tuneflow's typed error, with the plan and recoveries as raised.
    const error = failureOf(failure);
    expect(isOutOfMemoryError(error)).toBe(true);
    expect(error!.message).toContain('micro_batch_size 1');
    const details = error!.details as { plan: { peak_vram_gib: number }; recoveries: unknown[] };
    expect(details.plan.peak_vram_gib).toBeGreaterThan(0);
    // Checkpointing on at micro-batch 2, then micro-batch 1, then nothing is left.
    expect(details.recoveries).toHaveLength(2);
  });
});
