import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { publish } from '../runtime/atomic-write.ts';
import { DatasetLayout, PreparedFile } from '../runtime/layout.ts';
import { preparedDatasetReportSchema, type PreparedDatasetReport } from './report.ts';
import type { DatasetFile } from './read.ts';

/**
 * The content-addressed store of prepared datasets: `<storeRoot>/datasets/<hash>/{train,val}.jsonl, report.json`.
 * A directory is built under a temporary name and renamed into place, so a reader sees all of it or none of it,
 * and a crash leaves only a `.tmp-*` directory that no lookup ever mistakes for a result.
 */

/** Bumped whenever normalisation, dedupe or the split change, so older prepared data stops matching. */
const prepareVersion = 2;

/** sha256 over the options, then each file's name, size and raw bytes, length-prefixed so no two inputs collide. */
export async function computeCacheKey(options: Record<string, unknown>, files: readonly DatasetFile[]): Promise<string> {
  const digest = createHash('sha256');
  const addField = (text: string): void => {
    digest.update(`${Buffer.byteLength(text)}:`);
    digest.update(text);
  };
  addField(JSON.stringify({ prepareVersion, ...options }));
  for (const file of files) {
    addField(file.relativePath);
    addField(String(file.size));
    for await (const chunk of createReadStream(file.absolutePath, { highWaterMark: 1 << 20 })) digest.update(chunk as Buffer);
  }
  return digest.digest('hex');
}

/** The stored report when `directory` holds a complete prepared dataset; anything less is no cache hit. */
export async function readStoredReport(directory: string): Promise<PreparedDatasetReport | undefined> {
  try {
    const parsed = preparedDatasetReportSchema.safeParse(JSON.parse(await readFile(DatasetLayout.at(directory).file(PreparedFile.Report), 'utf8')));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

export async function createBuildDirectory(storeRoot: string, hash: string): Promise<string> {
  await mkdir(DatasetLayout.directory(storeRoot), { recursive: true });
  return mkdtemp(join(DatasetLayout.directory(storeRoot), `.tmp-${hash}-`));
}

/**
 * Renames the finished build directory to its final name. False when another prepare of the same inputs got
 * there first: both built the same bytes, so theirs stands and ours is discarded.
 */
export async function publishBuildDirectory(buildDirectory: string, finalDirectory: string): Promise<boolean> {
  try {
    await publish(buildDirectory, finalDirectory);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EEXIST' && code !== 'ENOTEMPTY') throw error;
    await rm(buildDirectory, { recursive: true, force: true });
    return false;
  }
  return true;
}

const blockBytes = 1 << 20;

/**
 * Collects lines as UTF-8 in megabyte blocks and writes whole blocks: one syscall per megabyte, not per row, and
 * no joined strings for the garbage collector. Appending never waits; `flushWhenFull` writes finished blocks.
 */
export class LineWriter {
  private block: Buffer = Buffer.allocUnsafe(blockBytes);
  private used = 0;
  private readonly finished: Buffer[] = [];
  private spare: Buffer | undefined;
  private written = 0;

  private constructor(
    readonly path: string,
    private readonly handle: FileHandle,
  ) {}

  static async create(path: string): Promise<LineWriter> {
    return new LineWriter(path, await open(path, 'w'));
  }

  /** Lines appended so far. */
  get lineCount(): number {
    return this.written;
  }

  /** Appends bytes `start` to `end` of `source` as one line. */
  appendBytes(source: Uint8Array, start: number, end: number): void {
    this.reserve(end - start + 1);
    this.block.set(source.subarray(start, end), this.used);
    this.used += end - start;
    this.block[this.used++] = 0x0a;
    this.written++;
  }

  append(line: string): void {
    // Three bytes per UTF-16 unit is the most UTF-8 can take.
    this.reserve(line.length * 3 + 1);
    this.used += this.block.write(line, this.used);
    this.block[this.used++] = 0x0a;
    this.written++;
  }

  /** Writes the finished blocks; call between batches so memory stays flat. */
  async flushWhenFull(): Promise<void> {
    for (let block = this.finished.shift(); block !== undefined; block = this.finished.shift()) {
      await this.handle.write(block);
      if (block.buffer.byteLength === blockBytes) this.spare = Buffer.from(block.buffer);
    }
  }

  async close(): Promise<void> {
    this.seal();
    await this.flushWhenFull();
    await this.handle.sync();
    await this.handle.close();
  }

  /** Closes the file without writing what is pending: for output that is about to be deleted. */
  async discard(): Promise<void> {
    await this.handle.close();
  }

  private reserve(bytes: number): void {
    if (this.used + bytes <= this.block.length) return;
    this.seal();
    this.block = bytes <= blockBytes ? (this.spare ?? Buffer.allocUnsafe(blockBytes)) : Buffer.allocUnsafe(bytes);
    this.spare = undefined;
  }

  private seal(): void {
    if (this.used > 0) this.finished.push(this.block.subarray(0, this.used));
    this.used = 0;
  }
}

/** Streams a JSONL file's lines, without their newlines. */
export async function* readLines(path: string): AsyncGenerator<string> {
  const lines = createInterface({ input: createReadStream(path, { highWaterMark: 1 << 20 }), crlfDelay: Infinity });
  yield* lines;
}

/** Removes line `lineIndex` from a JSONL file (rewriting it) and returns that line. */
export async function extractLine(path: string, lineIndex: number): Promise<string> {
  const rewritten = await LineWriter.create(`${path}.rewrite`);
  let extracted: string | undefined;
  let index = 0;
  for await (const line of readLines(path)) {
    if (index++ === lineIndex) extracted = line;
    else rewritten.append(line);
    await rewritten.flushWhenFull();
  }
  await rewritten.close();
  if (extracted === undefined) throw new Error(`${path} has no line ${lineIndex}`);
  await publish(rewritten.path, path);
  return extracted;
}
