#!/usr/bin/env node
// The habits CI enforces before any test runs: the TypeScript typecheck, Biome (format and lint of the TypeScript)
// and ruff (lint and format of the Python, from tuneflow's Python environment). Prints one line per check and exits
// non-zero when any failed; `--fix` lets Biome and ruff rewrite what they can instead.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { readyEnvironment, repositoryRoot } from './python-environment.mjs';

const fix = process.argv.includes('--fix');
const ruff = join(readyEnvironment().directory, 'bin', 'ruff');
const checks = [
  ['typecheck', 'npx', ['tsc', '--noEmit']],
  ['biome', 'npx', fix ? ['biome', 'check', '--write', '.'] : ['biome', 'ci', '.']],
  ['ruff check', ruff, fix ? ['check', '--fix', '.'] : ['check', '.']],
  ['ruff format', ruff, fix ? ['format', '.'] : ['format', '--check', '.']],
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
