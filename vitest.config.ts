import { defineConfig } from 'vitest/config';

// Temporal's native bridge and the Python worker do not mix with worker threads, so every test file runs in
// a forked process. One dev server serves the whole run (global setup); files run one after another because
// they share its task queues and two cores are better spent on one training at a time.
export default defineConfig({
  test: {
    pool: 'forks',
    fileParallelism: false,
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/global-setup.ts'],
    testTimeout: 300_000,
    hookTimeout: 300_000,
  },
});
