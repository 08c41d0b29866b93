/**
 * `tuneflow/workflow`: what a workflow file imports. Sandbox-safe (nothing here reaches a Node built-in, directly or
 * transitively), so a user's workflow bundles with `@temporalio/worker`'s bundler: the stages to compose, the
 * trainAdapter child and fineTune, run control, the messages, and the contract's names and payload types.
 */
export * from '../workflows/index.ts';
export { FailureType, SearchAttribute, Stage, TaskQueue } from './contract/index.ts';
export type * from './contract/index.ts';
export type { CheckpointBook } from '../activities/index.ts';
export type { Plan } from './planner/index.ts';
export type { DatasetSpec, RunSpec } from './spec/schema.ts';
export type { NamedRunSpec } from './spec/runs.ts';
export * from './sweep/index.ts';
