/**
 * What the Python activities say while they run: heartbeat details, and the train activity's messages to the
 * workflow that scheduled it (a signal at each checkpoint and resume, a query for control requests). Zod schemas
 * with their types; the guards read payloads that arrive untyped (heartbeat details, signal arguments).
 */
import { z } from 'zod';
import { bestValidationSchema, checkpointReferenceSchema, rollbackRecordSchema } from './accelerator.ts';
import { WorkflowMessage } from './names.ts';

const count = z.number().int().nonnegative();

/** Heartbeat details of every Python activity but train, and of train while it loads its model. */
export const phaseHeartbeatSchema = z.object({ phase: z.string().min(1) });
export type PhaseHeartbeat = z.infer<typeof phaseHeartbeatSchema>;

/** The train activity's heartbeat once training runs (training.Progress.as_heartbeat): live step, loss and speed. */
export const trainHeartbeatSchema = z.object({
  step: count,
  total_steps: count,
  epoch: count,
  loss: z.number().nullable(),
  val_loss: z.number().nullable(),
  /** Real (non-padding) tokens per second in steady state: a moving window past the warm-up steps; null before. */
  tokens_per_second: z.number().nonnegative().nullable(),
  /** Tokens the model computed on per second, padding included. */
  padded_tokens_per_second: z.number().nonnegative().nullable(),
  padding_fraction: z.number().min(0).max(1).nullable(),
  /** The steps left (max_steps, epochs) at the steady-state seconds per step. */
  eta_seconds: z.number().nonnegative().nullable(),
  last_checkpoint: checkpointReferenceSchema.nullable(),
  resumed_from_step: count,
  steps_redone: count,
  /** Rollbacks so far (train.rollback); absent from the heartbeats of workers before rollback existed. */
  rollbacks: count.optional(),
});
export type TrainHeartbeat = z.infer<typeof trainHeartbeatSchema>;
/** The name this shape had before it was a schema. */
export type TrainProgress = TrainHeartbeat;
export const isTrainHeartbeat = (value: unknown): value is TrainHeartbeat => trainHeartbeatSchema.safeParse(value).success;

export const TrainingProgressEvent = {
  Checkpoint: 'checkpoint',
  Resumed: 'resumed',
  /** A step was refused (NaN or a spike) and training went back to its last checkpoint. */
  RolledBack: 'rolled_back',
} as const;
export type TrainingProgressEvent = (typeof TrainingProgressEvent)[keyof typeof TrainingProgressEvent];

/**
 * The train activity's signal to its workflow at a checkpoint or a resume (training.Progress.as_message): few
 * events, so the history does not grow per step.
 */
export const trainingProgressMessageSchema = trainHeartbeatSchema.extend({
  event: z.enum(TrainingProgressEvent),
  attempt: z.number().int().positive(),
  best: bestValidationSchema.nullable(),
  /** [step, loss] pairs since the previous message. */
  losses: z.array(z.tuple([count, z.number()])),
  /** Every rollback of the run so far; absent from the messages of workers before rollback existed. */
  rollback_records: z.array(rollbackRecordSchema).optional(),
});
export type TrainingProgressMessage = z.infer<typeof trainingProgressMessageSchema>;
export const isTrainingProgressMessage = (value: unknown): value is TrainingProgressMessage => trainingProgressMessageSchema.safeParse(value).success;

/** The workflow's answer to the train activity's control query, asked every few seconds (queries add no events). */
export const trainingControlSchema = z.object({
  paused: z.boolean(),
  /** Incremented by each checkpointNow signal; the train activity checkpoints when it sees the count grow. */
  checkpoint_requests: count,
});
export type ControlState = z.infer<typeof trainingControlSchema>;

/** The message shapes under their contract names, and the heartbeat shapes: what the JSON Schema files are made of. */
export const messageSchemas = {
  [WorkflowMessage.TrainingProgress]: trainingProgressMessageSchema,
  [WorkflowMessage.TrainingControl]: trainingControlSchema,
} as const satisfies Record<WorkflowMessage, z.ZodType>;

export const heartbeatSchemas = {
  train: trainHeartbeatSchema,
  phase: phaseHeartbeatSchema,
} as const;
