import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeEach, describe, expect, test } from 'vitest';
import { prepareDataset, type PrepareDatasetOptions } from '../../src/data/index.ts';
import { DigestSet, Membership } from '../../src/data/dedupe.ts';
import { SmallestDraws } from '../../src/data/split.ts';
import { isInvalidDatasetError } from '../../src/errors/index.ts';

const workDirectory = await mkdtemp(join(tmpdir(), 'tuneflow-prepare-'));
afterAll(() => rm(workDirectory, { recursive: true, force: true }));
let storeRoot = '';
let caseNumber = 0;
beforeEach(async () => {
  storeRoot = join(workDirectory, `store-${caseNumber++}`);
});

async function writeDataset(name: string, rows: readonly unknown[]): Promise<string> {
  const path = join(workDirectory, name);
  await mkdir(join(path, '..'), { recursive: true });
  await writeFile(path, `${rows.map((row) => JSON.stringify(row)).join('\n')}\n`);
  return path;
}

const prepare = (datasetPath: string, options: Partial<PrepareDatasetOptions> = {}) =>
  prepareDataset({ datasetPath, format: 'auto', seed: 42, maxInvalidFraction: 0.01, storeRoot, ...options });

const readLines = async (uri: string) =>
  (await readFile(fileURLToPath(uri), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Record<string, unknown>);

const numbered = (count: number) => Array.from({ length: count }, (_, index) => ({ instruction: `Question ${index}`, output: `Answer ${index}` }));

describe('normalised rows', () => {
  test('every format becomes the trainer row format, with its source', async () => {
    const expectations: [string, unknown, unknown][] = [
      [
        'alpaca.jsonl',
        { instruction: 'Translate', input: 'bonjour', output: 'hello' },
        {
          kind: 'chat',
          messages: [
            { role: 'user', content: 'Translate\n\nbonjour' },
            { role: 'assistant', content: 'hello' },
          ],
        },
      ],
      [
        'instruction.jsonl',
        { instruction: 'Say hi', input: '  ', output: 'hi' },
        {
          kind: 'chat',
          messages: [
            { role: 'user', content: 'Say hi' },
            { role: 'assistant', content: 'hi' },
          ],
        },
      ],
      [
        'sharegpt.jsonl',
        {
          conversations: [
            { from: 'system', value: 'Terse.' },
            { from: 'human', value: 'Hi' },
            { from: 'gpt', value: 'Yo' },
          ],
        },
        {
          kind: 'chat',
          messages: [
            { role: 'system', content: 'Terse.' },
            { role: 'user', content: 'Hi' },
            { role: 'assistant', content: 'Yo' },
          ],
        },
      ],
      [
        'chat.jsonl',
        {
          id: 'extra fields are dropped',
          messages: [
            { role: 'user', content: 'Hi', name: 'ana' },
            { role: 'assistant', content: 'Hello' },
          ],
        },
        {
          kind: 'chat',
          messages: [
            { role: 'user', content: 'Hi' },
            { role: 'assistant', content: 'Hello' },
          ],
        },
      ],
      ['text.jsonl', { text: 'Otters hold hands.' }, { kind: 'text', text: 'Otters hold hands.' }],
      ['completion.jsonl', { prompt: 'The sky is', completion: ' blue.' }, { kind: 'completion', prompt: 'The sky is', completion: ' blue.' }],
    ];
    for (const [name, row, expected] of expectations) {
      const report = await prepare(await writeDataset(name, [row]));
      expect(await readLines(report.train_uri)).toEqual([{ ...(expected as object), source: { file: name, row: 1 } }]);
      expect(Object.keys((await readLines(report.train_uri))[0]!).slice(0, 2)).toEqual(['kind', 'source']);
    }
  });
});

describe('the content-addressed store', () => {
  test('a second prepare of the same inputs is a cache hit with the same URIs and untouched files', async () => {
    const path = await writeDataset('cache.jsonl', numbered(20));
    const first = await prepare(path);
    const trainModified = (await stat(fileURLToPath(first.train_uri))).mtimeMs;
    const second = await prepare(path);
    expect(second.cached).toBe(true);
    expect(first.cached).toBe(false);
    expect({ ...second, cached: false }).toEqual(first);
    expect((await stat(fileURLToPath(second.train_uri))).mtimeMs).toBe(trainModified);
    expect(first.train_uri).toBe(new URL(`datasets/${first.hash}/train.jsonl`, `file://${storeRoot}/`).href);
    const stored = JSON.parse(await readFile(fileURLToPath(first.report_uri), 'utf8')) as Record<string, unknown>;
    expect(stored.hash).toBe(first.hash);
  });

  test('a changed byte, option or tokenizer identity changes the key', async () => {
    const path = await writeDataset('key.jsonl', numbered(20));
    const base = await prepare(path);
    expect((await prepare(path, { seed: 7 })).hash).not.toBe(base.hash);
    expect((await prepare(path, { tokenizerIdentity: 'smollm2' })).hash).not.toBe(base.hash);
    expect((await prepare(path, { valCount: 3 })).hash).not.toBe(base.hash);
    const bytes = await readFile(path, 'utf8');
    await writeFile(path, bytes.replace('Answer 7', 'Answer 8'));
    expect((await prepare(path)).hash).not.toBe(base.hash);
  });

  test('leaves no temporary directories behind, after success or failure', async () => {
    await prepare(await writeDataset('tidy.jsonl', numbered(5)));
    await expect(prepare(await writeDataset('tidy-bad.jsonl', ['not an object', ...numbered(5)]))).rejects.toThrow(/invalid/);
    const entries = await readdir(join(storeRoot, 'datasets'));
    expect(entries.filter((entry) => entry.startsWith('.tmp-'))).toEqual([]);
    expect(entries).toHaveLength(1);
  });

  test('concurrent prepares of the same inputs agree', async () => {
    const path = await writeDataset('concurrent.jsonl', numbered(200));
    const reports = await Promise.all([prepare(path), prepare(path), prepare(path)]);
    expect(new Set(reports.map((report) => report.train_uri)).size).toBe(1);
    expect(new Set(reports.map((report) => report.train_rows)).size).toBe(1);
  });
});

describe('splits', () => {
  test('the default gives at least one validation row from two rows', async () => {
    const report = await prepare(await writeDataset('two.jsonl', numbered(2)));
    expect([report.train_rows, report.val_rows]).toEqual([1, 1]);
  });

  test('a fraction of 0 keeps every row for training; a count selects exactly that many', async () => {
    const path = await writeDataset('hundred.jsonl', numbered(100));
    const none = await prepare(path, { valFraction: 0 });
    expect([none.train_rows, none.val_rows]).toEqual([100, 0]);
    const counted = await prepare(path, { valCount: 7 });
    expect([counted.train_rows, counted.val_rows]).toEqual([93, 7]);
    const fraction = await prepare(path, { valFraction: 0.3 });
    expect(fraction.val_rows).toBeGreaterThan(15);
    expect(fraction.val_rows).toBeLessThan(45);
  });

  test('a separate validation file becomes the validation set, minus rows already in training', async () => {
    const train = await writeDataset('split/train.jsonl', numbered(10));
    const val = await writeDataset('split/val.jsonl', [{ instruction: 'Held out', output: 'yes' }, numbered(10)[3]]);
    const report = await prepare(train, { valPath: val });
    expect([report.train_rows, report.val_rows, report.duplicates_removed]).toEqual([10, 1, 1]);
    expect(report.errors).toEqual([expect.objectContaining({ file: 'val.jsonl', row: 2, kind: 'duplicate' })]);
    expect((await readLines(report.val_uri))[0]).toMatchObject({ source: { file: 'val.jsonl', row: 1 } });
  });

  test('a row repeated in another file, whose name is not ASCII, is still a duplicate: keys ignore the source', async () => {
    await writeDataset('sources/a.jsonl', numbered(3));
    await writeDataset('sources/données/ünïcode 😀.jsonl', [
      numbered(3)[1],
      { instruction: 'QUESTION   1', output: 'answer 1 ' },
      { instruction: 'New', output: 'row' },
    ]);
    const report = await prepare(join(workDirectory, 'sources'), { valFraction: 0 });
    expect([report.train_rows, report.duplicates_removed]).toEqual([4, 2]);
    expect(report.errors.map(({ file, row, kind }) => ({ file, row, kind }))).toEqual([
      { file: 'données/ünïcode 😀.jsonl', row: 1, kind: 'duplicate' },
      { file: 'données/ünïcode 😀.jsonl', row: 2, kind: 'near_duplicate' },
    ]);
  });

  test('giving two of fraction, count and file is refused', async () => {
    await expect(prepare(await writeDataset('both.jsonl', numbered(3)), { valFraction: 0.5, valCount: 1 })).rejects.toThrow(/at most one/);
  });
});

describe('policy failures', () => {
  test('above max_invalid_fraction the error carries the full report and is non-retryable', async () => {
    const error = await prepare(await writeDataset('bad.jsonl', [...numbered(10), { instruction: 'no output' }])).catch((caught: unknown) => caught);
    expect(isInvalidDatasetError(error)).toBe(true);
    if (!isInvalidDatasetError(error)) return;
    expect(error.nonRetryable).toBe(true);
    expect(error.details.report).toMatchObject({
      total_rows: 11,
      invalid_rows: 1,
      errors: [{ file: 'bad.jsonl', row: 11, field: 'output', kind: 'missing_field' }],
    });
  });
});

describe('streaming across chunk boundaries', () => {
  test('a large JSON array, its gzip and the same rows as JSONL prepare identically', async () => {
    // Strings full of the splitter's structural characters, so any chunk boundary falls somewhere awkward.
    const rows = Array.from({ length: 4_000 }, (_, index) => ({
      instruction: `Q${index} [nested, {braces}] "quoted" \\ back\\slash, commas, ]`,
      output: `A${index} ${'é∑ '.repeat(index % 40)}}`,
    }));
    const jsonl = await writeDataset('stream/rows.jsonl', rows);
    const json = join(workDirectory, 'stream/rows.json');
    await writeFile(json, JSON.stringify(rows, null, 2));
    const gzipped = join(workDirectory, 'stream/rows.json.gz');
    await writeFile(gzipped, gzipSync(await readFile(json)));
    const strip = async (uri: string) => (await readLines(uri)).map((row) => ({ ...row, source: (row.source as { row: number }).row }));
    const fromJsonl = await prepare(jsonl, { valCount: 50 });
    for (const path of [json, gzipped]) {
      const report = await prepare(path, { valCount: 50 });
      expect(report.valid_rows).toBe(rows.length);
      expect(await strip(report.train_uri)).toEqual(await strip(fromJsonl.train_uri));
      expect(await strip(report.val_uri)).toEqual(await strip(fromJsonl.val_uri));
    }
  });
});

describe('worker threads', () => {
  test('validating on workers gives byte-identical output to validating inline', async () => {
    // Enough rows for many batches, with duplicates and invalid rows spread across them.
    const rows = Array.from({ length: 30_000 }, (_, index) =>
      index % 997 === 0 ? { instruction: 'broken' } : { instruction: `Question ${index % 20_000}${' '.repeat(index % 3)}`, output: `Answer ${index % 20_000}` },
    );
    const path = await writeDataset('workers.jsonl', rows);
    const inline = await prepare(path, { workerThreads: 0, maxInvalidFraction: 0.1 });
    const threaded = await prepare(path, { workerThreads: 2, maxInvalidFraction: 0.1, storeRoot: `${storeRoot}-threaded` });
    expect(threaded.hash).toBe(inline.hash);
    expect(threaded.errors).toEqual(inline.errors);
    expect(await readFile(fileURLToPath(threaded.train_uri), 'utf8')).toBe(await readFile(fileURLToPath(inline.train_uri), 'utf8'));
    expect(await readFile(fileURLToPath(threaded.val_uri), 'utf8')).toBe(await readFile(fileURLToPath(inline.val_uri), 'utf8'));
    expect(inline.duplicates_removed).toBeGreaterThan(9_000);
  });

  test('a worker killed by its heap cap is replaced and its batches are validated on the main thread', async () => {
    // A row whose schema check reports 60,000 issues outgrows the worker's 32 MB heap.
    const pathological = { messages: Array.from({ length: 60_000 }, () => 1) };
    const chat = (index: number) => ({
      messages: [
        { role: 'user', content: `Question ${index}` },
        { role: 'assistant', content: `Answer ${index}` },
      ],
    });
    const rows = Array.from({ length: 20_000 }, (_, index) => (index % 5_000 === 7 ? pathological : chat(index)));
    const path = await writeDataset('worker-killer.jsonl', rows);
    const inline = await prepare(path, { workerThreads: 0 });
    const threaded = await prepare(path, { workerThreads: 1, storeRoot: `${storeRoot}-killer-threaded` });
    expect(threaded).toMatchObject({ hash: inline.hash, invalid_rows: 4, valid_rows: 19_996 });
    expect(threaded.errors).toEqual(inline.errors);
    expect(await readFile(fileURLToPath(threaded.train_uri), 'utf8')).toBe(await readFile(fileURLToPath(inline.train_uri), 'utf8'));
  }, 120_000);

  test('a role nested 20,000 levels deep is one rejected row, not a failed preparation', async () => {
    const path = join(workDirectory, 'deep-role.jsonl');
    const valid = {
      messages: [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello' },
      ],
    };
    await writeFile(path, `${JSON.stringify(valid)}\n{"messages":[{"role":${'['.repeat(20_000)}"user"${']'.repeat(20_000)},"content":"x"}]}\n`);
    const report = await prepare(path, { maxInvalidFraction: 0.5 });
    expect(report).toMatchObject({ valid_rows: 1, invalid_rows: 1 });
    expect(report.errors[0]).toMatchObject({ row: 2, field: 'messages[0].role', reason: expect.stringContaining('unknown role array') });
  });

  test('rows of megabytes (validated on the main thread, whose heap is not capped) among small ones', async () => {
    const huge = (index: number) => ({ instruction: `Huge ${index}`, output: `${'long answer\n'.repeat(200_000)}${index}` });
    const rows = Array.from({ length: 30_000 }, (_, index) =>
      index % 10_000 === 5 ? huge(index) : { instruction: `Question ${index}`, output: `Answer ${index}` },
    );
    const path = await writeDataset('huge-rows.jsonl', rows);
    const inline = await prepare(path, { workerThreads: 0 });
    const threaded = await prepare(path, { workerThreads: 1, storeRoot: `${storeRoot}-huge-threaded` });
    expect(threaded).toMatchObject({ hash: inline.hash, valid_rows: 30_000 });
    expect(await readFile(fileURLToPath(threaded.train_uri), 'utf8')).toBe(await readFile(fileURLToPath(inline.train_uri), 'utf8'));
  });
});

describe('a large input (32 MiB or more, validated on worker threads)', () => {
  test('gives the same result as validating inline, and a re-run is a cache hit that leaves nothing behind', async () => {
    const rows = Array.from({ length: 160_000 }, (_, index) => ({ instruction: `Question ${index} ${'pad '.repeat(40)}`, output: `Answer ${index}` }));
    const path = await writeDataset('large.jsonl', rows);
    expect((await stat(path)).size).toBeGreaterThan(32 << 20);
    const first = await prepare(path);
    expect(first).toMatchObject({ cached: false, valid_rows: rows.length });
    const second = await prepare(path);
    expect(second.cached).toBe(true);
    expect({ ...second, cached: false }).toEqual(first);
    expect((await readdir(join(storeRoot, 'datasets'))).filter((entry) => entry.startsWith('.tmp-'))).toEqual([]);
    // The same bytes validated inline, into another store: the same key and the same lines.
    const inline = await prepare(path, { workerThreads: 0, storeRoot: `${storeRoot}-inline` });
    expect(inline.hash).toBe(first.hash);
    expect(await readFile(fileURLToPath(inline.train_uri), 'utf8')).toBe(await readFile(fileURLToPath(first.train_uri), 'utf8'));
  }, 120_000);
});

describe('DigestSet', () => {
  test('tells new, exact and near keys apart across growth, in every shard', () => {
    const set = new DigestSet(16);
    // The high words spread over the whole 32-bit range, so every shard grows several times.
    const high = (key: number): number => Math.imul(key, 0x9e3779b1) >>> 0;
    for (let key = 1; key <= 20_000; key++) expect(set.add(high(key), key, key)).toBe(Membership.New);
    for (let key = 1; key <= 20_000; key++) {
      expect(set.add(high(key), key, key)).toBe(Membership.Exact);
      expect(set.add(high(key), key, key + 1)).toBe(Membership.Near);
    }
    expect(set.add(0, 0, 5)).toBe(Membership.New);
    expect(set.add(0, 0, 5)).toBe(Membership.Exact);
    expect(set.count).toBe(20_001);
  });
});

describe('SmallestDraws', () => {
  test('keeps the indexes of the smallest draws, ties to the earlier index', () => {
    const smallest = new SmallestDraws(3);
    for (const [index, draw] of [0.9, 0.1, 0.5, 0.1, 0.7, 0.05].entries()) smallest.offer(draw, index);
    expect([...smallest.selected()].sort()).toEqual([1, 3, 5]);
    const none = new SmallestDraws(0);
    none.offer(0.5, 0);
    expect(none.selected().size).toBe(0);
  });
});
