import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { afterAll, describe, expect, test } from 'vitest';
import { PrepareExitCode, registerPrepareCommand, runPrepareCommand, type CommandOutput } from '../../src/cli/commands/prepare.ts';

const workDirectory = await mkdtemp(join(tmpdir(), 'tuneflow-cli-'));
afterAll(() => rm(workDirectory, { recursive: true, force: true }));
const fixture = (name: string) => fileURLToPath(new URL(`../fixtures/datasets/${name}`, import.meta.url));

async function run(...args: string[]) {
  let stdout = '';
  let stderr = '';
  const output: CommandOutput = { stdout: (text) => (stdout += text), stderr: (text) => (stderr += text), exit: () => undefined };
  const exitCode = await runPrepareCommand([...args, '--out', join(workDirectory, 'store')], output);
  return { exitCode, stdout, stderr };
}

describe('tuneflow prepare', () => {
  test('prints the summary and the rejected rows, exit 0', async () => {
    const { exitCode, stdout } = await run(fixture('malformed-json.jsonl'), '--max-invalid-fraction', '1');
    expect(exitCode).toBe(PrepareExitCode.Prepared);
    expect(stdout).toContain('rows: 5 total, 3 valid, 2 invalid, 0 duplicates removed');
    expect(stdout).toContain('malformed-json.jsonl row 2: malformed JSON');
    expect(stdout).toMatch(/train: file:\/\//);
  });

  test('--json prints the whole report with every error', async () => {
    const { exitCode, stdout } = await run(fixture('near-duplicates.jsonl'), '--json', '--val-count', '1', '--seed', '3');
    expect(exitCode).toBe(PrepareExitCode.Prepared);
    const report = JSON.parse(stdout) as Record<string, unknown>;
    expect(report).toMatchObject({
      format: 'instruction',
      total_rows: 5,
      valid_rows: 2,
      invalid_rows: 0,
      duplicates_removed: 3,
      train_rows: 1,
      val_rows: 1,
      cached: false,
    });
    for (const field of ['hash', 'train_uri', 'val_uri', 'report_uri']) expect(typeof report[field]).toBe('string');
    expect(report.errors).toHaveLength(3);
  });

  test('exit 1 above the invalid threshold, with the report', async () => {
    const { exitCode, stdout, stderr } = await run(fixture('over-threshold.jsonl'), '--json');
    expect(exitCode).toBe(PrepareExitCode.InvalidDataset);
    expect(stderr).toMatch(/above max_invalid_fraction 0.01/);
    expect(JSON.parse(stdout)).toMatchObject({ invalid_rows: 2, errors: [{ row: 99 }, { row: 100 }] });
  });

  test('exit 1 for mixed formats, naming the first row of the minority format', async () => {
    const { exitCode, stderr } = await run(fixture('mixed-formats.jsonl'));
    expect(exitCode).toBe(PrepareExitCode.InvalidDataset);
    expect(stderr).toMatch(/mixed-formats\.jsonl row 4 is the first chat row/);
  });

  test('exit 2 for unreadable input and for unusable options', async () => {
    expect((await run(join(workDirectory, 'missing.jsonl'))).exitCode).toBe(PrepareExitCode.Unusable);
    expect((await run(fixture('corrupt.jsonl.gz'))).exitCode).toBe(PrepareExitCode.Unusable);
    expect((await run(fixture('bom.jsonl'), '--val-fraction', '1.5')).exitCode).toBe(PrepareExitCode.Unusable);
    expect((await run(fixture('bom.jsonl'), '--val-fraction', '0.5', '--val-count', '1')).exitCode).toBe(PrepareExitCode.Unusable);
    expect((await run(fixture('bom.jsonl'), '--format', 'csv')).exitCode).toBe(PrepareExitCode.Unusable);
  });

  test('--val-file and --format pass through', async () => {
    const val = join(workDirectory, 'val.jsonl');
    await writeFile(val, '{"text": "held out"}\n');
    const { exitCode, stdout } = await run(fixture('text.jsonl'), '--val-file', val, '--format', 'text', '--json', '--max-invalid-fraction', '1');
    expect(exitCode).toBe(PrepareExitCode.Prepared);
    expect(JSON.parse(stdout)).toMatchObject({ format: 'text', train_rows: 2, val_rows: 1 });
  });

  test('registers on a program as the prepare subcommand', () => {
    const program = new Command('tuneflow');
    registerPrepareCommand(program);
    expect(program.commands.map((command) => command.name())).toEqual(['prepare']);
  });
});
