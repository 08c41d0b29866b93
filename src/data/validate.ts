import { match } from 'ts-pattern';
import type { z } from 'zod';
import type { DatasetFormat } from '../spec/schema.ts';
import {
  familyFields,
  familyOfFormat,
  familyOfRowKeys,
  familySchemas,
  normaliseRow,
  rowFamilies,
  type NormalisedContent,
  type ParsedRow,
  type RowFamily,
} from './formats.ts';
import { visitRows, type RowBatch } from './read.ts';
import { ContentKeys } from './row-keys.ts';
import { maxLineBytes, writeLine } from './serialise.ts';
import { RowErrorKind, type RowError } from './report.ts';

/**
 * Turns raw rows into trainer rows. Pure and synchronous so it runs the same inline or in a worker thread; the
 * order-dependent work (dedupe, split, writing) stays with the caller, which sees results in input order.
 */

export interface BatchSettings {
  format: DatasetFormat;
}

/** Marks a row whose keys name no known format. */
export const noFamily = 255;
/** Key words per row: two of the near-duplicate key, one exact fingerprint. */
export const keyWordsPerRow = 3;

export interface BatchResult {
  file: string;
  /** Rows in the batch; the typed arrays may be longer. */
  count: number;
  rowNumbers: Uint32Array;
  /** 1 for a valid row. */
  valid: Uint8Array;
  /** Index into `rowFamilies` of the format each row's keys claim, or `noFamily`. */
  families: Uint8Array;
  /** Whether any row had an `input` field: tells alpaca from instruction/output in the report. */
  sawInputField: boolean;
  /** Per row: near key (two words), exact fingerprint. */
  keys: Uint32Array;
  /**
   * The valid rows' output lines as UTF-8, back to back, and each row's line length in bytes (0 for invalid rows).
   * Bytes, not a string: they cross threads without copying and reach the output file without re-encoding.
   */
  lineBytes: Uint8Array;
  lineLengths: Uint32Array;
  /** The invalid rows' errors, in row order. */
  errors: RowError[];
}

type RowOutcome =
  | { valid: true; family: RowFamily; content: NormalisedContent; keys: ContentKeys }
  | { valid: false; family: RowFamily | undefined; error: Omit<RowError, 'file' | 'row'> };

export function processBatch(batch: RowBatch, settings: BatchSettings): BatchResult {
  const capacity = batch.maxRows;
  const result: BatchResult = {
    file: batch.file,
    count: 0,
    rowNumbers: new Uint32Array(capacity),
    valid: new Uint8Array(capacity),
    families: new Uint8Array(capacity).fill(noFamily),
    sawInputField: false,
    keys: new Uint32Array(capacity * keyWordsPerRow),
    lineBytes: new Uint8Array(0),
    lineLengths: new Uint32Array(capacity),
    errors: [],
  };
  const sourcePrefix = `"source":{"file":${JSON.stringify(batch.file)},"row":`;
  // Output lines are about the input's size plus the source; growth covers the rest.
  let output = Buffer.allocUnsafeSlow(batch.bytes.byteLength * 2 + capacity * (sourcePrefix.length + 16));
  let used = 0;
  visitRows(batch, (text, row) => {
    const index = result.count++;
    result.rowNumbers[index] = row;
    const outcome = processRow(text, settings.format, result);
    if (outcome.family !== undefined) result.families[index] = rowFamilies.indexOf(outcome.family);
    if (!outcome.valid) {
      result.errors.push({ file: batch.file, row, ...outcome.error });
      return;
    }
    result.valid[index] = 1;
    const source = `${sourcePrefix}${row}}`;
    const room = maxLineBytes(outcome.content, source);
    if (used + room > output.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(output.length * 2, used + room));
      output.copy(grown, 0, 0, used);
      output = grown;
    }
    const lineStart = used;
    used = writeLine(output, used, outcome.content, source);
    result.lineLengths[index] = used - lineStart;
    const key = index * keyWordsPerRow;
    result.keys[key] = outcome.keys.nearHigh;
    result.keys[key + 1] = outcome.keys.nearLow;
    result.keys[key + 2] = outcome.keys.exactFingerprint;
  });
  result.lineBytes = output.subarray(0, used);
  return result;
}

/** `text` is undefined when the row's bytes are not valid UTF-8. */
function processRow(text: string | undefined, format: DatasetFormat, result: BatchResult): RowOutcome {
  if (text === undefined) {
    return rejected(undefined, null, RowErrorKind.InvalidUtf8, 'row is not valid UTF-8 (a stray binary byte?)');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return rejected(undefined, null, RowErrorKind.MalformedJson, `malformed JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return rejected(undefined, null, RowErrorKind.NotAnObject, `row must be a JSON object, got ${describeType(value)}`);
  }
  const row = value as Record<string, unknown>;
  const family = format === 'auto' ? familyOfRowKeys(row) : familyOfFormat(format);
  if (family === undefined) {
    const expected = Object.values(familyFields).join(' | ');
    return rejected(undefined, null, RowErrorKind.UnknownFormat, `no known format's fields (expected ${expected})`);
  }
  if ('input' in row) result.sawInputField = true;
  const parsed = familySchemas[family].safeParse(row);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { valid: false, family, error: describeIssue(issue, row) };
  }
  const content = normaliseRow({ family, row: parsed.data } as ParsedRow);
  return { valid: true, family, content, keys: contentKeys(content) };
}

function rejected(family: RowFamily | undefined, field: string | null, kind: RowErrorKind, reason: string): RowOutcome {
  return { valid: false, family, error: { field, kind, reason } };
}

/** Keys over everything the trainer sees: the kind, and each field with its role. */
function contentKeys(content: NormalisedContent): ContentKeys {
  const key = new ContentKeys().addField(content.kind);
  // A switch, not ts-pattern: this runs once per row and a match allocates.
  switch (content.kind) {
    case 'chat':
      for (const message of content.messages) key.addField(message.role).addField(message.content);
      return key;
    case 'text':
      return key.addField(content.text);
    case 'completion':
      return key.addField(content.prompt).addField(content.completion);
    default:
      return content satisfies never;
  }
}

function describeIssue(issue: z.core.$ZodIssue, row: Record<string, unknown>): Omit<RowError, 'file' | 'row'> {
  const field = formatFieldPath(issue.path);
  const value = valueAtPath(row, issue.path);
  if (value === undefined && issue.code === 'invalid_type') {
    return { field, kind: RowErrorKind.MissingField, reason: 'missing' };
  }
  return match(issue)
    .with({ code: 'invalid_type' }, (typeIssue) => ({ field, kind: RowErrorKind.WrongType, reason: `expected ${typeIssue.expected}, got ${describeType(value)}` }))
    .with({ code: 'invalid_value' }, (valueIssue) => ({
      field,
      kind: RowErrorKind.UnknownRole,
      reason: `unknown role ${JSON.stringify(value)} (expected ${valueIssue.values.join(', ')})`,
    }))
    .with({ code: 'invalid_format' }, { code: 'too_small' }, () => ({ field, kind: RowErrorKind.EmptyField, reason: 'is empty' }))
    .with({ code: 'custom' }, (customIssue) => ({ field, kind: RowErrorKind.NoAssistantMessage, reason: customIssue.message }))
    .otherwise((otherIssue) => ({ field, kind: RowErrorKind.WrongType, reason: otherIssue.message }));
}

function formatFieldPath(path: readonly PropertyKey[]): string | null {
  if (path.length === 0) return null;
  return path.map((segment, index) => (typeof segment === 'number' ? `[${segment}]` : index === 0 ? String(segment) : `.${String(segment)}`)).join('');
}

function valueAtPath(row: unknown, path: readonly PropertyKey[]): unknown {
  let value = row;
  for (const segment of path) {
    if (typeof value !== 'object' || value === null) return undefined;
    value = (value as Record<PropertyKey, unknown>)[segment];
  }
  return value;
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
