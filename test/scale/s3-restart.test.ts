/**
 * The S3 server dies while checkpoints are being uploaded, and comes back: training never waits for it, uploads
 * retry, and the run completes. Then the GPU worker is SIGKILLed, so the next attempt must resume from the bucket,
 * where the newest "checkpoint" is one planted with a damaged object under an intact-looking manifest: it is skipped,
 * the newest checkpoint whose objects match their sha256 is resumed, and the adapter is byte-identical to an
 * uninterrupted run's. This file runs its own S3 server, so killing it disturbs no other test.
 */
import { CopyObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { s3ClientFromEnvironment } from '../../src/artifacts/index.ts';
import { getRunStatus, startFineTune } from '../../src/client.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { type S3TestServer, startS3Server } from '../support/s3-server.ts';
import { objectBytes, type ScaleCluster, startScaleCluster } from './scale-cluster.ts';

const tinySpecPath = fileURLToPath(new URL('../../examples/tiny/spec.yaml', import.meta.url));
const base = loadSpec(tinySpecPath);
const spec = {
  ...base,
  train: { ...base.train, max_steps: 16 },
  checkpoint: { ...base.checkpoint, every_steps: 2 },
  merge: { ...base.merge, enabled: false },
};

async function untilCheckpoint(cluster: ScaleCluster, workflowId: string, atLeast: number): Promise<number> {
  for (const deadline = Date.now() + 400_000; Date.now() < deadline; await sleep(200)) {
    const step = (await getRunStatus(cluster.client, workflowId)).last_checkpoint?.step ?? 0;
    if (step >= atLeast) return step;
  }
  throw new Error(`no checkpoint at step ${atLeast} within 400 s`);
}

describe('the S3 server restarted mid-upload', () => {
  let server: S3TestServer;
  let cluster: ScaleCluster;
  beforeAll(async () => {
    server = await startS3Server(await mkdtemp(join(inject('testRoot'), 's3-restart-server-')));
    cluster = await startScaleCluster('s3-restart', server, ['gpu-a']);
  });
  afterAll(async () => {
    await cluster?.stop();
    await server?.stop();
  });

  it('the run completes, and a checkpoint whose objects do not match its manifest is never resumed', { timeout: 600_000 }, async () => {
    const reference = await startFineTune(cluster.client, spec, {
      workflowId: `s3-restart-reference-${Date.now()}`,
      artifactRootUri: pathToFileURL(join(cluster.home, 'reference-artifacts')).href,
    }).then((handle) => handle.result());

    const workflowId = `s3-restart-${Date.now()}`;
    const runPrefix = `tuneflow/runs/${workflowId}`;
    const handle = await startFineTune(cluster.client, spec, { workflowId, artifactRootUri: `s3://${cluster.bucket}/tuneflow` });
    await untilCheckpoint(cluster, workflowId, 4);
    // Checkpoints go up every two steps: the server dies in the middle of the uploads, and training goes on.
    await server.kill();
    const stepWhenDown = await untilCheckpoint(cluster, workflowId, 6);
    await server.start();
    await untilCheckpoint(cluster, workflowId, stepWhenDown + 2);

    // The worker dies first, so that no upload or pruning changes the bucket while the test plants its checkpoint;
    // one with an empty cache must then resume from the bucket.
    await cluster.workers[0]!.process.kill();

    // A checkpoint ahead of every real one whose manifest is intact but one of whose objects is not.
    const s3 = s3ClientFromEnvironment();
    const listed = await s3.send(new ListObjectsV2Command({ Bucket: cluster.bucket, Prefix: `${runPrefix}/checkpoints/` }));
    const manifests = (listed.Contents ?? []).map((entry) => entry.Key!).filter((key) => key.endsWith('/manifest.json'));
    const newest = manifests
      .sort()
      .at(-1)!
      .replace(/\/manifest\.json$/, '');
    const planted = `${runPrefix}/checkpoints/step-00000015`;
    for (const key of (listed.Contents ?? []).map((entry) => entry.Key!).filter((key) => key.startsWith(`${newest}/`))) {
      const target = key.replace(newest, planted);
      if (key.endsWith('/training_state.pt')) {
        await s3.send(new PutObjectCommand({ Bucket: cluster.bucket, Key: target, Body: 'not the bytes the manifest hashed' }));
      } else if (!key.endsWith('/manifest.json')) {
        await s3.send(new CopyObjectCommand({ Bucket: cluster.bucket, Key: target, CopySource: `${cluster.bucket}/${key}` }));
      }
    }
    await s3.send(new CopyObjectCommand({ Bucket: cluster.bucket, Key: `${planted}/manifest.json`, CopySource: `${cluster.bucket}/${newest}/manifest.json` }));

    const replacement = await cluster.startGpuWorker('gpu-b');

    const result = await handle.result();
    expect(result.training.final_step).toBe(16);
    expect(result.training.resumed_from_step).toBeGreaterThan(0);
    expect(result.training.resumed_from_step).not.toBe(15);
    expect(result.training.resumed_from_step % 2).toBe(0);
    expect(readFileSync(replacement.process.logFile, 'utf8')).toMatch(/step-00000015 is not trusted and is skipped/);

    const adapter = await objectBytes(`${result.artifacts.adapter}/adapter_model.safetensors`);
    const referenceAdapter = readFileSync(join(fileURLToPath(reference.artifacts.adapter), 'adapter_model.safetensors'));
    expect(adapter.equals(referenceAdapter), 'the adapter is byte-identical to the uninterrupted run').toBe(true);
  });
});
