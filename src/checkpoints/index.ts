import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

/** A checkpoint directory as the Python trainer writes it (python-activities/tuneflow_activities/checkpoint.py). */
export interface CheckpointRecord {
  step: number;
  uri: string;
  train_loss: number | null;
  written_at: number | null;
  verified: boolean;
  /** Why verification failed, when it did. */
  problem?: string;
}

interface CheckpointManifest {
  step: number;
  files: Record<string, string>;
  train_loss?: number | null;
  written_at?: number;
}

async function sha256OfFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function verifyCheckpoint(directory: string): Promise<CheckpointRecord> {
  const uri = pathToFileURL(directory).href;
  const fallbackStep = Number(directory.split('step-').pop());
  let manifest: CheckpointManifest;
  try {
    manifest = JSON.parse(await readFile(join(directory, 'manifest.json'), 'utf8')) as CheckpointManifest;
  } catch (error) {
    return { step: fallbackStep, uri, train_loss: null, written_at: null, verified: false, problem: `manifest unreadable: ${String(error)}` };
  }
  const record = { step: manifest.step, uri, train_loss: manifest.train_loss ?? null, written_at: manifest.written_at ?? null };
  for (const [relative, expected] of Object.entries(manifest.files)) {
    try {
      const actual = await sha256OfFile(join(directory, relative));
      if (actual !== expected) return { ...record, verified: false, problem: `${relative} does not match its manifest hash` };
    } catch (error) {
      return { ...record, verified: false, problem: `${relative} unreadable: ${String(error)}` };
    }
  }
  return { ...record, verified: true };
}

/** Every checkpoint of a run directory, oldest first, each verified against its manifest. */
export async function listCheckpoints(runDirectory: string): Promise<CheckpointRecord[]> {
  const checkpointsDirectory = join(runDirectory, 'checkpoints');
  let names: string[];
  try {
    names = (await readdir(checkpointsDirectory)).filter((name) => name.startsWith('step-')).sort();
  } catch {
    return [];
  }
  return Promise.all(names.map((name) => verifyCheckpoint(join(checkpointsDirectory, name))));
}
