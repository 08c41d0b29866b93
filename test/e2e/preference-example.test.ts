/**
 * examples/preference, run as its user would run it, on the real dev server with the tiny model: one workflow
 * trains SFT, merges it, then trains DPO on the merged SFT model, two named runs with their own folders and
 * training children, and scores the held-out pairs (reward accuracy and margin, base vs tuned).
 */
import { Client, Connection } from '@temporalio/client';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PreferenceWorkers } from '../../examples/preference/worker.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { trainingWorkflowId } from '../../workflows/index.ts';

const runFile = promisify(execFile);
const examplePath = (path: string) => fileURLToPath(new URL(`../../examples/preference/${path}`, import.meta.url));
let example: { client: typeof import('../../examples/preference/client.ts'); worker: typeof import('../../examples/preference/worker.ts') };

describe('examples/preference', () => {
  let workers: PreferenceWorkers;
  let client: Client;
  let home: string;
  beforeAll(async () => {
    // The example imports the package as a user does: from dist/, built here if a source changed.
    await runFile(process.execPath, [fileURLToPath(new URL('../../scripts/build.mjs', import.meta.url))]);
    example = { client: await import('../../examples/preference/client.ts'), worker: await import('../../examples/preference/worker.ts') };
    home = await mkdtemp(join(inject('testRoot'), 'preference-'));
    process.env.TUNEFLOW_HOME = home;
    workers = await example.worker.startPreferenceWorkers({ address: inject('temporalAddress'), logDirectory: home });
    client = new Client({ connection: await Connection.connect({ address: inject('temporalAddress') }) });
  });
  afterAll(async () => {
    await workers?.shutdown();
    await client?.connection.close();
  });

  it('trains SFT, then DPO on the merged SFT model, in one workflow with two runs', { timeout: 900_000 }, async () => {
    const tiny = (spec: ReturnType<typeof loadSpec>, steps: number) => ({
      ...spec,
      model: { ...spec.model, source: 'tiny-random-llama' },
      train: { ...spec.train, max_steps: steps },
    });
    const sft = tiny(loadSpec(examplePath('sft.yaml')), 4);
    const dpo = loadSpec(examplePath('spec.yaml'));
    const workflowId = `preference-${Date.now()}`;
    const result = await example.client.runPreferenceTune(client, { ...dpo, train: { ...dpo.train, max_steps: 4 } }, sft, workflowId);

    // Two runs of one workflow, each in its own folder with its own manifest and training child.
    const runs = join(home, 'artifacts', 'runs', workflowId);
    expect(fileURLToPath(result.sft.run_uri)).toBe(join(runs, 'sft'));
    expect(fileURLToPath(result.dpo.run_uri)).toBe(join(runs, 'dpo'));
    for (const name of ['sft', 'dpo']) {
      const manifest = JSON.parse(readFileSync(join(runs, name, 'run.json'), 'utf8')) as { run_name: string; spec: { train: { objective: { kind: string } } } };
      expect(manifest.run_name).toBe(name);
      expect(manifest.spec.train.objective.kind).toBe(name);
      expect((await client.workflow.getHandle(trainingWorkflowId(workflowId, name)).describe()).status.name).toBe('COMPLETED');
    }
    // DPO trained on the SFT run's merged model.
    expect(existsSync(join(fileURLToPath(result.sft.merged.merged_uri), 'config.json'))).toBe(true);
    const dpoManifest = JSON.parse(readFileSync(join(runs, 'dpo', 'run.json'), 'utf8')) as { spec: { model: { source: string } }; sft_run_uri: string };
    expect(dpoManifest.spec.model.source).toBe(fileURLToPath(result.sft.merged.merged_uri));
    expect(dpoManifest.sft_run_uri).toBe(result.sft.run_uri);
    // The held-out pairs scored for both models.
    const preference = result.dpo.evaluation?.preference;
    expect(preference?.base.pairs).toBe(12);
    expect(preference?.tuned.pairs).toBe(12);
    expect(preference?.tuned.reward_accuracy).toBeGreaterThanOrEqual(0);
  });
});
