import { configDefaults, defineConfig } from 'vitest/config';

// Temporal's native bridge and the Python worker do not mix with worker threads, so every test file runs in a
// forked process. Two projects, each with its own dev server (global setup):
// - `workflows`: the workflows' decisions with fake activities (test/workflows), no Python, seconds in all;
// - `e2e`: everything else, on real workers. Its files run one after another: they share the server's task queues,
//   and two cores are better spent on one training at a time.
export default defineConfig({
  test: {
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 300_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'workflows',
          include: ['test/workflows/**/*.test.ts'],
          globalSetup: ['test/workflows/global-setup.ts'],
          testTimeout: 30_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, 'test/workflows/**'],
          globalSetup: ['test/setup/global-setup.ts'],
        },
      },
    ],
  },
});
