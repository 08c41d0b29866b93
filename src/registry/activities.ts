/**
 * The registry's activities on the TypeScript worker (task queue `tuneflow`), for the retrain workflow: the
 * registry is files in the artifact store, so only activities touch it, and a promotion is one compare-and-swap.
 */
import { typedFailures } from '../errors/typed-failures.ts';
import { loadSpec } from '../spec/load.ts';
import type { RunSpec } from '../spec/schema.ts';
import { specHash } from './lineage.ts';
import { ModelRegistry } from './registry.ts';
import type { ChampionChange, ModelExport, ModelVersion, NewModelVersion } from './schema.ts';

/** The spec file as it is now: a schedule names a file, so edits to it reach the next retrain. */
export async function loadRetrainSpec(request: { spec_path: string }): Promise<RunSpec> {
  return typedFailures(async () => loadSpec(request.spec_path));
}

export interface ChampionComparison {
  spec_hash: string;
  champion: ModelVersion | null;
  /** The champion was made from this very spec and data: retraining would reproduce it. */
  unchanged: boolean;
}

export async function compareWithChampion(request: {
  artifact_root_uri: string;
  model_name: string;
  spec: RunSpec;
  dataset_hash: string;
}): Promise<ChampionComparison> {
  return typedFailures(async () => {
    const champion = await new ModelRegistry(request.artifact_root_uri).champion(request.model_name);
    const hash = specHash(request.spec);
    const unchanged = champion !== null && champion.lineage.spec_hash === hash && champion.lineage.dataset_hash === request.dataset_hash;
    return { spec_hash: hash, champion, unchanged };
  });
}

export async function registerModel(request: { artifact_root_uri: string; model: NewModelVersion }): Promise<ModelVersion> {
  return typedFailures(() => new ModelRegistry(request.artifact_root_uri).register(request.model));
}

/** Promotes only while `expected_champion` is still the champion: a concurrent promotion makes this one fail. */
export async function promoteModel(request: {
  artifact_root_uri: string;
  name: string;
  version: number;
  expected_champion: number | null;
  reason: string;
}): Promise<ChampionChange> {
  return typedFailures(() =>
    new ModelRegistry(request.artifact_root_uri).promote(request.name, request.version, {
      expectedChampion: request.expected_champion,
      reason: request.reason,
    }),
  );
}

export async function recordModelExports(request: { artifact_root_uri: string; name: string; version: number; exports: ModelExport[] }): Promise<void> {
  return typedFailures(() => new ModelRegistry(request.artifact_root_uri).recordExports(request.name, request.version, request.exports));
}
