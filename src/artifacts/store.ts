/**
 * The artifact store as TypeScript uses it: prepared datasets go in, run manifests go in, the CLI lists what a run
 * left. Two implementations behind one interface: the local or shared filesystem (file://, the default) and
 * S3-compatible object storage (s3://bucket/prefix). Addresses are URIs throughout; the layout of what lives where
 * (runs/<id>/, datasets/<hash>/) is the layouts' business, not the store's.
 */

/** One stored file. */
export interface StoredObject {
  uri: string;
  bytes: number;
}

export interface ArtifactStore {
  /** The scheme this store serves. */
  readonly scheme: 'file' | 's3';
  /**
   * Copies every file under a local directory to the directory URI `uri`; the file named `last` goes after all
   * the others, so its presence means the rest is complete (a manifest, a report).
   */
  putDirectory(directory: string, uri: string, last?: string): Promise<void>;
  /** Writes a small text object whole (atomic on a filesystem, one PUT on object storage). */
  putText(uri: string, text: string): Promise<void>;
  /** A small text object's content, or null when there is none. */
  getText(uri: string): Promise<string | null>;
  /** Every file under the directory URI `uri`, sorted by URI. */
  list(uri: string): Promise<StoredObject[]>;
}
