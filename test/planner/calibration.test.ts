import { describe, expect, it } from 'vitest';
import { evaluatePlan } from '../../src/planner/index.ts';
import { loadCalibrationPoints, predictedPeakGib } from '../../bench/planner/measurements.ts';

/**
 * The planner against every committed measurement: peak memory within ±10 %, tokens/s within ±25 %.
 * bench/cpu/results comes from bench/cpu/calibrate.py, bench/gpu/results from bench/gpu/bench_lora.py.
 */
const points = loadCalibrationPoints(['bench/cpu/results', 'bench/gpu/results']);

describe('calibration against committed measurements', () => {
  it('has CPU measurements to check', () => {
    expect(points.filter((point) => point.label.startsWith('cpu')).length).toBeGreaterThanOrEqual(5);
  });

  describe.each(points.map((point) => [`${point.source}: ${point.label}`, point] as const))('%s', (_label, point) => {
    const plan = evaluatePlan(point.request);

    it.each(point.peaks.map((peak) => [peak.metric, peak] as const))('peak %s within ±10 %', (_metric, peak) => {
      const predicted = predictedPeakGib(plan, peak.metric);
      expect(Math.abs(predicted / peak.gib - 1), `planned ${predicted.toFixed(3)} GiB, measured ${peak.gib.toFixed(3)} GiB`).toBeLessThanOrEqual(0.1);
    });

    it('tokens/s within ±25 %', () => {
      expect(
        Math.abs(plan.tokens_per_s / point.tokens_per_s - 1),
        `planned ${plan.tokens_per_s.toFixed(1)}, measured ${point.tokens_per_s.toFixed(1)}`,
      ).toBeLessThanOrEqual(0.25);
    });
  });
});

/**
 * Without gradient checkpointing (what `auto` chooses where it fits) the memory model is refitted to the
 * checkpointing-off runs of bench/gpu/unfitted; their tokens/s are not yet (the plan says so in its notes).
 */
const withoutCheckpointing = loadCalibrationPoints(['bench/gpu/unfitted']).filter((point) => !point.request.gradient_checkpointing);

describe('peak memory without gradient checkpointing', () => {
  it('has runs of both backends to check', () => {
    expect(new Set(withoutCheckpointing.map((point) => point.request.backend))).toEqual(new Set(['unsloth', 'hf-peft']));
  });

  it.each(withoutCheckpointing.map((point) => [point.label, point] as const))('%s within ±10 %', (_label, point) => {
    const plan = evaluatePlan(point.request);
    for (const peak of point.peaks) {
      const predicted = predictedPeakGib(plan, peak.metric);
      expect(
        Math.abs(predicted / peak.gib - 1),
        `${peak.metric}: planned ${predicted.toFixed(3)} GiB, measured ${peak.gib.toFixed(3)} GiB`,
      ).toBeLessThanOrEqual(0.1);
    }
  });
});
