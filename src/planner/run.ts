import type { TokenStatistics, TrainingSetup, WorkerDevice, WorkerFacts } from '../contract/index.ts';
import { type InvalidSpecError, isInvalidSpecError } from '../errors/index.ts';
import { resolveTrainingSetup } from '../setup/index.ts';
import type { RunSpec } from '../spec/schema.ts';
import type { ModelArchitecture } from './architecture.ts';
import { findGpu } from './catalog/gpus.ts';
import { autoAlternatives, autoFields, chooseFastestFit } from './fastest-fit.ts';
import { type Plan, planRun } from './plan.ts';
import type { LengthHistogram } from './request.ts';
import { Parallelism } from '../contract/vocabulary.ts';
import type { CatalogGpuReference, DeviceDescription, PlanRequest } from './request.ts';

/** The spec fields the planner reads; a whole RunSpec is one, and `tuneflow plan` builds one from its flags. */
export interface PlannedSpec {
  model: Pick<RunSpec['model'], 'max_seq_length'>;
  lora: Pick<RunSpec['lora'], 'r' | 'target_modules'>;
  train: Pick<RunSpec['train'], 'micro_batch_size' | 'epochs' | 'optimizer' | 'gradient_checkpointing' | 'packing' | 'max_steps'> &
    Partial<Pick<RunSpec['train'], 'gradient_accumulation_steps' | 'batch_size'>> &
    Partial<Pick<RunSpec['train'], 'objective'>>;
  device: Pick<RunSpec['device'], 'type' | 'gpu' | 'gpu_count' | 'gpu_memory_gib' | 'backend' | 'quantization' | 'parallelism' | 'cpu_processes'>;
}

/**
 * What is known of the dataset's tokens: the longest row caps the planned sequence; the lengths (token_statistics)
 * give the time on the real lengths, else the total gives it at full-length throughput.
 */
export interface PlannedTokens {
  longest_row?: number;
  dataset_tokens?: number;
  lengths?: LengthHistogram;
  /** The packs of model.max_seq_length tokens the train activity makes of the rows (token_statistics). */
  packed_sequences?: number;
}

/** What token_statistics says of the training split, as the planner reads it: the plan stage and `tuneflow plan` alike. */
export function plannedTokensFrom(statistics: TokenStatistics): PlannedTokens {
  const train = statistics.train;
  return {
    longest_row: train.max,
    dataset_tokens: train.tokens_trained,
    lengths: train.length_histogram,
    ...(train.packed_sequences === undefined ? {} : { packed_sequences: train.packed_sequences }),
  };
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
 * it reported, a CPU with its cores. On CUDA the run trains on device.gpu_count of the worker's GPUs
 * (resolveTrainingSetup has checked that it has them), not on all it has.
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
    count: worker.kind === 'cpu' ? (worker.cores ?? 1) : device.gpu_count,
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
    // Packed rows fill sequences of max_seq_length, as the train activity packs them (packing.pack_rows); unpacked,
    // the longest row is the widest batch.
    sequence_length: setup.packing ? spec.model.max_seq_length : Math.min(spec.model.max_seq_length, tokens.longest_row ?? spec.model.max_seq_length),
    micro_batch_size: setup.micro_batch_size,
    gradient_accumulation_steps: setup.gradient_accumulation_steps,
    gradient_checkpointing: setup.gradient_checkpointing,
    optimizer: setup.optimizer,
    ...(tokens.dataset_tokens === undefined ? {} : { dataset_tokens: tokens.dataset_tokens }),
    epochs: spec.train.epochs,
    ...(tokens.lengths === undefined ? {} : { lengths: tokens.lengths }),
    packing: setup.packing,
    ...(setup.packing && tokens.packed_sequences !== undefined
      ? { packed_sequences: { sequence_length: spec.model.max_seq_length, sequences: tokens.packed_sequences } }
      : {}),
    ...(spec.train.max_steps === undefined ? {} : { max_steps: spec.train.max_steps }),
    parallelism: setup.parallelism,
    ...(spec.train.objective === undefined ? {} : { objective: spec.train.objective.kind }),
    ...(setup.device === 'cpu' ? { cpu_processes: setup.processes } : {}),
  };
}

export interface TrainingRunPlan {
  setup: TrainingSetup;
  request: PlanRequest;
  plan: Plan;
}

/**
 * Decides the training setup for the spec on the worker, then plans memory and time for it. device.parallelism
 * 'auto' is DDP, the faster where it fits; where its replicas do not fit a GPU and the backend may be hf-peft, the
 * run is decided again as FSDP, which shards the model over the GPUs, and the sharded plan is taken when it fits.
 */
export function planTrainingRun(input: RunPlanInput): TrainingRunPlan {
  const replicated = planWithSetup(input, resolveTrainingSetup(input.spec, input.worker));
  const device = input.spec.device;
  const mayShard = device.parallelism === 'auto' && replicated.setup.parallelism === Parallelism.DistributedDataParallel && device.backend !== 'unsloth';
  if (replicated.plan.fits || !mayShard) return replicated;
  const shardedSetup = decideSharded(input);
  if (isInvalidSpecError(shardedSetup))
    return withNote(replicated, `device.parallelism auto kept DDP: FSDP is refused for this spec (${shardedSetup.message})`);
  const sharded = planWithSetup(input, shardedSetup);
  const [each, all] = sharded.setup.device === 'cuda' ? ['GPU', 'GPUs'] : ['CPU process', 'CPU processes'];
  const fsdp = `FSDP (${sharded.setup.backend}) over the ${sharded.setup.processes} ${all}`;
  if (!sharded.plan.fits) {
    return withNote(replicated, `device.parallelism auto: ${fsdp} would not fit either, at ${sharded.plan.peak_vram_gib} GiB per ${each}`);
  }
  return withNote(
    sharded,
    `device.parallelism auto chose ${fsdp}: DDP's replicas need ${replicated.plan.peak_vram_gib} GiB per ${each}, FSDP's shards ${sharded.plan.peak_vram_gib} of the ${sharded.plan.available_gib} GiB`,
  );
}

/**
 * The setup decided again as FSDP, or resolveTrainingSetup's refusal where another choice of the spec rules FSDP out
 * (an 8-bit optimizer): the plan then says why it stayed DDP instead of failing a spec whose parallelism is auto.
 */
function decideSharded(input: RunPlanInput): TrainingSetup | InvalidSpecError {
  try {
    return resolveTrainingSetup({ ...input.spec, device: { ...input.spec.device, parallelism: 'fsdp' } }, input.worker);
  } catch (error) {
    if (isInvalidSpecError(error)) return error;
    throw error;
  }
}

function withNote(planned: TrainingRunPlan, note: string): TrainingRunPlan {
  return { ...planned, plan: { ...planned.plan, notes: [note, ...planned.plan.notes] } };
}

/**
 * Plans the setup; where the spec's gradient_checkpointing or micro_batch_size is 'auto', the fastest of their
 * alternatives that fits (planner/fastest-fit.ts).
 */
function planWithSetup(input: RunPlanInput, setup: TrainingSetup): TrainingRunPlan {
  const fields = autoFields(input.spec.train);
  if (fields.length === 0) return planExactly(input, setup);
  return chooseFastestFit(
    autoAlternatives(setup, fields).map((alternative) => planExactly(input, alternative)),
    fields,
  );
}

function planExactly(input: RunPlanInput, setup: TrainingSetup): TrainingRunPlan {
  const request = planRequestForRun(input, setup);
  return { setup, request, plan: planRun(request) };
}
