/**
 * One home for all: `tuneflow prepare` without --out writes into TUNEFLOW_HOME's artifact store, where the
 * workflow's prepare stage looks, so the two share one cache.
 */
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, inject, test } from 'vitest';
import { startCli } from './cli-process.ts';

const data = fileURLToPath(new URL('../../examples/quickstart/data.jsonl', import.meta.url));

test('tuneflow prepare writes under $TUNEFLOW_HOME/artifacts', async () => {
  const home = await mkdtemp(join(inject('testRoot'), 'prepare-home-'));
  const cli = startCli(['prepare', data, '--val-count', '32', '--json'], { TUNEFLOW_HOME: home });
  const { code } = await cli.waitForExit(120_000);
  expect(code, cli.output()).toBe(0);
  const report = JSON.parse(cli.output().slice(cli.output().indexOf('{'))) as { train_uri: string; hash: string };
  expect(report.train_uri.startsWith(`file://${join(home, 'artifacts', 'datasets')}/`)).toBe(true);
  expect(existsSync(join(home, 'artifacts', 'datasets', report.hash, 'train.jsonl'))).toBe(true);
});
