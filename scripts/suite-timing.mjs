#!/usr/bin/env node
// Turns one run of the whole suite into the JSON that docs/development.md's figures come from:
//   (time bash .ci/run) > LOG 2>&1
//   node scripts/suite-timing.mjs LOG REPORT_DIRECTORY COMMIT > bench/results/suite-timing-DATE.json
// LOG is .ci/run's output with bash's `time` lines at the end; REPORT_DIRECTORY is the folder `npm test` wrote its
// reports to (/tmp/tuneflow-test-report-…: one vitest JSON per vitest phase, pytest's JUnit XML). It reads the
// phase table, the closing lines, the CPU time, and each test file's time.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const [logFile, reportDirectory, commit] = process.argv.slice(2);
if (!logFile || !reportDirectory || !commit) {
  console.error('usage: node scripts/suite-timing.mjs LOG REPORT_DIRECTORY COMMIT');
  process.exit(2);
}
const log = readFileSync(logFile, 'utf8');
const seconds = (minutes, rest) => Number(minutes) * 60 + Number(rest);

// The table `npm test` prints at its end: "[phase] NAME  M min S s  from M min S s".
const phases = [...log.matchAll(/^\[phase\] (.+?)\s+(\d+) min (\d+) s {2}from (\d+) min (\d+) s(.*)$/gm)].map((match) => ({
  name: match[1].trim(),
  seconds: seconds(match[2], match[3]),
  started_at_seconds: seconds(match[4], match[5]),
  failed: match[6].includes('failed'),
}));
const wallClock = log.match(/^\[phase\] total\s+(\d+) min (\d+) s/m);
const ciTotal = log.match(/^\[ci\] total: (\d+) min (\d+) s/m);
const cpu = Object.fromEntries(
  [...log.matchAll(/^(real|user|sys)\s+(\d+)m([\d.]+)s$/gm)].map((match) => [match[1], Math.round((Number(match[2]) * 60 + Number(match[3])) * 10) / 10]),
);
const closing = log.match(/^(\d+) passed, (\d+) failed$/m);
const byLanguage = log.match(/^TypeScript: (\d+) passed, (\d+) failed; Python: (\d+) passed, (\d+) failed$/m);
const checks = log.match(/^Checks: (.+)$/m)?.[1] ?? null;

const vitestFiles = readdirSync(reportDirectory)
  .filter((name) => name.startsWith('vitest') && name.endsWith('.json'))
  .flatMap((name) => {
    const report = JSON.parse(readFileSync(join(reportDirectory, name), 'utf8'));
    return report.testResults.map((file) => ({
      file: file.name.slice(file.name.indexOf('/test/') + 1),
      phase: name
        .replace(/\.json$/, '')
        .replaceAll('-', ' ')
        .replace('e2e 2', 'e2e-2'),
      seconds: Math.round(file.endTime - file.startTime) / 1000,
      tests: file.assertionResults.length,
      passed: file.assertionResults.filter((test) => test.status === 'passed').length,
    }));
  })
  .sort((a, b) => b.seconds - a.seconds);
const junit = readFileSync(join(reportDirectory, 'pytest.xml'), 'utf8').match(/<testsuite [^>]*>/)?.[0] ?? '';
const attribute = (name) => Number(junit.match(new RegExp(`${name}="([\\d.]+)"`))?.[1] ?? Number.NaN);

console.log(
  JSON.stringify(
    {
      what: 'One clean-clone run of .ci/run (npm test: two lanes) on the 2-core CI machine: phases, CPU, counts, per-file times',
      command: `git clone -b main REPOSITORY CLONE && cd CLONE && (time bash .ci/run) > LOG 2>&1; node scripts/suite-timing.mjs LOG REPORT_DIRECTORY ${commit}`,
      commit,
      ci_total_seconds: ciTotal ? seconds(ciTotal[1], ciTotal[2]) : null,
      phases_wall_clock_seconds: wallClock ? seconds(wallClock[1], wallClock[2]) : null,
      phases,
      cpu_seconds: cpu,
      totals: {
        passed: closing ? Number(closing[1]) : null,
        failed: closing ? Number(closing[2]) : null,
        typescript_passed: byLanguage ? Number(byLanguage[1]) : null,
        typescript_failed: byLanguage ? Number(byLanguage[2]) : null,
        python_passed: byLanguage ? Number(byLanguage[3]) : null,
        python_failed: byLanguage ? Number(byLanguage[4]) : null,
        checks,
      },
      pytest: { tests: attribute('tests'), failures: attribute('failures'), errors: attribute('errors'), seconds: attribute('time') },
      vitest_files: vitestFiles,
      versions: { node: process.version },
    },
    null,
    2,
  ),
);
