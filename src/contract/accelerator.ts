/**
 * Requests and results of the Python activities (task queue tuneflow-gpu), as zod schemas with their types. JSON,
 * snake_case. The Python worker validates every request and result against the JSON Schema generated from these
 * (`npm run generate:schemas` → python-activities/tuneflow_activities/schemas/). Data, checkpoints and models travel
 * as URIs (file://, or s3:// for the artifact store on object storage), never as bytes.
 */
import { z } from 'zod';
import { referenceAnswerSchema, suiteEvaluationSchema } from '../quality/suites.ts';
import { DeviceKind, Parallelism, PlannerOptimizer, Quantization, TrainingBackend } from './vocabulary.ts';
import { runSpecSchema } from '../spec/schema.ts';
import { AcceleratorActivity } from './names.ts';

const count = z.number().int().nonnegative();
const fileUri = z.string().regex(/^file:\/\//);
/** Where the artifact store keeps a run's data and outputs: the filesystem or S3-compatible object storage (src/artifacts). */
const artifactUri = z.string().regex(/^(file|s3):\/\//);

/** The device a worker trains on, as it reports it. */
export const workerDeviceSchema = z.object({
  kind: z.enum(DeviceKind),
  /** The name torch reports for a GPU; 'cpu' for a CPU. */
  name: z.string(),
  /** Per GPU for cuda; system RAM for cpu. */
  memory_gib: z.number().positive(),
  /** Number of GPUs (1 on a CPU). */
  count: z.number().int().positive(),
  /** CPU cores, reported by CPU workers. */
  cores: z.number().int().positive().optional(),
});
export type WorkerDevice = z.infer<typeof workerDeviceSchema>;

/** What a worker can do, as facts: TypeScript decides what 'auto' means from them (src/setup). */
export const workerFactsSchema = z.object({
  device: workerDeviceSchema,
  cuda_bf16_supported: z.boolean(),
  unsloth_importable: z.boolean(),
  bitsandbytes_importable: z.boolean(),
});
export type WorkerFacts = z.infer<typeof workerFactsSchema>;

/** resolve_model's answer: the model the spec names, as a local directory, and the worker's facts. */
export const modelFactsSchema = workerFactsSchema.extend({
  model_uri: fileUri,
  /** The spec's model.source, as given. */
  source: z.string(),
  /** A content hash of the tokenizer files: token counts and prepared data are valid for one tokenizer only. */
  tokenizer_identity: z.string().regex(/^[0-9a-f]{64}$/),
  /** The model's config.json as it is; the planner parses it (architectureFromHuggingFaceConfig). */
  config: z.record(z.string(), z.unknown()),
});
export type ModelFacts = z.infer<typeof modelFactsSchema>;
/** The name this shape had before resolve_model reported facts only. */
export type ResolvedModel = ModelFacts;

export const TrainingDtype = {
  BFloat16: 'bfloat16',
  Float16: 'float16',
  Float32: 'float32',
} as const;
export type TrainingDtype = (typeof TrainingDtype)[keyof typeof TrainingDtype];

/** How a run trains, decided once by resolveTrainingSetup: no field is ever 'auto'. */
export const trainingSetupSchema = z.object({
  device: z.enum(DeviceKind),
  backend: z.enum(TrainingBackend),
  quantization: z.enum(Quantization),
  dtype: z.enum(TrainingDtype),
  gradient_checkpointing: z.boolean(),
  /**
   * Sequences per forward pass per process, and passes per optimizer step: the spec's where it fixes them, else the
   * fastest split of train.batch_size that fits (planner/fastest-fit.ts); an out-of-memory recovery lowers the first
   * and raises the second, keeping their product.
   */
  micro_batch_size: z.number().int().positive(),
  gradient_accumulation_steps: z.number().int().positive(),
  optimizer: z.enum(PlannerOptimizer),
  /** Rows packed into sequences of up to model.max_seq_length tokens (train.packing decided). */
  packing: z.boolean(),
  /** Training processes: one per GPU on CUDA (device.gpu_count), device.cpu_processes on a CPU. */
  processes: z.number().int().positive(),
  /** 'single' for one process; 'ddp' or 'fsdp' for several (device.parallelism decided). */
  parallelism: z.enum(Parallelism),
});
export type TrainingSetup = z.infer<typeof trainingSetupSchema>;

/** models.py */
export const resolveModelRequestSchema = z.object({ spec: runSpecSchema });
export type ResolveModelRequest = z.infer<typeof resolveModelRequestSchema>;

/** Token counts of one prepared split; the length percentiles are absent for an empty split. */
export const splitTokenStatisticsSchema = z.object({
  rows: count,
  total_tokens: count,
  trainable_tokens: count,
  min: count.optional(),
  median: z.number().nonnegative().optional(),
  p95: count.optional(),
  max: count.optional(),
  over_max_seq_length: count.optional(),
  /** Rows and tokens left after the dataset.overlong policy: what training sees. */
  rows_trained: count,
  tokens_trained: count,
  /**
   * The trained rows' lengths (after the overlong policy), binned by data.length_histogram: rows of length in
   * (previous bin's up_to, up_to], with their tokens. The planner's padded widths, packs and compiled shapes come from it.
   */
  length_histogram: z.array(z.object({ up_to: count.positive(), rows: count.positive(), tokens: count.positive() })),
  /**
   * The sequences packing.pack_rows makes of the trained rows at model.max_seq_length: what a packed run trains, one
   * rule for the train activity and the plan. Absent from the statistics of earlier versions.
   */
  packed_sequences: count.optional(),
});
export type SplitTokenStatistics = z.infer<typeof splitTokenStatisticsSchema>;

/** data.py via activities.token_statistics */
export const tokenStatisticsRequestSchema = z.object({
  spec: runSpecSchema,
  model_uri: fileUri,
  /** resolve_model's tokenizer_identity: the key the token ids are written under. */
  tokenizer_identity: z.string().regex(/^[0-9a-f]{64}$/),
  train_uri: artifactUri,
  val_uri: artifactUri,
});
export type TokenStatisticsRequest = z.infer<typeof tokenStatisticsRequestSchema>;
export const tokenStatisticsSchema = z.object({
  train: splitTokenStatisticsSchema,
  val: splitTokenStatisticsSchema,
  /** Each split's token ids, written once beside the prepared data (data.write_tokenized_split); train and evaluate read them. */
  train_tokens_uri: artifactUri,
  val_tokens_uri: artifactUri,
});
export type TokenStatistics = z.infer<typeof tokenStatisticsSchema>;

/** A checkpoint as progress reports name it. */
export const checkpointReferenceSchema = z.object({ step: count, uri: artifactUri });
/** The best validation loss so far and the step that reached it. */
export const bestValidationSchema = z.object({ val_loss: z.number(), step: count });

/** Why a step was refused and rolled back (rollback.py, train.rollback). */
export const RollbackReason = {
  LossNotFinite: 'loss_not_finite',
  GradientNormNotFinite: 'gradient_norm_not_finite',
  LossSpike: 'loss_spike',
  GradientNormSpike: 'gradient_norm_spike',
} as const;
export type RollbackReason = (typeof RollbackReason)[keyof typeof RollbackReason];

/** A loss or gradient norm as the engine saw it: the number, or the name of a non-finite value (JSON has no NaN). */
const observedValueSchema = z.union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])]);

/** One rollback: the refused step, its values, the checkpoint training went back to and the rows skipped from then on. */
export const rollbackRecordSchema = z.object({
  /** The refused step, numbered as train_log.jsonl numbers steps (from 1). */
  step: count.positive(),
  reason: z.enum(RollbackReason),
  loss: observedValueSchema,
  gradient_norm: observedValueSchema,
  /** The medians of the window it was judged against; null before train.rollback.min_history_steps steps. */
  loss_median: z.number().nullable(),
  gradient_norm_median: z.number().nullable(),
  /** The robust z-score that exceeded train.rollback.z_threshold (spikes only). */
  z_score: z.number().nullable(),
  /** The checkpoint's step training went back to (0: the start). */
  restored_step: count,
  /** The step's rows, by their place in the dataset: skipped for the rest of the run. */
  rows: z.array(z.object({ file: z.string(), row: z.number().int() })),
  /** The learning rate's multiplier from this rollback on (train.rollback.learning_rate_factor per rollback). */
  learning_rate_scale: z.number().positive(),
  /** The train activity's attempt that rolled back. */
  attempt: z.number().int().positive(),
});
export type RollbackRecord = z.infer<typeof rollbackRecordSchema>;

/** training.py */
export const trainRequestSchema = z.object({
  spec: runSpecSchema,
  setup: trainingSetupSchema,
  model_uri: fileUri,
  train_tokens_uri: artifactUri,
  /** Scored at checkpoints (and every validation.every_steps) for best-checkpoint retention and early stopping. */
  val_tokens_uri: artifactUri,
  run_uri: artifactUri,
  /**
   * Stop after this step, with a checkpoint and the adapter written, though train.max_steps is further: a sweep's
   * rung. The schedule and its learning-rate decay still span train.max_steps, so the next rung resumes exactly.
   */
  stop_at_step: z.number().int().positive().optional(),
});
export type TrainRequest = z.infer<typeof trainRequestSchema>;
export const trainResultSchema = z.object({
  adapter_uri: artifactUri,
  final_step: count,
  total_steps: count,
  stopped_early: z.boolean(),
  train_loss: z.number().nullable(),
  val_loss: z.number().nullable(),
  best: bestValidationSchema.nullable(),
  resumed_from_step: count,
  steps_trained: count,
  steps_redone: count,
  corrupt_checkpoints_skipped: count,
  /** Every rollback of the run (train.rollback), oldest first; absent from results of workers before rollback existed. */
  rollbacks: z.array(rollbackRecordSchema).optional(),
  /** Rows skipped after rollbacks, over the whole run. */
  rows_skipped: count.optional(),
  last_checkpoint_uri: artifactUri.nullable(),
  backend: z.enum(TrainingBackend),
  device: z.enum(DeviceKind),
  dtype: z.enum(TrainingDtype),
  optimizer: z.enum(PlannerOptimizer),
  gradient_checkpointing: z.boolean(),
  train_rows: count,
  /** Whether rows were packed (train.packing resolved), and how many sequences the rows made. */
  packing: z.boolean(),
  train_sequences: count,
  /** The processes that trained this attempt and how they shared the work (the setup's). */
  processes: z.number().int().positive(),
  parallelism: z.enum(Parallelism),
  /** Steady-state real tokens per second of this attempt; null when it trained too few steps to tell. */
  tokens_per_second: z.number().nonnegative().nullable(),
  model_load_seconds: z.number().nonnegative(),
  seconds_to_first_step: z.number().nonnegative().nullable(),
  /** The task queue of the worker that trained: the run's merge and evaluation are offered there first (its files are). */
  worker_task_queue: z.string().optional(),
});
export type TrainResult = z.infer<typeof trainResultSchema>;

/** merging.py */
export const mergeRequestSchema = z.object({
  spec: runSpecSchema,
  setup: trainingSetupSchema,
  model_uri: fileUri,
  adapter_uri: artifactUri,
  run_uri: artifactUri,
});
export type MergeRequest = z.infer<typeof mergeRequestSchema>;
export const mergeResultSchema = z.object({
  merged_uri: artifactUri,
  dtype: z.enum(TrainingDtype),
  parameters: count,
  bytes: count,
});
export type MergeResult = z.infer<typeof mergeResultSchema>;

/** Per model: the share of pairs where log p(chosen | prompt) > log p(rejected | prompt), and the mean difference. */
const preferenceScoresSchema = z.object({ pairs: count, reward_accuracy: z.number(), reward_margin: z.number() });

/** evaluation.py */
export const evaluateRequestSchema = z.object({
  spec: runSpecSchema,
  setup: trainingSetupSchema,
  model_uri: fileUri,
  adapter_uri: artifactUri,
  val_tokens_uri: artifactUri,
  /**
   * Retraining: the adapter is champion v`champion_version`, and each judge suite compares the challenger's answers
   * (its own evaluation's `suites.answers`) with the champion's, the challenger as the candidate. Absent: a judge
   * compares the adapter with its base.
   */
  challenger: z.object({ champion_version: z.number().int().positive(), answers: z.array(referenceAnswerSchema).min(1) }).optional(),
});
export type EvaluateRequest = z.infer<typeof evaluateRequestSchema>;
export const evaluationResultSchema = z.object({
  val_rows: count,
  val_tokens: count,
  base_val_loss: z.number().nullable(),
  tuned_val_loss: z.number().nullable(),
  base_perplexity: z.number().nullable(),
  tuned_perplexity: z.number().nullable(),
  samples: z.array(z.object({ prompt: z.string(), base: z.string(), tuned: z.string() })),
  /** dpo runs: how often each model prefers the chosen response of a held-out pair, and by how much (nats). */
  preference: z
    .object({
      beta: z.number().positive(),
      base: preferenceScoresSchema,
      tuned: preferenceScoresSchema.extend({ implicit_reward_accuracy: z.number(), implicit_reward_margin: z.number() }),
    })
    .optional(),
  /** The spec's evaluate.suites scored on base and adapter (suites.py); null when the spec declares none. */
  suites: suiteEvaluationSchema.nullable(),
});
export type EvaluationResult = z.infer<typeof evaluationResultSchema>;

/** exporting.py: GGUF files of a merged model, written whole under `<run>/exports/` (docs/exports.md). */
export const GgufFormat = { F16: 'f16', Q8_0: 'q8_0' } as const;
export type GgufFormat = (typeof GgufFormat)[keyof typeof GgufFormat];
export const exportGgufRequestSchema = z.object({
  /** A merged 16/32-bit Hugging Face directory (the merge activity's merged_uri). */
  model_uri: fileUri,
  run_uri: fileUri,
  formats: z.array(z.enum(GgufFormat)).min(1),
  /** Written as GGUF's general.name. */
  name: z.string().min(1),
});
export type ExportGgufRequest = z.infer<typeof exportGgufRequestSchema>;
export const exportGgufResultSchema = z.object({
  exports: z.array(z.object({ format: z.enum(GgufFormat), uri: fileUri, bytes: count, sha256: z.string().regex(/^[0-9a-f]{64}$/) })),
  modelfile_uri: fileUri,
  source_uri: fileUri,
});
export type ExportGgufResult = z.infer<typeof exportGgufResultSchema>;
/** A checkpoint directory of a run as checkpoint.Checkpoint.as_record / corrupt_record describe it. */
export const checkpointRecordSchema = z.object({
  step: count,
  uri: artifactUri,
  /** Every file matches the sha256 its manifest records. */
  verified: z.boolean(),
  train_loss: z.number().nullable(),
  val_loss: z.number().nullable(),
});
export type CheckpointRecord = z.infer<typeof checkpointRecordSchema>;

/** activities.verify_checkpoints: checkpoints are verified in Python only. */
export const verifyCheckpointsRequestSchema = z.object({ run_uri: artifactUri });
export type VerifyCheckpointsRequest = z.infer<typeof verifyCheckpointsRequestSchema>;
export const verifiedCheckpointsSchema = z.object({
  /** Verified checkpoints, oldest first. */
  checkpoints: z.array(checkpointRecordSchema),
  corrupt: z.array(checkpointRecordSchema),
});
export type VerifiedCheckpoints = z.infer<typeof verifiedCheckpointsSchema>;

/** Each Python activity's request and result schema, under its contract name: what the JSON Schema files are made of. */
export const acceleratorActivitySchemas = {
  [AcceleratorActivity.ResolveModel]: { request: resolveModelRequestSchema, result: modelFactsSchema },
  [AcceleratorActivity.TokenStatistics]: { request: tokenStatisticsRequestSchema, result: tokenStatisticsSchema },
  [AcceleratorActivity.Train]: { request: trainRequestSchema, result: trainResultSchema },
  [AcceleratorActivity.Merge]: { request: mergeRequestSchema, result: mergeResultSchema },
  [AcceleratorActivity.Evaluate]: { request: evaluateRequestSchema, result: evaluationResultSchema },
  [AcceleratorActivity.ExportGguf]: { request: exportGgufRequestSchema, result: exportGgufResultSchema },
  [AcceleratorActivity.VerifyCheckpoints]: { request: verifyCheckpointsRequestSchema, result: verifiedCheckpointsSchema },
} as const satisfies Record<AcceleratorActivity, { request: z.ZodType; result: z.ZodType }>;

type ActivitySchemas = typeof acceleratorActivitySchemas;

/** The Python activities as the workflow calls them: property names are the activity names in the contract. */
export type AcceleratorActivities = {
  [Name in keyof ActivitySchemas]: (request: z.infer<ActivitySchemas[Name]['request']>) => Promise<z.infer<ActivitySchemas[Name]['result']>>;
};
