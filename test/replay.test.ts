/**
 * Every committed history replays against today's workflow code without a nondeterminism error. The histories are
 * the previous release's (fineTune on the stages, its trainAdapter children; recorded by the e2e tests with
 * TUNEFLOW_RECORD_HISTORIES=1): a change that would break a run live across an upgrade fails here, and goes behind
 * `patched()` (docs/upgrading.md). The histories of the code before the stages went with workflows/legacy/.
 */
import { Worker } from '@temporalio/worker';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, inject, it } from 'vitest';
import type { TrainingSetup } from '../src/contract/index.ts';
import type { RunSpec } from '../src/spec/schema.ts';
import { currentSetup, currentSpec } from '../workflows/upgrade.ts';
import { historiesDirectory } from './support/histories.ts';

const histories = readdirSync(historiesDirectory).filter((name) => name.endsWith('.json'));

interface RecordedHistory {
  events: {
    workflowExecutionStartedEventAttributes?: { workflowId?: string; input?: { payloads: { data: string }[] } };
    activityTaskCompletedEventAttributes?: { result?: { payloads: { data: string }[] } };
  }[];
}
const decoded = (payload: { data: string } | undefined): unknown =>
  payload === undefined ? undefined : JSON.parse(Buffer.from(payload.data, 'base64').toString('utf8'));
const readHistory = (name: string) => JSON.parse(readFileSync(`${historiesDirectory}${name}`, 'utf8')) as RecordedHistory;

describe('workflow determinism', () => {
  it("has the previous release's fineTune and trainAdapter histories to replay", () => {
    expect(histories.filter((name) => name.startsWith('fine-tune-stages-')).length).toBeGreaterThanOrEqual(2);
    expect(histories.filter((name) => name.startsWith('train-adapter-')).length).toBeGreaterThanOrEqual(2);
  });

  it.each(histories)('replays %s', async (name) => {
    // The worker converts the temporal CLI's JSON export itself.
    const history = readHistory(name);
    // Replayed under the id it ran with: the training child's id is derived from it, and the history records it.
    const workflowId = history.events[0]?.workflowExecutionStartedEventAttributes?.workflowId ?? name;
    await Worker.runReplayHistory({ workflowBundle: { codePath: inject('workflowBundlePath') } }, history, workflowId);
  });
});

describe("a previous release's run, live across the upgrade", () => {
  it("sends the Python worker a spec today's contract accepts", () => {
    const started = readHistory('fine-tune-stages-completed.json').events[0]?.workflowExecutionStartedEventAttributes;
    const input = JSON.parse(Buffer.from(started!.input!.payloads[0]!.data, 'base64').toString('utf8')) as { spec: RunSpec };
    // Recorded before train.objective (and train.packing) existed.
    expect(input.spec.train).not.toHaveProperty('objective');
    const trainRequest = JSON.parse(readFileSync('python-activities/tuneflow_activities/schemas/train.request.json', 'utf8')) as {
      properties: { spec: object };
    };
    const validateSpec = new Ajv2020({ strict: false }).compile(trainRequest.properties.spec);
    expect(validateSpec(input.spec)).toBe(false);
    const upgraded = currentSpec(input.spec);
    expect(upgraded.train.objective).toEqual({ kind: 'sft' });
    expect(validateSpec(upgraded), JSON.stringify(validateSpec.errors)).toBe(true);
    // Everything the run was given is kept.
    expect(upgraded.train.max_steps).toBe(input.spec.train.max_steps);
    expect(upgraded.model).toEqual(input.spec.model);
  });

  it("sends the Python worker the setup its plan recorded, with what today's contract requires added as that release trained", () => {
    const history = readHistory('fine-tune-stages-completed.json');
    const input = decoded(history.events[0]?.workflowExecutionStartedEventAttributes?.input?.payloads[0]) as { spec: RunSpec };
    const planned = history.events
      .map((event) => decoded(event.activityTaskCompletedEventAttributes?.result?.payloads[0]))
      .find((result): result is { setup: TrainingSetup } => typeof result === 'object' && result !== null && 'setup' in result);
    if (planned === undefined) throw new Error('the history records the plan stage');
    const trainRequest = JSON.parse(readFileSync('python-activities/tuneflow_activities/schemas/train.request.json', 'utf8')) as {
      properties: { setup: object };
    };
    const validateSetup = new Ajv2020({ strict: false }).compile(trainRequest.properties.setup);
    // Recorded before packing, processes and the decided micro-batch were part of the setup.
    expect(validateSetup(planned.setup)).toBe(false);
    const upgraded = currentSetup(planned.setup, input.spec);
    expect(validateSetup(upgraded), JSON.stringify(validateSetup.errors)).toBe(true);
    expect(upgraded).toMatchObject({ ...planned.setup, packing: false, processes: 1, parallelism: 'single' });
    expect([upgraded.micro_batch_size, upgraded.gradient_accumulation_steps]).toEqual([
      input.spec.train.micro_batch_size,
      input.spec.train.gradient_accumulation_steps,
    ]);
  });
});
