/**
 * A namespace per vitest worker: VITEST_POOL_ID numbers the workers that run files at the same time (1, 2, …), so
 * two files running side by side never share one, and a file's workers own tuneflow's task queues in it.
 */
const prefix = 'tuneflow-workflow-tests-';

export const workflowTestNamespaces = (count: number) => Array.from({ length: count }, (_, index) => `${prefix}${index + 1}`);

export function workflowTestNamespace(): string {
  const pool = Number(process.env.VITEST_POOL_ID ?? '1');
  return `${prefix}${pool}`;
}
