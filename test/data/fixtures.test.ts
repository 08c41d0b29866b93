import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { prepareDataset, type PreparedDatasetReport, type PrepareDatasetOptions, type RowError } from '../../src/data/index.ts';
import { isDatasetNotFoundError, isInvalidDatasetError } from '../../src/errors/index.ts';

const fixturesDirectory = fileURLToPath(new URL('../fixtures/datasets/', import.meta.url));

interface ExpectedError {
  file?: string;
  row: number;
  kind: string;
  field?: string;
}
interface Fixture {
  path: string;
  why: string;
  options?: Partial<PrepareDatasetOptions>;
  expect: {
    outcome: 'accepted' | 'invalid_dataset' | 'dataset_not_found';
    format?: string;
    valid_rows?: number;
    duplicates_removed?: number;
    skipped_files?: string[];
    mixed_format_row?: { file: string; row: number; format: string };
    errors?: ExpectedError[];
  };
}

const manifest = JSON.parse(await readFile(join(fixturesDirectory, 'manifest.json'), 'utf8')) as { fixtures: Fixture[] };
const storeRoot = await mkdtemp(join(tmpdir(), 'tuneflow-fixtures-'));
afterAll(() => rm(storeRoot, { recursive: true, force: true }));

/** Compares only what the manifest pins down: the file defaults to the fixture's own, the field when given. */
function comparable(errors: RowError[], fixture: Fixture): ExpectedError[] {
  const expectedErrors = fixture.expect.errors ?? [];
  return errors.map((error, index) => {
    const expected = expectedErrors[index];
    const { file, row, kind, field } = error;
    const shown: ExpectedError = { row, kind };
    if (expected?.file !== undefined || file !== fixture.path) shown.file = file;
    if (expected?.field !== undefined) shown.field = field ?? undefined;
    return shown;
  });
}

async function settle(fixture: Fixture) {
  try {
    return {
      outcome: 'accepted' as const,
      report: await prepareDataset({
        datasetPath: join(fixturesDirectory, fixture.path),
        format: 'auto',
        seed: 42,
        maxInvalidFraction: 1,
        storeRoot,
        ...fixture.options,
      }),
    };
  } catch (error) {
    if (isInvalidDatasetError(error)) return { outcome: 'invalid_dataset' as const, error };
    if (isDatasetNotFoundError(error)) return { outcome: 'dataset_not_found' as const, error };
    throw error;
  }
}

describe('dataset fixture corpus', () => {
  test('has at least 30 fixtures', () => {
    expect(manifest.fixtures.length).toBeGreaterThanOrEqual(30);
  });

  test.each(manifest.fixtures.map((fixture) => [fixture.path, fixture] as const))('%s', async (_path, fixture) => {
    const settled = await settle(fixture);
    expect(settled.outcome, fixture.why).toBe(fixture.expect.outcome);
    if (settled.outcome === 'dataset_not_found') return;
    const report = settled.outcome === 'accepted' ? settled.report : (settled.error.details.report as PreparedDatasetReport);
    expect(comparable(report.errors, fixture), fixture.why).toEqual(fixture.expect.errors ?? []);
    expect(report.total_rows).toBe(report.valid_rows + report.invalid_rows + report.duplicates_removed);
    expect(report.errors.length).toBe(report.invalid_rows + report.duplicates_removed);
    if (fixture.expect.format !== undefined) expect(report.format).toBe(fixture.expect.format);
    if (fixture.expect.duplicates_removed !== undefined) expect(report.duplicates_removed).toBe(fixture.expect.duplicates_removed);
    if (fixture.expect.skipped_files !== undefined) expect(report.skipped_files).toEqual(fixture.expect.skipped_files);
    if (fixture.expect.mixed_format_row !== undefined && settled.outcome === 'invalid_dataset') {
      expect(settled.error.details.first_minority_row).toEqual(fixture.expect.mixed_format_row);
      expect(settled.error.message).toContain(`row ${fixture.expect.mixed_format_row.row}`);
    }
    if (settled.outcome === 'accepted') {
      expect(report.valid_rows).toBe(fixture.expect.valid_rows);
      expect(report.train_rows + report.val_rows).toBe(report.valid_rows);
      const trained = (await readFile(fileURLToPath(report.train_uri), 'utf8')) + (await readFile(fileURLToPath(report.val_uri), 'utf8'));
      expect(trained.split('\n').filter(Boolean)).toHaveLength(report.valid_rows);
    }
  });
});
