/**
 * What a report is made of, read from the run's own files: `train_log.jsonl` (one line per optimizer step),
 * `run.json` (the manifest: spec, plan, training result, checkpoints) and the artifacts on disk, plus the
 * workflow's result (evaluation and samples, which live only there).
 */
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join, relative } from 'node:path';
import type { ModelVersion } from '../registry/schema.ts';
import type { FineTuneResult } from '../../workflows/index.ts';

export interface TrainLogRecord {
  attempt: number;
  step: number;
  /** Null for a step whose rows were all skipped after a rollback: it trained nothing. */
  loss: number | null;
  learning_rate: number;
  /** Seconds since the epoch, when the step ended. */
  time: number;
}

export interface CheckpointEntry {
  step: number;
  train_loss?: number | null;
  val_loss?: number | null;
  verified?: boolean;
}

export interface Artifact {
  path: string;
  bytes: number;
  sha256: string;
}

export interface ReportData {
  workflowId: string;
  result: FineTuneResult;
  trainLog: TrainLogRecord[];
  checkpoints: CheckpointEntry[];
  artifacts: Artifact[];
  /** The registry's version made by this run (a retrain's challenger): its champion's scores and its gate verdict. */
  registered: ModelVersion | null;
}

export function readTrainLog(file: string): TrainLogRecord[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as TrainLogRecord);
}

function sha256(file: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}

/** Every file of the run directory (adapter, merged model, checkpoints, logs, manifest), sorted by path. */
export async function listArtifacts(runDirectory: string): Promise<Artifact[]> {
  const entries = await readdir(runDirectory, { recursive: true, withFileTypes: true });
  const files = entries
    .filter((entry) => entry.isFile() && !entry.name.startsWith('.'))
    .map((entry) => join(entry.parentPath, entry.name))
    .sort();
  return Promise.all(files.map(async (file) => ({ path: relative(runDirectory, file), bytes: (await stat(file)).size, sha256: await sha256(file) })));
}

export async function readReportData(
  workflowId: string,
  result: FineTuneResult,
  runDirectory: string,
  registered: ModelVersion | null = null,
): Promise<ReportData> {
  const manifestFile = join(runDirectory, 'run.json');
  const manifest = existsSync(manifestFile) ? (JSON.parse(readFileSync(manifestFile, 'utf8')) as { checkpoints?: CheckpointEntry[] }) : {};
  return {
    workflowId,
    result,
    trainLog: readTrainLog(join(runDirectory, 'train_log.jsonl')),
    checkpoints: manifest.checkpoints ?? [],
    artifacts: await listArtifacts(runDirectory),
    registered,
  };
}
