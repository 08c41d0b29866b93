/**
 * The poisoned run of the fault suite (issue 23): the SFT fault run on the quickstart rows plus a few crafted rows
 * whose answer is noise, and a NaN injected at one step. Both come through the Python worker's test-only environment
 * variables (python-activities/tuneflow_activities/fault_injection.py; no spec can set them): on a real model rows of
 * noise spike the loss by themselves, but the tiny random model's frozen random output head keeps every token's loss
 * near a uniform guess, so the worker multiplies the loss of micro-batches holding poisoned.jsonl's rows. The engine
 * must refuse both faults, roll back to its last checkpoint, skip the rows and finish; every run with the same poison
 * must end byte-identical.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TrainResult } from '../../src/contract/index.ts';
import type { RunSpec } from '../../src/spec/schema.ts';
import { seededRandom } from '../../examples/seeded-random.mjs';

const quickstartData = fileURLToPath(new URL('../../examples/quickstart/data.jsonl', import.meta.url));

/** The file the crafted rows live in: a rollback names its rows by file and row. */
export const poisonedFile = 'poisoned.jsonl';
/** The step whose loss and gradients become NaN (train_log numbering), after the first checkpoint. */
export const nanLossAtStep = 8;
/** The test-only variables the Python worker reads (fault_injection.NAN_LOSS_AT_STEPS, LOSS_SPIKE_FILE). */
export const poisonedWorkerEnvironment = { TUNEFLOW_TEST_ONLY_NAN_LOSS_AT_STEPS: String(nanLossAtStep), TUNEFLOW_TEST_ONLY_LOSS_SPIKE_FILE: poisonedFile };

const poisonedRows = 6;

/** Noise from scripts the tokenizer splits into many rare byte tokens: a long answer the model cannot predict. */
function noise(next: () => number, characters: number): string {
  const blocks = [0x0400, 0x0590, 0x0e00, 0x3040, 0x4e00, 0xac00, 0x2200];
  return Array.from({ length: characters }, () => String.fromCodePoint(blocks[Math.floor(next() * blocks.length)]! + Math.floor(next() * 96))).join('');
}

/**
 * Writes the poisoned dataset (a directory: the quickstart rows, then the crafted ones in poisoned.jsonl) under
 * `directory`; returns its path.
 */
export async function writePoisonedDataset(directory: string): Promise<string> {
  const dataset = join(directory, 'poisoned-dataset');
  await mkdir(dataset, { recursive: true });
  await writeFile(join(dataset, 'quickstart.jsonl'), readFileSync(quickstartData));
  const next = seededRandom(23);
  const rows = Array.from({ length: poisonedRows }, (_, index) => ({
    instruction: 'Return a JSON object (name, age, job, city) describing this person.',
    input: `Person ${index + 1} of the poisoned rows.`,
    output: noise(next, 160),
  }));
  await writeFile(join(dataset, poisonedFile), rows.map((row) => `${JSON.stringify(row)}\n`).join(''));
  return dataset;
}

/**
 * The SFT fault run on the poisoned dataset. The rule's window is shortened to the run's length (the defaults watch
 * 50 steps and wait for 20): it judges from step 7 on, against the last 6 steps.
 */
export function poisonedFaultSpec(sft: RunSpec, dataset: string): RunSpec {
  return {
    ...sft,
    dataset: { ...sft.dataset, path: dataset },
    train: { ...sft.train, rollback: { ...sft.train.rollback, window_steps: 6, min_history_steps: 6, z_threshold: 6, max_rollbacks: 6 } },
  };
}

/** Why a poisoned run's result is not what the scenario is about (null when it is): both faults refused, rows skipped. */
export function poisonedRunProblem(training: TrainResult): string | null {
  const rollbacks = training.rollbacks ?? [];
  const nan = rollbacks.find((rollback) => rollback.step === nanLossAtStep && rollback.reason === 'loss_not_finite');
  const spikes = rollbacks.filter((rollback) => rollback.reason === 'loss_spike' || rollback.reason === 'gradient_norm_spike');
  const poisonSkipped = spikes.some((spike) => spike.rows.some((row) => row.file === poisonedFile));
  if (nan && poisonSkipped) return null;
  const seen = rollbacks.map((rollback) => `step ${rollback.step} ${rollback.reason}`).join(', ') || 'none';
  return `the poisoned run did not roll back both faults (NaN at step ${nanLossAtStep}, a spike skipping rows of ${poisonedFile}); rollbacks: ${seen}`;
}
