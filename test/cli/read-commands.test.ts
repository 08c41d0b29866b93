/**
 * The read commands (`list`, `status`, `status --follow`, `logs`, `report`) driven through the real bin against
 * the test dev server, with real workers and the tiny model: one run that a Python worker restart interrupts,
 * followed live by `status --follow`, then read back every way a user can.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { describe, expect, inject, test } from 'vitest';
import { getRunStatus } from '../../src/client.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { useTestCluster } from '../support/cluster.ts';
import { startCli } from './cli-process.ts';

const tinySpecPath = fileURLToPath(new URL('../../examples/tiny/spec.yaml', import.meta.url));

describe('tuneflow read commands on a real run', () => {
  const cluster = useTestCluster('cli-read');
  const workflowId = `cli-read-${Date.now()}`;
  let environment: Record<string, string>;

  /** Runs the bin to its end; returns its exit code and what it printed (stdout and stderr apart). */
  async function tuneflow(...args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
    const cli = startCli(args, environment);
    let stdout = '';
    let stderr = '';
    cli.child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    cli.child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const { code } = await cli.waitForExit(120_000);
    return { code, stdout, stderr };
  }

  test('status --follow draws progress across a worker restart and says where it resumed', async () => {
    const home = await mkdtemp(join(inject('testRoot'), 'cli-read-home-'));
    environment = { TEMPORAL_ADDRESS: inject('temporalAddress'), TUNEFLOW_HOME: cluster().home };
    const base = loadSpec(tinySpecPath);
    const specFile = join(home, 'spec.yaml');
    writeFileSync(specFile, stringify({ ...base, train: { ...base.train, max_steps: 24 }, checkpoint: { ...base.checkpoint, every_steps: 4 } }));

    const started = await tuneflow('run', specFile, '--detach', '--id', workflowId, '--json');
    expect(started.code, started.stderr).toBe(0);
    expect(JSON.parse(started.stdout)).toEqual({ workflow_id: workflowId });

    const follower = startCli(['status', workflowId, '--follow'], environment);
    for (const deadline = Date.now() + 240_000; Date.now() < deadline; await sleep(200)) {
      if (((await getRunStatus(cluster().client, workflowId)).last_checkpoint?.step ?? 0) >= 8) break;
    }
    await cluster().killGpuWorker();
    await cluster().startGpuWorker();
    const { code } = await follower.waitForExit(300_000);
    if (code !== 0) follower.child.kill('SIGKILL');
    expect(code, follower.output()).toBe(0);
    expect(follower.output()).toMatch(/resumed from step \d+/);
    expect(follower.output()).toMatch(/train · step \d+\/24 · loss \d+\.\d{4}/);
    expect(follower.output()).toContain(`run ${workflowId} completed`);
    // Not a terminal: plain lines, no colour codes, no carriage-return redraws.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the escape character is what this test looks for.
    expect(follower.output()).not.toMatch(/\x1b\[|\r/);
  }, 600_000);

  test('list filters through the search attributes, in text and JSON', async () => {
    const byModel = await tuneflow('list', '--model', 'tiny-random-llama', '--stage', 'done', '--status', 'completed', '--json');
    expect(byModel.code, byModel.stderr).toBe(0);
    const runs = JSON.parse(byModel.stdout) as { workflow_id: string; status: string; stage: string; model: string; step: number }[];
    expect(runs.find((run) => run.workflow_id === workflowId)).toMatchObject({
      status: 'completed',
      stage: 'done',
      model: 'tiny-random-llama',
      step: 24,
      loss: expect.any(Number),
    });

    const other = await tuneflow('list', '--model', 'no-such-model', '--json');
    expect(JSON.parse(other.stdout)).toEqual([]);

    const text = await tuneflow('list', '--model', 'tiny-random-llama');
    expect(text.stdout.split('\n')[0]).toMatch(/^ID\s+STATUS\s+STAGE\s+MODEL\s+STEP\s+LOSS\s+STARTED$/);
    expect(text.stdout).toMatch(new RegExp(`${workflowId}\\s+completed\\s+done\\s+tiny-random-llama\\s+24`));

    const badStage = await tuneflow('list', '--stage', 'baking');
    expect(badStage.code).toBe(2);
    expect(badStage.stderr).toContain("option '--stage <stage>' argument 'baking' is invalid");
  });

  test('status --json carries metrics and artifacts; an unknown id is one line and exit 3', async () => {
    const status = await tuneflow('status', workflowId, '--json');
    expect(status.code).toBe(0);
    const report = JSON.parse(status.stdout) as {
      status: string;
      step: number;
      resumes: number;
      metrics: { tuned_val_loss: number };
      artifacts: { adapter: string };
    };
    expect(report).toMatchObject({ status: 'completed', step: 24 });
    expect(report.resumes).toBeGreaterThanOrEqual(1);
    expect(existsSync(report.artifacts.adapter)).toBe(true);
    expect(report.metrics.tuned_val_loss).toBeGreaterThan(0);

    const unknown = await tuneflow('status', 'no-such-run');
    expect(unknown.code).toBe(3);
    expect(unknown.stderr.trim().split('\n')).toEqual([
      '[tuneflow] error: no run with id no-such-run',
      '[tuneflow] hint: `tuneflow list` shows the runs this server knows',
    ]);
  });

  test('logs prints the train log, resumed steps included', async () => {
    const logs = await tuneflow('logs', workflowId, '--json');
    expect(logs.code, logs.stderr).toBe(0);
    const records = JSON.parse(logs.stdout) as { step: number; attempt: number; loss: number }[];
    expect(records.at(-1)!.step).toBe(24);
    expect(new Set(records.map((record) => record.attempt)).size).toBeGreaterThanOrEqual(2);
    const tail = await tuneflow('logs', workflowId, '--tail', '2');
    expect(tail.stdout.trim().split('\n')).toHaveLength(2);
    expect(tail.stdout).toMatch(/^step\s+24\s+loss \d+\.\d{4}\s+lr /m);
  });

  test('report writes HTML with inline SVG charts, PNG and SVG files, evaluation, samples and artifacts', async () => {
    const out = join(cluster().home, 'report');
    const report = await tuneflow('report', workflowId, '--out', out, '--json');
    expect(report.code, report.stderr).toBe(0);
    const written = JSON.parse(report.stdout) as { html: string; charts: { svg: string; png: string }[] };
    expect(written.charts.map((chart) => chart.png.split('/').at(-1))).toEqual(['loss.png', 'learning-rate.png', 'throughput.png']);
    for (const chart of written.charts) {
      expect(readFileSync(chart.png).subarray(1, 4).toString()).toBe('PNG');
      expect(readFileSync(chart.svg, 'utf8')).toMatch(/^<svg/);
    }
    const html = readFileSync(written.html, 'utf8');
    for (const heading of ['Training', 'Plan vs actual', 'Evaluation: base vs tuned', 'Sample generations', 'Artifacts'])
      expect(html).toContain(`<h2>${heading}</h2>`);
    expect(html.match(/<svg/g)?.length).toBe(3);
    expect(html).toContain('adapter/adapter_model.safetensors');
    expect(html).toMatch(/[0-9a-f]{64}/);
    // Self-contained: nothing is fetched when it opens.
    expect(html).not.toMatch(/<script|<link|src="http|href="http/);

    const running = await tuneflow('report', 'no-such-run');
    expect(running.code).toBe(3);
  });

  test('help shows examples and the exit codes; colours stay off when not a terminal', async () => {
    for (const command of ['run', 'status', 'list', 'logs', 'report', 'dev', 'prepare', 'plan']) {
      const help = await tuneflow(command, '--help');
      expect(help.code).toBe(0);
      expect(help.stdout, command).toMatch(/Examples:\n {2}\$ tuneflow /);
    }
    const top = await tuneflow('--help');
    expect(top.stdout).toContain('Exit codes:');
    expect(top.stdout).toMatch(/3 {4}no run has that id/);
    const plain = startCli(['status', 'no-such-run'], { ...environment, NO_COLOR: '' });
    await plain.waitForExit(60_000);
    expect(plain.output()).not.toContain('\x1b[');
  });
});
