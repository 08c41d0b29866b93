// A user's workflow file, outside the package: it imports tuneflow/workflow as any project depending on tuneflow would.
import { prepare, Stage } from 'tuneflow/workflow';

/** Prepares the spec's dataset with tuneflow's prepare stage and reports where it went. */
export async function prepareOnly(spec, artifactRootUri) {
  const dataset = await prepare(spec, { artifactRootUri });
  return { stage: Stage.Prepare, train_rows: dataset.train_rows, val_rows: dataset.val_rows, train_uri: dataset.train_uri };
}
