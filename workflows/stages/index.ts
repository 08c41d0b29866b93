// The stages a workflow composes into a pipeline, in the order fineTune runs them.
export { type PreparedDataset, prepare } from './prepare.ts';
export { measure, type PlannedRun, type PlanOptions, plan, runDirectoryUri } from './plan.ts';
export { type TrainOptions, train } from './train.ts';
export { recordCheckpoints } from './record-checkpoints.ts';
export { merge } from './merge.ts';
export { evaluate } from './evaluate.ts';
export { type StartingPoint, startFrom, startingPointOf } from './start-from.ts';
