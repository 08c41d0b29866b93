/**
 * The names of the contract between the TypeScript side (workflows, bookkeeping activities, client) and the Python
 * activity worker. Every task queue, activity name, failure type and search attribute lives here once; its Python
 * twin is `python-activities/tuneflow_activities/contract.py`, and `test/contract.test.ts` proves the two are equal.
 * The shapes of the payloads under these names are the zod schemas beside this file.
 */

export const TaskQueue = {
  /** TypeScript worker: workflows and the planning/bookkeeping activities. */
  Orchestration: 'tuneflow',
  /** Python worker: everything that touches model weights. */
  Accelerator: 'tuneflow-gpu',
} as const;
export type TaskQueue = (typeof TaskQueue)[keyof typeof TaskQueue];

/** Activities served by the TypeScript worker on `TaskQueue.Orchestration`. */
export const OrchestrationActivity = {
  PrepareDataset: 'prepareDataset',
  PlanRun: 'planRun',
  RecordCheckpoints: 'recordCheckpoints',
  ReplanAfterOutOfMemory: 'replanAfterOutOfMemory',
  LoadRetrainSpec: 'loadRetrainSpec',
  CompareWithChampion: 'compareWithChampion',
  RegisterModel: 'registerModel',
  PromoteModel: 'promoteModel',
  RecordModelExports: 'recordModelExports',
} as const;
export type OrchestrationActivity = (typeof OrchestrationActivity)[keyof typeof OrchestrationActivity];

/** Activities served by the Python worker on `TaskQueue.Accelerator`. */
export const AcceleratorActivity = {
  ResolveModel: 'resolve_model',
  TokenStatistics: 'token_statistics',
  Train: 'train',
  Merge: 'merge',
  Evaluate: 'evaluate',
  ExportGguf: 'export_gguf',
  VerifyCheckpoints: 'verify_checkpoints',
} as const;
export type AcceleratorActivity = (typeof AcceleratorActivity)[keyof typeof AcceleratorActivity];

/**
 * Messages between the train activity and its workflow. The activity signals each checkpoint and each resume (so the workflow can
 * update search attributes and its progress without an event per step) and queries for control requests such as
 * "checkpoint now" (queries add no history events).
 */
export const WorkflowMessage = {
  TrainingProgress: 'trainingProgress',
  TrainingControl: 'trainingControl',
} as const;
export type WorkflowMessage = (typeof WorkflowMessage)[keyof typeof WorkflowMessage];

/**
 * Application failure types. Non-retryable ones mean "a human must change something": retrying cannot help.
 * Every other failure (a killed worker, a lost connection) is infrastructure and retries.
 */
export const FailureType = {
  InvalidSpec: 'TuneflowInvalidSpec',
  DatasetNotFound: 'TuneflowDatasetNotFound',
  InvalidDataset: 'TuneflowInvalidDataset',
  ModelNotFound: 'TuneflowModelNotFound',
  PlanDoesNotFit: 'TuneflowPlanDoesNotFit',
  IncompatibleCheckpoint: 'TuneflowIncompatibleCheckpoint',
  OutOfMemory: 'TuneflowOutOfMemory',
  /** A registry compare-and-swap lost to a concurrent writer (the champion changed meanwhile). */
  RegistryConflict: 'TuneflowRegistryConflict',
  ModelVersionNotFound: 'TuneflowModelVersionNotFound',
  /** A payload crossing an activity boundary does not match its schema in the contract: a bug, never retried. */
  ContractViolation: 'TuneflowContractViolation',
  /**
   * A worker died holding an attempt (SIGKILL, reboot) and a new worker on the same machine proved it: the attempt
   * is failed at once so that it retries now, not when the heartbeat timeout runs out. Retryable, like any infrastructure failure.
   */
  WorkerLost: 'TuneflowWorkerLost',
  /** A promotion refused by the version's quality gates (src/quality): only `--force` overrides it, on record. */
  GateFailed: 'TuneflowGateFailed',
} as const;
export type FailureType = (typeof FailureType)[keyof typeof FailureType];

/**
 * Failure types that no retry can fix. `OutOfMemory` is absent: retrying the same configuration cannot help either,
 * but the workflow answers it with a smaller micro-batch (the train activity's retry policy lists it as final).
 */
export const nonRetryableFailureTypes: readonly FailureType[] = [
  FailureType.InvalidSpec,
  FailureType.DatasetNotFound,
  FailureType.InvalidDataset,
  FailureType.ModelNotFound,
  FailureType.PlanDoesNotFit,
  FailureType.IncompatibleCheckpoint,
  FailureType.RegistryConflict,
  FailureType.ModelVersionNotFound,
  FailureType.ContractViolation,
  FailureType.GateFailed,
];

/** Search attributes registered on the dev server and upserted by the workflow at stage changes. */
export const SearchAttribute = {
  Stage: { name: 'TuneflowStage', type: 'Keyword' },
  Model: { name: 'TuneflowModel', type: 'Keyword' },
  Status: { name: 'TuneflowStatus', type: 'Keyword' },
  Step: { name: 'TuneflowStep', type: 'Int' },
  Loss: { name: 'TuneflowLoss', type: 'Double' },
} as const;

/** The pipeline's stages, in order. */
export const Stage = {
  Prepare: 'prepare',
  Plan: 'plan',
  Train: 'train',
  Checkpoint: 'checkpoint',
  Merge: 'merge',
  Evaluate: 'evaluate',
  Done: 'done',
} as const;
export type Stage = (typeof Stage)[keyof typeof Stage];
