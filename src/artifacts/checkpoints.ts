import type { CheckpointRecord } from '../checkpoints/index.ts';
import type { ArtifactStore } from './store.ts';

interface CheckpointManifest {
  step: number;
  files: Record<string, string>;
  train_loss?: number | null;
  written_at?: number;
}

/**
 * The checkpoints of a run on object storage, as their manifests in the bucket describe them. A manifest is
 * uploaded after its objects (object_store.upload_checkpoint), so a checkpoint is listed as complete when every
 * object its manifest names is in the bucket; the sha256 of each is checked by the Python worker that resumes from
 * it (object_store.download_verified_checkpoint), which trusts nothing else.
 */
export async function listStoredCheckpoints(store: ArtifactStore, runUri: string): Promise<CheckpointRecord[]> {
  const checkpointsUri = `${runUri.replace(/\/+$/, '')}/checkpoints`;
  const objects = new Set((await store.list(checkpointsUri)).map((object) => object.uri));
  const manifests = [...objects].filter((uri) => /\/step-\d+\/manifest\.json$/.test(uri));
  const records = await Promise.all(
    manifests.map(async (manifestUri): Promise<CheckpointRecord> => {
      const uri = manifestUri.replace(/\/manifest\.json$/, '');
      const text = await store.getText(manifestUri);
      const manifest = text === null ? null : (JSON.parse(text) as CheckpointManifest);
      if (manifest === null)
        return { step: Number(uri.split('step-').pop()), uri, train_loss: null, written_at: null, verified: false, problem: 'manifest vanished' };
      const missing = Object.keys(manifest.files).filter((relative) => !objects.has(`${uri}/${relative.split('/').map(encodeURIComponent).join('/')}`));
      const record = { step: manifest.step, uri, train_loss: manifest.train_loss ?? null, written_at: manifest.written_at ?? null };
      return missing.length === 0 ? { ...record, verified: true } : { ...record, verified: false, problem: `objects missing: ${missing.join(', ')}` };
    }),
  );
  return records.sort((a, b) => a.step - b.step);
}
