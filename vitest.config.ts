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
];
const workflowFiles = ['test/workflows/**/*.test.ts'];

// Temporal's native bridge and the Python worker do not mix with worker threads, so every test file runs in a
// forked process. Three projects, in two groups (sequence.groupOrder) that run one after the other:
// - group 0, two files at a time: `unit` (no server) and `workflows` (the workflows' decisions with fake
//   activities, on a dev server of their own, a namespace per vitest worker; no Python);
// - group 1, one file at a time: `e2e`, on real workers and one shared dev server (global setup). Its files share
//   tuneflow's task queues in the default namespace, and two cores are better spent on one training at a time.
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
          testTimeout: 30_000,
          maxWorkers: 2,
          sequence: { groupOrder: 0 },
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...unitFiles, ...workflowFiles],
          globalSetup: ['test/setup/global-setup.ts'],
          maxWorkers: 1,
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
