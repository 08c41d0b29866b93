/**
 * The one way TypeScript writes to the artifact store whole or not at all: build under a temporary name in the same
 * directory, fsync what was built, rename it into place, fsync the directory that holds it (so the rename itself
 * survives a crash). Python's twin is `atomic_directory` in python-activities/tuneflow_activities/artifacts.py.
 */
import { open, readdir, rename, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** Flushes a file or a directory (its entries) to disk. */
export async function syncPath(path: string): Promise<void> {
  const handle = await open(path, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

async function syncTree(path: string): Promise<void> {
  if ((await stat(path)).isDirectory()) {
    for (const entry of await readdir(path)) await syncTree(join(path, entry));
  }
  await syncPath(path);
}

/**
 * Moves a finished file or directory from its temporary name to `target`: fsync (every file of a directory), rename,
 * fsync the parent. A directory target that already exists and is not empty makes the rename fail (EEXIST, ENOTEMPTY).
 */
export async function publish(temporary: string, target: string): Promise<void> {
  await syncTree(temporary);
  await rename(temporary, target);
  await syncPath(dirname(target));
}

/** Writes a file whole or not at all. */
export async function writeFileAtomic(path: string, content: string | Uint8Array): Promise<void> {
  const temporary = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const file = await open(temporary, 'w');
  try {
    await file.writeFile(content);
  } finally {
    await file.close();
  }
  await publish(temporary, path);
}
