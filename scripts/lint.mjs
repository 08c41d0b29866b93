#!/usr/bin/env node
// The habits CI enforces before any test runs: the TypeScript typecheck, Biome (format and lint of the TypeScript),
// ruff (lint and format of the Python, from tuneflow's Python environment) and pyright (types of the Python worker,
// resolved against that environment's packages; its scope is [tool.pyright] in python-activities/pyproject.toml).
// Prints one line per check and exits non-zero when any failed; `--fix` lets Biome and ruff rewrite what they can.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { readyEnvironment, repositoryRoot } from './python-environment.mjs';

const fix = process.argv.includes('--fix');
const environment = readyEnvironment();
const ruff = join(environment.directory, 'bin', 'ruff');
const checks = [
  ['typecheck', 'npx', ['tsc', '--noEmit']],
  ['biome', 'npx', fix ? ['biome', 'check', '--write', '.'] : ['biome', 'ci', '.']],
  ['ruff check', ruff, fix ? ['check', '--fix', '.'] : ['check', '.']],
  ['ruff format', ruff, fix ? ['format', '.'] : ['format', '--check', '.']],
  ['pyright', 'npx', ['pyright', '--pythonpath', environment.python, '--project', 'python-activities']],
];

let failed = 0;
for (const [name, command, args] of checks) {
  const run = spawnSync(command, args, { cwd: repositoryRoot, stdio: 'inherit' });
  const passed = run.status === 0;
  if (!passed) failed += 1;
  console.log(`[lint] ${name}: ${passed ? 'ok' : 'FAILED'}`);
}
if (failed > 0) console.log(`[lint] ${failed} check(s) failed: \`npm run lint -- --fix\` fixes formatting and the fixable findings`);
process.exitCode = failed > 0 ? 1 : 0;
