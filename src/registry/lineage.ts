import { createHash } from 'node:crypto';
import type { RunSpec } from '../spec/schema.ts';

/** JSON with object keys sorted at every level, so equal values always serialise to equal bytes. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, field]) => field !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, field]) => `${JSON.stringify(key)}:${canonicalJson(field)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The spec's identity for retraining: sha256 of the parsed spec (defaults applied) without the fields that do not
 * change the model. The dataset's location is left out because its content hash stands for it; the run's name and
 * the operational knobs (checkpoint cadence, heartbeat timeout, logging) are left out because a retrain with a
 * different cadence trains the same model.
 */
export function specHash(spec: RunSpec): string {
  const { name: _name, checkpoint: _checkpoint, dataset, train, ...rest } = spec;
  const { path: _path, val_path: _valPath, ...datasetIdentity } = dataset;
  // The rollback guard changes nothing a run trains unless it fires (and then the version records its rollbacks): a spec
  // hashes as it did before train.rollback existed.
  const { heartbeat_timeout_seconds: _heartbeat, log_every_steps: _logEvery, rollback: _rollback, ...trainIdentity } = train;
  return createHash('sha256')
    .update(canonicalJson({ ...rest, dataset: datasetIdentity, train: trainIdentity }))
    .digest('hex');
}
