import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { rm } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { match } from 'ts-pattern';
import { InvalidDatasetError, InvalidSpecError } from '../errors/index.ts';
import type { DatasetFormat } from '../spec/schema.ts';
import { Membership, DigestSet } from './dedupe.ts';
import { rowFamilies, type RowFamily } from './formats.ts';
import { BatchProcessor } from './parallel.ts';
import { describeSingleFile, listDatasetFiles, readRowBatches, type DatasetFile } from './read.ts';
import { isDuplicateKind, RowErrorKind, type DatasetReportDraft, type PreparedDatasetReport, type RowError } from './report.ts';
import { CountSplitWriter, FileSplitWriter, FractionSplitWriter, seededUnitInterval, type SplitWriter } from './split.ts';
import { computeCacheKey, createBuildDirectory, LineWriter, publishBuildDirectory, readStoredReport } from './store.ts';
import { writeFileAtomic } from '../runtime/atomic-write.ts';
import { DatasetLayout, PreparedFile } from '../runtime/layout.ts';
import { keyWordsPerLine } from './line-encoder.ts';
import { noFamily, type BatchResult } from './validate.ts';

export interface PrepareDatasetOptions {
  /** Absolute path of a JSON array or JSONL file, optionally gzipped, or of a directory of them. */
  datasetPath: string;
  format: DatasetFormat;
  /** At most one of these; with none, 10% of the rows (at least one when there are two or more) validate. */
  valFraction?: number;
  valCount?: number;
  valPath?: string;
  seed: number;
  maxInvalidFraction: number;
  /** Artifact store root; prepared data goes to `<storeRoot>/datasets/<hash>/`. */
  storeRoot: string;
  /** Identifies the tokenizer the prepared data is meant for; part of the cache key. */
  tokenizerIdentity?: string;
  /** Validation threads besides the main one; by default none below 32 MiB of input, else one per spare core, up to three. */
  workerThreads?: number;
}

export const defaultValFraction = 0.1;
/**
 * Small batches keep every per-batch string (the decoded text) under V8's large-object size, so it dies young
 * instead of piling up in the old generation between full collections: resident memory stays flat.
 */
const batchBytes = 64 << 10;
const parallelInputBytes = 32 << 20;

type SplitPlan = { kind: 'fraction'; fraction: number } | { kind: 'count'; count: number } | { kind: 'file'; path: string };

function planSplit(options: PrepareDatasetOptions): SplitPlan {
  const given = [options.valFraction, options.valCount, options.valPath].filter((value) => value !== undefined);
  if (given.length > 1) throw new InvalidSpecError('give at most one of valFraction, valCount, valPath');
  if (options.valCount !== undefined) {
    if (!Number.isInteger(options.valCount) || options.valCount < 0)
      throw new InvalidSpecError(`valCount must be a non-negative integer, got ${options.valCount}`);
    return { kind: 'count', count: options.valCount };
  }
  if (options.valPath !== undefined) return { kind: 'file', path: options.valPath };
  const fraction = options.valFraction ?? defaultValFraction;
  if (!(fraction >= 0 && fraction <= 1)) throw new InvalidSpecError(`valFraction must be between 0 and 1, got ${fraction}`);
  return { kind: 'fraction', fraction };
}

/**
 * Validates, normalises, dedupes and splits a dataset into the store, or returns the stored result when the same
 * bytes were already prepared with the same options. Throws `DatasetNotFoundError` when the input cannot be read
 * and `InvalidDatasetError` (with the report in `details.report`) when it cannot be trained on.
 */
export async function prepareDataset(options: PrepareDatasetOptions): Promise<PreparedDatasetReport> {
  const split = planSplit(options);
  if (!(options.maxInvalidFraction >= 0 && options.maxInvalidFraction <= 1)) {
    throw new InvalidSpecError(`maxInvalidFraction must be between 0 and 1, got ${options.maxInvalidFraction}`);
  }
  const inputs = await listDatasetFiles(options.datasetPath);
  const valFile = split.kind === 'file' ? await describeSingleFile(split.path, inputs.baseDirectory) : undefined;
  const files = valFile === undefined ? inputs.files : [...inputs.files, valFile];
  // The hash comes first, so a cache hit reads the input once and does no other work.
  const hash = await computeCacheKey(
    {
      format: options.format,
      split: split.kind === 'file' ? { kind: 'file', file: valFile?.relativePath } : split,
      seed: options.seed,
      maxInvalidFraction: options.maxInvalidFraction,
      tokenizerIdentity: options.tokenizerIdentity ?? '',
    },
    files,
  );
  const finalDirectory = DatasetLayout.of(options.storeRoot, hash).root;
  const stored = await readStoredReport(finalDirectory);
  if (stored !== undefined) return locate(stored, finalDirectory, true);

  const buildDirectory = await createBuildDirectory(options.storeRoot, hash);
  try {
    const inputBytes = files.reduce((sum, file) => sum + file.size, 0);
    const workerThreads = options.workerThreads ?? (inputBytes >= parallelInputBytes ? Math.min(availableParallelism() - 1, 3) : 0);
    const processor = new BatchProcessor({ format: options.format }, workerThreads);
    const preparation = new Preparation(options, split, await createSplitWriter(split, buildDirectory));
    let finished = false;
    try {
      await preparation.readAll(files, valFile, processor);
      const draft = await preparation.finish(hash, inputs.skippedFiles);
      finished = true;
      // finish() has thrown unless some row was valid, and a valid row always has a format.
      const report = locate({ ...draft, format: draft.format! }, finalDirectory, false);
      await writeFileAtomic(DatasetLayout.at(buildDirectory).file(PreparedFile.Report), JSON.stringify(report));
      if (await publishBuildDirectory(buildDirectory, finalDirectory)) return report;
      // A concurrent prepare of the same inputs published first; its result is the same, and it is the one on disk.
      const theirs = await readStoredReport(finalDirectory);
      return theirs === undefined ? report : locate(theirs, finalDirectory, true);
    } finally {
      await processor.close();
      if (!finished) await preparation.abandon();
    }
  } finally {
    await rm(buildDirectory, { recursive: true, force: true });
  }
}

function locate(
  report: Omit<PreparedDatasetReport, 'train_uri' | 'val_uri' | 'report_uri' | 'cached'>,
  directory: string,
  cached: boolean,
): PreparedDatasetReport {
  const layout = DatasetLayout.at(directory);
  return {
    ...report,
    train_uri: pathToFileURL(layout.file(PreparedFile.Train)).href,
    val_uri: pathToFileURL(layout.file(PreparedFile.Val)).href,
    report_uri: pathToFileURL(layout.file(PreparedFile.Report)).href,
    cached,
  };
}

async function createSplitWriter(split: SplitPlan, directory: string): Promise<SplitWriter> {
  const layout = DatasetLayout.at(directory);
  const trainPath = layout.file(PreparedFile.Train);
  const valPath = layout.file(PreparedFile.Val);
  return match(split)
    .with({ kind: 'fraction' }, async ({ fraction }) => new FractionSplitWriter(await LineWriter.create(trainPath), await LineWriter.create(valPath), fraction))
    .with({ kind: 'count' }, async ({ count }) => new CountSplitWriter(await LineWriter.create(join(directory, 'rows.jsonl')), trainPath, valPath, count))
    .with({ kind: 'file' }, async () => new FileSplitWriter(await LineWriter.create(trainPath), await LineWriter.create(valPath)))
    .exhaustive();
}

type FamilyTally = { rows: number; first: { file: string; row: number } };
type InFlight = { result: Promise<BatchResult>; trailingErrors: RowError[]; fromValFile: boolean };

/** One pass over the rows in input order: counts, errors, dedupe and the split, all in bounded memory. */
class Preparation {
  private readonly errors: RowError[] = [];
  private validRows = 0;
  private invalidRows = 0;
  private duplicatesRemoved = 0;
  private readonly families = new Map<RowFamily, FamilyTally>();
  private sawInputField = false;
  private readonly kept = new DigestSet();

  constructor(
    private readonly options: PrepareDatasetOptions,
    private readonly split: SplitPlan,
    private readonly writer: SplitWriter,
  ) {}

  /** Closes the outputs of a preparation that will not be finished. */
  abandon(): Promise<void> {
    return this.writer.abandon();
  }

  async readAll(files: readonly DatasetFile[], valFile: DatasetFile | undefined, processor: BatchProcessor): Promise<void> {
    const inFlight: InFlight[] = [];
    for (const file of files) {
      for await (const batch of readRowBatches(file, batchBytes)) {
        const { trailingErrors } = batch;
        const result = processor.process(batch);
        // Awaited later, in order; until then a failure must not count as an unhandled rejection.
        result.catch(() => undefined);
        inFlight.push({ result, trailingErrors, fromValFile: file === valFile });
        if (inFlight.length >= processor.inFlightLimit) await this.consume(inFlight.shift()!);
      }
    }
    for (const item of inFlight) await this.consume(item);
  }

  private async consume({ result: pending, trailingErrors, fromValFile }: InFlight): Promise<void> {
    const result = await pending;
    this.sawInputField ||= result.sawInputField;
    const { bytes, lengths, keys } = result.lines;
    let line = 0;
    let lineOffset = 0;
    let errorIndex = 0;
    for (let index = 0; index < result.count; index++) {
      const row = result.rowNumbers[index]!;
      const family = result.families[index]!;
      if (family !== noFamily) this.tallyFamily(rowFamilies[family]!, result.file, row);
      if (result.valid[index] === 0) {
        this.reject(result.errors[errorIndex++]!);
        continue;
      }
      const lineStart = lineOffset;
      lineOffset += lengths[line]!;
      const key = line++ * keyWordsPerLine;
      const membership = this.kept.add(keys[key]!, keys[key + 1]!, keys[key + 2]!);
      if (membership !== Membership.New) {
        const exact = membership === Membership.Exact;
        this.reject({
          file: result.file,
          row,
          field: null,
          kind: exact ? RowErrorKind.Duplicate : RowErrorKind.NearDuplicate,
          reason: exact ? 'duplicate of an earlier row' : 'duplicate of an earlier row once case and whitespace are ignored',
        });
        continue;
      }
      this.validRows++;
      // The near key drives the draw: kept rows never share one, and it ignores what dedupe ignores.
      this.writer.accept(bytes, lineStart, lineOffset, seededUnitInterval(keys[key]!, keys[key + 1]!, this.options.seed), fromValFile);
    }
    // Lines pair with valid rows by position: a mismatch would put one row's text under another's source.
    if (line !== lengths.length) throw new Error(`batch of ${result.file} has ${lengths.length} encoded lines for ${line} valid rows`);
    for (const error of trailingErrors) this.reject(error);
    await this.writer.flushWhenFull();
  }

  private reject(error: RowError): void {
    this.errors.push(error);
    if (isDuplicateKind(error.kind)) this.duplicatesRemoved++;
    else this.invalidRows++;
  }

  private tallyFamily(family: RowFamily, file: string, row: number): void {
    const tally = this.families.get(family);
    if (tally === undefined) this.families.set(family, { rows: 1, first: { file, row } });
    else tally.rows++;
  }

  private detectedFormat(): DatasetReportDraft['format'] {
    if (this.options.format !== 'auto') return this.options.format;
    const [family] = this.families.keys();
    if (family === undefined) return null;
    return family === 'instruction' && this.sawInputField ? 'alpaca' : family;
  }

  /** Applies the dataset-level policies, then completes the split. Nothing is split when a policy fails. */
  async finish(hash: string, skippedFiles: string[]): Promise<DatasetReportDraft> {
    const totalRows = this.validRows + this.invalidRows + this.duplicatesRemoved;
    const draft: DatasetReportDraft = {
      format: this.detectedFormat(),
      total_rows: totalRows,
      valid_rows: this.validRows,
      invalid_rows: this.invalidRows,
      duplicates_removed: this.duplicatesRemoved,
      // No rows are trained on when a policy fails, so a failure's report says 0 here.
      train_rows: 0,
      val_rows: 0,
      hash,
      invalid_fraction: totalRows === 0 ? 0 : this.invalidRows / totalRows,
      max_invalid_fraction: this.options.maxInvalidFraction,
      errors: this.errors,
      skipped_files: skippedFiles,
    };
    this.failOnMixedFormats(draft);
    if (draft.invalid_fraction > this.options.maxInvalidFraction) {
      throw new InvalidDatasetError(
        `${this.invalidRows} of ${totalRows} rows are invalid (${(draft.invalid_fraction * 100).toFixed(2)}%), above max_invalid_fraction ${this.options.maxInvalidFraction}`,
        { report: draft },
      );
    }
    if (this.validRows === 0) throw new InvalidDatasetError(`the dataset has no valid rows (${totalRows} rows read)`, { report: draft });
    if (this.split.kind === 'count' && this.split.count >= this.validRows) {
      throw new InvalidDatasetError(`val_count ${this.split.count} leaves no training rows: the dataset has ${this.validRows} valid rows`, { report: draft });
    }
    const { trainRows, valRows } = await this.writer.finish();
    return { ...draft, train_rows: trainRows, val_rows: valRows };
  }

  /** In auto mode every row must claim the same format; the report names the first row of the rarest one. */
  private failOnMixedFormats(draft: DatasetReportDraft): void {
    if (this.options.format !== 'auto' || this.families.size < 2) return;
    const tallies = [...this.families.entries()].map(([family, tally], firstSeen) => ({ family, firstSeen, ...tally }));
    // On a tie the format that appeared later is the odd one out.
    const minority = [...tallies].sort((left, right) => left.rows - right.rows || right.firstSeen - left.firstSeen)[0]!;
    const counts = tallies.map(({ family, rows }) => `${rows} ${family}`).join(', ');
    throw new InvalidDatasetError(
      `the dataset mixes formats (${counts} rows): ${minority.first.file} row ${minority.first.row} is the first ${minority.family} row`,
      { report: { ...draft, format: null }, first_minority_row: { ...minority.first, format: minority.family } },
    );
  }
}
