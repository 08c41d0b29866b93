/**
 * Issue 15's promise: GPU workers on different machines share a run through S3, and when the machine training it
 * dies another worker resumes the run from the checkpoint in the bucket. Two Python workers, each with a working
 * directory of its own (nothing on disk is shared between them), one bucket of a real S3 server (SeaweedFS). The
 * one holding the train attempt is SIGKILLed mid-run; the other, which never saw the run's files, takes the attempt
 * when the heartbeat timeout runs out, downloads the newest trusted checkpoint and finishes with an adapter
 * byte-identical to the one an uninterrupted run on the filesystem produces.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { getRunStatus, startFineTune } from '../../src/client.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { objectBytes, type ScaleCluster, startScaleCluster } from './scale-cluster.ts';

const tinySpecPath = fileURLToPath(new URL('../../examples/tiny/spec.yaml', import.meta.url));
const base = loadSpec(tinySpecPath);
// A short heartbeat timeout stands for "the machine is gone": no worker on another machine can prove it dead.
const spec = {
  ...base,
  train: { ...base.train, max_steps: 24, heartbeat_timeout_seconds: 15 },
  checkpoint: { ...base.checkpoint, every_steps: 5 },
  merge: { ...base.merge, enabled: false },
};

const inBucket = (uri: string): Promise<boolean> =>
  objectBytes(uri).then(
    () => true,
    () => false,
  );

describe('two GPU workers sharing one S3 bucket', () => {
  let cluster: ScaleCluster;
  beforeAll(async () => {
    cluster = await startScaleCluster('takeover', inject('s3'), ['gpu-a', 'gpu-b']);
  });
  afterAll(async () => cluster?.stop());

  it('a run whose worker is SIGKILLed resumes on the other from the S3 checkpoint, byte-identical', { timeout: 600_000 }, async () => {
    const reference = await startFineTune(cluster.client, spec, {
      workflowId: `takeover-reference-${Date.now()}`,
      artifactRootUri: pathToFileURL(join(cluster.home, 'reference-artifacts')).href,
    }).then((handle) => handle.result());

    const workflowId = `takeover-${Date.now()}`;
    const handle = await startFineTune(cluster.client, spec, { workflowId, artifactRootUri: `s3://${cluster.bucket}/tuneflow` });
    let checkpointAtKill = 0;
    let victim = null;
    for (const deadline = Date.now() + 400_000; Date.now() < deadline && !victim; await sleep(200)) {
      const status = await getRunStatus(cluster.client, workflowId);
      // A checkpoint is uploaded in the background after the step that wrote it: the kill waits until one at step 10
      // or later is whole in the bucket (its manifest is uploaded last), so the survivor has it to resume from.
      if ((status.last_checkpoint?.step ?? 0) >= 10 && (await inBucket(`${status.last_checkpoint!.path}/manifest.json`))) {
        checkpointAtKill = status.last_checkpoint!.step;
        expect(status.last_checkpoint!.path).toMatch(/^s3:\/\//);
        victim = await cluster.trainingWorker(workflowId);
      }
    }
    expect(victim, 'a worker holds the train attempt after the 10th step').not.toBeNull();
    await victim!.process.kill();
    const survivor = cluster.workers.find((worker) => worker !== victim)!;

    const result = await handle.result();
    expect(result.training.final_step).toBe(24);
    // The survivor had none of the run's files: what it resumed from came from the bucket.
    expect(result.training.resumed_from_step).toBeGreaterThanOrEqual(checkpointAtKill);
    expect(result.training.steps_trained).toBe(24 - result.training.resumed_from_step);
    expect(result.artifacts.adapter).toBe(`s3://${cluster.bucket}/tuneflow/runs/${workflowId}/adapter`);
    const survivorRuns = join(survivor.cache, 'runs', cluster.bucket);
    expect(existsSync(survivorRuns) && readdirSync(survivorRuns).length).toBe(1);

    const adapter = await objectBytes(`${result.artifacts.adapter}/adapter_model.safetensors`);
    const referenceAdapter = readFileSync(join(fileURLToPath(reference.artifacts.adapter), 'adapter_model.safetensors'));
    expect(adapter.equals(referenceAdapter), 'the adapter is byte-identical to the uninterrupted run').toBe(true);

    // The run's record lists its checkpoints in the bucket, each complete.
    const status = await getRunStatus(cluster.client, workflowId);
    expect(status.artifacts?.run_manifest).toBe(`s3://${cluster.bucket}/tuneflow/runs/${workflowId}/run.json`);
    expect(status.artifacts?.checkpoints.length).toBeGreaterThan(0);
    for (const checkpoint of status.artifacts!.checkpoints) expect(checkpoint.path).toMatch(new RegExp(`^s3://${cluster.bucket}/tuneflow/runs/`));
    const manifest = JSON.parse((await objectBytes(status.artifacts!.run_manifest)).toString('utf8')) as { corrupt: unknown[] };
    expect(manifest.corrupt).toEqual([]);
  });
});
