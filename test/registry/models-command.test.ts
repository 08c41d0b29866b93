/** `tuneflow models …` as a user runs it: the bin, a TUNEFLOW_HOME, one line per answer, one line per error. */
import { execFile } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ModelRegistry } from '../../src/registry/index.ts';
import { homeLayout } from '../../src/runtime/home.ts';
import { exampleVersion } from './example-version.ts';

const cli = fileURLToPath(new URL('../../scripts/tuneflow.mjs', import.meta.url));

describe('tuneflow models', () => {
  it('lists, promotes, diffs and rolls back; an unknown model is one line and exit 2', async () => {
    const home = await mkdtemp(join(tmpdir(), 'tuneflow-models-'));
    const registry = new ModelRegistry(homeLayout(home).artifactRoot);
    await registry.register(exampleVersion('people', { workflowId: 'run-1', valLoss: 1.5 }));
    await registry.register(exampleVersion('people', { workflowId: 'run-2', valLoss: 1.25 }));
    const tuneflow = (...args: string[]) =>
      promisify(execFile)(process.execPath, [cli, 'models', ...args], { env: { ...process.env, TUNEFLOW_HOME: home }, encoding: 'utf8' }).then(
        ({ stdout }) => ({ code: 0, stdout, stderr: '' }),
        (error: { code: number; stdout: string; stderr: string }) => error,
      );

    expect((await tuneflow('list')).stdout).toBe('people  2 version(s)  no champion\n');
    expect((await tuneflow('promote', 'people', '1')).stdout).toBe('people: v1 is the champion\n');
    expect((await tuneflow('promote', 'people', '2', '--expect-champion', '1')).stdout).toContain('people: v2 is the champion (was v1;');
    const stale = await tuneflow('promote', 'people', '1', '--expect-champion', '1');
    expect(stale.code).toBe(2);
    expect(stale.stderr).toBe('[tuneflow] error: cannot promote people version 1: the champion is 2, not 1 as expected\n');
    expect(JSON.parse((await tuneflow('diff', 'people', '1', '2', '--json')).stdout).metrics).toEqual([{ metric: 'val_loss', a: 1.5, b: 1.25, delta: -0.25 }]);
    expect((await tuneflow('rollback', 'people')).stdout).toBe('people: v1 is the champion again (v2 demoted)\n');
    expect(JSON.parse((await tuneflow('show', 'people', '--json')).stdout).champion.version).toBe(1);

    const unknown = await tuneflow('show', 'nobody');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toBe('[tuneflow] error: the registry has no model named nobody\n');
  }, 120_000);
});
