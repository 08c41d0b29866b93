import { configDefaults, defineConfig } from 'vitest/config';

/** Tests that need no Temporal server and no worker: each makes its own temporary directories. */
const unitFiles = [
  'test/planner/**/*.test.ts',
  'test/data/**/*.test.ts',
  'test/registry/{lineage,registry,models-command}.test.ts',
  'test/setup/**/*.test.ts',
  'test/cli/{example-specs,unreachable-server}.test.ts',
  'test/contract.test.ts',
  'test/spec.test.ts',
  'test/sweep/grid-halving-pareto.test.ts',
  'test/quality/gates.test.ts',
  'test/runtime/{run-layout,workflow-bundle}.test.ts',
  'test/architecture/import-cycles.test.ts',
];
const workflowFiles = ['test/workflows/**/*.test.ts'];
/**
 * Long runs of the real workflows with a fake trainer (a million steps, a sweep of 120 trials): no Python, so they
 * run like the workflow tests, on a dev server of their own, a namespace per vitest worker.
 */
const historyBoundFiles = ['test/e2e/history-bound.test.ts', 'test/sweep/history-bound.test.ts'];
/** Each fault trial starts a dev server, workers and a home of its own: nothing shared with any other file. */
const faultFiles = ['test/faults/faults.test.ts'];
/**
 * The e2e files of the second lane (scripts/test.mjs), run beside the `e2e` project after pytest: about half of the
 * e2e files' time (session 8: 590 of 1,159 s), chosen by their measured times.
 */
const secondLaneEndToEndFiles = [
  'test/cli/lifecycle.test.ts',
  'test/cli/read-commands.test.ts',
  'test/retrain/scheduled-retraining.test.ts',
  'test/e2e/control.test.ts',
  'test/scale/takeover.test.ts',
  'test/cli/examples.test.ts',
];

// Temporal's native bridge and the Python worker do not mix with worker threads, so every test file runs in a
// forked process. Six projects; scripts/test.mjs runs them in two lanes at the same time (lane 1: group 0, then
// `e2e`; lane 2: pytest, then `e2e-2`). A plain `npx vitest run` runs the groups (sequence.groupOrder) in order:
// - group 0, two files at a time: `unit` (no server), `workflows` (the workflows' decisions with fake activities,
//   on a dev server of their own, a namespace per vitest worker; no Python), `history-bound` (long runs of the
//   workflows with a fake trainer, on a dev server of the same kind) and `faults` (the fault-injection
//   trials, each on a cluster of its own, two trials at a time). The faults file, the longest, holds one of the
//   two slots while every unit and workflow file runs in the other;
// - group 1, one file at a time each: `e2e` and `e2e-2`, on real workers and one dev server per project (global
//   setup). A project's files share tuneflow's task queues in the default namespace of its server, so one file at
//   a time; the two projects share nothing. (A vitest group shares one pool of maxWorkers, so running the two side
//   by side takes two vitest processes: scripts/test.mjs.)
export default defineConfig({
  test: {
    pool: 'forks',
    testTimeout: 300_000,
    hookTimeout: 300_000,
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: unitFiles, maxWorkers: 2, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: {
          name: 'workflows',
          include: workflowFiles,
          globalSetup: ['test/workflows/global-setup.ts'],
          // A hang check: a test takes one to a few seconds, longer while a file's tests all share the two cores.
          testTimeout: 60_000,
          maxWorkers: 2,
          // Each file's tests are concurrent (describe.concurrent), each on its own fakes (support/testbed.ts): a
          // test is round trips to the server, mostly waiting, so all of a file's tests start at once.
          maxConcurrency: 32,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'history-bound',
          include: historyBoundFiles,
          globalSetup: ['test/workflows/global-setup.ts'],
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        // Its trials are concurrent tests: two at a time.
        test: { name: 'faults', include: faultFiles, maxWorkers: 2, maxConcurrency: 2, sequence: { groupOrder: 0 } },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...unitFiles, ...workflowFiles, ...historyBoundFiles, ...faultFiles, ...secondLaneEndToEndFiles],
          globalSetup: ['test/setup/global-setup.ts'],
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e-2',
          include: secondLaneEndToEndFiles,
          globalSetup: ['test/setup/global-setup.ts'],
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
