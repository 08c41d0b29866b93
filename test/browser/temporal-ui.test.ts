/**
 * The Temporal Web UI of the test dev server, in a real browser: a finished tuneflow run is found by its
 * TuneflowModel search attribute, opened, and its status, stage and attributes are on the page. The screenshot is
 * kept under the test root (TUNEFLOW_KEEP_TEST_ROOT=1 keeps the root) and its path printed.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { startFineTune } from '../../src/client.ts';
import { SearchAttribute } from '../../src/contract/index.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { useTestCluster } from '../support/cluster.ts';
import { launchChromium } from './chromium.ts';

const tinySpecPath = fileURLToPath(new URL('../../examples/tiny/spec.yaml', import.meta.url));

describe('the Temporal Web UI shows a tuneflow run', () => {
  const cluster = useTestCluster('browser');
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
  });

  test('found by TuneflowModel, opened, with status, stage and attributes visible', async () => {
    const base = loadSpec(tinySpecPath);
    const workflowId = `browser-${Date.now()}`;
    const spec = { ...base, train: { ...base.train, max_steps: 8 }, merge: { ...base.merge, enabled: false } };
    const handle = await startFineTune(cluster().client, spec, { workflowId, artifactRootUri: cluster().artifactRootUri });
    await handle.result();

    const page = await browser.newPage({ viewport: { width: 1440, height: 1400 } });
    const query = `${SearchAttribute.Model.name}="${spec.model.source}"`;
    await page.goto(`${inject('temporalUiUrl')}/namespaces/default/workflows?query=${encodeURIComponent(query)}`);
    const link = page.getByRole('link', { name: workflowId });
    await link.waitFor({ timeout: 60_000 });
    await link.click();
    await page.waitForURL(new RegExp(`/workflows/${workflowId}/`));
    await expect.poll(() => page.getByText('Completed', { exact: true }).first().isVisible(), { timeout: 30_000 }).toBe(true);

    const body = page.locator('body');
    for (const attribute of [SearchAttribute.Model.name, SearchAttribute.Stage.name, SearchAttribute.Status.name]) {
      await expect.poll(() => body.innerText(), { timeout: 30_000 }).toContain(attribute);
    }
    const text = await body.innerText();
    expect(text).toContain('tiny-random-llama');
    expect(text).toMatch(/TuneflowStage\s*\n?\s*done/);

    const screenshot = join(inject('testRoot'), `temporal-ui-${workflowId}.png`);
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`screenshot: ${screenshot}`);
  });
});
