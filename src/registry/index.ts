/** The model registry: versions with lineage, champions with history, promote/rollback/diff (docs/registry.md). */
export { ModelRegistry, foldEvents } from './registry.ts';
export type { ModelState, PromoteOptions } from './registry.ts';
export { diffVersions } from './diff.ts';
export type { FieldDifference, ModelDiff } from './diff.ts';
export { specHash } from './lineage.ts';
export { readEvents } from './log.ts';
export { isRegistryCorruptError, RegistryCorruptError } from './registry-corrupt-error.ts';
export { lineageSchema, modelExportSchema, modelVersionSchema, registryEventSchema } from './schema.ts';
export type { ChampionChange, Lineage, ModelExport, ModelVersion, NewModelVersion, RegistryEvent } from './schema.ts';
export { RegistryConflictError, isRegistryConflictError } from './registry-conflict-error.ts';
export { ModelVersionNotFoundError, isModelVersionNotFoundError } from './model-version-not-found-error.ts';
