/**
 * The examples run as written, on the tiny model so that they take seconds: examples/quickstart through
 * `tuneflow run`, examples/multi-day through its own pause-and-resume code.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { describe, expect, inject, test } from 'vitest';
import { getRunStatus } from '../../src/client.ts';
import { loadSpec } from '../../src/spec/load.ts';
import { pauseAndResume, specPath as multiDaySpecPath } from '../../examples/multi-day/pause-resume.ts';
import { useTestCluster } from '../support/cluster.ts';
import { startCli } from './cli-process.ts';

const quickstartSpecPath = fileURLToPath(new URL('../../examples/quickstart/spec.yaml', import.meta.url));

describe('examples', () => {
  const cluster = useTestCluster('examples');

  test('quickstart: tuneflow run trains, evaluates and prints base vs tuned', async () => {
    const quickstart = loadSpec(quickstartSpecPath);
    const spec = { ...quickstart, model: { ...quickstart.model, source: 'tiny-random-llama' }, train: { ...quickstart.train, max_steps: 6 } };
    const specFile = join(cluster().home, 'quickstart-tiny.yaml');
    writeFileSync(specFile, stringify(spec));
    const cli = startCli(['run', specFile, '--id', `quickstart-${Date.now()}`], { TEMPORAL_ADDRESS: inject('temporalAddress'), TUNEFLOW_HOME: cluster().home });
    const { code } = await cli.waitForExit(240_000);
    expect(code, cli.output()).toBe(0);
    expect(cli.output()).toMatch(/completed: 6 steps/);
    expect(cli.output()).toMatch(/validation loss\s+\d+\.\d{4}\s+\d+\.\d{4}/);
    expect(cli.output()).toContain('prompt: Extract the person as JSON');
  });

  test('multi-day: paused from code after a checkpoint, resumed, completed with its checkpoint policy', async () => {
    const multiDay = loadSpec(multiDaySpecPath);
    expect(multiDay.checkpoint).toMatchObject({ every_minutes: 30, keep_last: 3, keep_best: true });
    const spec = {
      ...multiDay,
      model: { ...multiDay.model, source: 'tiny-random-llama' },
      train: { ...multiDay.train, epochs: 1, max_steps: 16 },
      checkpoint: { ...multiDay.checkpoint, every_steps: 4 },
      validation: { ...multiDay.validation, every_steps: 4 },
      merge: { ...multiDay.merge, enabled: false },
    };
    const lines: string[] = [];
    const workflowId = `multi-day-${Date.now()}`;
    const result = await pauseAndResume(cluster().client, spec, {
      workflowId,
      artifactRootUri: cluster().artifactRootUri,
      pausedMilliseconds: 1_000,
      log: (line) => lines.push(line),
    });
    expect(lines[1]).toMatch(/^paused at step \d+ \(checkpoint \d+\)$/);
    expect(result.training.final_step).toBe(16);
    expect(result.progress.resumes).toBeGreaterThanOrEqual(1);
    // keep_last 3 plus the best by validation loss: never more than four checkpoints remain.
    expect(result.artifacts.checkpoints.length).toBeGreaterThan(0);
    expect(result.artifacts.checkpoints.length).toBeLessThanOrEqual(4);
    expect((await getRunStatus(cluster().client, workflowId)).status).toBe('completed');
  });
});
