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
import type { EncodedLines, LineEncoder } from './line-encoder.ts';
import { lineHeadBytes, lineText } from './serialise.ts';
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
  /**
   * The valid rows' lines, in row order: their UTF-8 bytes back to back, each one's length, and each one's content
   * keys (`keyWordsPerLine` words). Bytes, not strings: they cross threads without copying and reach the output
   * file without re-encoding.
   */
  lines: EncodedLines;
  /** The invalid rows' errors, in row order. */
  errors: RowError[];
}

type RowOutcome =
  | { valid: true; family: RowFamily; content: NormalisedContent }
  | { valid: false; family: RowFamily | undefined; error: Omit<RowError, 'file' | 'row'> };

/** `lines` encodes the batch's lines; one per thread, reused from batch to batch. */
export function processBatch(batch: RowBatch, settings: BatchSettings, lines: LineEncoder): BatchResult {
  const capacity = batch.maxRows;
  const rowNumbers = new Uint32Array(capacity);
  const valid = new Uint8Array(capacity);
  const families = new Uint8Array(capacity).fill(noFamily);
  const errors: RowError[] = [];
  const seen = { sawInputField: false };
  const sourcePrefix = `"source":{"file":${JSON.stringify(batch.file)},"row":`;
  // The file name may be non-ASCII; the rest of the source member is ASCII.
  const sourcePrefixExtraBytes = Buffer.byteLength(sourcePrefix) - sourcePrefix.length;
  let count = 0;
  try {
    visitRows(batch, (text, row) => {
      const index = count++;
      rowNumbers[index] = row;
      const outcome = processRow(text, settings.format, seen);
      if (outcome.family !== undefined) families[index] = rowFamilies.indexOf(outcome.family);
      if (!outcome.valid) {
        errors.push({ file: batch.file, row, ...outcome.error });
        return;
      }
      valid[index] = 1;
      const source = `${sourcePrefix}${row}}`;
      lines.add(lineText(outcome.content, source), lineHeadBytes(outcome.content.kind, source.length + sourcePrefixExtraBytes));
    });
    return { file: batch.file, count, rowNumbers, valid, families, sawInputField: seen.sawInputField, lines: lines.finish(), errors };
  } catch (error) {
    // The encoder outlives the batch: lines staged before the failure must not open the next batch.
    lines.discard();
    throw error;
  }
}

/** `text` is undefined when the row's bytes are not valid UTF-8. */
function processRow(text: string | undefined, format: DatasetFormat, seen: { sawInputField: boolean }): RowOutcome {
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
  if ('input' in row) seen.sawInputField = true;
  const parsed = familySchemas[family].safeParse(row);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    return { valid: false, family, error: describeIssue(issue, row) };
  }
  return { valid: true, family, content: normaliseRow({ family, row: parsed.data } as ParsedRow) };
}

function rejected(family: RowFamily | undefined, field: string | null, kind: RowErrorKind, reason: string): RowOutcome {
  return { valid: false, family, error: { field, kind, reason } };
}

function describeIssue(issue: z.core.$ZodIssue, row: Record<string, unknown>): Omit<RowError, 'file' | 'row'> {
  const field = formatFieldPath(issue.path);
  const value = valueAtPath(row, issue.path);
  if (value === undefined && issue.code === 'invalid_type') {
    return { field, kind: RowErrorKind.MissingField, reason: 'missing' };
  }
  return match(issue)
    .with({ code: 'invalid_type' }, (typeIssue) => ({
      field,
      kind: RowErrorKind.WrongType,
      reason: `expected ${typeIssue.expected}, got ${describeType(value)}`,
    }))
    .with({ code: 'invalid_value' }, (valueIssue) => ({
      field,
      kind: RowErrorKind.UnknownRole,
      reason: `unknown role ${describeValue(value)} (expected ${valueIssue.values.join(', ')})`,
    }))
    .with({ code: 'invalid_format' }, { code: 'too_small' }, () => ({ field, kind: RowErrorKind.EmptyField, reason: 'is empty' }))
    .with({ code: 'custom' }, (customIssue) => ({ field, kind: customRowErrorKind(customIssue.params), reason: customIssue.message }))
    .otherwise((otherIssue) => ({ field, kind: RowErrorKind.WrongType, reason: otherIssue.message }));
}

/** A schema's own check names its row error kind in the issue's params (formats.ts' preferenceIssue); chat's has none. */
function customRowErrorKind(params: Record<string, unknown> | undefined): RowErrorKind {
  const kind = params?.kind;
  return Object.values(RowErrorKind).find((known) => known === kind) ?? RowErrorKind.NoAssistantMessage;
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

/** A short rendering of a row's value for a reason: strings quoted and cut, anything else by its type. */
function describeValue(value: unknown): string {
  if (typeof value !== 'string') return describeType(value);
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}
