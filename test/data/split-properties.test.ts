import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, describe, expect, test } from 'vitest';
import { prepareDataset, type PreparedDatasetReport, type PrepareDatasetOptions } from '../../src/data/index.ts';

/**
 * Properties of prepare over random valid datasets: no row is lost, train and val partition the rows, and the
 * split depends only on the rows and the seed, not on the run or on JSON array vs JSONL.
 */

const workDirectory = await mkdtemp(join(tmpdir(), 'tuneflow-properties-'));
afterAll(() => rm(workDirectory, { recursive: true, force: true }));
let runCount = 0;

// Every row carries its index, so no two rows are (near) duplicates and every row must come out.
const text = (index: number) => fc.string({ unit: 'grapheme', maxLength: 24 }).map((value) => `${value} #${index}`);
const rowArbitraries: Record<string, (index: number) => fc.Arbitrary<Record<string, unknown>>> = {
  alpaca: (index) =>
    fc.record(
      {
        instruction: text(index),
        input: fc.option(fc.string({ maxLength: 12 }), { nil: undefined }),
        output: fc.string({ maxLength: 20 }).map((value) => `answer ${value}`),
      },
      { requiredKeys: ['instruction', 'output'] },
    ),
  chat: (index) =>
    fc.record({
      messages: fc
        .tuple(fc.boolean(), text(index), fc.string({ maxLength: 20 }))
        .map(([withSystem, question, answer]) => [
          ...(withSystem ? [{ role: 'system', content: 'Be helpful.' }] : []),
          { role: 'user', content: question },
          { role: 'assistant', content: `reply ${answer}` },
        ]),
    }),
  sharegpt: (index) =>
    fc.record({
      conversations: text(index).map((question) => [
        { from: 'human', value: question },
        { from: 'gpt', value: 'sure' },
      ]),
    }),
  text: (index) => fc.record({ text: text(index) }),
  completion: (index) => fc.record({ prompt: text(index), completion: fc.constant(' done') }),
};

const datasetArbitrary = fc
  .record({ format: fc.constantFrom(...Object.keys(rowArbitraries)), size: fc.integer({ min: 1, max: 60 }) })
  .chain(({ format, size }) => fc.tuple(...Array.from({ length: size }, (_, index) => rowArbitraries[format]!(index))));

type Split = Pick<PrepareDatasetOptions, 'valFraction' | 'valCount'>;

const splitArbitrary: fc.Arbitrary<Split> = fc.oneof(
  fc.record({ valFraction: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ valCount: fc.integer({ min: 0, max: 5 }) }),
  fc.constant({}),
);

async function prepareRows(rows: readonly unknown[], encoding: 'jsonl' | 'json', split: Split, seed: number) {
  const directory = join(workDirectory, `run-${runCount++}`);
  await rm(directory, { recursive: true, force: true });
  const datasetPath = join(workDirectory, `dataset-${runCount}.${encoding}`);
  await writeFile(datasetPath, encoding === 'jsonl' ? rows.map((row) => JSON.stringify(row)).join('\n') : JSON.stringify(rows, null, 1));
  const report = await prepareDataset({ datasetPath, format: 'auto', seed, maxInvalidFraction: 0, storeRoot: directory, ...split });
  return { report, train: await readRows(report.train_uri), val: await readRows(report.val_uri) };
}

/** Rows as they were written, minus the file name, which differs between encodings. */
async function readRows(uri: string): Promise<string[]> {
  const contents = await readFile(fileURLToPath(uri), 'utf8');
  return contents
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const row = JSON.parse(line) as { source: { file: string; row: number } };
      return JSON.stringify({ ...row, source: { row: row.source.row } });
    });
}

const tooFewForValCount = (report: PreparedDatasetReport, split: Split) => split.valCount !== undefined && split.valCount >= report.valid_rows;

describe('split properties', () => {
  test('no row is lost; train and val partition the rows; the split is stable across runs and encodings', async () => {
    await fc.assert(
      fc.asyncProperty(datasetArbitrary, splitArbitrary, fc.integer(), async (rows, split, seed) => {
        fc.pre(split.valCount === undefined || split.valCount < rows.length);
        const first = await prepareRows(rows, 'jsonl', split, seed);
        expect(tooFewForValCount(first.report, split)).toBe(false);
        expect(first.report.errors).toEqual([]);
        expect(first.report.valid_rows).toBe(rows.length);

        const all = [...first.train, ...first.val];
        const rowNumbers = all.map((line) => (JSON.parse(line) as { source: { row: number } }).source.row).sort((a, b) => a - b);
        expect(rowNumbers).toEqual(rows.map((_, index) => index + 1));
        expect(new Set(first.train).size + new Set(first.val).size).toBe(new Set(all).size);
        if (split.valCount !== undefined) expect(first.val).toHaveLength(split.valCount);
        if (rows.length >= 2 && split.valCount === undefined && (split.valFraction ?? 0.1) > 0) expect(first.val.length).toBeGreaterThan(0);

        // Row order within each side is the input order.
        const order = (lines: string[]) => lines.map((line) => (JSON.parse(line) as { source: { row: number } }).source.row);
        expect(order(first.train)).toEqual([...order(first.train)].sort((a, b) => a - b));
        expect(order(first.val)).toEqual([...order(first.val)].sort((a, b) => a - b));

        const again = await prepareRows(rows, 'jsonl', split, seed);
        expect(again.train).toEqual(first.train);
        expect(again.val).toEqual(first.val);
        expect(again.report.cached).toBe(false); // A fresh store: recomputed, not a cache hit.

        const asArray = await prepareRows(rows, 'json', split, seed);
        expect(asArray.train).toEqual(first.train);
        expect(asArray.val).toEqual(first.val);
      }),
      { numRuns: 60 },
    );
  });
});
