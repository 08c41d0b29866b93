/**
 * tuneflow's public API. Everything a TypeScript program needs to run, watch and control fine-tunes;
 * the CLI is built on exactly these exports.
 */

// Contract shared with the Python worker
export * from './contract/index.ts';

// Run specs
export { BuiltinModel, Backend, DatasetFormat, Optimizer, runSpecSchema } from './spec/schema.ts';
export type { RunSpec, RunSpecInput, ModelSpec, DatasetSpec, LoraSpec, TrainSpec, DeviceSpec } from './spec/schema.ts';
export { loadSpec, parseSpec } from './spec/load.ts';

// Client
export { cancelRun, checkpointRun, connectClient, defaultWorkflowId, getProgress, getRunStatus, pauseRun, resumeRun, startFineTune, waitForResult } from './client.ts';
export type { RunStatusReport, StartOptions } from './client.ts';
export { checkpointNowSignal, fineTune, pauseSignal, progressQuery, resumeSignal, stateQuery } from '../workflows/index.ts';
export type { FineTuneInput, FineTuneResult, FineTuneState, RunStatus, TrainingProgressState } from '../workflows/index.ts';

// Workers and the embedded server
export { createOrchestrationWorker } from './worker.ts';
export type { OrchestrationWorkerOptions } from './worker.ts';
export { workflowsPath } from './workflows-path.ts';
export { startDevServer } from './runtime/dev-server.ts';
export type { DevServer, DevServerOptions } from './runtime/dev-server.ts';
export { startGpuWorker } from './runtime/gpu-worker.ts';
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
