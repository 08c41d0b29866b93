/**
 * tuneflow's workflow code: what a worker's workflow bundle registers (fineTune and its training child), and what
 * a user's own workflow composes (the stages, run control, the messages). Sandbox-safe: nothing here, directly or
 * transitively, imports a Node built-in; activities and Node-side modules are imported as types only.
 */
export { fineTune, progressQuery, stateQuery } from './fine-tune.ts';
export type { FineTuneInput, FineTuneResult, FineTuneRunResult, FineTuneRunState, FineTuneState, NamedRunResult } from './fine-tune.ts';
export {
  checkpointNowSignal,
  pauseSignal,
  resumeSignal,
  trainAdapter,
  trainingControlQuery,
  trainingProgressSignal,
  trainingStateQuery,
  trainingWorkflowId,
} from './train-adapter.ts';
export type { TrainAdapterInput, TrainAdapterState, TrainedAdapter } from './train-adapter.ts';
export { acceptRunControl } from './run-control.ts';
export type { RunControl } from './run-control.ts';
export { evaluate, merge, plan, prepare, recordCheckpoints, runDirectoryUri, startFrom, startingPointOf, train } from './stages/index.ts';
export type { PlannedRun, PlanOptions, PreparedDataset, StartingPoint, TrainOptions } from './stages/index.ts';
export { describeRollback, describeRollbacks } from './progress.ts';
export type { RunStatus, TrainingProgressState } from './progress.ts';
export * from './retrain.ts';
export { runSweep, SweepPhase, sweep, sweepStateQuery, trialWorkflowId } from './sweep.ts';
export type { SweepCarried, SweepInput, SweepOptions, SweepResult, SweepState } from './sweep.ts';
