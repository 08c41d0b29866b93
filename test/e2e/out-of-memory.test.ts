/**
 * Out-of-memory recovery on real workers: the train activity reports CUDA OOM, the workflow asks the planner for
 * gradient checkpointing on (where the spec's auto had chosen it off, as on this CPU where it fits), then for the next
 * smaller micro-batch with the same effective batch, records each and trains on. The OOM is injected (a CPU has no
 * CUDA memory to exhaust) through the trainer's test hook TUNEFLOW_TEST_OUT_OF_MEMORY_ABOVE_MICRO_BATCH. The
 * workflow's other decisions (a final failure with the plan attached when no smaller micro-batch is left, a recovery
 * carried across continue-as-new) are tested with fake activities in test/workflows/fine-tune.test.ts.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startFineTune } from '../../src/client.ts';
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
});
