/**
 * The built package as a user's project sees it: a directory outside the repository whose node_modules holds
 * tuneflow (and the Temporal SDK it would depend on too), used by plain `node`, without tsx. The entry points
 * import; a workflow file of the project's own that imports `tuneflow/workflow` bundles with the Temporal bundler
 * (which rejects any Node built-in reached from workflow code) and runs a tuneflow stage on the real dev server,
 * served by the orchestration worker of `tuneflow/worker`, which bundles the built package's workflows.
 */
import { execFile } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, inject, it } from 'vitest';

const runFile = promisify(execFile);
const repository = fileURLToPath(new URL('../../', import.meta.url));
let project: string;

/** Plain node in the project directory: the environment without any loader a test runner put there. */
const node = (...args: string[]) => {
  const { NODE_OPTIONS: _loader, ...environment } = process.env;
  return runFile(process.execPath, args, { cwd: project, env: environment, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
};

beforeAll(async () => {
  await runFile(process.execPath, [join(repository, 'scripts', 'build.mjs')]);
  project = await mkdtemp(join(inject('testRoot'), 'user-project-'));
  mkdirSync(join(project, 'node_modules'));
  symlinkSync(repository, join(project, 'node_modules', 'tuneflow'));
  symlinkSync(join(repository, 'node_modules', '@temporalio'), join(project, 'node_modules', '@temporalio'));
  cpSync(fileURLToPath(new URL('./user-project/', import.meta.url)), project, { recursive: true });
});

describe('the built package', () => {
  it.each(['tuneflow', 'tuneflow/workflow', 'tuneflow/worker'])('imports %s with plain node', async (entry) => {
    const { stdout } = await node('--input-type=module', '-e', `const m = await import('${entry}'); console.log(Object.keys(m).length)`);
    expect(Number(stdout)).toBeGreaterThan(3);
  });

  it('runs a workflow of its own that imports tuneflow/workflow, bundled by the Temporal bundler', { timeout: 300_000 }, async () => {
    const dataset = join(repository, 'examples', 'quickstart', 'data.jsonl');
    const artifactRoot = join(project, 'artifacts');
    const { stdout } = await node('run.mjs', inject('temporalAddress'), dataset, pathToFileURL(artifactRoot).href);
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(result).toMatchObject({ stage: 'prepare', train_rows: 288, val_rows: 32 });
    expect(existsSync(fileURLToPath(result.train_uri))).toBe(true);
  });
});
