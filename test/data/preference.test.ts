/** Preference datasets in prepare: both formats, auto-detection, the per-row report and typed errors. */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeEach, describe, expect, test } from 'vitest';
import { prepareDataset, type PrepareDatasetOptions } from '../../src/data/index.ts';
import { isInvalidDatasetError } from '../../src/errors/index.ts';
import { runSpecSchema } from '../../src/spec/schema.ts';

const workDirectory = await mkdtemp(join(tmpdir(), 'tuneflow-preference-'));
afterAll(() => rm(workDirectory, { recursive: true, force: true }));
let storeRoot = '';
let caseNumber = 0;
beforeEach(() => {
  storeRoot = join(workDirectory, `store-${caseNumber++}`);
});

async function writeDataset(name: string, rows: readonly unknown[]): Promise<string> {
  const path = join(workDirectory, name);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, `${rows.map((row) => JSON.stringify(row)).join('\n')}\n`);
  return path;
}

const prepare = (datasetPath: string, options: Partial<PrepareDatasetOptions> = {}) =>
  prepareDataset({ datasetPath, format: 'auto', seed: 42, maxInvalidFraction: 0, valCount: 1, storeRoot, ...options });

const readLines = async (...uris: string[]) =>
  (await Promise.all(uris.map((uri) => readFile(fileURLToPath(uri), 'utf8'))))
    .join('')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

const user = (content: string) => ({ role: 'user', content });
const assistant = (content: string) => ({ role: 'assistant', content });

describe('preference rows', () => {
  test('prompt/chosen/rejected text becomes a preference row, the system turn first', async () => {
    const path = await writeDataset('text.jsonl', [
      { system: 'Answer in JSON.', prompt: 'A red car', chosen: '{"color":"red"}', rejected: '{"color":"blue"}' },
      { prompt: 'A blue bike', chosen: '{"color":"blue"}', rejected: '{"colour":"blue"}' },
    ]);
    const report = await prepare(path);
    expect(report.format).toBe('preference');
    expect(report.valid_rows).toBe(2);
    const rows = await readLines(report.train_uri, report.val_uri);
    const first = rows.find((row) => (row.source as { row: number }).row === 1);
    expect(first).toEqual({
      kind: 'preference',
      source: { file: 'text.jsonl', row: 1 },
      prompt: [
        { role: 'system', content: 'Answer in JSON.' },
        { role: 'user', content: 'A red car' },
      ],
      chosen: [assistant('{"color":"red"}')],
      rejected: [assistant('{"color":"blue"}')],
    });
  });

  test('chat chosen/rejected lists: the shared leading turns are the prompt', async () => {
    const path = await writeDataset('chat.jsonl', [
      { chosen: [user('A red car'), assistant('{"color":"red"}')], rejected: [user('A red car'), assistant('red')] },
      { chosen: [user('A cat'), assistant('{"animal":"cat"}')], rejected: [user('A cat'), assistant('{"animal":"dog"}')] },
    ]);
    const report = await prepare(path);
    expect(report.format).toBe('chat_preference');
    const rows = await readLines(report.train_uri, report.val_uri);
    const first = rows.find((row) => (row.source as { row: number }).row === 1);
    expect(first).toMatchObject({ kind: 'preference', prompt: [user('A red car')], chosen: [assistant('{"color":"red"}')], rejected: [assistant('red')] });
  });

  test("TRL's conversational prompt/chosen/rejected lists are the same row", async () => {
    const path = await writeDataset('trl.jsonl', [
      { prompt: [user('A red car')], chosen: [assistant('{"color":"red"}')], rejected: [assistant('red')] },
      { prompt: [user('A cat')], chosen: [assistant('{"animal":"cat"}')], rejected: [assistant('{"animal":"dog"}')] },
    ]);
    const report = await prepare(path);
    expect(report.format).toBe('chat_preference');
    const rows = await readLines(report.train_uri, report.val_uri);
    expect(rows.find((row) => (row.source as { row: number }).row === 1)).toMatchObject({
      prompt: [user('A red car')],
      chosen: [assistant('{"color":"red"}')],
      rejected: [assistant('red')],
    });
  });

  test('bad pairs are reported per row, with the field and the kind of problem', async () => {
    const path = await writeDataset('bad.jsonl', [
      { prompt: 'A red car', chosen: '{"color":"red"}', rejected: '{"color":"blue"}' },
      { prompt: 'Same', chosen: 'x', rejected: 'x' },
      { prompt: 'No rejected', chosen: 'x' },
      { prompt: 'Empty', chosen: ' ', rejected: 'y' },
    ]);
    const failure = await prepare(path).catch((error: unknown) => error);
    expect(isInvalidDatasetError(failure)).toBe(true);
    const errors = (failure as { details: { report: { errors: { row: number; field: string | null; kind: string }[] } } }).details.report.errors;
    expect(errors.map(({ row, field, kind }) => ({ row, field, kind }))).toEqual([
      { row: 2, field: 'rejected', kind: 'identical_responses' },
      { row: 3, field: 'rejected', kind: 'missing_field' },
      { row: 4, field: 'chosen', kind: 'empty_field' },
    ]);
  });

  test('chat pairs: no shared prompt, a user turn in a response and identical responses are each named', async () => {
    const path = await writeDataset('bad-chat.jsonl', [
      { chosen: [user('A'), assistant('B')], rejected: [user('A'), assistant('C')] },
      { chosen: [user('A'), assistant('B')], rejected: [user('Z'), assistant('C')] },
      { chosen: [user('A'), assistant('B'), user('more')], rejected: [user('A'), assistant('C')] },
      { prompt: [user('A')], chosen: [assistant('B')], rejected: [assistant('B')] },
    ]);
    const failure = await prepare(path).catch((error: unknown) => error);
    expect(isInvalidDatasetError(failure)).toBe(true);
    const errors = (failure as { details: { report: { errors: { row: number; field: string | null; kind: string }[] } } }).details.report.errors;
    expect(errors.map(({ row, field, kind }) => ({ row, field, kind }))).toEqual([
      { row: 2, field: 'chosen[0]', kind: 'no_shared_prompt' },
      { row: 3, field: 'chosen[2].role', kind: 'no_assistant_message' },
      { row: 4, field: 'rejected', kind: 'identical_responses' },
    ]);
  });

  test('a file mixing preference pairs and SFT rows is refused as mixed formats', async () => {
    const path = await writeDataset('mixed.jsonl', [
      { prompt: 'A', chosen: 'B', rejected: 'C' },
      { prompt: 'D', chosen: 'E', rejected: 'F' },
      { prompt: 'G', completion: 'H' },
    ]);
    const failure = await prepare(path).catch((error: unknown) => error);
    expect(isInvalidDatasetError(failure)).toBe(true);
    expect((failure as Error).message).toContain('mixes formats (2 preference, 1 completion rows)');
  });
});

describe('the objective and the dataset format', () => {
  const spec = (train: unknown, format: string) => runSpecSchema.safeParse({ model: { source: 'm' }, dataset: { path: 'd.jsonl', format }, train });

  test('dpo with an SFT format is refused, naming dataset.format', () => {
    const parsed = spec({ objective: { kind: 'dpo' } }, 'alpaca');
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]).toMatchObject({ path: ['dataset', 'format'], message: expect.stringContaining("train.objective 'dpo'") });
  });

  test('sft with a preference format is refused, naming dataset.format', () => {
    const parsed = spec({}, 'preference');
    expect(parsed.error?.issues[0]).toMatchObject({ path: ['dataset', 'format'], message: expect.stringContaining("train.objective 'sft'") });
  });

  test("dpo's defaults, and auto left to prepare", () => {
    const parsed = spec({ objective: { kind: 'dpo' } }, 'auto');
    expect(parsed.data?.train.objective).toEqual({ kind: 'dpo', beta: 0.1, loss_type: 'sigmoid', label_smoothing: 0 });
    expect(spec({}, 'auto').data?.train.objective).toEqual({ kind: 'sft' });
  });

  test('ipo takes no label smoothing; beta must be positive', () => {
    expect(spec({ objective: { kind: 'dpo', loss_type: 'ipo', label_smoothing: 0.1 } }, 'preference').error?.issues[0]?.path).toEqual([
      'train',
      'objective',
      'label_smoothing',
    ]);
    expect(spec({ objective: { kind: 'dpo', beta: 0 } }, 'preference').success).toBe(false);
  });
});
