/**
 * The artifact store: the local or shared filesystem (file://, the default) or S3-compatible object storage
 * (s3://bucket/prefix, endpoint and credentials from the standard AWS configuration). docs/deployment.md says
 * how runs use each; the Python worker's side is python-activities/tuneflow_activities/object_store.py.
 */
import { fileURLToPath } from 'node:url';
import { LocalArtifactStore } from './local.ts';
import { S3ArtifactStore } from './s3.ts';
import type { ArtifactStore } from './store.ts';

export { LocalArtifactStore } from './local.ts';
export { multipartBytes, ObjectLocation, S3ArtifactStore, s3ClientFromEnvironment } from './s3.ts';
export type { ArtifactStore, StoredObject } from './store.ts';

export const isObjectStoreUri = (uri: string): boolean => uri.startsWith('s3://');

/** The store that serves a URI (a root, a run, a file). */
export function artifactStoreFor(uri: string): ArtifactStore {
  return isObjectStoreUri(uri) ? new S3ArtifactStore() : new LocalArtifactStore();
}

/** How a location is shown to a person: a path on the filesystem, the URI itself on object storage. */
export function displayLocation(uri: string): string {
  return isObjectStoreUri(uri) ? uri : fileURLToPath(uri);
}
