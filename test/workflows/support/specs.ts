import { fileURLToPath } from 'node:url';
import { parseSpec } from '../../../src/spec/load.ts';
import type { RunSpec } from '../../../src/spec/schema.ts';

const quickstartData = fileURLToPath(new URL('../../../examples/quickstart/data.jsonl', import.meta.url));

export interface SpecChanges {
  model?: Record<string, unknown>;
  train?: Record<string, unknown>;
  checkpoint?: Record<string, unknown>;
  merge?: Record<string, unknown>;
  evaluate?: Record<string, unknown>;
}

/** A valid spec (parsed by the product's own parser) for the tiny model: 12 steps, a checkpoint every 4, merge and evaluate on. */
export function testSpec(changes: SpecChanges = {}): RunSpec {
  return parseSpec(
    {
      model: { source: 'tiny-random-llama', max_seq_length: 128, ...changes.model },
      dataset: { path: quickstartData, val_count: 32, seed: 7 },
      train: { max_steps: 12, micro_batch_size: 4, heartbeat_timeout_seconds: 30, ...changes.train },
      checkpoint: { every_steps: 4, ...changes.checkpoint },
      merge: { enabled: true, ...changes.merge },
      evaluate: { enabled: true, sample_prompts: ['Extract the person as JSON.\n\nAnna Kowalski, 52, is a baker in Gdansk.'], ...changes.evaluate },
    },
    '/',
  );
}
