import type { DeviceKind, ObjectiveKind, Parallelism, PlannerOptimizer, Quantization, TrainingBackend } from '../contract/vocabulary.ts';
import type { SplitTokenStatistics } from '../contract/accelerator.ts';
import type { ModelArchitecture } from './architecture.ts';

/** The trained rows' lengths, binned (token_statistics' length_histogram). */
export type LengthHistogram = SplitTokenStatistics['length_histogram'];

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
  /** What the run trains for (train.objective.kind): 'dpo' trains two sequences per row and adds the reference's forwards. Absent: sft. */
  objective?: ObjectiveKind;
  /** On a CPU, the training processes that share its cores and RAM (TrainingSetup.processes); on CUDA, one per GPU. */
  cpu_processes?: number;
}
