import { ApplicationFailure } from '@temporalio/workflow';
import type { MergeResult } from '../../src/contract/index.ts';
import { FailureType } from '../../src/contract/index.ts';
import type { RunSpec } from '../../src/spec/schema.ts';

/** Where a run starts: an earlier run of the same workflow, by its merged model. Recorded in the run's manifest. */
export interface StartingPoint {
  run: string;
  run_uri: string;
  merged_uri: string;
}

/** An earlier run's starting point for the runs after it: its name, folder and merged model. */
export const startingPointOf = (run: { name?: string | null; run_uri: string }, merged: MergeResult): StartingPoint => ({
  run: run.name ?? 'default',
  run_uri: run.run_uri,
  merged_uri: merged.merged_uri,
});

/**
 * A run's spec trained on an earlier run's merged model: `model.source` becomes the merged model's directory (the
 * Python worker loads a model source as a local path). That model is also what evaluation calls the base, and a
 * dpo run's reference (the model with the adapter disabled): DPO moves the earlier run's model, not the original.
 * The one rule for "a run starting from another", used by fineTune's runs and by workflows that compose the stages.
 */
export function startFrom(spec: RunSpec, from: StartingPoint): RunSpec {
  if (!from.merged_uri.startsWith('file://')) {
    throw ApplicationFailure.create({
      type: FailureType.InvalidSpec,
      nonRetryable: true,
      message: `run "${from.run}"'s merged model is at ${from.merged_uri}: a run starts from a merged model on the local filesystem only`,
    });
  }
  return { ...spec, model: { ...spec.model, source: decodeURIComponent(from.merged_uri.slice('file://'.length)) } };
}
