/**
 * The names of the contract between the TypeScript side (workflows, bookkeeping activities, client) and the Python
 * activity worker. Every task queue, activity name, failure type and search attribute lives here once; its Python
 * twin is `python-activities/tuneflow_activities/contract.py`, and `test/contract.test.ts` proves the two are equal.
 * The shapes of the payloads under these names are the zod schemas beside this file; the failure types and the stages
 * are domain words, in vocabulary.ts.
 */
import { FailureType } from './vocabulary.ts';

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
  FailureType.TrainingDiverged,
];

/** Search attributes registered on the dev server and upserted by the workflow at stage changes. */
export const SearchAttribute = {
  Stage: { name: 'TuneflowStage', type: 'Keyword' },
  Model: { name: 'TuneflowModel', type: 'Keyword' },
  Status: { name: 'TuneflowStatus', type: 'Keyword' },
  Step: { name: 'TuneflowStep', type: 'Int' },
  Loss: { name: 'TuneflowLoss', type: 'Double' },
} as const;
