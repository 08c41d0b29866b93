/**
 * The sweep: a grid of run-spec parameters, trained by successive halving over rungs of steps. The `sweep:` section
 * of a spec file (or `--grid` flags) as the user writes it, and the sweep as the workflow receives it: every trial
 * already expanded, its spec validated, its rungs decided. Zod only: workflows import it.
 */
import { z } from 'zod';

/**
 * The spec fields a grid may vary: those that change what is trained but not the prepared data or its tokens, so
 * that every trial trains on the one prepared, tokenised dataset.
 */
export const SweepParameter = {
  LoraRank: 'lora.r',
  LoraAlpha: 'lora.alpha',
  LoraDropout: 'lora.dropout',
  LoraUseRslora: 'lora.use_rslora',
  LearningRate: 'train.learning_rate',
  LearningRateScheduler: 'train.lr_scheduler',
  WarmupSteps: 'train.warmup_steps',
  WeightDecay: 'train.weight_decay',
  MaxGradNorm: 'train.max_grad_norm',
  MicroBatchSize: 'train.micro_batch_size',
  GradientAccumulationSteps: 'train.gradient_accumulation_steps',
  Optimizer: 'train.optimizer',
  Seed: 'train.seed',
} as const;
export type SweepParameter = (typeof SweepParameter)[keyof typeof SweepParameter];

export const parameterValueSchema = z.union([z.number(), z.string(), z.boolean()]);
export type ParameterValue = z.infer<typeof parameterValueSchema>;

const positiveInt = z.number().int().positive();

const durationPattern = /^(\d+(?:\.\d+)?)\s*(s|m|h|d)$/;
const secondsPerUnit = { s: 1, m: 60, h: 3600, d: 86_400 } as const;

/** `2h`, `90m`, `45s`, `1.5d`, or a number of seconds; parsed, always seconds (the pipe gives it a JSON Schema). */
export const durationSchema = z
  .union([z.number().positive(), z.string().regex(durationPattern, 'a duration such as 45s, 90m, 2h or 1.5d')])
  .transform((duration) => {
    if (typeof duration === 'number') return duration;
    const [, amount, unit] = duration.match(durationPattern)!;
    return Number(amount) * secondsPerUnit[unit as keyof typeof secondsPerUnit];
  })
  .pipe(z.number().positive());

/** The `sweep:` section of a spec file. */
export const sweepSpecSchema = z.strictObject({
  /** Each parameter's values; the trials are every combination. */
  grid: z.partialRecord(z.enum(SweepParameter), z.array(parameterValueSchema).min(1)).default({}),
  /** Steps of the last rung: what a trial that survives every rung trains (default train.max_steps). */
  steps: positiveInt.optional(),
  /** The rungs' steps, ascending, the last one the sweep's steps; by default derived from reduction_factor. */
  rungs: z.array(positiveInt).min(1).optional(),
  /** Each rung keeps the best 1/reduction_factor of its trials (at least one). */
  reduction_factor: z.number().min(1.5).default(2),
  /** Refuse to start when the planned sweep would take longer than this. */
  budget: durationSchema.optional(),
  /** Trials training at once: one per GPU worker serving tuneflow-gpu. */
  parallel: positiveInt.default(1),
});
export type SweepSpecInput = z.input<typeof sweepSpecSchema>;
export type SweepSpec = z.output<typeof sweepSpecSchema>;

/** One point of the grid: its parameters, and the key that names it (its child workflow id, its run folder). */
export const trialSchema = z.object({
  key: z.string().min(1),
  parameters: z.record(z.string(), parameterValueSchema),
});
export type Trial = z.infer<typeof trialSchema>;

/** The sweep as the workflow receives it: trials expanded and validated, rungs decided. */
export const sweepPlanSchema = z.object({
  trials: z.array(trialSchema).min(1),
  /** Ascending steps; the last is every trial's train.max_steps, so the learning-rate schedule spans the whole run. */
  rungs: z.array(positiveInt).min(1),
  reduction_factor: z.number().min(1.5),
  budget_seconds: z.number().positive().nullable(),
  parallel: positiveInt,
});
export type SweepPlan = z.infer<typeof sweepPlanSchema>;

export const TrialOutcome = {
  /** The planner says it cannot fit the device: never started. */
  DoesNotFit: 'does-not-fit',
  /** Trained every rung. */
  Completed: 'completed',
  /** Stopped by halving after a rung; its last checkpoint stays, so it can be resumed. */
  Stopped: 'stopped',
  /** Its training failed (not for lack of memory the planner foresaw). */
  Failed: 'failed',
  /** Still training, or waiting for its next rung. */
  Running: 'running',
} as const;
export type TrialOutcome = (typeof TrialOutcome)[keyof typeof TrialOutcome];

/** One rung a trial trained. */
export const rungResultSchema = z.object({
  steps: positiveInt,
  val_loss: z.number().nullable(),
  train_loss: z.number().nullable(),
  /** Steady-state real tokens per second of that rung's training; null when too few steps to tell. */
  tokens_per_second: z.number().nullable(),
  /** Wall-clock seconds of the rung, from the sweep's start of it to its end (waiting for a worker included). */
  wall_seconds: z.number().nonnegative(),
  /** Steps trained in this rung (a resumed rung counts only what it trained). */
  steps_trained: z.number().int().nonnegative(),
});
export type RungResult = z.infer<typeof rungResultSchema>;

/** A row of the sweep's result table. */
export const trialRowSchema = trialSchema.extend({
  outcome: z.enum(TrialOutcome),
  /** Why it did not fit or why it failed. */
  reason: z.string().nullable(),
  workflow_id: z.string(),
  run_uri: z.string(),
  planned: z
    .object({ peak_vram_gib: z.number(), available_gib: z.number(), step_seconds: z.number(), seconds: z.number(), trainable_parameters: z.number().int() })
    .nullable(),
  rungs: z.array(rungResultSchema),
  /** Optimizer steps this trial trained over all rungs. */
  steps_spent: z.number().int().nonnegative(),
  wall_seconds: z.number().nonnegative(),
  /** The latest rung's steady-state speed. */
  tokens_per_second: z.number().nullable(),
  /** LoRA parameters (the plan's trainable parameters) and their size saved as float32 safetensors. */
  adapter_parameters: z.number().int().nullable(),
  adapter_bytes: z.number().int().nullable(),
  adapter_uri: z.string().nullable(),
  last_checkpoint_uri: z.string().nullable(),
  /** Not dominated in (validation loss, planned peak VRAM, planned seconds per step) by another trial. */
  pareto: z.boolean(),
  best: z.boolean(),
});
export type TrialRow = z.infer<typeof trialRowSchema>;

export const sweepTableSchema = z.object({
  rungs: z.array(positiveInt),
  trials: z.array(trialRowSchema),
  best: z.string().nullable(),
  pareto_front: z.array(z.string()),
  /** Steps spent by the sweep, and what training every fitting trial to the last rung would have spent. */
  steps_spent: z.number().int().nonnegative(),
  steps_without_halving: z.number().int().nonnegative(),
  planned_seconds: z.number().nonnegative(),
  wall_seconds: z.number().nonnegative(),
});
export type SweepTable = z.infer<typeof sweepTableSchema>;
