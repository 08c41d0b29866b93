/**
 * examples/preference, run as its user would run it, on the real dev server with the tiny model: one workflow
 * trains SFT, merges it, then trains DPO on the merged SFT model, two named runs with their own folders and
 * training children, and scores the held-out pairs (reward accuracy and margin, base vs tuned). Twice: the
 * example's own composed workflow (client.ts), and `tuneflow run spec.yaml` (fineTune's runs).
 */
import { Client, Connection } from '@temporalio/client';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import type { PreferenceWorkers } from '../../examples/preference/worker.ts';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import type { RunStatusReport } from '../../src/client.ts';
import type { RunSpec } from '../../src/spec/schema.ts';
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
    const tiny = (spec: RunSpec, steps: number) => ({
      ...spec,
      model: { ...spec.model, source: 'tiny-random-llama' },
      train: { ...spec.train, max_steps: steps },
    });
    // The DPO run's model is replaced by the SFT run's merged model: only the SFT run needs the tiny model.
    const { sft, dpo } = example.client.preferenceRuns(examplePath('spec.yaml'));
    const workflowId = `preference-${Date.now()}`;
    const result = await example.client.runPreferenceTune(client, { ...dpo, train: { ...dpo.train, max_steps: 4 } }, tiny(sft, 4), workflowId);

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
    const dpoManifest = JSON.parse(readFileSync(join(runs, 'dpo', 'run.json'), 'utf8')) as {
      spec: { model: { source: string } };
      started_from: { run: string; run_uri: string };
    };
    expect(dpoManifest.spec.model.source).toBe(fileURLToPath(result.sft.merged.merged_uri));
    expect(dpoManifest.started_from).toMatchObject({ run: 'sft', run_uri: result.sft.run_uri });
    // The held-out pairs scored for both models.
    const preference = result.dpo.evaluation?.preference;
    expect(preference?.base.pairs).toBe(12);
    expect(preference?.tuned.pairs).toBe(12);
    expect(preference?.tuned.reward_accuracy).toBeGreaterThanOrEqual(0);
  });

  it('`tuneflow run spec.yaml` trains the same two runs in fineTune: plans both first, then each in its own folder and child', {
    timeout: 900_000,
  }, async () => {
    // The example's spec on the tiny model, a few steps per run; dataset paths made absolute for the copy.
    const written = parseYaml(readFileSync(examplePath('spec.yaml'), 'utf8')) as {
      model: { source: string };
      runs: { name: string; dataset: { path: string }; train: Record<string, unknown> }[];
    };
    written.model.source = 'tiny-random-llama';
    for (const run of written.runs) {
      run.dataset.path = examplePath(run.dataset.path);
      run.train.max_steps = 3;
    }
    const specPath = join(home, 'preference.yaml');
    writeFileSync(specPath, stringifyYaml(written));
    const workflowId = `preference-cli-${Date.now()}`;
    const tuneflow = (...args: string[]) =>
      runFile(process.execPath, [fileURLToPath(new URL('../../scripts/tuneflow.mjs', import.meta.url)), ...args], {
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1', TEMPORAL_ADDRESS: inject('temporalAddress'), TUNEFLOW_HOME: home },
      });

    const run = await tuneflow('run', specPath, '--id', workflowId);
    // Both runs' plans are printed once planned, before the first one trains (its progress comes after them).
    expect(run.stderr).toMatch(
      /plan of 2 runs:\n {2}run sft \(sft\): 3 steps · peak [\d.]+ GiB of [\d.]+ GiB on \S+.*\n {2}run dpo \(dpo, from sft\): 3 steps/,
    );
    expect(run.stderr.indexOf('plan of 2 runs')).toBeLessThan(run.stderr.indexOf('run sft (1 of 2'));
    expect(run.stdout).toMatch(/completed: 2 runs[\s\S]*── run sft[\s\S]*── run dpo \(from sft\)[\s\S]*reward accuracy/);

    const status = JSON.parse((await tuneflow('status', workflowId, '--json')).stdout) as RunStatusReport;
    expect(status.status).toBe('completed');
    const runs = join(home, 'artifacts', 'runs', workflowId);
    expect(status.runs?.map(({ name, from, objective, stage, final_step, run: folder }) => ({ name, from, objective, stage, final_step, folder }))).toEqual([
      { name: 'sft', from: null, objective: 'sft', stage: 'done', final_step: 3, folder: join(runs, 'sft') },
      { name: 'dpo', from: 'sft', objective: 'dpo', stage: 'done', final_step: 3, folder: join(runs, 'dpo') },
    ]);
    // The dpo run trained on the sft run's merged model, and its evaluation scored the held-out pairs.
    const dpoManifest = JSON.parse(readFileSync(join(runs, 'dpo', 'run.json'), 'utf8')) as { spec: { model: { source: string } }; run_name: string };
    expect(dpoManifest).toMatchObject({ run_name: 'dpo', spec: { model: { source: join(runs, 'sft', 'merged') } } });
    expect(status.metrics?.preference?.tuned.pairs).toBe(12);
    expect(status.runs![1]!.metrics?.preference?.base.pairs).toBe(12);
    for (const name of ['sft', 'dpo']) {
      expect((await client.workflow.getHandle(trainingWorkflowId(workflowId, name)).describe()).status.name).toBe('COMPLETED');
      expect(
        readFileSync(join(runs, name, 'train_log.jsonl'), 'utf8')
          .trim()
          .split('\n'),
      ).toHaveLength(3);
    }
    expect((await tuneflow('status', workflowId)).stdout).toMatch(/run sft · done · 3 steps[\s\S]*run dpo · done · 3 steps · train loss [\d.]+/);

    const reports = JSON.parse((await tuneflow('report', workflowId, '--json')).stdout) as { run: string; html: string }[];
    expect(reports.map(({ run: name, html }) => [name, html])).toEqual([
      ['sft', join(runs, 'sft', 'report', 'index.html')],
      ['dpo', join(runs, 'dpo', 'report', 'index.html')],
    ]);
    for (const { html } of reports) expect(existsSync(html)).toBe(true);
  });
});
