#!/usr/bin/env node
// Runs every TypeScript test (vitest) and every Python test (pytest), then prints one combined line:
// `N passed, N failed`. Exits non-zero when anything failed or a runner could not run.
//
// In two steps, for the two cores of the CI machine: first every vitest project but `e2e` (vitest.config.ts's group 0,
// two files at a time), then the `e2e` project (one file at a time, a core mostly waiting on its workers) and pytest
// at the same time. They share nothing: the e2e files' servers listen on ports the system picks, and their homes and
// pytest's temporary directories are directories of their own. `npm test -- ARGS` runs vitest alone, once, with ARGS.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { phaseSummary, timedPhase, timedPhasesTogether } from './phases.mjs';
import { pythonActivitiesDirectory, readyEnvironment, repositoryRoot } from './python-environment.mjs';

const reports = mkdtempSync(join(tmpdir(), 'tuneflow-test-report-'));
// .ci/run passes its own phase log (lint and the rest); a plain `npm test` keeps one of its own.
process.env.TUNEFLOW_PHASE_LOG ??= join(reports, 'phases.tsv');
const extraArguments = process.argv.slice(2);
/** The project that runs beside pytest: vitest.config.ts's group 1. */
const besidePytest = 'e2e';

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

function runVitest(name, selection) {
  const outputFile = join(reports, `${name.replaceAll(' ', '-')}.json`);
  const run = timedPhase(name, () => spawnSync('npx', vitestArguments(outputFile, selection), { cwd: repositoryRoot, stdio: 'inherit' }));
  return vitestOutcome(outputFile, run.status);
}

async function runVitestBesidePytest(name) {
  const outputFile = join(reports, `${name.replaceAll(' ', '-')}.json`);
  const run = await spawnPassingOutput('npx', vitestArguments(outputFile, [`--project=${besidePytest}`]), { cwd: repositoryRoot });
  return { status: run.status, ...vitestOutcome(outputFile, run.status) };
}

async function runPytest() {
  const junit = join(reports, 'pytest.xml');
  // Its own temporary directory: nothing of it is where an e2e test writes.
  const pytestArguments = ['-m', 'pytest', '-q', `--junitxml=${junit}`, `--basetemp=${join(reports, 'pytest-tmp')}`];
  const run = await spawnPassingOutput(
    readyEnvironment().python,
    pytestArguments,
    // One torch thread: the e2e files' workers train beside it on the other core, and two torch pools of two
    // threads each on two cores spin against each other. pytest is the shorter of the two phases, so it can take
    // the longer time one thread gives it without lengthening the run.
    { cwd: pythonActivitiesDirectory, env: { ...process.env, PYTHONPATH: pythonActivitiesDirectory, OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' } },
    '[pytest] ',
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
if (extraArguments.length) {
  vitestRuns.push(runVitest('vitest', extraArguments));
} else {
  vitestRuns.push(runVitest('vitest', [`--project=!${besidePytest}`]));
  const [e2e, pytest] = await timedPhasesTogether([
    { name: `vitest ${besidePytest}`, run: () => runVitestBesidePytest(`vitest ${besidePytest}`) },
    { name: 'pytest', run: runPytest },
  ]);
  vitestRuns.push(e2e);
  python = pytest;
}
console.log(['', 'slowest test files:', ...slowestFiles(vitestRuns.map((run) => run.report))].join('\n'));
const typescript = { passed: vitestRuns.reduce((sum, run) => sum + run.passed, 0), failed: vitestRuns.reduce((sum, run) => sum + run.failed, 0) };
const passed = typescript.passed + python.passed;
const failed = typescript.failed + python.failed;
const phases = phaseSummary();
if (phases.length) console.log(['', ...phases].join('\n'));
console.log(`\nTypeScript: ${typescript.passed} passed, ${typescript.failed} failed; Python: ${python.passed} passed, ${python.failed} failed`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
