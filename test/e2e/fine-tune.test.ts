/**
 * The whole pipeline on a real dev server with real workers and the tiny model: every stage runs for real.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { getRunStatus, startFineTune } from '../../src/client.ts';
import { FailureType } from '../../src/contract/index.ts';
import { failureOf, isDatasetNotFoundError } from '../../src/errors/index.ts';
import { loadSpec, parseSpec } from '../../src/spec/load.ts';
import { useTestCluster } from '../support/cluster.ts';
import { recordHistory } from '../support/histories.ts';
import { trainingWorkflowId } from '../../workflows/index.ts';

const tinySpecPath = fileURLToPath(new URL('../../examples/tiny/spec.yaml', import.meta.url));

describe('fineTune on the tiny model', () => {
  const cluster = useTestCluster('fine-tune');

  it('runs prepare → plan → train → checkpoint → merge → evaluate and reports where everything is', async () => {
    const spec = loadSpec(tinySpecPath);
    const handle = await startFineTune(cluster().client, spec, { workflowId: `e2e-tiny-${Date.now()}`, artifactRootUri: cluster().artifactRootUri });
    const result = await handle.result();
    // Histories from before the stages stay committed under their own names: both kinds must keep replaying.
    recordHistory(handle.workflowId, 'fine-tune-stages-completed');
    recordHistory(trainingWorkflowId(handle.workflowId), 'train-adapter-completed');

    expect(result.status).toBe('completed');
    expect(result.training.total_steps).toBe(24);
    expect(result.training.steps_trained).toBe(24);
    expect(result.training.backend).toBe('hf-peft');
    expect(result.dataset.val_rows).toBe(32);
    expect(result.dataset.train_rows).toBe(288);
    expect(result.plan.fits).toBe(true);
    // A random model with frozen random embeddings learns slowly through LoRA alone: 24 steps take its
    // validation loss from ~10.8 (uniform over 49152 tokens) down by ~0.3. The real model's drop is in the demo.
    expect(result.metrics.tuned_val_loss).toBeLessThan(result.metrics.base_val_loss! - 0.15);
    expect(result.samples).toHaveLength(1);

    const adapter = fileURLToPath(result.artifacts.adapter);
    expect(existsSync(join(adapter, 'adapter_config.json'))).toBe(true);
    expect(existsSync(join(adapter, 'adapter_model.safetensors'))).toBe(true);
    const merged = fileURLToPath(result.artifacts.merged!);
    for (const file of ['config.json', 'model.safetensors', 'tokenizer.json']) expect(existsSync(join(merged, file))).toBe(true);
    // keep_last: 3 of the checkpoints at steps 4, 8, …, 24 remain, each verified against its manifest.
    expect(result.artifacts.checkpoints.map((checkpoint) => checkpoint.step)).toEqual([16, 20, 24]);
    const manifest = JSON.parse(readFileSync(fileURLToPath(result.artifacts.run_manifest), 'utf8'));
    expect(manifest.corrupt).toEqual([]);

    const status = await getRunStatus(cluster().client, handle.workflowId);
    expect(status).toMatchObject({ status: 'completed', stage: 'done', step: 24, total_steps: 24 });
    expect(status.artifacts?.adapter).toBe(adapter);
    expect(status.metrics?.tuned_val_loss).toBe(result.metrics.tuned_val_loss);
  });

  it('fails at once, without retrying, when the dataset does not exist', async () => {
    const spec = parseSpec({ model: { source: 'tiny-random-llama' }, dataset: { path: 'no-such-file.jsonl' } }, cluster().home);
    const handle = await startFineTune(cluster().client, spec, { workflowId: `e2e-missing-${Date.now()}`, artifactRootUri: cluster().artifactRootUri });
    const started = Date.now();
    const failure = await handle.result().catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(WorkflowFailedError);
    const cause = (failure as WorkflowFailedError).cause?.cause as { type?: string; message: string } | undefined;
    expect(cause?.type).toBe(FailureType.DatasetNotFound);
    expect(cause?.message).toContain('no-such-file.jsonl');
    // failureOf gives back the error the activity threw, typed.
    const error = failureOf(failure);
    expect(isDatasetNotFoundError(error)).toBe(true);
    expect(error?.message).toContain('no-such-file.jsonl');
    expect(Date.now() - started).toBeLessThan(15_000);
    const history = await handle.fetchHistory();
    const attempts = history.events
      ?.filter((event) => event.activityTaskStartedEventAttributes)
      .map((event) => event.activityTaskStartedEventAttributes!.attempt);
    expect(attempts).toEqual([1]);
  });
});
