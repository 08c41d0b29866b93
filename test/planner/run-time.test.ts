/** The plan's time on real lengths, scored against the committed H200 real-data runs (bench/gpu/results/real-data/). */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { evaluatePlan, findArchitecture, type LengthHistogram, type PlanRequest } from '../../src/planner/index.ts';

const results = new URL('../../bench/gpu/results/', import.meta.url);
const lengths = (JSON.parse(readFileSync(new URL('real-data-lengths.json', results), 'utf8')) as { length_histogram: { real: LengthHistogram } })
  .length_histogram.real;
interface MeasuredRun {
  run: string;
  steps: number;
  wall_seconds: number;
  padding_fraction: number;
}
const measured = (
  JSON.parse(readFileSync(new URL('real-data/2026-12-01-h200-4bit-merged.json', results), 'utf8')) as {
    phases: { tuneflow: { result: Partial<MeasuredRun>[] } };
  }
).phases.tuneflow.result.filter((record): record is MeasuredRun => record.wall_seconds !== undefined);

const architecture = findArchitecture('llama-3.1-8b');
if (architecture === undefined) throw new Error('llama-3.1-8b is missing from the catalog');
const request = (changes: Partial<PlanRequest>): PlanRequest => ({
  architecture,
  device: { gpu: 'h200' },
  backend: 'unsloth',
  quantization: '4bit',
  lora_rank: 64,
  target_modules: 'all-linear',
  sequence_length: 2048,
  micro_batch_size: 8,
  gradient_accumulation_steps: 1,
  gradient_checkpointing: true,
  optimizer: 'adamw_8bit',
  epochs: 1,
  lengths,
  ...changes,
});

describe('run time on real lengths', () => {
  it.each([
    ['real-packed', true, undefined],
    ['real-unpacked', false, 80],
  ] as const)('plans %s within ±25 %% of its H200 wall time, with its steps and padding', (name, packing, maxSteps) => {
    const run = measured.find((record) => record.run === name);
    if (run === undefined) throw new Error(`${name} is not in the committed report`);
    const time = evaluatePlan(request({ packing, ...(maxSteps === undefined ? {} : { max_steps: maxSteps }) })).run_time;
    expect(time?.steps).toBe(run.steps);
    expect(Math.abs((time?.padding_fraction ?? 0) - run.padding_fraction)).toBeLessThan(0.02);
    expect(Math.abs((time?.eta_seconds ?? 0) / run.wall_seconds - 1)).toBeLessThan(0.25);
  });

  it('counts the widths Unsloth compiles unpacked, none packed, and none for hf-peft', () => {
    expect(evaluatePlan(request({ packing: false })).run_time?.compiled_shapes).toBeGreaterThan(1);
    expect(evaluatePlan(request({ packing: true })).run_time?.compiled_shapes).toBe(0);
    expect(evaluatePlan(request({ packing: false, backend: 'hf-peft' })).run_time?.compiled_shapes).toBe(0);
  });

  it('takes epochs and max_steps into the steps, and the ETA from the plan’s run time', () => {
    const one = evaluatePlan(request({ packing: true })).run_time;
    const three = evaluatePlan(request({ packing: true, epochs: 3 }));
    expect(three.run_time?.steps).toBe((one?.steps ?? 0) * 3);
    expect(three.eta_seconds).toBe(three.run_time?.eta_seconds);
    expect(evaluatePlan(request({ packing: true, epochs: 3, max_steps: 10 })).run_time?.steps).toBe(10);
  });

  it('plans padded widths by the longest row for hf-peft, below Unsloth’s power-of-two buckets', () => {
    const hf = evaluatePlan(request({ packing: false, backend: 'hf-peft' })).run_time?.padding_fraction ?? 1;
    const unsloth = evaluatePlan(request({ packing: false })).run_time?.padding_fraction ?? 0;
    expect(hf).toBeLessThan(unsloth);
    expect(hf).toBeGreaterThan(0.5);
  });
});
