import type { TokenStatistics, TrainingSetup, WorkerDevice, WorkerFacts } from '../contract/index.ts';
import { resolveTrainingSetup } from '../setup/index.ts';
import type { RunSpec } from '../spec/schema.ts';
import type { ModelArchitecture } from './architecture.ts';
import { findGpu } from './catalog/gpus.ts';
import { type Plan, planRun } from './plan.ts';
import type { LengthHistogram } from './run-time.ts';
import type { CatalogGpuReference, DeviceDescription, PlanRequest } from './request.ts';

/** The spec fields the planner reads; a whole RunSpec is one, and `tuneflow plan` builds one from its flags. */
export interface PlannedSpec {
  model: Pick<RunSpec['model'], 'max_seq_length'>;
  lora: Pick<RunSpec['lora'], 'r' | 'target_modules'>;
  train: Pick<
    RunSpec['train'],
    'micro_batch_size' | 'gradient_accumulation_steps' | 'epochs' | 'optimizer' | 'gradient_checkpointing' | 'packing' | 'max_steps'
  >;
  device: Pick<RunSpec['device'], 'type' | 'gpu' | 'gpu_count' | 'gpu_memory_gib' | 'backend' | 'quantization'>;
}

/**
 * What is known of the dataset's tokens: the longest row caps the planned sequence; the lengths (token_statistics)
 * give the time on the real lengths, else the total gives it at full-length throughput.
 */
export interface PlannedTokens {
  longest_row?: number;
  dataset_tokens?: number;
  lengths?: LengthHistogram;
}

/** What token_statistics says of the training split, as the planner reads it: the plan stage and `tuneflow plan` alike. */
export function plannedTokensFrom(statistics: TokenStatistics): PlannedTokens {
  const train = statistics.train;
  return { longest_row: train.max, dataset_tokens: train.tokens_trained, lengths: train.length_histogram };
}

export interface RunPlanInput {
  spec: PlannedSpec;
  worker: WorkerFacts;
  architecture: ModelArchitecture;
  tokens: PlannedTokens;
}

/**
 * The device to plan for. A spec naming a GPU plans for that GPU when the worker has CUDA (the catalog knows its
 * speed; a GPU the catalog does not know needs device.gpu_memory_gib); otherwise the worker is planned as the device
 * it reported, a CPU with its cores.
 */
function plannedDevice(device: PlannedSpec['device'], worker: WorkerDevice): DeviceDescription | CatalogGpuReference {
  if (worker.kind === 'cuda' && device.gpu !== 'auto') {
    if (findGpu(device.gpu) === undefined && device.gpu_memory_gib !== undefined) {
      return { kind: 'cuda', name: device.gpu, memory_gib: device.gpu_memory_gib, count: device.gpu_count };
    }
    return { gpu: device.gpu, count: device.gpu_count, memory_gib: device.gpu_memory_gib };
  }
  return {
    kind: worker.kind,
    name: worker.name,
    memory_gib: device.gpu_memory_gib ?? worker.memory_gib,
    count: worker.kind === 'cpu' ? (worker.cores ?? 1) : worker.count,
  };
}

/** The planner's request for a spec trained with `setup` on the worker: the one mapping, for the workflow and the CLI. */
export function planRequestForRun({ spec, worker, architecture, tokens }: RunPlanInput, setup: TrainingSetup): PlanRequest {
  return {
    architecture,
    device: plannedDevice(spec.device, worker.device),
    backend: setup.backend,
    quantization: setup.quantization,
    lora_rank: spec.lora.r,
    target_modules: spec.lora.target_modules,
    sequence_length: Math.min(spec.model.max_seq_length, tokens.longest_row ?? spec.model.max_seq_length),
    micro_batch_size: spec.train.micro_batch_size,
    gradient_accumulation_steps: spec.train.gradient_accumulation_steps,
    gradient_checkpointing: setup.gradient_checkpointing,
    optimizer: setup.optimizer,
    ...(tokens.dataset_tokens === undefined ? {} : { dataset_tokens: tokens.dataset_tokens }),
    epochs: spec.train.epochs,
    ...(tokens.lengths === undefined ? {} : { lengths: tokens.lengths }),
    packing: setup.packing,
    ...(spec.train.max_steps === undefined ? {} : { max_steps: spec.train.max_steps }),
  };
}

export interface TrainingRunPlan {
  setup: TrainingSetup;
  request: PlanRequest;
  plan: Plan;
}

/** Decides the training setup for the spec on the worker, then plans memory and time for it. */
export function planTrainingRun(input: RunPlanInput): TrainingRunPlan {
  const setup = resolveTrainingSetup(input.spec, input.worker);
  const request = planRequestForRun(input, setup);
  return { setup, request, plan: planRun(request) };
}
