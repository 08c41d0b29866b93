/**
 * `tuneflow`: the Node side of the public API. Everything a TypeScript program needs to run, watch and control
 * fine-tunes (the CLI is built on exactly these exports), and the spec, data and planner it runs on. Workflow code
 * imports `tuneflow/workflow`; the workers and the dev server are in `tuneflow/worker`.
 */

// Contract shared with the Python worker
export * from './contract/index.ts';

// Run specs
export { BuiltinModel, Backend, DatasetFormat, Optimizer, runSpecSchema } from './spec/schema.ts';
export type { RunSpec, RunSpecInput, ModelSpec, DatasetSpec, LoraSpec, TrainSpec, DeviceSpec } from './spec/schema.ts';
export { loadSpec, loadSpecFile, parseSpec, parseSpecFile } from './spec/load.ts';
export type { RunsSpec, SpecFile } from './spec/load.ts';
export { runsSpecSchema, specFileSchema } from './spec/runs.ts';
export type { NamedRunSpec } from './spec/runs.ts';

// Client
export {
  cancelRun,
  checkpointRun,
  connectClient,
  defaultWorkflowId,
  getProgress,
  getRunStatus,
  pauseRun,
  queryRunState,
  resumeRun,
  startFineTune,
  startFineTuneRuns,
  waitForResult,
} from './client.ts';
export type { RunStatusEntry, RunStatusReport, StartOptions } from './client.ts';
export type { FineTuneInput, FineTuneResult, FineTuneState, RunStatus, TrainingProgressState } from '../workflows/index.ts';

// Where runs live on this machine
export { homeLayout, tuneflowHome, temporalAddress } from './runtime/home.ts';
export type { HomeLayout } from './runtime/home.ts';

// Data, training setup and planning
export { resolveTrainingSetup } from './setup/index.ts';
export { prepareDataset } from './data/index.ts';
export type { PrepareDatasetOptions, PreparedDatasetReport } from './data/index.ts';
export { planRun, nextSmallerMicroBatch, findArchitecture, findGpu, architectureFromHuggingFaceConfig } from './planner/index.ts';
export type { Plan, PlanRequest, ModelArchitecture } from './planner/index.ts';

// Errors
export * from './errors/index.ts';

// Registry, scheduled retraining
export * from './registry/index.ts';
export * from './schedules/index.ts';
export { approvalSignal, retrain, RetrainOutcome, retrainStateQuery } from '../workflows/index.ts';
export type { ApprovalDecision, RetrainGate, RetrainInput, RetrainResult, RetrainState } from '../workflows/index.ts';

// Sweeps (docs/sweeps.md)
export * from './sweep/index.ts';
export {
  cancelSweep,
  checkpointSweep,
  defaultSweepId,
  pauseSweep,
  querySweepState,
  resumeSweep,
  startSweep,
  sweepResult,
  waitForSweep,
  writeSweepTable,
} from './sweep/client.ts';
export type { StartSweepOptions } from './sweep/client.ts';
export type { SweepInput, SweepResult, SweepState } from '../workflows/index.ts';
