/**
 * The Temporal Web UI of the test dev server, in a real browser: a finished tuneflow run is found by its
 * TuneflowModel search attribute, opened, and its status, stage, attributes (the final step among them) and current
 * details are on the page. The screenshot is kept under the test root (TUNEFLOW_KEEP_TEST_ROOT=1 keeps the root) and
 * its path printed; docs/report-example/temporal-ui.png is a copy of one.
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

  test('found by TuneflowModel, opened, with status, stage, attributes and current details visible', async () => {
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

    // The rendered markdown of the details may sit in a frame of its own: read every frame's text.
    const pageText = async () =>
      (
        await Promise.all(
          page.frames().map((frame) =>
            frame
              .locator('body')
              .innerText()
              .catch(() => ''),
          ),
        )
      ).join('\n');
    const screenshot = async (name: string) => {
      const path = join(inject('testRoot'), `temporal-ui-${name}-${workflowId}.png`);
      await page.screenshot({ path, fullPage: true });
      console.log(`screenshot: ${path}`);
    };

    // The workflow's current details (setCurrentDetails, served by the metadata query): the run's final state.
    await page.getByRole('tab', { name: 'User Metadata' }).click();
    await expect.poll(pageText, { timeout: 30_000 }).toContain('Current Details');
    await expect.poll(pageText, { timeout: 30_000 }).toMatch(/Step\s+8 of 8/);
    const details = await pageText();
    expect(details).toMatch(/Stage\s+done/);
    expect(details).toMatch(/Status\s+completed/);
    expect(details).toMatch(/Loss\s+\d+\.\d{4}/);
    expect(details).toMatch(/Last checkpoint\s+step 8/);
    await screenshot('details');

    // The search attributes, the final step and loss among them.
    await page.getByRole('tab', { name: 'Search Attributes' }).click();
    for (const attribute of Object.values(SearchAttribute)) {
      await expect.poll(pageText, { timeout: 30_000 }).toContain(attribute.name);
    }
    const attributes = await pageText();
    expect(attributes).toMatch(/"TuneflowModel":\s*\[\s*"tiny-random-llama"/);
    expect(attributes).toMatch(/"TuneflowStage":\s*\[\s*"done"/);
    expect(attributes).toMatch(/"TuneflowStatus":\s*\[\s*"completed"/);
    expect(attributes).toMatch(/"TuneflowStep":\s*\[\s*8\s*\]/);
    expect(attributes).toMatch(/"TuneflowLoss":\s*\[\s*\d+\.\d+/);
    await screenshot('attributes');
  });
});
