import { copyFile, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeFileAtomic } from '../runtime/atomic-write.ts';
import type { ArtifactStore, StoredObject } from './store.ts';

async function filesUnder(directory: string): Promise<string[]> {
  const entries = await readdir(directory, { recursive: true, withFileTypes: true }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return [];
    throw error;
  });
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath, entry.name));
}

/** The local or shared filesystem (NFS, a mounted volume): what tuneflow has always used. */
export class LocalArtifactStore implements ArtifactStore {
  readonly scheme = 'file';

  async putDirectory(directory: string, uri: string, last?: string): Promise<void> {
    const target = fileURLToPath(uri);
    const files = (await filesUnder(directory)).sort((a, b) => Number(a.endsWith(`/${last}`)) - Number(b.endsWith(`/${last}`)));
    for (const file of files) {
      const destination = join(target, relative(directory, file));
      await mkdir(dirname(destination), { recursive: true });
      await copyFile(file, destination);
    }
  }

  async putText(uri: string, text: string): Promise<void> {
    const path = fileURLToPath(uri);
    await mkdir(dirname(path), { recursive: true });
    await writeFileAtomic(path, text);
  }

  async getText(uri: string): Promise<string | null> {
    return readFile(fileURLToPath(uri), 'utf8').catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return null;
      throw error;
    });
  }

  async list(uri: string): Promise<StoredObject[]> {
    const files = (await filesUnder(fileURLToPath(uri))).sort();
    return Promise.all(files.map(async (file) => ({ uri: pathToFileURL(file).href, bytes: (await stat(file)).size })));
  }
}
