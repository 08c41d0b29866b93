/**
 * Dataset preparation: turns a user's JSON/JSONL dataset into the normalised `train.jsonl` and `val.jsonl` the
 * trainer reads, with a report of every rejected row. See docs/data.md.
 */
export { prepareDataset, defaultValFraction, type PrepareDatasetOptions } from './prepare.ts';
export {
  preparedDatasetReportSchema,
  rowErrorSchema,
  RowErrorKind,
  summariseReport,
  describeRowError,
  type PreparedDatasetReport,
  type DatasetReportDraft,
  type RowError,
} from './report.ts';
export type { NormalisedRow, NormalisedContent, RowSource, ChatMessage } from './formats.ts';
