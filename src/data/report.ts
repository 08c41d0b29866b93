import { z } from 'zod';
import { DatasetFormat } from '../spec/schema.ts';

/**
 * The prepare report: which rows were trained on, which were rejected and why. Every input row is accounted
 * for: `total_rows = valid_rows + invalid_rows + duplicates_removed`, `valid_rows = train_rows + val_rows`, and
 * `errors` lists every rejected row (invalid rows and removed duplicates), so nothing disappears silently.
 */

export const RowErrorKind = {
  MalformedJson: 'malformed_json',
  InvalidUtf8: 'invalid_utf8',
  NotAnObject: 'not_an_object',
  UnknownFormat: 'unknown_format',
  MissingField: 'missing_field',
  EmptyField: 'empty_field',
  WrongType: 'wrong_type',
  UnknownRole: 'unknown_role',
  NoAssistantMessage: 'no_assistant_message',
  /** A preference pair whose chosen and rejected responses are the same. */
  IdenticalResponses: 'identical_responses',
  /** Chat preference lists that share no leading message, so no prompt. */
  NoSharedPrompt: 'no_shared_prompt',
  TruncatedFile: 'truncated_file',
  Duplicate: 'duplicate',
  NearDuplicate: 'near_duplicate',
} as const;
export type RowErrorKind = (typeof RowErrorKind)[keyof typeof RowErrorKind];

/** Duplicates are removed and counted, but are not invalid: they do not count against `max_invalid_fraction`. */
export const isDuplicateKind = (kind: RowErrorKind): boolean => kind === RowErrorKind.Duplicate || kind === RowErrorKind.NearDuplicate;

export const rowErrorSchema = z.object({
  /** Relative to the dataset directory (the file name for a single-file dataset). */
  file: z.string(),
  /** 1-based line number in JSONL, 1-based element index in a JSON array. */
  row: z.number().int().positive(),
  /** Path of the offending field, such as `messages[1].role` (indexes 0-based); null when the whole row is at fault. */
  field: z.string().nullable(),
  kind: z.enum(RowErrorKind),
  reason: z.string(),
});
export type RowError = z.infer<typeof rowErrorSchema>;

export const preparedDatasetReportSchema = z.object({
  format: z.enum(DatasetFormat).exclude(['Auto']),
  total_rows: z.number().int().nonnegative(),
  valid_rows: z.number().int().nonnegative(),
  invalid_rows: z.number().int().nonnegative(),
  duplicates_removed: z.number().int().nonnegative(),
  train_rows: z.number().int().nonnegative(),
  val_rows: z.number().int().nonnegative(),
  /** The cache key: sha256 of the raw bytes, the prepare options and the tokenizer identity. */
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  /** invalid_rows / total_rows, and the policy it was held to. */
  invalid_fraction: z.number().min(0).max(1),
  max_invalid_fraction: z.number().min(0).max(1),
  errors: z.array(rowErrorSchema),
  /** Files in a dataset directory that are not JSON, JSONL or their .gz, so were not read. */
  skipped_files: z.array(z.string()),
  train_uri: z.string(),
  val_uri: z.string(),
  report_uri: z.string(),
  cached: z.boolean(),
});
export type PreparedDatasetReport = z.infer<typeof preparedDatasetReportSchema>;

/** What the report holds before anything is stored: the shape carried by a failure's details. */
export type DatasetReportDraft = Omit<PreparedDatasetReport, 'format' | 'train_uri' | 'val_uri' | 'report_uri' | 'cached'> & {
  format: PreparedDatasetReport['format'] | null;
};

export function describeRowError(error: RowError): string {
  const field = error.field === null ? '' : ` ${error.field}:`;
  return `${error.file} row ${error.row}:${field} ${error.reason}`;
}

/** The human summary printed by the CLI: counts first, then the first few rejected rows. */
export function summariseReport(report: DatasetReportDraft, maxErrorsShown: number): string {
  const lines = [
    `format: ${report.format ?? 'unknown'}`,
    `rows: ${report.total_rows} total, ${report.valid_rows} valid, ${report.invalid_rows} invalid, ${report.duplicates_removed} duplicates removed`,
    `split: ${report.train_rows} train, ${report.val_rows} val`,
    `invalid fraction: ${report.invalid_fraction.toFixed(4)} (max ${report.max_invalid_fraction})`,
  ];
  if (report.skipped_files.length > 0) lines.push(`skipped files: ${report.skipped_files.join(', ')}`);
  if (report.errors.length > 0) {
    lines.push(`rejected rows (first ${Math.min(maxErrorsShown, report.errors.length)} of ${report.errors.length}):`);
    for (const error of report.errors.slice(0, maxErrorsShown)) lines.push(`  ${describeRowError(error)}`);
  }
  return lines.join('\n');
}
