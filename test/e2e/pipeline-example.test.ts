/**
 * examples/pipeline, run as its user would run it, on the real dev server with the tiny model: its own worker
 * (its workflow file bundled from `tuneflow/workflow`, its own activity) beside tuneflow's orchestration and GPU
 * workers from `tuneflow/worker`, all from the built package.
 */
import { Client, Connection } from '@temporalio/client';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PipelineWorkers } from '../../examples/pipeline/worker.ts';
import type { Review } from '../../examples/pipeline/workflows.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { trainingWorkflowId } from '../../workflows/index.ts';

const runFile = promisify(execFile);
const examplePath = (path: string) => fileURLToPath(new URL(`../../examples/${path}`, import.meta.url));
const heldOutRows = 16;
// The example's modules import the built package: they are loaded once the build is current (beforeAll).
let example: { client: typeof import('../../examples/pipeline/client.ts'); worker: typeof import('../../examples/pipeline/worker.ts') };

describe('examples/pipeline', () => {
  let workers: PipelineWorkers;
  let client: Client;
  let home: string;
  beforeAll(async () => {
    // The example imports the package as a user does: from dist/, built here if a source changed.
    await runFile(process.execPath, [fileURLToPath(new URL('../../scripts/build.mjs', import.meta.url))]);
    example = { client: await import('../../examples/pipeline/client.ts'), worker: await import('../../examples/pipeline/worker.ts') };
    home = await mkdtemp(join(inject('testRoot'), 'pipeline-'));
    workers = await example.worker.startPipelineWorkers({ address: inject('temporalAddress'), logDirectory: home });
    client = new Client({ connection: await Connection.connect({ address: inject('temporalAddress') }) });
  });
  afterAll(async () => {
    await workers?.shutdown();
    await client?.connection.close();
  });

  it('prepares two datasets in parallel, trains, judges the held-out answers, waits for approval, then merges', { timeout: 900_000 }, async () => {
    const tiny = loadSpec(examplePath('tiny/spec.yaml'));
    const spec = { ...tiny, train: { ...tiny.train, max_steps: 8 } };
    const { decide, pipelineInput, review, startReviewedFineTune } = example.client;
    const input = pipelineInput(spec, examplePath('pipeline/held-out.jsonl'), pathToFileURL(join(home, 'artifacts')).href);
    const workflowId = `pipeline-${Date.now()}`;
    const handle = await startReviewedFineTune(client, input, workflowId);

    let scored: Review | null = null;
    for (const deadline = Date.now() + 600_000; scored === null && Date.now() < deadline; await sleep(500)) {
      scored = await review(client, workflowId).catch(() => null);
    }
    expect(scored).not.toBeNull();
    const { evaluation, judgement } = scored!;
    // Every held-out row was scored, and our activity judged both sample answers.
    expect(evaluation.val_rows).toBe(heldOutRows);
    expect(judgement.answers).toBe(2);
    expect(judgement.json_answers).toBeLessThanOrEqual(judgement.answers);
    expect(judgement.exact_answers).toBeLessThanOrEqual(judgement.json_answers);
    expect(judgement.loss_improvement).toBeCloseTo(evaluation.base_val_loss! - evaluation.tuned_val_loss!, 10);

    // Nothing is merged before the decision: the workflow waits for it.
    await sleep(1_000);
    expect((await handle.describe()).status.name).toBe('RUNNING');
    expect(existsSync(join(home, 'artifacts', 'runs', workflowId, 'merged'))).toBe(false);

    await decide(client, workflowId, true, 'test');
    const result = await handle.result();
    expect(result.status).toBe('merged');
    expect(result.decision).toEqual({ approved: true, reviewer: 'test' });
    expect(result.train_rows).toBe(288);
    expect(result.held_out_rows).toBe(heldOutRows);
    if (result.status !== 'merged') return;
    expect(existsSync(join(fileURLToPath(result.merged.merged_uri), 'config.json'))).toBe(true);
    // Training ran as tuneflow's child workflow, where clients find it.
    expect((await client.workflow.getHandle(trainingWorkflowId(workflowId)).describe()).status.name).toBe('COMPLETED');
  });
});
