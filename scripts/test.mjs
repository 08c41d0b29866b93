#!/usr/bin/env node
// Runs every TypeScript test (vitest) and every Python test (pytest), then prints one combined line:
// `N passed, N failed`. Exits non-zero when anything failed or a runner could not run.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { phaseSummary, timedPhase } from './phases.mjs';
import { pythonActivitiesDirectory, readyEnvironment, repositoryRoot } from './python-environment.mjs';

const reports = mkdtempSync(join(tmpdir(), 'tuneflow-test-report-'));
// .ci/run passes its own phase log (lint and the rest); a plain `npm test` keeps one of its own.
process.env.TUNEFLOW_PHASE_LOG ??= join(reports, 'phases.tsv');
const extraArguments = process.argv.slice(2);

/** The slowest test files of a vitest JSON report: where the suite's time goes. */
function slowestFiles(report, count = 8) {
  return report.testResults
    .map((file) => ({ file: file.name.replace(`${repositoryRoot}/`, ''), seconds: (file.endTime - file.startTime) / 1000 }))
    .sort((a, b) => b.seconds - a.seconds)
    .slice(0, count)
    .map(({ file, seconds }) => `[vitest] ${seconds.toFixed(0).padStart(5)} s  ${file}`);
}

function runVitest() {
  const outputFile = join(reports, 'vitest.json');
  const run = timedPhase('vitest', () =>
    spawnSync('npx', ['vitest', 'run', '--reporter=default', '--reporter=json', `--outputFile.json=${outputFile}`, ...extraArguments], {
      cwd: repositoryRoot,
      stdio: 'inherit',
    }),
  );
  try {
    const report = JSON.parse(readFileSync(outputFile, 'utf8'));
    console.log(['', 'slowest test files:', ...slowestFiles(report)].join('\n'));
    return { passed: report.numPassedTests, failed: report.numFailedTests + (run.status === 0 ? 0 : report.numFailedTests === 0 ? 1 : 0) };
  } catch {
    return { passed: 0, failed: 1 };
  }
}

function runPytest() {
  const junit = join(reports, 'pytest.xml');
  const run = timedPhase('pytest', () =>
    spawnSync(readyEnvironment().python, ['-m', 'pytest', '-q', `--junitxml=${junit}`], {
      cwd: pythonActivitiesDirectory,
      stdio: 'inherit',
      env: { ...process.env, PYTHONPATH: pythonActivitiesDirectory },
    }),
  );
  try {
    const suite = readFileSync(junit, 'utf8').match(/<testsuite [^>]*>/)?.[0] ?? '';
    const count = (name) => Number(suite.match(new RegExp(`${name}="(\\d+)"`))?.[1] ?? 0);
    const failed = count('failures') + count('errors');
    const passed = count('tests') - failed - count('skipped');
    return { passed, failed: failed + (run.status === 0 || failed > 0 ? 0 : 1) };
  } catch {
    return { passed: 0, failed: 1 };
  }
}

const typescript = runVitest();
const python = extraArguments.length ? { passed: 0, failed: 0 } : runPytest();
const passed = typescript.passed + python.passed;
const failed = typescript.failed + python.failed;
const phases = phaseSummary();
if (phases.length) console.log(['', ...phases].join('\n'));
console.log(`\nTypeScript: ${typescript.passed} passed, ${typescript.failed} failed; Python: ${python.passed} passed, ${python.failed} failed`);
console.log(`${passed} passed, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
