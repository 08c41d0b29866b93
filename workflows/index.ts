// Everything the worker's workflow bundle registers. Signals and queries sit beside their workflow.
export {
  checkpointNowSignal,
  fineTune,
  pauseSignal,
  progressQuery,
  resumeSignal,
  stateQuery,
  trainingControlQuery,
  trainingProgressSignal,
} from './fine-tune.ts';
export type {
  ControlState,
  FineTuneInput,
  FineTuneResult,
  FineTuneState,
  PreparedRun,
  RunStatus,
  TrainingProgressMessage,
  TrainingProgressState,
} from './fine-tune.ts';
export * from './retrain.ts';
