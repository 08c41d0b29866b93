/**
 * The registry on a real directory: versions with lineage, champion history, rollback, diff, and many writer
 * processes at once (each its own Node process, as separate workers or CLI invocations would be).
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  diffVersions,
  isModelVersionNotFoundError,
  isRegistryConflictError,
  isRegistryCorruptError,
  ModelRegistry,
  readEvents,
} from '../../src/registry/index.ts';
import { exampleVersion } from './example-version.ts';

const writer = fileURLToPath(new URL('./concurrent-writer.ts', import.meta.url));
const WRITERS = 12;

async function freshRegistry() {
  const root = await mkdtemp(join(tmpdir(), 'tuneflow-registry-'));
  return { root, registry: new ModelRegistry(root) };
}

/** Starts every writer at once (a shared start time two seconds ahead, after Node and tsx have loaded). */
async function runWriters(root: string, argumentsOf: (index: number) => string[]) {
  const startAt = String(Date.now() + 2_000);
  const outputs = await Promise.all(
    Array.from({ length: WRITERS }, (_, index) =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', writer, root, startAt, ...argumentsOf(index)], { encoding: 'utf8' }),
    ),
  );
  return outputs.map(({ stdout }) => JSON.parse(stdout.trim()));
}

describe('model registry', () => {
  it('records lineage, keeps the champion history, rolls back and diffs', async () => {
    const { registry } = await freshRegistry();
    const first = await registry.register(exampleVersion('people', { workflowId: 'run-1', valLoss: 1.5 }));
    const second = await registry.register(exampleVersion('people', { workflowId: 'run-2', valLoss: 1.2, datasetHash: 'dataset-b' }));
    expect([first.version, second.version]).toEqual([1, 2]);
    expect(await registry.champion('people')).toBeNull();

    await registry.promote('people', 1, { reason: 'first model' });
    await registry.promote('people', 2, { expectedChampion: 1, reason: 'beat 1' });
    expect((await registry.champion('people'))?.lineage.workflow_id).toBe('run-2');

    const rolledBack = await registry.rollback('people', { reason: 'bad answers in production' });
    expect(rolledBack).toMatchObject({ event: 'rolled_back', version: 1, previous: 2 });
    expect((await registry.champion('people'))?.version).toBe(1);
    const model = await registry.model('people');
    expect(model.history.map((change) => [change.event, change.version, change.previous])).toEqual([
      ['promoted', 1, null],
      ['promoted', 2, 1],
      ['rolled_back', 1, 2],
    ]);
    const noEarlier = await registry.rollback('people').catch((error: unknown) => error);
    expect(isModelVersionNotFoundError(noEarlier)).toBe(true);

    await registry.recordExports('people', 2, [{ format: 'q8_0', uri: 'file:///x/model-q8_0.gguf', bytes: 10, sha256: 'abc' }]);
    const diff = diffVersions(first, await registry.version('people', 2));
    expect(diff.changed.map((change) => change.field)).toEqual([
      'lineage.dataset_hash',
      'lineage.parent_checkpoint',
      'lineage.workflow_id',
      'adapter_uri',
      'merged_uri',
      'exports',
    ]);
    expect(diff.metrics).toEqual([{ metric: 'val_loss', a: 1.5, b: 1.2, delta: expect.closeTo(-0.3, 10) }]);
    expect(diff.comparable).toBe(true);
  });

  it('a stale compare-and-swap fails with RegistryConflictError and writes nothing', async () => {
    const { registry } = await freshRegistry();
    await registry.register(exampleVersion('people', { workflowId: 'run-1', valLoss: 1 }));
    await registry.register(exampleVersion('people', { workflowId: 'run-2', valLoss: 1 }));
    await registry.promote('people', 1, { expectedChampion: null });
    const events = (await readEvents(registry.logDirectory)).length;
    const stale = await registry.promote('people', 2, { expectedChampion: null }).catch((error: unknown) => error);
    expect(isRegistryConflictError(stale)).toBe(true);
    expect(await readEvents(registry.logDirectory)).toHaveLength(events);
  });

  it('a missing or torn event file is reported as corruption, never skipped', async () => {
    const { registry } = await freshRegistry();
    for (const run of ['run-1', 'run-2', 'run-3']) await registry.register(exampleVersion('people', { workflowId: run, valLoss: 1 }));
    await writeFile(join(registry.logDirectory, '000000000003.json'), '{"sequence": 3, "event": "registered"');
    const torn = await registry.models().catch((error: unknown) => error);
    expect(isRegistryCorruptError(torn)).toBe(true);
    await rm(join(registry.logDirectory, '000000000002.json'));
    const gap = await registry.models().catch((error: unknown) => error);
    expect(isRegistryCorruptError(gap) && gap.message).toMatch(/expected event 2, found 3/);
  });

  it(`${WRITERS} processes registering at once get distinct consecutive versions`, async () => {
    const { root, registry } = await freshRegistry();
    const outcomes = await runWriters(root, (index) => ['register', 'people', String(index)]);
    expect(outcomes.map((outcome) => outcome.version).sort((a, b) => a - b)).toEqual(Array.from({ length: WRITERS }, (_, index) => index + 1));
    const model = await registry.model('people');
    // Each process's version is the one the registry holds for its workflow id.
    for (const outcome of outcomes)
      expect(model.versions.find((version) => version.version === outcome.version)?.lineage.workflow_id).toBe(outcome.workflow_id);
  }, 120_000);

  it(`${WRITERS} processes promoting at once against the same champion: exactly one wins, the log stays valid`, async () => {
    const { root, registry } = await freshRegistry();
    for (let index = 0; index <= WRITERS; index++) await registry.register(exampleVersion('people', { workflowId: `run-${index}`, valLoss: index }));
    await registry.promote('people', 1);
    const outcomes = await runWriters(root, (index) => ['promote', 'people', String(index + 2), '1']);
    const winners = outcomes.filter((outcome) => outcome.outcome === 'promoted');
    expect(winners).toHaveLength(1);
    expect(outcomes.filter((outcome) => outcome.outcome === 'conflict')).toHaveLength(WRITERS - 1);
    const events = await readEvents(registry.logDirectory); // throws on a gap, a torn or a misnumbered file
    expect(events).toHaveLength(WRITERS + 1 + 1 + 1);
    expect((await registry.champion('people'))?.version).toBe(winners[0].version);
    expect((await readdir(registry.logDirectory)).filter((name) => name.startsWith('.tmp-'))).toEqual([]);
  }, 120_000);
});
