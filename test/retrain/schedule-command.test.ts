/** `tuneflow schedule …` as a user runs it against the run's dev server: one line per answer and per error. */
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';

const cli = fileURLToPath(new URL('../../scripts/tuneflow.mjs', import.meta.url));
const exampleSpec = fileURLToPath(new URL('../../examples/scheduled-retraining/spec.yaml', import.meta.url));

describe('tuneflow schedule', () => {
  it('creates (paused), lists, describes, unpauses, pauses and deletes; an unknown schedule is one line and exit 2', async () => {
    const home = await mkdtemp(join(inject('testRoot'), 'schedule-cli-'));
    const name = `weekly-${Date.now().toString(36)}`;
    const tuneflow = (...args: string[]) =>
      promisify(execFile)(process.execPath, [cli, 'schedule', ...args], {
        env: { ...process.env, TUNEFLOW_HOME: home, TEMPORAL_ADDRESS: inject('temporalAddress') },
        encoding: 'utf8',
      }).then(
        ({ stdout }) => ({ code: 0, stdout, stderr: '' }),
        (error: { code: number; stdout: string; stderr: string }) => error,
      );

    const created = await tuneflow('create', name, '--spec', exampleSpec, '--cron', '0 3 * * 1', '--timezone', 'Europe/Warsaw', '--paused', '--margin', '0.02');
    expect(created.stdout).toMatch(new RegExp(`^schedule ${name} created \\(paused\\); next run \\S+\\n$`));
    expect(JSON.parse((await tuneflow('list', '--json')).stdout)).toContainEqual({ name, paused: true, next_run: expect.any(String) });
    const described = JSON.parse((await tuneflow('describe', name, '--json')).stdout);
    expect(described).toMatchObject({ name, paused: true, spec_path: exampleSpec, model_name: name, recent_runs: [], running: [] });
    // Mondays at 03:00 in Warsaw: 02:00 or 01:00 UTC depending on daylight saving time.
    expect(new Date(described.next_runs[0]).getUTCDay()).toBe(1);
    expect([1, 2]).toContain(new Date(described.next_runs[0]).getUTCHours());

    const again = await tuneflow('create', name, '--spec', exampleSpec, '--every', '7d');
    expect(again.code).toBe(2);
    expect(again.stderr).toBe(
      `[tuneflow] error: schedule ${name} exists\n[tuneflow] hint: \`tuneflow schedule delete ${name}\` first, or choose another name\n`,
    );
    expect((await tuneflow('unpause', name)).stdout).toBe(`schedule ${name} unpaused\n`);
    expect((await tuneflow('pause', name)).stdout).toBe(`schedule ${name} paused\n`);
    expect((await tuneflow('delete', name)).stdout).toBe(`schedule ${name} deleted\n`);

    const missing = await tuneflow('describe', name);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toBe(`[tuneflow] error: no schedule named ${name}\n[tuneflow] hint: \`tuneflow schedule list\` shows them\n`);
    const both = await tuneflow('create', name, '--spec', exampleSpec);
    expect(both.code).toBe(2);
    expect(both.stderr).toBe(`[tuneflow] error: schedule ${name}: give exactly one of cron and every\n`);
  }, 120_000);
});
