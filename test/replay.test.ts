/** Every committed history replays against today's workflow code without a nondeterminism error. */
import { Worker } from '@temporalio/worker';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, inject, it } from 'vitest';
import { historiesDirectory } from './support/histories.ts';

const histories = readdirSync(historiesDirectory).filter((name) => name.endsWith('.json'));

describe('workflow determinism', () => {
  it('has recorded histories to replay', () => {
    expect(histories.length).toBeGreaterThanOrEqual(2);
  });

  it.each(histories)('replays %s', async (name) => {
    // The worker converts the temporal CLI's JSON export itself.
    const history = JSON.parse(readFileSync(`${historiesDirectory}${name}`, 'utf8')) as {
      events: { workflowExecutionStartedEventAttributes?: { workflowId?: string } }[];
    };
    // Replayed under the id it ran with: the training child's id is derived from it, and the history records it.
    const workflowId = history.events[0]?.workflowExecutionStartedEventAttributes?.workflowId ?? name;
    await Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundlePath') } }, history, workflowId);
  });
});
