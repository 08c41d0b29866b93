#!/usr/bin/env node
// Runs every check of the project: every TypeScript test (vitest), every Python test (pytest), the linters
// (scripts/lint.mjs) and the benchmarks' CPU dry run (scripts/bench-dry-run.mjs); then prints one combined line,
// `N passed, N failed` (a failed lint or dry run counts as one failure). Exits non-zero when anything failed.
//
// In two lanes at the same time, for the two cores of the CI machine (most of an e2e file is waiting on its
// Python worker, so one core per lane is not idle time lost):
// - lane 1: vitest's group-0 projects (unit, workflows, history-bound, faults), then the `e2e` project;
// - lane 2: pytest, then the `e2e-2` project, then the linters, then the benchmarks' dry run.
// The two e2e projects are separate vitest processes with a dev server, S3 server and temporary root each
// (their global setups), so their files share nothing: every server listens on a port found free at its start
// (freePort), homes are directories of their own. Lane 2's output is prefixed with its phase's name. `npm test -- ARGS` runs vitest alone, once, with ARGS.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { phaseSummary, timedPhase } from './phases.mjs';
import { pythonActivitiesDirectory, readyEnvironment, repositoryRoot } from './python-environment.mjs';

const reports = mkdtempSync(join(tmpdir(), 'tuneflow-test-report-'));
process.env.TUNEFLOW_PHASE_LOG = join(reports, 'phases.tsv');
// glibc hands every buffer above the mmap threshold back to the kernel when freed and faults it in again when the
// next one is allocated: a training step of the tiny test model does that with tens of megabytes of logits, every
// step. With both thresholds at 1 GiB, one pytest training test took 1.0 s of kernel time instead of 3.2 s (8.2 s of
// user time either way; docs/development.md). The suite's processes (the Python workers, which take a value set here
// over their own: runtime/gpu-worker.ts, and pytest) run with them; nothing in the suite measures a process's RSS.
const oneGibibyte = String(1024 ** 3);
process.env.MALLOC_MMAP_THRESHOLD_ = oneGibibyte;
process.env.MALLOC_TRIM_THRESHOLD_ = oneGibibyte;
// One torch thread per process: the two lanes are two cores' worth of work already, and torch's default (a thread
// per core) in two or three trainings at once spins threads against each other. Measured in session 10's first
// two-lane run: e2e files that train (fine-tune 63 s, a 135M-model test 178 s) took 4-5 times their time alone
// (12.8 s) while the other lane ran the benchmarks' dry runs, two at a time.
process.env.OMP_NUM_THREADS = '1';
process.env.MKL_NUM_THREADS = '1';
const extraArguments = process.argv.slice(2);

/** Runs a command, its output passed on (each line after `prefix`, when given); resolves to { status }. */
function spawnPassingOutput(command, args, options, prefix) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { ...options, stdio: prefix ? ['ignore', 'pipe', 'pipe'] : 'inherit' });
    if (prefix) {
      for (const [stream, sink] of [
        [child.stdout, process.stdout],
        [child.stderr, process.stderr],
      ]) {
        createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY }).on('line', (line) => sink.write(`${prefix}${line}\n`));
      }
    }
    child.on('error', () => resolve({ status: 1 }));
    child.on('close', (code) => resolve({ status: code ?? 1 }));
  });
}

const vitestArguments = (outputFile, selection) => ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${outputFile}`, ...selection];

/** Passed and failed tests of a vitest run, from its JSON report (a run that failed without a failed test counts one). */
function vitestOutcome(outputFile, status) {
  try {
    const report = JSON.parse(readFileSync(outputFile, 'utf8'));
    return { report, passed: report.numPassedTests, failed: report.numFailedTests + (status === 0 ? 0 : report.numFailedTests === 0 ? 1 : 0) };
  } catch {
    return { report: null, passed: 0, failed: 1 };
  }
}

/** The slowest test files of vitest JSON reports: where the suite's time goes. */
function slowestFiles(reports, count = 8) {
  return reports
    .flatMap((report) => report?.testResults ?? [])
    .map((file) => ({ file: file.name.replace(`${repositoryRoot}/`, ''), seconds: (file.endTime - file.startTime) / 1000 }))
    .sort((a, b) => b.seconds - a.seconds)
    .slice(0, count)
    .map(({ file, seconds }) => `[vitest] ${seconds.toFixed(0).padStart(5)} s  ${file}`);
}

/** One vitest run as a phase; its output prefixed when it runs in lane 2. */
async function runVitest(name, selection, prefix) {
  const outputFile = join(reports, `${name.replaceAll(' ', '-')}.json`);
  const run = await timedPhase(name, () => spawnPassingOutput('npx', vitestArguments(outputFile, selection), { cwd: repositoryRoot }, prefix));
  return { status: run.status, ...vitestOutcome(outputFile, run.status) };
}

/**
 * A check script run as a phase (its output prefixed); a failure counts as one failed check. Run directly, not
 * through its npm script, whose set-up `npm test` has run already.
 */
async function runCheck(name, script) {
  const run = await timedPhase(name, () => spawnPassingOutput(process.execPath, [script], { cwd: repositoryRoot }, `[${name}] `));
  return { name, passed: run.status === 0 };
}

async function runPytest() {
  const junit = join(reports, 'pytest.xml');
  // Its own temporary directory: nothing of it is where an e2e test writes.
  const pytestArguments = ['-m', 'pytest', '-q', `--junitxml=${junit}`, `--basetemp=${join(reports, 'pytest-tmp')}`];
  const run = await timedPhase('pytest', () =>
    spawnPassingOutput(
      readyEnvironment().python,
      pytestArguments,
      { cwd: pythonActivitiesDirectory, env: { ...process.env, PYTHONPATH: pythonActivitiesDirectory } },
      '[pytest] ',
    ),
  );
  try {
    const suite = readFileSync(junit, 'utf8').match(/<testsuite [^>]*>/)?.[0] ?? '';
    const count = (name) => Number(suite.match(new RegExp(`${name}="(\\d+)"`))?.[1] ?? 0);
    const failed = count('failures') + count('errors');
    const passed = count('tests') - failed - count('skipped');
    return { status: run.status, passed, failed: failed + (run.status === 0 || failed > 0 ? 0 : 1) };
  } catch {
    return { status: run.status, passed: 0, failed: 1 };
  }
}

const vitestRuns = [];
let python = { passed: 0, failed: 0 };
let checks = [];
if (extraArguments.length) {
  vitestRuns.push(await runVitest('vitest', extraArguments));
} else {
  const laneOne = async () => [await runVitest('vitest', ['--project=!e2e*']), await runVitest('vitest e2e', ['--project=e2e'])];
  const laneTwo = async () => {
    const pytest = await runPytest();
    const e2e = await runVitest('vitest e2e-2', ['--project=e2e-2'], '[e2e-2] ');
    const lint = await runCheck('lint', 'scripts/lint.mjs');
    const benchDryRun = await runCheck('bench-dry-run', 'scripts/bench-dry-run.mjs');
    return { pytest, e2e, checks: [lint, benchDryRun] };
  };
  const [laneOneRuns, laneTwoRuns] = await Promise.all([laneOne(), laneTwo()]);
  vitestRuns.push(...laneOneRuns, laneTwoRuns.e2e);
  python = laneTwoRuns.pytest;
  checks = laneTwoRuns.checks;
}
console.log(['', 'slowest test files:', ...slowestFiles(vitestRuns.map((run) => run.report))].join('\n'));
const typescript = { passed: vitestRuns.reduce((sum, run) => sum + run.passed, 0), failed: vitestRuns.reduce((sum, run) => sum + run.failed, 0) };
const failedChecks = checks.filter((check) => !check.passed);
const passed = typescript.passed + python.passed;
const failed = typescript.failed + python.failed + failedChecks.length;
const phases = phaseSummary();
if (phases.length) console.log(['', ...phases].join('\n'));
console.log(`\nTypeScript: ${typescript.passed} passed, ${typescript.failed} failed; Python: ${python.passed} passed, ${python.failed} failed`);
if (checks.length) console.log(`Checks: ${checks.map((check) => `${check.name} ${check.passed ? 'ok' : 'FAILED'}`).join(', ')}`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
