import { readFileSync } from 'node:fs';

/**
 * Turns a batch's prepared lines into their final UTF-8 bytes and their content keys, in WebAssembly
 * (`assembly/line-encoder.ts`): both touch every byte of every row, and the JavaScript loops over characters that
 * did this before cost more than JSON parsing and schema checks together.
 *
 * Lines arrive as the JSON text `serialise.ts` builds, whose strings may still hold raw control characters; they
 * leave escaped exactly as JSON.stringify escapes them. The keys: a 64-bit near-duplicate key, equal for rows
 * whose text differs only in letter case and whitespace (runs collapsed, the ends of each string trimmed), and a
 * 32-bit fingerprint of the exact bytes, which tells an exact duplicate from a near one among rows with equal near
 * keys. Both cover a line's content only, not its kind and source (the content's member names tell kinds apart),
 * and the lines are canonical JSON, so equal content means equal bytes.
 */

/** Key words per line: the near key's high and low halves, then the exact fingerprint. */
export const keyWordsPerLine = 3;

// The ES2022 lib has no WebAssembly types (TypeScript ships them with the DOM lib): the part used here.
declare global {
  namespace WebAssembly {
    class Module {
      constructor(bytes: Uint8Array);
    }
    class Instance {
      constructor(module: Module);
      readonly exports: unknown;
    }
    interface Memory {
      readonly buffer: ArrayBuffer;
      grow(deltaPages: number): number;
    }
  }
}

interface LineEncoderExports {
  memory: WebAssembly.Memory;
  heapBase(): number;
  countControlCharacters(start: number, end: number): number;
  escapeLines(staging: number, lines: number, count: number, output: number, lengths: number): number;
  keyLines(output: number, lines: number, lengths: number, count: number, keys: number, scratch: number, foldTable: number): void;
}

export interface EncodedLines {
  /** The lines' bytes, back to back, in a buffer of their own (it can be transferred to another thread). */
  bytes: Uint8Array;
  /** Per line, its length in `bytes`. */
  lengths: Uint32Array;
  /** Per line, `keyWordsPerLine` words. */
  keys: Uint32Array;
}

const pageBytes = 65_536;
const foldTableBytes = 65_536 * 2;
/** Vector loads and stores and 8-byte hash reads reach up to 16 bytes past a region's end. */
const slack = 16;
/** An escaped control character (\u001f) takes five bytes more than the raw one. */
const extraBytesPerEscape = 5;
/** Folding can turn a two-byte character into a three-byte one. */
const maxFoldedGrowth = 1.5;
/**
 * Memory a batch of normal rows never needs: after a batch of huge rows the instance is replaced, because a
 * WebAssembly memory cannot shrink and would otherwise hold that batch's size until the thread ends.
 */
const keptMemoryBytes = 64 << 20;
/** Arithmetic, not bitwise: offsets may pass 2^31 in a memory of up to 4 GiB. */
const align = (offset: number): number => Math.ceil(offset / 16) * 16;

let compiled: WebAssembly.Module | undefined;

/** The compiled WebAssembly, once per process; a worker thread is handed it instead of reading the file. */
export function lineEncoderModule(): WebAssembly.Module {
  compiled ??= new WebAssembly.Module(readFileSync(new URL('./assembly/line-encoder.wasm', import.meta.url)));
  return compiled;
}

/** One per thread: it keeps its WebAssembly memory from batch to batch. */
export class LineEncoder {
  private exports!: LineEncoderExports;
  private foldTable = 0;
  private staging = 0;
  /** A Buffer over the WebAssembly memory, remade whenever the memory grows. */
  private memory!: Buffer;
  private staged = 0;
  /** Per staged line: start, content start and end, relative to `staging`. */
  private ranges: number[] = [];

  constructor(private readonly module: WebAssembly.Module = lineEncoderModule()) {
    this.instantiate();
  }

  /** Stages one line; its content (what the keys cover) starts `headBytes` UTF-8 bytes in. */
  add(line: string, headBytes: number): void {
    const start = this.staged;
    // Three bytes per UTF-16 unit is the most UTF-8 takes; a line that might not fit is measured exactly.
    if (this.staging + start + line.length * 3 + slack > this.memory.byteLength) {
      this.memory = this.reserve(this.staging + start + Buffer.byteLength(line) + slack);
    }
    this.staged += this.memory.write(line, this.staging + start);
    this.ranges.push(start, start + headBytes, this.staged);
  }

  /** Forgets the lines staged since the last `finish`. */
  discard(): void {
    this.staged = 0;
    this.ranges = [];
  }

  /** Escapes and keys every line staged since the last call, and starts afresh. */
  finish(): EncodedLines {
    try {
      return this.encode();
    } finally {
      this.discard();
    }
  }

  private encode(): EncodedLines {
    const count = this.ranges.length / 3;
    const lines = align(this.staging + this.staged + slack);
    const lengths = align(lines + count * 12);
    const keys = align(lengths + count * 4);
    const output = align(keys + count * keyWordsPerLine * 4);
    const escapes = this.exports.countControlCharacters(this.staging, this.staging + this.staged);
    const scratch = align(output + this.staged + escapes * extraBytesPerEscape + slack);
    this.memory = this.reserve(scratch);
    new Uint32Array(this.memory.buffer, lines, count * 3).set(this.ranges);
    // WebAssembly's i32 arrives signed: an output of 2 GiB or more would read as negative.
    const written = this.exports.escapeLines(this.staging, lines, count, output, lengths) >>> 0;
    const lineLengths = new Uint32Array(this.memory.buffer, lengths, count);
    let longestLine = 0;
    for (const length of lineLengths) longestLine = Math.max(longestLine, length);
    this.memory = this.reserve(scratch + Math.ceil(longestLine * maxFoldedGrowth) + slack);
    this.exports.keyLines(output, lines, lengths, count, keys, scratch, this.foldTable);
    const buffer = this.memory.buffer;
    const encoded = {
      bytes: new Uint8Array(buffer.slice(output, output + written)),
      lengths: new Uint32Array(buffer.slice(lengths, lengths + count * 4)),
      keys: new Uint32Array(buffer.slice(keys, keys + count * keyWordsPerLine * 4)),
    };
    if (buffer.byteLength > keptMemoryBytes) this.instantiate();
    return encoded;
  }

  private instantiate(): void {
    this.exports = new WebAssembly.Instance(this.module).exports as LineEncoderExports;
    this.foldTable = align(this.exports.heapBase());
    this.staging = align(this.foldTable + foldTableBytes);
    this.memory = this.reserve(this.staging + (1 << 20));
    // Each BMP code unit's lower case, as JavaScript's toLowerCase gives it for the character alone. A character
    // whose lower case is longer than one code unit (İ) keeps the first: close enough for a key.
    const table = new Uint16Array(this.memory.buffer, this.foldTable, 65_536);
    for (let code = 0; code < 65_536; code++) table[code] = String.fromCharCode(code).toLowerCase().charCodeAt(0);
  }

  /** Grows the memory to at least `bytes` and returns a view of all of it. */
  private reserve(bytes: number): Buffer {
    const missing = bytes - this.exports.memory.buffer.byteLength;
    if (missing > 0) this.exports.memory.grow(Math.ceil(missing / pageBytes));
    return Buffer.from(this.exports.memory.buffer);
  }
}
