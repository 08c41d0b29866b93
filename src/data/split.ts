import { rm } from 'node:fs/promises';
import { writeFileAtomic } from '../runtime/atomic-write.ts';
import { extractLine, LineWriter, readLines } from './store.ts';

/**
 * The train/validation split, decided from each row's content key and the seed alone: no row order, file layout
 * or encoding (JSON array vs JSONL) enters it, so the same rows and seed always give the same split, and a
 * fraction split needs no memory at all.
 */

/** A uniform number in [0, 1) from a 64-bit key and the seed; a different seed gives an independent draw. */
export function seededUnitInterval(keyHigh: number, keyLow: number, seed: number): number {
  const seedWord = finalMix((seed >>> 0) ^ finalMix(Math.floor(seed / 2 ** 32) ^ 0x9e3779b9));
  const high = finalMix(keyHigh ^ seedWord);
  const low = finalMix(keyLow ^ finalMix(high ^ seedWord ^ 0x7f4a7c15));
  // 53 bits: all a double holds.
  return (high * 2 ** 21 + (low >>> 11)) / 2 ** 53;
}

/** murmur3's finaliser: spreads every input bit over the output. */
export function finalMix(value: number): number {
  value ^= value >>> 16;
  value = Math.imul(value, 0x85ebca6b);
  value ^= value >>> 13;
  value = Math.imul(value, 0xc2b2ae35);
  value ^= value >>> 16;
  return value >>> 0;
}

/**
 * The `count` rows with the smallest draws, kept in a bounded max-heap so a validation count needs memory for
 * `count` rows' draws, not for the dataset. Ties on the draw fall to the earlier row, so selection is total.
 */
export class SmallestDraws {
  private readonly draws: Float64Array;
  private readonly indexes: Float64Array;
  private size = 0;

  constructor(private readonly capacity: number) {
    this.draws = new Float64Array(capacity);
    this.indexes = new Float64Array(capacity);
  }

  offer(draw: number, index: number): void {
    if (this.capacity === 0) return;
    if (this.size < this.capacity) {
      this.draws[this.size] = draw;
      this.indexes[this.size] = index;
      this.siftUp(this.size++);
    } else if (this.isLarger(this.draws[0]!, this.indexes[0]!, draw, index)) {
      this.draws[0] = draw;
      this.indexes[0] = index;
      this.siftDown(0);
    }
  }

  /** The selected row indexes. */
  selected(): Set<number> {
    return new Set(Array.from(this.indexes.subarray(0, this.size)));
  }

  private isLarger(drawA: number, indexA: number, drawB: number, indexB: number): boolean {
    return drawA > drawB || (drawA === drawB && indexA > indexB);
  }

  private swap(a: number, b: number): void {
    [this.draws[a], this.draws[b]] = [this.draws[b]!, this.draws[a]!];
    [this.indexes[a], this.indexes[b]] = [this.indexes[b]!, this.indexes[a]!];
  }

  private siftUp(position: number): void {
    while (position > 0) {
      const parent = (position - 1) >> 1;
      if (!this.isLarger(this.draws[position]!, this.indexes[position]!, this.draws[parent]!, this.indexes[parent]!)) return;
      this.swap(position, parent);
      position = parent;
    }
  }

  private siftDown(position: number): void {
    for (;;) {
      let largest = position;
      for (const child of [2 * position + 1, 2 * position + 2]) {
        if (child < this.size && this.isLarger(this.draws[child]!, this.indexes[child]!, this.draws[largest]!, this.indexes[largest]!)) largest = child;
      }
      if (largest === position) return;
      this.swap(position, largest);
      position = largest;
    }
  }
}

/** Where kept rows go, in input order. Each strategy writes `train.jsonl` and `val.jsonl` and reports their sizes. */
export interface SplitWriter {
  /** Takes one kept row: its output line is bytes `start` to `end` of `lines`. */
  accept(lines: Uint8Array, start: number, end: number, draw: number, fromValFile: boolean): void;
  flushWhenFull(): Promise<void>;
  finish(): Promise<{ trainRows: number; valRows: number }>;
  /** Closes the outputs unfinished, when the preparation fails or is not needed after all. */
  abandon(): Promise<void>;
}

/** Rows go straight to `train.jsonl` or `val.jsonl` as they come. */
abstract class TrainAndValWriter implements SplitWriter {
  constructor(
    protected readonly train: LineWriter,
    protected readonly val: LineWriter,
  ) {}

  abstract accept(lines: Uint8Array, start: number, end: number, draw: number, fromValFile: boolean): void;

  async flushWhenFull(): Promise<void> {
    await this.train.flushWhenFull();
    await this.val.flushWhenFull();
  }

  async finish(): Promise<{ trainRows: number; valRows: number }> {
    await this.train.close();
    await this.val.close();
    return { trainRows: this.train.lineCount, valRows: this.val.lineCount };
  }

  async abandon(): Promise<void> {
    await this.train.discard();
    await this.val.discard();
  }
}

type Extreme = { draw: number; lineIndex: number };

/**
 * Rows whose draw falls below the fraction go to validation, decided row by row. Training gets at least one row
 * unless the fraction is 1, and validation at least one of two or more rows unless the fraction is 0: the row
 * nearest the threshold moves over, which a rare rewrite of the other file does without reordering anything.
 */
export class FractionSplitWriter extends TrainAndValWriter {
  private lowestTrain: Extreme | undefined;
  private highestVal: Extreme | undefined;

  constructor(
    train: LineWriter,
    val: LineWriter,
    private readonly fraction: number,
  ) {
    super(train, val);
  }

  accept(lines: Uint8Array, start: number, end: number, draw: number): void {
    const toVal = draw < this.fraction;
    const writer = toVal ? this.val : this.train;
    writer.appendBytes(lines, start, end);
    if (toVal && (this.highestVal === undefined || draw > this.highestVal.draw)) this.highestVal = { draw, lineIndex: writer.lineCount - 1 };
    if (!toVal && (this.lowestTrain === undefined || draw < this.lowestTrain.draw)) this.lowestTrain = { draw, lineIndex: writer.lineCount - 1 };
  }

  override async finish(): Promise<{ trainRows: number; valRows: number }> {
    let { trainRows, valRows } = await super.finish();
    if (valRows === 0 && trainRows >= 2 && this.fraction > 0 && this.lowestTrain !== undefined) {
      await writeFileAtomic(this.val.path, `${await extractLine(this.train.path, this.lowestTrain.lineIndex)}\n`);
      [trainRows, valRows] = [trainRows - 1, 1];
    } else if (trainRows === 0 && valRows >= 1 && this.fraction < 1 && this.highestVal !== undefined) {
      // A single row trains: a model can be fitted without validation, not without training data.
      await writeFileAtomic(this.train.path, `${await extractLine(this.val.path, this.highestVal.lineIndex)}\n`);
      [trainRows, valRows] = [1, valRows - 1];
    }
    return { trainRows, valRows };
  }
}

/**
 * A validation count: which rows have the `count` smallest draws is known only at the end, so kept rows go to
 * one staging file first and a second pass over it writes both outputs.
 */
export class CountSplitWriter implements SplitWriter {
  private readonly smallest: SmallestDraws;

  constructor(
    private readonly staging: LineWriter,
    private readonly trainPath: string,
    private readonly valPath: string,
    count: number,
  ) {
    this.smallest = new SmallestDraws(count);
  }

  /** Rows kept so far. */
  get rowCount(): number {
    return this.staging.lineCount;
  }

  accept(lines: Uint8Array, start: number, end: number, draw: number): void {
    this.staging.appendBytes(lines, start, end);
    this.smallest.offer(draw, this.staging.lineCount - 1);
  }

  flushWhenFull(): Promise<void> {
    return this.staging.flushWhenFull();
  }

  abandon(): Promise<void> {
    return this.staging.discard();
  }

  async finish(): Promise<{ trainRows: number; valRows: number }> {
    await this.staging.close();
    const selected = this.smallest.selected();
    const train = await LineWriter.create(this.trainPath);
    const val = await LineWriter.create(this.valPath);
    let index = 0;
    for await (const line of readLines(this.staging.path)) {
      (selected.has(index++) ? val : train).append(line);
      await train.flushWhenFull();
      await val.flushWhenFull();
    }
    await train.close();
    await val.close();
    await rm(this.staging.path);
    return { trainRows: train.lineCount, valRows: val.lineCount };
  }
}

/** A separate validation file: its rows are the validation set, the dataset's rows the training set. */
export class FileSplitWriter extends TrainAndValWriter {
  accept(lines: Uint8Array, start: number, end: number, _draw: number, fromValFile: boolean): void {
    (fromValFile ? this.val : this.train).appendBytes(lines, start, end);
  }
}
