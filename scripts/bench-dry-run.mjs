#!/usr/bin/env node
// Every benchmark that drives the product, dry-run on this machine's CPU with small shapes, so that a contract,
// spec or planner change that breaks a benchmark breaks CI instead of a device call. The committed requests of the
// benchmarks must be what the product's code builds now (the *_requests.ts generators' --check); then each script
// runs its CPU dry run (TUNEFLOW_DRY_RUN_ON_CPU=1, --dry-run, --cpu-test, a small --bytes) or, where what it measures
// needs CUDA or a fault suite (fsdp_load.py, bench/faults), its --check of everything before the measurement; the
// planner scripts run as they would, their output sent to a scratch folder. Two benchmarks run at a time (much of
// each is imports and process start). Prints one line per benchmark with its seconds; exits non-zero when any failed.
// Not here: bench/statistics.ts (a helper the others import, no script) and bench/quality/quickstart.ts (it is
// `tuneflow demo`, SmolLM2-135M trained for minutes; the demo's suites and gates run in the e2e tests).
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cacheDirectory, pythonActivitiesDirectory, readyEnvironment, repositoryRoot } from './python-environment.mjs';

const pythonExecutable = readyEnvironment().python;
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
  pythonExecutable,
  [script, '--tokenizer', tokenizer, '--out', join(scratch, script), '--work', join(scratch, `${script}-work`), ...args],
  pythonEnvironment,
];
const planner = (script, ...args) => [script, 'npx', ['tsx', script, ...args], process.env];
const python = (script, ...args) => [script, pythonExecutable, [script, ...args], pythonEnvironment];
const scratchFile = (name) => join(scratch, name);

/** Each entry is one benchmark, or a list run in order (a later one reads what an earlier one wrote). */
const benchmarks = [
  planner('bench/gpu/train_requests.ts', '--check'),
  planner('bench/gpu/multi_process_requests.ts', '--check'),
  planner('bench/gpu/bench_lora_requests.ts', '--check'),
  planner('bench/cpu/calibration_requests.ts', '--check'),
  planner('bench/gpu/plan_real_data.ts'),
  planner('bench/gpu/plan_multi_process.ts'),
  planner('bench/planner/benchmark.ts', '--out', scratchFile('planner-benchmark.json')),
  planner('bench/planner/fit-calibration.ts', '--fit', '--out', scratchFile('calibration-fit.json')),
  planner('bench/planner/compare.ts', 'bench/gpu/unfitted'),
  planner('bench/planner/fit-int8.ts'),
  [
    planner('bench/data/prepare-1gb.ts', '--bytes', '2000000', '--trials', '1'),
    planner('bench/data/row-stages.ts', '/tmp/tuneflow-bench/prepare-2000000.jsonl', scratchFile('row-stages.json')),
  ],
  planner('bench/faults/run.ts', '--check'),
  planner('bench/cpu/worker-start.ts', '--starts', '1', '--out', scratchFile('worker-start.json')),
  dryRun('bench/gpu/fastest_fit.py'),
  dryRun('bench/gpu/real_data.py', '--quantization', 'none', '--skip-seed', '--runs', 'real-packed,real-unpacked'),
  dryRun('bench/gpu/activity_kill_resume.py'),
  python('bench/gpu/multi_process.py', '--tokenizer', tokenizer, '--out', scratchFile('multi-process'), '--runs', 'qlora-fsdp-2'),
  python('bench/gpu/fsdp_load.py', '--check'),
  python(
    'bench/gpu/bench_lora.py',
    '--cpu-test',
    '--plan',
    'tiny:a:1,2',
    '--out',
    scratchFile('bench-lora'),
    '--model-dir',
    scratchFile('bench-lora-models'),
    '--scratch',
    scratchFile('bench-lora-work'),
  ),
  python('bench/cpu/calibrate.py', '--dry-run', '--out', scratchFile('cpu-calibration')),
  dryRun('bench/gpu/dpo.py'),
];

function run([name, command, args, env]) {
  const began = Date.now();
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: repositoryRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout = (stdout + chunk).slice(-4000);
    });
    child.stderr.on('data', (chunk) => {
      stderr = (stderr + chunk).slice(-8000);
    });
    child.on('close', (status, signal) => {
      const passed = status === 0;
      if (!passed) process.stdout.write(`--- ${name} stdout (tail)\n${stdout}\n--- ${name} stderr (tail)\n${stderr}\n`);
      console.log(`[bench dry run] ${name}: ${passed ? 'ok' : `FAILED (exit ${status ?? signal})`} in ${((Date.now() - began) / 1000).toFixed(1)} s`);
      resolve(passed);
    });
  });
}

async function runInOrder(entry) {
  const steps = typeof entry[0] === 'string' ? [entry] : entry;
  const results = [];
  for (const step of steps) results.push(await run(step));
  return results;
}

// Arguments pick benchmarks by part of their name (`npm run bench:dry-run -- bench_lora calibrate`); none: all.
const picked = process.argv.slice(2);
const chosen =
  picked.length === 0
    ? benchmarks
    : benchmarks.filter((entry) => (typeof entry[0] === 'string' ? [entry] : entry).some(([name]) => picked.some((part) => name.includes(part))));
const concurrency = 2;
const started = Date.now();
const queue = [...chosen];
const outcomes = [];
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    for (let entry = queue.shift(); entry !== undefined; entry = queue.shift()) outcomes.push(...(await runInOrder(entry)));
  }),
);
const failed = outcomes.filter((passed) => !passed).length;
console.log(`[bench dry run] ${outcomes.length - failed} of ${outcomes.length} passed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
process.exitCode = failed > 0 ? 1 : 0;
