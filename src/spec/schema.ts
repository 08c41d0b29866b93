import { z } from 'zod';
import { Backend, DatasetFormat, ObjectiveKind, Optimizer, PreferenceLoss, Quantization } from '../contract/vocabulary.ts';
import { gateProblem, gateSpecSchema, suiteNameOf, suiteSpecSchema } from '../quality/index.ts';
import { sweepSpecSchema } from '../sweep/schema.ts';
import { objectiveDatasetMismatch } from './objective.ts';

export { Backend, BuiltinModel, DatasetFormat, ObjectiveKind, Optimizer, PreferenceLoss } from '../contract/vocabulary.ts';

/**
 * The run spec: everything a fine-tune needs, in one YAML or JSON file. Field names are snake_case because the
 * spec travels unchanged to the Python worker. Defaults follow current LoRA practice (r=16, alpha=r, no dropout,
 * all linear layers, lr 2e-4), not the alpha=r/4 of older guides.
 */

const positiveInt = z.number().int().positive();
const fraction = z.number().min(0).max(1);

export const modelSpecSchema = z.strictObject({
  /** A builtin model name, a Hugging Face model directory, or a .gguf file. Relative paths start at the spec file. */
  source: z.string().min(1),
  max_seq_length: positiveInt.default(512),
});

export const datasetSpecSchema = z
  .strictObject({
    /** A JSON array or JSONL file (or a directory of them, optionally gzipped). Relative to the spec file. */
    path: z.string().min(1),
    format: z.enum(DatasetFormat).default('auto'),
    /** Validation split as a fraction of the rows... */
    val_fraction: fraction.optional(),
    /** ...or as a row count... */
    val_count: z.number().int().nonnegative().optional(),
    /** ...or a separate file. */
    val_path: z.string().min(1).optional(),
    seed: z.number().int().default(42),
    /** Above this fraction of invalid rows the prepare stage fails with the report. */
    max_invalid_fraction: fraction.default(0.01),
    /** What to do with a row longer than model.max_seq_length tokens. */
    overlong: z.enum(['drop', 'truncate', 'fail']).default('truncate'),
  })
  .refine((dataset) => [dataset.val_fraction, dataset.val_count, dataset.val_path].filter((v) => v !== undefined).length <= 1, {
    message: 'give at most one of val_fraction, val_count, val_path',
  });

export const loraSpecInputSchema = z.strictObject({
  r: positiveInt.default(16),
  /** Defaults to r (scale 1), current practice; older guides used r/4. */
  alpha: z.number().positive().optional(),
  dropout: z.number().min(0).max(0.9).default(0),
  /** 'all-linear' or explicit module names such as q_proj, v_proj. */
  target_modules: z.union([z.literal('all-linear'), z.array(z.string().min(1)).min(1)]).default('all-linear'),
  use_rslora: z.boolean().default(false),
});

// The pipe states the parsed shape (alpha always present), so the parsed spec has a JSON Schema too (the contract's).
export const loraSpecSchema = loraSpecInputSchema.transform((lora) => ({ ...lora, alpha: lora.alpha ?? lora.r })).pipe(loraSpecInputSchema.required());

/**
 * What training optimises (train.objective), a union on `kind`. 'sft': next-token loss on the responses. 'dpo':
 * direct preference optimisation on pairs of chosen and rejected responses, the reference being the frozen model
 * the adapter trains on (the adapter disabled, no second copy of the weights). `beta` scales the log-ratio margin
 * (higher stays closer to the reference); `loss_type` 'sigmoid' is DPO's logistic loss and 'ipo' the squared loss
 * of IPO; `label_smoothing` is the assumed share of mislabelled pairs (conservative DPO, sigmoid loss only).
 */
export const objectiveSpecSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal(ObjectiveKind.SupervisedFineTuning) }),
  z.strictObject({
    kind: z.literal(ObjectiveKind.DirectPreferenceOptimization),
    beta: z.number().positive().default(0.1),
    loss_type: z.enum(PreferenceLoss).default(PreferenceLoss.Sigmoid),
    label_smoothing: z.number().min(0).lt(0.5).default(0),
  }),
]);
export type ObjectiveSpec = z.output<typeof objectiveSpecSchema>;

/**
 * Loss-spike and NaN rollback (train.rollback, docs/quality.md): the engine watches every step's loss and gradient
 * norm before it applies the step. A loss or norm that is NaN or infinite, or a loss whose robust z-score (distance
 * from the median of the last `window_steps` steps in units of their median absolute deviation) is above
 * `z_threshold` once at least `min_history_steps` steps are in the window, rolls the run back to its last checkpoint,
 * skips the rows of the offending step for the rest of the run, multiplies the learning rate by `learning_rate_factor`
 * and continues. After `max_rollbacks` rollbacks the next one fails the run (TuneflowTrainingDiverged) naming the
 * step, rows and values. On by default; `enabled: false` turns it off.
 */
export const rollbackSpecSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    window_steps: positiveInt.default(50),
    min_history_steps: positiveInt.default(20),
    z_threshold: z.number().positive().default(10),
    max_rollbacks: z.number().int().nonnegative().default(3),
    /**
     * Also refuse a gradient norm (before clipping) whose robust z-score is above this; null: the norm is refused only
     * when NaN or infinite. Off by default: clipping bounds what a large finite norm can do, and LoRA's norms grow
     * legitimately by an order of magnitude or more early on (B starts at zero; 0.08 to 4 in 20 steps on the fault
     * suite's run, its loss flat).
     */
    gradient_norm_z_threshold: z.number().positive().nullable().default(null),
    learning_rate_factor: z.number().positive().max(1).default(1),
  })
  .refine((rollback) => rollback.min_history_steps <= rollback.window_steps, {
    message: 'min_history_steps must be at most window_steps (the history is the window)',
    path: ['min_history_steps'],
  });
export type RollbackSpec = z.output<typeof rollbackSpecSchema>;

export const trainSpecSchema = z.strictObject({
  objective: objectiveSpecSchema.default({ kind: ObjectiveKind.SupervisedFineTuning }),
  epochs: z.number().positive().default(1),
  /** Stops early at this many optimizer steps, whatever the epochs say. */
  max_steps: positiveInt.optional(),
  /**
   * Sequences (packs when packing, rows otherwise) per forward pass, per training process. 'auto' (the default): the
   * fastest micro-batch that fits the card the run is planned for, chosen jointly with gradient checkpointing
   * (planner/fastest-fit.ts), with the accumulation that keeps train.batch_size per optimizer step.
   */
  micro_batch_size: z.union([positiveInt, z.literal('auto')]).default('auto'),
  /**
   * Micro-batches per optimizer step. With a fixed micro_batch_size: 1 unless given (or train.batch_size over the
   * micro-batch); with micro_batch_size 'auto' it is decided, so giving it is refused (give train.batch_size).
   */
  gradient_accumulation_steps: positiveInt.optional(),
  /**
   * The effective batch: sequences per optimizer step per training process, micro_batch_size ×
   * gradient_accumulation_steps (with N processes the optimizer sees N times as many). Default 4 with
   * micro_batch_size 'auto'; with a fixed micro_batch_size it must be a multiple of it (setup/batch.ts).
   */
  batch_size: positiveInt.optional(),
  learning_rate: z.number().positive().default(2e-4),
  lr_scheduler: z.enum(['linear', 'cosine', 'constant']).default('linear'),
  warmup_steps: z.number().int().nonnegative().default(0),
  weight_decay: z.number().nonnegative().default(0),
  max_grad_norm: z.number().positive().default(1),
  optimizer: z.enum(Optimizer).default('auto'),
  gradient_checkpointing: z.union([z.boolean(), z.literal('auto')]).default('auto'),
  /**
   * Packs rows into sequences of up to model.max_seq_length tokens without padding, each row attending only to
   * itself. 'auto' packs where the loader's attention sees row boundaries natively (Unsloth's padding-free path).
   */
  packing: z.union([z.boolean(), z.literal('auto')]).default('auto'),
  /** 'responses' masks prompt tokens out of the loss; 'all' trains on every token. */
  loss_on: z.enum(['responses', 'all']).default('responses'),
  seed: z.number().int().default(42),
  /** A training step that reports nothing for this long is presumed dead and retried from its last checkpoint. */
  heartbeat_timeout_seconds: positiveInt.default(120),
  log_every_steps: positiveInt.default(1),
  rollback: rollbackSpecSchema.prefault({}),
});

export const checkpointSpecSchema = z.strictObject({
  every_steps: positiveInt.default(50),
  /** Also checkpoint when this many minutes passed since the last one (slow steps, big models). */
  every_minutes: z.number().positive().optional(),
  keep_last: positiveInt.default(3),
  /** Keep the checkpoint with the best validation loss too, whatever its age. */
  keep_best: z.boolean().default(true),
});

/** Validation loss during training: at every checkpoint, and every N steps when set. */
export const validationSpecSchema = z.strictObject({
  every_steps: positiveInt.nullable().default(null),
  /** Validation rows scored during training; all of them when absent. */
  max_rows: positiveInt.optional(),
  /** Stop after this many evaluations without improvement; the final adapter is then the best checkpoint's. */
  early_stopping_patience: positiveInt.nullable().default(null),
  /** An improvement smaller than this does not count. */
  early_stopping_min_delta: z.number().nonnegative().default(0),
});

export const mergeSpecSchema = z.strictObject({
  enabled: z.boolean().default(true),
  dtype: z.enum(['auto', 'float32', 'bfloat16', 'float16']).default('auto'),
});

export const evaluateSpecSchema = z
  .strictObject({
    enabled: z.boolean().default(true),
    sample_prompts: z.array(z.string().min(1)).default([]),
    max_new_tokens: positiveInt.default(64),
    /** Validation rows scored for loss and perplexity; all of them when absent. */
    max_rows: positiveInt.optional(),
    /** Task metrics scored on base and tuned answers to the reference prompts (src/quality/suites.ts, docs/quality.md). */
    suites: z.array(suiteSpecSchema).default([]),
    /**
     * Where the suites' prompts and references come from: a JSONL file of {"prompt", "reference"} rows (relative to
     * the spec file); without it, the validation rows' prompts with their first assistant turn as the reference.
     */
    references_path: z.string().min(1).optional(),
    /** Reference rows answered for the suites: the first this many. */
    suite_rows: positiveInt.default(64),
    /** Promotion gates on the suites' metrics, e.g. `json.field_accuracy >= champion + 0.02` (src/quality/gates.ts). */
    gates: z.array(gateSpecSchema).default([]),
  })
  .superRefine((evaluate, context) => {
    const suites = new Map<string, (typeof evaluate.suites)[number]['kind']>();
    for (const [index, suite] of evaluate.suites.entries()) {
      const name = suiteNameOf(suite);
      if (suites.has(name)) context.addIssue({ code: 'custom', path: ['suites', index, 'name'], message: `two suites are named "${name}": give one a name` });
      suites.set(name, suite.kind);
    }
    for (const [index, gate] of evaluate.gates.entries()) {
      const problem = gateProblem(gate, suites);
      if (problem) context.addIssue({ code: 'custom', path: ['gates', index], message: problem });
    }
  });

export const deviceSpecSchema = z.strictObject({
  type: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
  /** A GPU from the planner's catalog (h200, rtx-4090, …) or 'auto' for whatever the Python worker reports. */
  gpu: z.string().min(1).default('auto'),
  /** GPUs one run trains on, one process each (NCCL); more than 1 is DDP or FSDP as device.parallelism says. */
  gpu_count: positiveInt.default(1),
  /**
   * How several GPUs share the run: 'ddp' replicates the model on each; 'fsdp' shards it (hf-peft only: each GPU holds
   * 1/N of the weights and adapter state, the way to train a model one GPU cannot hold); 'auto' is ddp where its plan
   * fits, else fsdp where that fits.
   */
  parallelism: z.enum(['auto', 'ddp', 'fsdp']).default('auto'),
  /** Data-parallel training processes on a CPU (gloo): the multi-process path without GPUs, for tests and debugging. */
  cpu_processes: positiveInt.default(1),
  /** Overrides the catalog's memory, for GPUs shared with other work. */
  gpu_memory_gib: z.number().positive().optional(),
  backend: z.enum(Backend).default('auto'),
  quantization: z.enum(Quantization).default('none'),
});

export const runSpecSchema = z
  .strictObject({
    name: z.string().min(1).optional(),
    model: modelSpecSchema,
    dataset: datasetSpecSchema,
    lora: loraSpecSchema.prefault({}),
    train: trainSpecSchema.prefault({}),
    checkpoint: checkpointSpecSchema.prefault({}),
    validation: validationSpecSchema.prefault({}),
    merge: mergeSpecSchema.prefault({}),
    evaluate: evaluateSpecSchema.prefault({}),
    device: deviceSpecSchema.prefault({}),
    /** A grid of these fields trained by successive halving: read by `tuneflow sweep` (docs/sweeps.md), ignored by `tuneflow run`. */
    sweep: sweepSpecSchema.optional(),
  })
  .superRefine((spec, context) => {
    // An explicit dataset format answers one objective; 'auto' is checked by prepare once it has read the rows.
    const mismatch = objectiveDatasetMismatch(spec.train.objective.kind, spec.dataset.format);
    if (mismatch !== null) context.addIssue({ code: 'custom', path: ['dataset', 'format'], message: mismatch });
    const { objective } = spec.train;
    if (objective.kind === ObjectiveKind.DirectPreferenceOptimization && objective.loss_type === PreferenceLoss.Ipo && objective.label_smoothing > 0) {
      context.addIssue({
        code: 'custom',
        path: ['train', 'objective', 'label_smoothing'],
        message: "label_smoothing applies to loss_type 'sigmoid' only (IPO has none)",
      });
    }
  });

/** A spec as written by a user, defaults not yet applied. */
export type RunSpecInput = z.input<typeof runSpecSchema>;
/** A spec with every default applied and every path absolute: what workflows receive. */
export type RunSpec = z.output<typeof runSpecSchema>;
export type ModelSpec = RunSpec['model'];
export type DatasetSpec = RunSpec['dataset'];
export type LoraSpec = RunSpec['lora'];
export type TrainSpec = RunSpec['train'];
export type DeviceSpec = RunSpec['device'];
