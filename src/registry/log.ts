import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidSpecError } from '../errors/index.ts';
import { describeIssues } from '../spec/load.ts';
import { RegistryCorruptError } from './registry-corrupt-error.ts';
import { type ProposedEvent, type RegistryEvent, registryEventSchema } from './schema.ts';

/**
 * The registry's append-only log: one file per event, named by its sequence number (000000000001.json, …).
 *
 * An append writes the event whole to a temporary file, fsyncs it, and hard-links it to the next sequence's name.
 * link(2) fails with EEXIST when another writer took that name first, so of any number of concurrent writers
 * exactly one gets each sequence number, and a reader never sees half an event. The loser reads the log again and
 * decides again (`decide` runs on the fresh events each time): an unconditional register simply takes the next
 * number, a compare-and-swap promotion finds its expectation broken and throws.
 */

const eventFile = /^(\d{12})\.json$/;
const fileName = (sequence: number) => `${String(sequence).padStart(12, '0')}.json`;

export async function readEvents(directory: string): Promise<RegistryEvent[]> {
  const names = await readdir(directory).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [] as string[];
    throw error;
  });
  const sequences = names
    .map((name) => eventFile.exec(name)?.[1])
    .filter((sequence): sequence is string => sequence !== undefined)
    .map(Number)
    .sort((a, b) => a - b);
  const events: RegistryEvent[] = [];
  for (const [index, sequence] of sequences.entries()) {
    const path = join(directory, fileName(sequence));
    // Sequence numbers are taken one after another by link(2); a gap means a file was removed by hand.
    if (sequence !== index + 1) throw new RegistryCorruptError(`${path}: expected event ${index + 1}, found ${sequence} (a missing log file)`);
    let value: unknown;
    try {
      value = JSON.parse(await readFile(path, 'utf8'));
    } catch (error) {
      throw new RegistryCorruptError(`${path}: not JSON (${(error as Error).message})`);
    }
    const parsed = registryEventSchema.safeParse(value);
    if (!parsed.success) throw new RegistryCorruptError(`${path}: ${parsed.error.message}`);
    if (parsed.data.sequence !== sequence) throw new RegistryCorruptError(`${path}: holds sequence ${parsed.data.sequence}`);
    events.push(parsed.data);
  }
  return events;
}

async function fsyncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Appends the event `decide` proposes from the current events; returns it with its sequence number and time. */
export async function appendEvent(directory: string, decide: (events: readonly RegistryEvent[]) => ProposedEvent): Promise<RegistryEvent> {
  await mkdir(directory, { recursive: true });
  for (;;) {
    const events = await readEvents(directory);
    const sequence = events.length + 1;
    const parsed = registryEventSchema.safeParse({ ...decide(events), sequence, at: new Date().toISOString() });
    // A malformed record is the caller's mistake: refused before it reaches the log, and no retry can fix it.
    if (!parsed.success) throw new InvalidSpecError(`invalid registry record: ${describeIssues(parsed.error.issues).join('; ')}`, { directory });
    const event = parsed.data;
    const temporary = join(directory, `.tmp-${process.pid}-${randomBytes(6).toString('hex')}`);
    const handle = await open(temporary, 'wx');
    try {
      await handle.writeFile(`${JSON.stringify(event, null, 2)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(temporary, join(directory, fileName(sequence)));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') continue; // another writer took this number
      throw error;
    } finally {
      await unlink(temporary);
    }
    await fsyncPath(directory);
    return event;
  }
}
