import type { LengthHistogram } from './run-time.ts';
import type { ModelArchitecture } from './architecture.ts';

export const TrainingBackend = {
  Unsloth: 'unsloth',
  HuggingFacePeft: 'hf-peft',
} as const;
export type TrainingBackend = (typeof TrainingBackend)[keyof typeof TrainingBackend];

export const Quantization = {
  None: 'none',
  EightBit: '8bit',
  FourBit: '4bit',
} as const;
export type Quantization = (typeof Quantization)[keyof typeof Quantization];

export const PlannerOptimizer = {
  AdamWTorch: 'adamw_torch',
  AdamW8bit: 'adamw_8bit',
  PagedAdamW8bit: 'paged_adamw_8bit',
} as const;
export type PlannerOptimizer = (typeof PlannerOptimizer)[keyof typeof PlannerOptimizer];

/**
 * How the processes of one run share the work (TrainingSetup.parallelism): one process; data-parallel replicas that
 * each hold the whole model and all-reduce the adapter's gradients (DDP); or fully sharded data parallel, where each
 * GPU keeps 1/N of the weights and adapter state and all-gathers a layer as it computes (FSDP, with QLoRA for models
 * one GPU cannot hold: the layers are moved to the GPUs one at a time as they load, sharding.py).
 */
export const Parallelism = {
  Single: 'single',
  DistributedDataParallel: 'ddp',
  FullyShardedDataParallel: 'fsdp',
} as const;
export type Parallelism = (typeof Parallelism)[keyof typeof Parallelism];

export const DeviceKind = {
  Cuda: 'cuda',
  Cpu: 'cpu',
} as const;
export type DeviceKind = (typeof DeviceKind)[keyof typeof DeviceKind];

/** A concrete device: what the Python worker reports, or what a catalog GPU resolves to. */
export interface DeviceDescription {
  kind: DeviceKind;
  /** cuda: a catalog id or the name torch reports; cpu: free text. */
  name: string;
  /** Per GPU for cuda; system RAM for cpu. */
  memory_gib: number;
  /** cuda: number of GPUs; cpu: number of cores. */
  count: number;
}

/** A GPU named by its catalog id, optionally with a memory override (a GPU shared with other work). */
export interface CatalogGpuReference {
  gpu: string;
  count?: number;
  memory_gib?: number;
}

export interface PlanRequest {
  architecture: ModelArchitecture;
  device: DeviceDescription | CatalogGpuReference;
  backend: TrainingBackend;
  quantization: Quantization;
  lora_rank: number;
  target_modules: 'all-linear' | string[];
  sequence_length: number;
  micro_batch_size: number;
  gradient_accumulation_steps: number;
  gradient_checkpointing: boolean;
  optimizer: PlannerOptimizer;
  dataset_tokens?: number;
  epochs?: number;
  /** The trained rows' lengths (token_statistics): with them the plan predicts the run's time on its real lengths. */
  lengths?: LengthHistogram;
  packing?: boolean;
  /**
   * What the train activity packs the rows into (token_statistics' packed_sequences, at the spec's max_seq_length):
   * the plan's packed sequences where it plans that length, instead of its estimate from the histogram.
   */
  packed_sequences?: { sequence_length: number; sequences: number };
  max_steps?: number;
  /**
   * How the run's processes share the work (TrainingSetup.parallelism, decided by resolveTrainingSetup and
   * planTrainingRun): 'fsdp' shards the frozen weights and the adapter state over them; 'ddp' replicates the whole
   * model in each. Absent, several GPUs are DDP replicas: the planner infers nothing from the backend.
   */
  parallelism?: Parallelism;
  /** On a CPU, the training processes that share its cores and RAM (TrainingSetup.processes); on CUDA, one per GPU. */
  cpu_processes?: number;
}

/** The changes the planner proposes, cheapest first: the order users should try them in. */
export const SuggestionKind = {
  /** Slower by about a third, costs nothing else. */
  EnableGradientCheckpointing: 'enable-gradient-checkpointing',
  /** Quality-neutral in practice. */
  EightBitOptimizer: 'eight-bit-optimizer',
  /** Same effective batch through more accumulation: same result, slower. */
  SmallerMicroBatch: 'smaller-micro-batch',
  /** The same processes sharding the model (FSDP with hf-peft) instead of replicating it: same result, slower. */
  ShardModel: 'shard-model',
  /** QLoRA: a small quality cost, less memory. */
  QuantizeFourBit: 'quantize-4bit',
  /** Less adapter capacity. */
  SmallerRank: 'smaller-rank',
  /** Truncates longer examples: changes what is learned. */
  ShorterSequence: 'shorter-sequence',
  /** Costs money: more GPUs of the same kind, sharding the weights. */
  MoreGpus: 'more-gpus',
  /** Costs money: one bigger GPU. */
  BiggerGpu: 'bigger-gpu',
  /** Several of the above together, when no single one is enough. */
  Combined: 'combined',
} as const;
export type SuggestionKind = (typeof SuggestionKind)[keyof typeof SuggestionKind];
