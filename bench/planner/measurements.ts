import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { match } from 'ts-pattern';
import { z } from 'zod';
import { architectureFromHuggingFaceConfig } from '../../src/planner/architecture.ts';
import type { Evaluation } from '../../src/planner/evaluate.ts';
import type { PlanRequest } from '../../src/planner/request.ts';

/**
 * Reads the committed measurement files into plan requests paired with what was measured, so that the calibration
 * test and the fitting script compare the planner against the same numbers. Two producers write them:
 * bench/cpu/calibrate.py (kind "cpu-calibration") and bench/gpu/bench_lora.py (a "records" array; see
 * bench/gpu/README.md). Kept out of the planner's index: it reads files, and the planner itself is pure.
 */

/** What a peak was measured as; each compares against a different sum of the planner's terms. */
export const PeakMetric = {
  /** Peak resident set of the whole Python process (VmHWM): every term. */
  ProcessResident: 'process_resident',
  /** torch.cuda.max_memory_reserved: every term but the CUDA context. */
  CudaReserved: 'cuda_reserved',
  /** torch.cuda.max_memory_allocated: every term but the CUDA context and the allocator's slack. */
  CudaAllocated: 'cuda_allocated',
} as const;
export type PeakMetric = (typeof PeakMetric)[keyof typeof PeakMetric];

export interface CalibrationPoint {
  source: string;
  label: string;
  request: PlanRequest;
  peaks: { metric: PeakMetric; gib: number }[];
  tokens_per_s: number;
}

/** The part of a plan's peak that a measurement of the given kind sees. */
export function predictedPeakGib(plan: Evaluation, metric: PeakMetric): number {
  const breakdown = plan.breakdown;
  return match(metric)
    .with('process_resident', () => plan.peak_vram_gib)
    .with('cuda_reserved', () => plan.peak_vram_gib - (breakdown.runtime_context ?? 0))
    .with('cuda_allocated', () => plan.peak_vram_gib - (breakdown.runtime_context ?? 0) - (breakdown.allocator_slack ?? 0))
    .exhaustive();
}

const architectureRecord = z.looseObject({
  num_layers: z.number(),
  hidden_size: z.number(),
  intermediate_size: z.number(),
  num_attention_heads: z.number(),
  num_key_value_heads: z.number(),
  head_dim: z.number(),
  vocab_size: z.number(),
  tie_word_embeddings: z.boolean(),
});

const cpuCalibrationFile = z.looseObject({
  kind: z.literal('cpu-calibration'),
  /** Torch threads during the measurement: tokens_per_s is per CPU-second of this many threads. */
  torch_threads: z.number().int().positive(),
  system_memory_gib: z.number().positive(),
  measurements: z.array(
    z.looseObject({
      shape: z.string(),
      architecture: architectureRecord,
      lora_rank: z.number(),
      target_modules: z.array(z.string()),
      micro_batch_size: z.number(),
      sequence_length: z.number(),
      gradient_checkpointing: z.boolean(),
      tokens_per_s: z.number(),
      peak_rss_gib: z.number(),
    }),
  ),
});

const gpuBenchmarkFile = z.looseObject({
  gpu_name: z.string(),
  gpu_total_gib: z.number().positive(),
  records: z.array(z.looseObject({ status: z.string() })),
});

const gpuRecord = z.looseObject({
  method: z.string(),
  backend: z.enum(['unsloth', 'hf-peft']),
  quantization: z.enum(['none', '8bit', '4bit']),
  model: z.string(),
  architecture: architectureRecord,
  lora_rank: z.number(),
  target_modules: z.array(z.string()),
  sequence_length: z.number(),
  gradient_checkpointing: z.union([z.boolean(), z.literal('unsloth')]),
  micro_batch_size: z.number(),
  optimizer: z.enum(['adamw_torch', 'adamw_8bit', 'paged_adamw_8bit']),
  tokens_per_second: z.number(),
  peak_vram_allocated_gib: z.number(),
  peak_vram_reserved_gib: z.number(),
});

export function loadCalibrationPoints(directories: readonly string[]): CalibrationPoint[] {
  return directories.flatMap((directory) =>
    listJsonFiles(directory).flatMap((file) => pointsFromFile(file, JSON.parse(readFileSync(file, 'utf8')) as unknown)),
  );
}

function listJsonFiles(directory: string): string[] {
  try {
    return (
      readdirSync(directory)
        // The real-data benchmark's summary, plans and lengths (issue 12), the fastest-fit summary (issue 25) and the
        // multi-process runs' plans sit beside the calibration runs but are not any.
        .filter((name) => name.endsWith('.json') && !name.startsWith('real-data') && !name.startsWith('fastest-fit') && name !== 'multi-process-plans.json')
        .sort()
        .map((name) => path.join(directory, name))
    );
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

function pointsFromFile(file: string, content: unknown): CalibrationPoint[] {
  const source = path.basename(file);
  const cpu = cpuCalibrationFile.safeParse(content);
  if (cpu.success) {
    return cpu.data.measurements.map((measurement) => ({
      source,
      label: `cpu ${measurement.shape} b=${measurement.micro_batch_size} s=${measurement.sequence_length}${measurement.gradient_checkpointing ? ' ckpt' : ''}`,
      request: {
        architecture: architectureFromHuggingFaceConfig(measurement.architecture, measurement.shape),
        device: { kind: 'cpu', name: 'calibration cpu', memory_gib: cpu.data.system_memory_gib, count: cpu.data.torch_threads },
        backend: 'hf-peft',
        quantization: 'none',
        lora_rank: measurement.lora_rank,
        target_modules: measurement.target_modules,
        sequence_length: measurement.sequence_length,
        micro_batch_size: measurement.micro_batch_size,
        gradient_accumulation_steps: 1,
        gradient_checkpointing: measurement.gradient_checkpointing,
        optimizer: 'adamw_torch',
      },
      peaks: [{ metric: PeakMetric.ProcessResident, gib: measurement.peak_rss_gib }],
      tokens_per_s: measurement.tokens_per_s,
    }));
  }
  const gpu = gpuBenchmarkFile.safeParse(content);
  if (gpu.success) {
    return gpu.data.records
      .filter((record) => record.status === 'ok')
      .map((record) => gpuRecord.parse(record))
      .map((record) => ({
        source,
        label: `${gpu.data.gpu_name} ${record.model} ${record.backend} ${record.quantization} b=${record.micro_batch_size}${record.gradient_checkpointing === false ? ' no-ckpt' : ''}`,
        request: {
          architecture: architectureFromHuggingFaceConfig(record.architecture, record.model),
          device: { kind: 'cuda', name: gpu.data.gpu_name, memory_gib: gpu.data.gpu_total_gib, count: 1 },
          backend: record.backend,
          quantization: record.quantization,
          lora_rank: record.lora_rank,
          target_modules: record.target_modules,
          sequence_length: record.sequence_length,
          micro_batch_size: record.micro_batch_size,
          gradient_accumulation_steps: 1,
          gradient_checkpointing: record.gradient_checkpointing !== false,
          optimizer: record.optimizer,
        },
        peaks: [
          { metric: PeakMetric.CudaReserved, gib: record.peak_vram_reserved_gib },
          { metric: PeakMetric.CudaAllocated, gib: record.peak_vram_allocated_gib },
        ],
        tokens_per_s: record.tokens_per_second,
      }));
  }
  throw new Error(`${file} is neither a CPU calibration (kind "cpu-calibration") nor a GPU benchmark (records array)`);
}
