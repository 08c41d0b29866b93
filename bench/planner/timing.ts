import { performance } from 'node:perf_hooks';
import { architectureCatalog } from '../../src/planner/catalog/architectures.ts';
import { gpuCatalog } from '../../src/planner/catalog/gpus.ts';
import { evaluatePlan } from '../../src/planner/evaluate.ts';
import { planRun } from '../../src/planner/plan.ts';
import type { PlanRequest } from '../../src/planner/request.ts';

/**
 * Times the planner over a grid of candidates (every catalog model × GPU × quantisation × micro-batch): the fit
 * search and the suggestions evaluate candidates like these by the dozen, so each must stay far below a
 * millisecond. Shared by bench/planner/benchmark.ts and the test that bounds it; bench-only, so it lives here, not in src/planner.
 */
export interface PlannerTiming {
  candidates: number;
  mean_microseconds_per_candidate: number;
  p99_microseconds_per_candidate: number;
  /** planRun for a plan that does not fit, suggestions included: the most work one call does. */
  suggestions_plan_milliseconds: number;
}

export function candidateGrid(): PlanRequest[] {
  return architectureCatalog.flatMap((architecture) =>
    gpuCatalog.flatMap((gpu) =>
      (['none', '4bit'] as const).flatMap((quantization) =>
        [1, 4].map((micro_batch_size) => ({
          architecture,
          device: { gpu: gpu.id },
          backend: 'unsloth' as const,
          quantization,
          lora_rank: 16,
          target_modules: 'all-linear' as const,
          sequence_length: 2048,
          micro_batch_size,
          gradient_accumulation_steps: 1,
          gradient_checkpointing: true,
          optimizer: 'adamw_8bit' as const,
        })),
      ),
    ),
  );
}

export function timePlanner(rounds = 5): PlannerTiming {
  const grid = candidateGrid();
  // One untimed pass warms the JIT.
  for (const request of grid) evaluatePlan(request);
  const samples: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    for (const request of grid) {
      const started = performance.now();
      evaluatePlan(request);
      samples.push((performance.now() - started) * 1000);
    }
  }
  samples.sort((left, right) => left - right);
  const seventyOnFourNinety = grid.find(
    (request) =>
      request.architecture.name === 'llama-3.3-70b' && 'gpu' in request.device && request.device.gpu === 'rtx-4090' && request.quantization === '4bit',
  )!;
  const started = performance.now();
  planRun(seventyOnFourNinety);
  return {
    candidates: samples.length,
    mean_microseconds_per_candidate: samples.reduce((sum, value) => sum + value, 0) / samples.length,
    p99_microseconds_per_candidate: samples[Math.floor(samples.length * 0.99)]!,
    suggestions_plan_milliseconds: performance.now() - started,
  };
}
