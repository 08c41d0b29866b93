/**
 * Requests and results of the Python activities (task queue tuneflow-gpu). JSON, snake_case, mirrored by the
 * Python modules named beside each type. Data, checkpoints and models travel as file:// URIs, never as bytes.
 */
import type { ModelArchitecture } from './planner/index.ts';
import type { RunSpec } from './spec/schema.ts';

/** The planner's architecture numbers as models.describe_architecture reads them from config.json. */
export type ModelArchitectureReport = Omit<ModelArchitecture, 'name'> & { model_type: string | null };

export interface WorkerDevice {
  kind: 'cuda' | 'cpu';
  name: string;
  memory_gib: number;
  count: number;
  cores?: number;
}

/** The resolved training setup every train/evaluate/merge request carries (loaders.TrainingSetup); never `auto`. */
export interface TrainingSetup {
  device: 'cuda' | 'cpu';
  backend: 'unsloth' | 'hf-peft';
  quantization: 'none' | '4bit' | '8bit';
  dtype: 'bfloat16' | 'float16' | 'float32';
  gradient_checkpointing: boolean;
  optimizer: 'adamw_torch' | 'adamw_8bit' | 'paged_adamw_8bit';
}

/** models.py */
export interface ResolveModelRequest {
  spec: RunSpec;
}
export interface ResolvedModel {
  model_uri: string;
  training: TrainingSetup;
  source: string;
  architecture: ModelArchitectureReport;
  tokenizer_identity: string;
  device: WorkerDevice;
}

export interface SplitTokenStatistics {
  rows: number;
  total_tokens: number;
  trainable_tokens: number;
  min?: number;
  median?: number;
  p95?: number;
  max?: number;
  over_max_seq_length?: number;
  rows_trained: number;
  tokens_trained: number;
}

/** data.py via activities.token_statistics */
export interface TokenStatisticsRequest {
  spec: RunSpec;
  model_uri: string;
  tokenizer_identity: string;
  train_uri: string;
  val_uri: string;
}
export interface TokenStatistics {
  train: SplitTokenStatistics;
  val: SplitTokenStatistics;
  /** The splits' token ids, written once beside the prepared data (data.write_tokenized_split). */
  train_tokens_uri: string;
  val_tokens_uri: string;
}

/** training.py */
export interface TrainRequest {
  spec: RunSpec;
  setup: TrainingSetup;
  model_uri: string;
  train_tokens_uri: string;
  /** Scored at checkpoints (and every validation.every_steps) for best-checkpoint retention and early stopping. */
  val_tokens_uri: string;
  run_uri: string;
}
export interface TrainResult {
  adapter_uri: string;
  final_step: number;
  total_steps: number;
  stopped_early: boolean;
  train_loss: number | null;
  val_loss: number | null;
  best: { val_loss: number; step: number } | null;
  resumed_from_step: number;
  steps_trained: number;
  steps_redone: number;
  corrupt_checkpoints_skipped: number;
  last_checkpoint_uri: string | null;
  backend: 'unsloth' | 'hf-peft';
  device: 'cuda' | 'cpu';
  dtype: string;
  optimizer: string;
  gradient_checkpointing: boolean;
  train_rows: number;
  /** Steady-state real tokens per second of the last attempt (null when it trained too few steps to tell). */
  tokens_per_second: number | null;
  model_load_seconds: number;
  seconds_to_first_step: number | null;
}

/** The heartbeat details of the train activity (training.Progress.as_heartbeat). */
export interface TrainProgress {
  step: number;
  total_steps: number;
  epoch: number;
  loss: number | null;
  val_loss: number | null;
  /** Real (non-padding) tokens per second in steady state: a moving window past the warm-up steps; null before. */
  tokens_per_second: number | null;
  /** Tokens the model computed on per second, padding included. */
  padded_tokens_per_second: number | null;
  padding_fraction: number | null;
  /** The steps left (max_steps, epochs) at the steady-state seconds per step. */
  eta_seconds: number | null;
  last_checkpoint: { step: number; uri: string } | null;
  resumed_from_step: number;
  steps_redone: number;
}

/** merging.py */
export interface MergeRequest {
  spec: RunSpec;
  setup: TrainingSetup;
  model_uri: string;
  adapter_uri: string;
  run_uri: string;
}
export interface MergeResult {
  merged_uri: string;
  dtype: string;
  parameters: number;
  bytes: number;
}

/** evaluation.py */
export interface EvaluateRequest {
  spec: RunSpec;
  setup: TrainingSetup;
  model_uri: string;
  adapter_uri: string;
  val_tokens_uri: string;
}
export interface EvaluationResult {
  val_rows: number;
  val_tokens: number;
  base_val_loss: number | null;
  tuned_val_loss: number | null;
  base_perplexity: number | null;
  tuned_perplexity: number | null;
  samples: { prompt: string; base: string; tuned: string }[];
}

/** A checkpoint directory of a run, as checkpoint.Checkpoint.as_record / corrupt_record describe it. */
export interface CheckpointRecord {
  step: number;
  uri: string;
  /** Every file matches the sha256 its manifest records. */
  verified: boolean;
  train_loss: number | null;
  val_loss: number | null;
}

/** activities.verify_checkpoints */
export interface VerifyCheckpointsRequest {
  run_uri: string;
}
export interface VerifiedCheckpoints {
  /** Verified checkpoints, oldest first. */
  checkpoints: CheckpointRecord[];
  corrupt: CheckpointRecord[];
}

/** The Python activities as the workflow calls them: property names are the activity names in the contract. */
export interface AcceleratorActivities {
  resolve_model(request: ResolveModelRequest): Promise<ResolvedModel>;
  token_statistics(request: TokenStatisticsRequest): Promise<TokenStatistics>;
  train(request: TrainRequest): Promise<TrainResult>;
  merge(request: MergeRequest): Promise<MergeResult>;
  evaluate(request: EvaluateRequest): Promise<EvaluationResult>;
  verify_checkpoints(request: VerifyCheckpointsRequest): Promise<VerifiedCheckpoints>;
}
