/**
 * Requests and results of the TypeScript activities (task queue tuneflow), as zod schemas with their types. The
 * planner's answer (Plan) is defined here because it travels: through Temporal, into run.json, out of
 * `tuneflow plan --json`.
 */
import { z } from 'zod';
import { preparedDatasetReportSchema } from '../data/report.ts';
import { DeviceKind, Parallelism, PlannerOptimizer, Quantization, SuggestionKind, TrainingBackend } from './vocabulary.ts';
import { runSpecSchema } from '../spec/schema.ts';
import { modelFactsSchema, tokenStatisticsSchema, trainingSetupSchema } from './accelerator.ts';

const positiveInt = z.number().int().positive();

export const prepareDatasetRequestSchema = z.object({
  spec: runSpecSchema,
  artifact_root_uri: z.string().regex(/^(file|s3):\/\//),
});
export type PrepareDatasetRequest = z.infer<typeof prepareDatasetRequestSchema>;
export { preparedDatasetReportSchema };

/** The run on its data's real lengths (planner/run-time.ts): what its ETA is made of. */
export const runTimeSchema = z.object({
  packing: z.boolean(),
  /** What the schedule orders: packs when packing, rows otherwise. */
  sequences: z.number().int().nonnegative(),
  /** Optimizer steps the run will take (epochs, capped by train.max_steps). */
  steps: z.number().int().nonnegative(),
  real_tokens_per_step: z.number(),
  /** Of the tokens the model computes, the share that is padding. */
  padding_fraction: z.number(),
  step_seconds: z.number(),
  real_tokens_per_s: z.number(),
  /** Input shapes Unsloth compiles its decoder blocks for (0: nothing is compiled), and what they cost. */
  compiled_shapes: z.number().int().nonnegative(),
  compile_seconds: z.number(),
  model_load_seconds: z.number(),
  /** The first step: compile, or an eager step's warm-up. */
  first_step_seconds: z.number(),
  /** The final checkpoint and adapter. */
  finish_seconds: z.number(),
  training_seconds: z.number(),
  eta_seconds: z.number(),
});
export type RunTime = z.infer<typeof runTimeSchema>;

/** A plan without suggestions: what one candidate configuration costs. The search evaluates many of these. */
export const evaluationSchema = z.object({
  fits: z.boolean(),
  peak_vram_gib: z.number(),
  available_gib: z.number(),
  /** GiB per memory term, per device. */
  breakdown: z.record(z.string(), z.number()),
  tokens_per_s: z.number(),
  tokens_per_hour: z.number(),
  /** With the data's lengths: run_time.eta_seconds; otherwise dataset tokens × epochs at the full-length tokens/s. */
  eta_seconds: z.number().optional(),
  run_time: runTimeSchema.optional(),
  /** Seconds per optimizer step (all accumulation micro-steps). */
  step_seconds: z.number(),
  effective_batch_size: positiveInt,
  trainable_parameters: z.number().int(),
  total_parameters: z.number().int(),
  device: z.object({ kind: z.enum(DeviceKind), name: z.string(), count: positiveInt, memory_gib: z.number() }),
  reasons: z.array(z.string()),
  notes: z.array(z.string()),
});
export type Evaluation = z.infer<typeof evaluationSchema>;

/** The request fields a suggestion changes. */
export const requestChangesSchema = z.object({
  backend: z.enum(TrainingBackend).optional(),
  /** More GPUs reduce memory per GPU only when they shard the model: the more-GPUs suggestion is FSDP. */
  parallelism: z.enum(Parallelism).optional(),
  quantization: z.enum(Quantization).optional(),
  lora_rank: positiveInt.optional(),
  sequence_length: positiveInt.optional(),
  micro_batch_size: positiveInt.optional(),
  gradient_accumulation_steps: positiveInt.optional(),
  gradient_checkpointing: z.boolean().optional(),
  optimizer: z.enum(PlannerOptimizer).optional(),
  device: z.object({ gpu: z.string(), count: positiveInt.optional(), memory_gib: z.number().positive().optional() }).optional(),
});
export type RequestChanges = z.infer<typeof requestChangesSchema>;

export const suggestionSchema = z.object({
  kind: z.enum(SuggestionKind),
  description: z.string(),
  changes: requestChangesSchema,
  fits: z.boolean(),
  peak_vram_gib: z.number(),
  available_gib: z.number(),
  tokens_per_s: z.number(),
});
export type Suggestion = z.infer<typeof suggestionSchema>;

/** One setting an 'auto' of the spec could take, as the planner priced it. */
export const autoAlternativeSchema = z.object({
  gradient_checkpointing: z.boolean(),
  micro_batch_size: positiveInt,
  gradient_accumulation_steps: positiveInt,
  fits: z.boolean(),
  peak_vram_gib: z.number(),
  /** What the choice compares: real tokens/s on the data's lengths where they are known, else full-length tokens/s. */
  tokens_per_s: z.number(),
});
export type AutoAlternative = z.infer<typeof autoAlternativeSchema>;

/** What the spec's 'auto' settings were decided as (planner/fastest-fit.ts), and the alternatives it rejected. */
export const autoChoiceSchema = z.object({
  /** The spec fields that were 'auto' and are decided here. */
  fields: z.array(z.enum(['gradient_checkpointing', 'micro_batch_size'])),
  chosen: autoAlternativeSchema,
  reason: z.string(),
  rejected: z.array(autoAlternativeSchema.extend({ why: z.string() })),
});
export type AutoChoice = z.infer<typeof autoChoiceSchema>;

export const planSchema = evaluationSchema.extend({
  /** Empty when the plan fits; otherwise the cheapest changes that make it fit, each with its new peak. */
  suggestions: z.array(suggestionSchema),
  /** Present where the spec left a setting to 'auto': the fastest that fits, and what it was chosen over. */
  auto_choice: autoChoiceSchema.optional(),
});
export type Plan = z.infer<typeof planSchema>;

export const planRunRequestSchema = z.object({
  spec: runSpecSchema,
  model: modelFactsSchema,
  tokens: tokenStatisticsSchema,
});
export type PlanRunRequest = z.infer<typeof planRunRequestSchema>;

/** planRun's answer: how the run trains (every 'auto' decided) and what that costs. */
export const runPlanSchema = z.object({ setup: trainingSetupSchema, plan: planSchema });
export type RunPlan = z.infer<typeof runPlanSchema>;

/**
 * After an out-of-memory failure: gradient checkpointing turns on where the spec's 'auto' had it off, else the
 * micro-batch shrinks (the effective batch kept); nothing else of the setup changes.
 */
export const replanRequestSchema = planRunRequestSchema.extend({ setup: trainingSetupSchema });
export type ReplanRequest = z.infer<typeof replanRequestSchema>;
export const replanSchema = z
  .object({
    /** The setup to train with from here: gradient checkpointing turned on where 'auto' had it off, else a smaller micro-batch. */
    setup: trainingSetupSchema,
    plan: planSchema,
  })
  .nullable();
export type Replan = NonNullable<z.infer<typeof replanSchema>>;
