/**
 * The cached workflow bundle: one key per version of the code, and a bundle under that key is used as it is, with no
 * rebuild. (Building one is what every e2e and workflow test run does through its global setup.)
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tuneflowWorkflowBundle, workflowBundleKey, workflowBundlesDirectory } from '../../src/runtime/workflow-bundle.ts';

describe('the cached workflow bundle', () => {
  const cacheBefore = process.env.TUNEFLOW_CACHE;
  afterEach(() => {
    if (cacheBefore === undefined) delete process.env.TUNEFLOW_CACHE;
    else process.env.TUNEFLOW_CACHE = cacheBefore;
  });

  it('keys the bundle by the code it is built from, the same key each time', () => {
    const key = workflowBundleKey();
    expect(key).toMatch(/^[0-9a-f]{24}$/);
    expect(workflowBundleKey()).toBe(key);
  });

  it('uses the bundle the cache holds for this code without building one', async () => {
    const cache = await mkdtemp(join(tmpdir(), 'tuneflow-bundle-cache-'));
    try {
      process.env.TUNEFLOW_CACHE = cache;
      await mkdir(workflowBundlesDirectory(), { recursive: true });
      const cached = join(workflowBundlesDirectory(), `${workflowBundleKey()}.js`);
      await writeFile(cached, '// the cached bundle');
      const started = performance.now();
      expect(await tuneflowWorkflowBundle()).toEqual({ codePath: cached });
      expect(performance.now() - started).toBeLessThan(1_000);
    } finally {
      await rm(cache, { recursive: true, force: true });
    }
  });
});
