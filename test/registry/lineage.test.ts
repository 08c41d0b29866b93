/** The spec hash decides whether a retrain is skipped: it must move with what trains the model, and only with that. */
import { describe, expect, it } from 'vitest';
import { specHash } from '../../src/registry/index.ts';
import { parseSpec } from '../../src/spec/load.ts';

const base = {
  name: 'people',
  model: { source: 'tiny-random-llama' },
  dataset: { path: 'data.jsonl', val_count: 16 },
  train: { learning_rate: 0.02, max_steps: 8 },
  checkpoint: { every_steps: 4 },
};
const hash = (overrides: Record<string, unknown> = {}, directory = '/data/a') => specHash(parseSpec({ ...base, ...overrides }, directory));

describe('specHash', () => {
  it('ignores the dataset location, the run name, checkpoint cadence, heartbeat timeout and logging', () => {
    expect(hash({}, '/data/b')).toBe(hash());
    expect(hash({ name: 'renamed' })).toBe(hash());
    expect(hash({ checkpoint: { every_steps: 100, keep_last: 1 } })).toBe(hash());
    expect(hash({ train: { ...base.train, heartbeat_timeout_seconds: 600, log_every_steps: 5 } })).toBe(hash());
  });

  it('changes with anything that trains a different model, defaults included', () => {
    expect(hash({ train: { ...base.train, learning_rate: 0.01 } })).not.toBe(hash());
    expect(hash({ lora: { r: 4 } })).not.toBe(hash());
    expect(hash({ model: { source: 'smollm2-135m-instruct' } })).not.toBe(hash());
    expect(hash({ dataset: { ...base.dataset, val_count: 8 } })).not.toBe(hash());
    // Writing a default out does not change the spec it parses to.
    expect(hash({ lora: { r: 16 } })).toBe(hash());
  });
});
