import { defineConfig } from 'vitest/config';

// Temporal's native bridge and the Python worker do not mix with worker threads, so every test file runs in
// a forked process; one dev server serves the whole run.
export default defineConfig({
  test: {
    pool: 'forks',
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 300_000,
  },
});
