import { isUtf8 } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { DatasetNotFoundError } from '../errors/index.ts';
import { RowErrorKind, type RowError } from './report.ts';

/**
 * Streams a dataset's rows as byte ranges, never holding a whole file: JSONL line by line, a JSON array element
 * by element, either one optionally gzipped. Tolerates what real files carry (a UTF-8 BOM, CRLF, blank lines, a
 * last line without a newline); everything else is judged row by row later, so one bad row never hides the rest.
 */

export interface DatasetFile {
  absolutePath: string;
  /** Relative to the dataset directory; the rows' `source.file`. Forward slashes on every platform. */
  relativePath: string;
  size: number;
}

/**
 * Rows of one file in one freshly allocated buffer, so a batch moves to a worker thread in a single transfer.
 * JSONL travels as whole lines, split by the worker, which keeps the reading thread's per-row work to counting
 * newlines; JSON array elements need the reader's scan anyway, so they travel as byte ranges.
 */
export type RowBatch = {
  file: string;
  bytes: Uint8Array;
  /** An upper bound on the rows in the batch. */
  maxRows: number;
  /** File-level problems found after this batch's rows (a JSON array that never closes). */
  trailingErrors: RowError[];
} & ({ layout: 'lines'; firstLineNumber: number } | { layout: 'ranges'; starts: Uint32Array; ends: Uint32Array; rowNumbers: Uint32Array });

/**
 * Calls `visit` with each row's text (undefined when its bytes are not valid UTF-8) and number. JSONL lines lose
 * a trailing CR and a leading BOM (a BOM opens every seam of concatenated files); blank lines are skipped but
 * still counted, so numbers match an editor's. A batch of lines is decoded once and sliced, because decoding row
 * by row costs more than parsing; only a batch with invalid bytes goes back to the bytes of its suspect rows.
 */
export function visitRows(batch: RowBatch, visit: (text: string | undefined, rowNumber: number) => void): void {
  const bytes = Buffer.from(batch.bytes.buffer, batch.bytes.byteOffset, batch.bytes.byteLength);
  const allValid = isUtf8(bytes);
  if (batch.layout === 'ranges') {
    for (let index = 0; index < batch.rowNumbers.length; index++) {
      const start = batch.starts[index]!;
      const end = batch.ends[index]!;
      const valid = allValid || isUtf8(bytes.subarray(start, end));
      visit(valid ? bytes.toString('utf8', start, end) : undefined, batch.rowNumbers[index]!);
    }
    return;
  }
  const text = bytes.toString('utf8');
  let newlineOffsets: number[] | undefined;
  for (let start = 0, line = 0; start < text.length; line++) {
    let newline = text.indexOf('\n', start);
    if (newline === -1) newline = text.length;
    const end = newline > start && text.charCodeAt(newline - 1) === 0x0d ? newline - 1 : newline;
    const contentStart = text.charCodeAt(start) === 0xfeff ? start + 1 : start;
    const row = text.slice(contentStart, end);
    start = newline + 1;
    if (/^\s*$/.test(row)) continue;
    // A newline byte is never part of a multi-byte sequence, so line N of the text is line N of the bytes.
    if (!allValid && row.includes('\ufffd')) {
      newlineOffsets ??= byteOffsetsOf(bytes, 0x0a);
      if (!isUtf8(bytes.subarray(line === 0 ? 0 : newlineOffsets[line - 1]! + 1, newlineOffsets[line] ?? bytes.length))) {
        visit(undefined, batch.firstLineNumber + line);
        continue;
      }
    }
    visit(row, batch.firstLineNumber + line);
  }
}

function byteOffsetsOf(bytes: Buffer, byte: number): number[] {
  const offsets: number[] = [];
  for (let offset = bytes.indexOf(byte); offset !== -1; offset = bytes.indexOf(byte, offset + 1)) offsets.push(offset);
  return offsets;
}

export interface DatasetInputs {
  files: DatasetFile[];
  /** Rows' `source.file` is relative to this: the dataset directory, or a single file's parent. */
  baseDirectory: string;
  skippedFiles: string[];
}

const datasetFileName = /\.(jsonl|ndjson|json)(\.gz)?$/i;

export async function listDatasetFiles(datasetPath: string): Promise<DatasetInputs> {
  const stats = await statOrThrow(datasetPath);
  if (!stats.isDirectory()) {
    const baseDirectory = dirname(datasetPath);
    return { files: [describeFile(datasetPath, baseDirectory, stats.size)], baseDirectory, skippedFiles: [] };
  }
  const files: DatasetFile[] = [];
  const skippedFiles: string[] = [];
  const entries = await readdir(datasetPath, { recursive: true, withFileTypes: true }).catch((error: unknown) => {
    throw new DatasetNotFoundError(`cannot read dataset directory ${datasetPath}`, { path: datasetPath }, { cause: error });
  });
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const absolutePath = join(entry.parentPath, entry.name);
    const relativePath = toPortable(relative(datasetPath, absolutePath));
    // Hidden files and folders (.git, editor swap files) are never data.
    if (relativePath.split('/').some((part) => part.startsWith('.'))) continue;
    if (!datasetFileName.test(entry.name)) {
      skippedFiles.push(relativePath);
      continue;
    }
    files.push(describeFile(absolutePath, datasetPath, (await statOrThrow(absolutePath)).size));
  }
  if (files.length === 0) {
    throw new DatasetNotFoundError(`dataset directory ${datasetPath} holds no .json, .jsonl or .gz files`, { path: datasetPath });
  }
  // Code-unit order, not locale order: the row order, and so the output, must not depend on the machine.
  const byPath = (left: string, right: string): number => (left < right ? -1 : left > right ? 1 : 0);
  files.sort((left, right) => byPath(left.relativePath, right.relativePath));
  skippedFiles.sort(byPath);
  return { files, baseDirectory: datasetPath, skippedFiles };
}

/** A separate validation file: its rows' `source.file` is relative to the main dataset's directory. */
export async function describeSingleFile(path: string, baseDirectory: string): Promise<DatasetFile> {
  const stats = await statOrThrow(path);
  if (stats.isDirectory()) throw new DatasetNotFoundError(`validation file ${path} is a directory`, { path });
  return describeFile(path, baseDirectory, stats.size);
}

function describeFile(absolutePath: string, baseDirectory: string, size: number): DatasetFile {
  return { absolutePath, relativePath: toPortable(relative(baseDirectory, absolutePath)), size };
}

const toPortable = (path: string): string => path.split(sep).join('/');

async function statOrThrow(path: string) {
  try {
    return await stat(path);
  } catch (error) {
    throw new DatasetNotFoundError(`cannot read dataset ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { path }, { cause: error });
  }
}

/** Opens a file's raw bytes, or its decompressed bytes when it starts with the gzip magic number. */
async function openDecodedStream(file: DatasetFile, chunkBytes: number): Promise<Readable> {
  const magic = Buffer.alloc(2);
  const handle = await open(file.absolutePath, 'r').catch((error: unknown) => {
    throw new DatasetNotFoundError(`cannot open ${file.absolutePath}`, { path: file.absolutePath }, { cause: error });
  });
  const { bytesRead } = await handle.read(magic, 0, 2, 0).finally(() => handle.close());
  const raw = createReadStream(file.absolutePath, { highWaterMark: chunkBytes });
  if (bytesRead < 2 || magic[0] !== 0x1f || magic[1] !== 0x8b) return raw;
  const gunzip = createGunzip({ chunkSize: chunkBytes });
  raw.on('error', (error) => gunzip.destroy(error));
  return raw.pipe(gunzip);
}

const byteOrderMark = [0xef, 0xbb, 0xbf] as const;
const startsWithByteOrderMark = (bytes: Uint8Array, at: number, end: number): boolean =>
  end - at >= 3 && bytes[at] === byteOrderMark[0] && bytes[at + 1] === byteOrderMark[1] && bytes[at + 2] === byteOrderMark[2];
const isJsonWhitespace = (byte: number): boolean => byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;

/** Yields batches of about `batchBytes` of row bytes (JSONL: one read chunk's whole lines), in file order. */
export async function* readRowBatches(file: DatasetFile, batchBytes: number): AsyncGenerator<RowBatch> {
  const batches = new RowBatchBuilder(file.relativePath, batchBytes);
  let splitter: RowSplitter | undefined;
  let head = Buffer.alloc(0);
  const stream = await openDecodedStream(file, batchBytes);
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      if (splitter === undefined) {
        // The format shows in the first byte that is neither a BOM nor whitespace: '[' opens a JSON array.
        head = Buffer.concat([head, chunk]);
        const first = firstSignificantByte(head);
        if (first === undefined) continue;
        splitter = head[first] === 0x5b ? new JsonArraySplitter(batches) : new LineSplitter(batches);
        splitter.push(head);
      } else {
        splitter.push(chunk);
      }
      yield* batches.takeFull();
    }
  } catch (error) {
    if (error instanceof DatasetNotFoundError) throw error;
    throw new DatasetNotFoundError(`cannot read ${file.absolutePath}: ${(error as Error).message}`, { path: file.absolutePath }, { cause: error });
  }
  splitter?.finish();
  yield* batches.takeAll();
}

function firstSignificantByte(bytes: Buffer): number | undefined {
  let index = startsWithByteOrderMark(bytes, 0, bytes.length) ? 3 : 0;
  while (index < bytes.length && isJsonWhitespace(bytes[index]!)) index++;
  return index < bytes.length ? index : undefined;
}

interface RowSplitter {
  push(chunk: Buffer): void;
  finish(): void;
}

/** JSONL: passes on whole lines in batches, counting lines so every batch knows its first line number. */
class LineSplitter implements RowSplitter {
  private carry: Buffer = Buffer.alloc(0);
  private lineNumber = 1;

  constructor(private readonly batches: RowBatchBuilder) {}

  push(chunk: Buffer): void {
    const lastNewline = chunk.lastIndexOf(0x0a);
    if (lastNewline === -1) {
      this.carry = Buffer.concat([this.carry, chunk]);
      return;
    }
    this.emit(chunk, lastNewline + 1);
    this.carry = Buffer.from(chunk.subarray(lastNewline + 1));
  }

  finish(): void {
    // A last line without a newline is still a row; a truncated one fails JSON parsing with its line number.
    if (this.carry.length > 0) this.emit(Buffer.alloc(0), 0);
  }

  private emit(chunk: Buffer, end: number): void {
    const bytes = Buffer.allocUnsafeSlow(this.carry.length + end);
    this.carry.copy(bytes);
    chunk.copy(bytes, this.carry.length, 0, end);
    this.carry = Buffer.alloc(0);
    let lines = 0;
    for (let newline = bytes.indexOf(0x0a); newline !== -1; newline = bytes.indexOf(0x0a, newline + 1)) lines++;
    // A final line without a newline still counts.
    if (bytes.length > 0 && bytes[bytes.length - 1] !== 0x0a) lines++;
    this.batches.addLines(bytes, this.lineNumber, lines);
    this.lineNumber += lines;
  }
}

const ArrayPhase = { BeforeArray: 0, BetweenElements: 1, InElement: 2, AfterArray: 3 } as const;
type ArrayPhase = (typeof ArrayPhase)[keyof typeof ArrayPhase];

/**
 * A JSON array, element by element, by tracking string and nesting state byte by byte. Each element is parsed
 * on its own later, so one malformed element is one rejected row, numbered by its 1-based index.
 */
class JsonArraySplitter implements RowSplitter {
  private phase: ArrayPhase = ArrayPhase.BeforeArray;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private elementNumber = 0;
  /** Bytes of an element that began in an earlier chunk. */
  private pending: Buffer[] = [];
  private reportedTrailingContent = false;

  constructor(private readonly batches: RowBatchBuilder) {}

  push(chunk: Buffer): void {
    let elementStart = this.phase === ArrayPhase.InElement ? 0 : -1;
    for (let index = 0; index < chunk.length; index++) {
      const byte = chunk[index]!;
      if (this.phase === ArrayPhase.InElement) {
        if (this.inString) {
          if (this.escaped) this.escaped = false;
          else if (byte === 0x5c) this.escaped = true;
          else if (byte === 0x22) this.inString = false;
        } else if (byte === 0x22) {
          this.inString = true;
        } else if (byte === 0x7b || byte === 0x5b) {
          this.depth++;
        } else if ((byte === 0x7d || byte === 0x5d) && this.depth > 0) {
          this.depth--;
        } else if (this.depth === 0 && (byte === 0x2c || byte === 0x5d)) {
          this.endElement(chunk, elementStart, index);
          this.phase = byte === 0x2c ? ArrayPhase.BetweenElements : ArrayPhase.AfterArray;
        }
        continue;
      }
      if (isJsonWhitespace(byte)) continue;
      if (this.phase === ArrayPhase.BeforeArray) {
        // The sniffer guarantees '[' after an optional BOM; skip the BOM's bytes.
        if (byte === 0x5b) this.phase = ArrayPhase.BetweenElements;
      } else if (this.phase === ArrayPhase.BetweenElements) {
        if (byte === 0x5d) {
          this.phase = ArrayPhase.AfterArray;
        } else {
          this.phase = ArrayPhase.InElement;
          this.elementNumber++;
          elementStart = index;
          index--; // Re-read this byte as the element's first.
        }
      } else if (!this.reportedTrailingContent) {
        this.reportedTrailingContent = true;
        this.batches.addTrailingError(this.elementNumber + 1, RowErrorKind.MalformedJson, 'unexpected content after the closing ] of the array');
      }
    }
    if (this.phase === ArrayPhase.InElement) this.pending.push(Buffer.from(chunk.subarray(elementStart)));
  }

  finish(): void {
    if (this.phase === ArrayPhase.InElement) {
      // Cut off mid-element: the element is still a row, and fails parsing under its own number.
      const element = Buffer.concat(this.pending);
      this.pending = [];
      this.batches.add(this.elementNumber, element, 0, element.length);
    } else if (this.phase === ArrayPhase.BetweenElements) {
      this.batches.addTrailingError(this.elementNumber + 1, RowErrorKind.TruncatedFile, 'the JSON array is never closed: the file looks truncated');
    }
  }

  private endElement(chunk: Buffer, elementStart: number, end: number): void {
    if (this.pending.length > 0) {
      const element = Buffer.concat([...this.pending, chunk.subarray(0, end)]);
      this.pending = [];
      this.batches.add(this.elementNumber, element, 0, element.length);
    } else {
      this.batches.add(this.elementNumber, chunk, elementStart, end);
    }
  }
}

/** Packs JSON array elements into batch buffers of about `batchBytes`, each a fresh allocation that can be transferred. */
class RowBatchBuilder {
  private full: RowBatch[] = [];
  private bytes: Buffer;
  private used = 0;
  private starts: number[] = [];
  private ends: number[] = [];
  private rowNumbers: number[] = [];
  private trailingErrors: RowError[] = [];

  constructor(
    private readonly file: string,
    private readonly batchBytes: number,
  ) {
    this.bytes = Buffer.allocUnsafeSlow(batchBytes);
  }

  add(rowNumber: number, source: Uint8Array, start: number, end: number): void {
    const length = end - start;
    if (this.used + length > this.bytes.length) {
      if (this.starts.length > 0) this.seal();
      if (length > this.bytes.length) this.bytes = Buffer.allocUnsafeSlow(length);
    }
    this.bytes.set(source.subarray(start, end), this.used);
    this.starts.push(this.used);
    this.used += length;
    this.ends.push(this.used);
    this.rowNumbers.push(rowNumber);
    if (this.used >= this.batchBytes) this.seal();
  }

  /** Whole lines, already in a buffer of their own: sealed as one batch, after any pending ranges. */
  addLines(bytes: Buffer, firstLineNumber: number, lines: number): void {
    if (this.starts.length > 0) this.seal();
    this.full.push({ file: this.file, bytes, maxRows: lines, trailingErrors: this.takeTrailingErrors(), layout: 'lines', firstLineNumber });
  }

  private takeTrailingErrors(): RowError[] {
    const errors = this.trailingErrors;
    this.trailingErrors = [];
    return errors;
  }

  addTrailingError(row: number, kind: RowErrorKind, reason: string): void {
    this.trailingErrors.push({ file: this.file, row, field: null, kind, reason });
  }

  *takeFull(): Generator<RowBatch> {
    const full = this.full;
    this.full = [];
    yield* full;
  }

  *takeAll(): Generator<RowBatch> {
    if (this.starts.length > 0 || this.trailingErrors.length > 0) this.seal();
    yield* this.takeFull();
  }

  private seal(): void {
    this.full.push({
      file: this.file,
      bytes: this.bytes.subarray(0, this.used),
      maxRows: this.starts.length,
      trailingErrors: this.takeTrailingErrors(),
      layout: 'ranges',
      starts: Uint32Array.from(this.starts),
      ends: Uint32Array.from(this.ends),
      rowNumbers: Uint32Array.from(this.rowNumbers),
    });
    this.bytes = Buffer.allocUnsafeSlow(this.batchBytes);
    this.used = 0;
    this.starts = [];
    this.ends = [];
    this.rowNumbers = [];
  }
}
