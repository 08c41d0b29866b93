/**
 * The training setup: how a spec's 'auto' settings resolve on a worker, decided once in TypeScript from the facts
 * the worker reports (resolve_model). Every request to the Python side carries the answer.
 */
export { resolveTrainingSetup, type TrainingChoices } from './resolve-training-setup.ts';
export type { TrainingSetup, WorkerFacts } from '../contract/index.ts';
export { defaultBatchSize, requestedBatch, type BatchChoices, type DecidedBatch } from './batch.ts';
