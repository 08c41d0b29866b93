#!/usr/bin/env node
// Every benchmark that drives the product, dry-run on this machine's CPU with small shapes, so that a contract,
// spec or planner change that breaks a benchmark breaks CI instead of a device call. First the committed train
// requests of the GPU benchmarks must be what the product's code builds now (bench/gpu/train_requests.ts); then each
// script runs its CPU dry run (TUNEFLOW_DRY_RUN_ON_CPU=1, or its own --cpu-test) and the planner scripts run as
// they would, their output discarded. Prints one line per benchmark with its seconds; exits non-zero when any failed.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheDirectory, pythonActivitiesDirectory, readyEnvironment, repositoryRoot } from './python-environment.mjs';

const python = readyEnvironment().python;
const scratch = mkdtempSync(join(tmpdir(), 'tuneflow-bench-dry-run-'));
// The tokenizer the dry runs' tiny models are built with: the test model's, in the shared model cache.
const tokenizer = join(cacheDirectory(), 'models', 'tiny-random-llama');
const pythonEnvironment = {
  ...process.env,
  TUNEFLOW_DRY_RUN_ON_CPU: '1',
  HF_HUB_OFFLINE: '1',
  TRANSFORMERS_OFFLINE: '1',
  UNSLOTH_DISABLE_STATISTICS: '1',
  PYTHONPATH: pythonActivitiesDirectory,
};
const dryRun = (script, ...args) => [
  script,
  python,
  [script, '--tokenizer', tokenizer, '--out', join(scratch, script), '--work', join(scratch, `${script}-work`), ...args],
  pythonEnvironment,
];
const planner = (script, ...args) => [script, 'npx', ['tsx', script, ...args], process.env];

const benchmarks = [
  planner('bench/gpu/train_requests.ts', '--check'),
  planner('bench/gpu/plan_real_data.ts'),
  planner('bench/gpu/plan_multi_process.ts'),
  planner('bench/gpu/multi_process_requests.ts'),
  dryRun('bench/gpu/fastest_fit.py'),
  dryRun('bench/gpu/real_data.py', '--quantization', 'none', '--skip-seed', '--runs', 'real-packed,real-unpacked'),
  dryRun('bench/gpu/activity_kill_resume.py'),
  dryRun('bench/gpu/dpo.py'),
];

let failed = 0;
const started = Date.now();
for (const [name, command, args, env] of benchmarks) {
  const began = Date.now();
  const run = spawnSync(command, args, { cwd: repositoryRoot, env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  const passed = run.status === 0;
  if (!passed) {
    failed += 1;
    process.stdout.write(`${run.stdout ?? ''}`.slice(-4000));
    process.stderr.write(`${run.stderr ?? ''}`.slice(-8000));
  }
  console.log(`[bench dry run] ${name}: ${passed ? 'ok' : `FAILED (exit ${run.status ?? run.signal})`} in ${((Date.now() - began) / 1000).toFixed(1)} s`);
}
console.log(`[bench dry run] ${benchmarks.length - failed} of ${benchmarks.length} passed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exitCode = failed > 0 ? 1 : 0;
