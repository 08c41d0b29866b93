import type { PreparedDatasetReport } from '../../src/data/index.ts';
import type { RunSpec } from '../../src/spec/schema.ts';
import { Stage } from '../../src/contract/index.ts';
import { activitySummary, summarizedBookkeeping } from '../activities.ts';

/** A prepared dataset: the validated, deduplicated, split JSONL in the artifact store, and its report. */
export type PreparedDataset = PreparedDatasetReport;

/**
 * Prepare stage: reads `spec.dataset`, validates and deduplicates its rows, splits train/validation and writes
 * both under `<artifactRootUri>/datasets/<content hash>/` (the same data prepares once). A dataset that is missing
 * or has too many bad rows fails at once, non-retryably, naming the file and row.
 *
 * To prepare several datasets, call it once per dataset (concurrently with `Promise.all`), each with a spec
 * whose `dataset` names it.
 */
export function prepare(spec: RunSpec, options: { artifactRootUri: string }): Promise<PreparedDataset> {
  return summarizedBookkeeping(activitySummary(Stage.Prepare, spec.model.source, spec.dataset.path)).prepareDataset({
    spec,
    artifact_root_uri: options.artifactRootUri,
  });
}
