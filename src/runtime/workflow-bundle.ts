/**
 * tuneflow's workflow bundle, built once per version of its code and kept in the cache. Bundling the workflows
 * (webpack over workflows/ and the contract they import) costs 5-10 s of CPU, and every orchestration worker start
 * paid it: each `tuneflow up`, each CLI command that runs a stack, each e2e test file and fault trial. The code
 * cannot change under a running process, so a bundle keyed by what it is built from is the same bundle.
 */
import { bundleWorkflowCode } from '@temporalio/worker';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { cacheDirectory } from '../../scripts/python-environment.mjs';
import { workflowsPath } from '../workflows-path.ts';
import { writeFileAtomic } from './atomic-write.ts';

/** Bundles kept: older ones (other checkouts, other versions) are deleted when a new one is written. */
const bundlesKept = 8;

/** The tree the bundle is built from: `workflows/index.ts` under tsx, `dist/workflows/index.js` when built. */
const codeRoot = dirname(dirname(workflowsPath));
/** Everything the workflows can import from tuneflow's own code, and what pins the versions of the rest. */
const bundleInputs = ['workflows', 'src', 'activities', 'package.json', 'package-lock.json'];

function hashTree(hash: ReturnType<typeof createHash>, path: string): void {
  if (statSync(path).isDirectory()) {
    for (const entry of readdirSync(path).sort()) hashTree(hash, join(path, entry));
    return;
  }
  hash.update(path.slice(codeRoot.length));
  hash.update(readFileSync(path));
}

/** The key of the bundle this code would build: its sources, the lockfile, Node's and the bundler's versions. */
export function workflowBundleKey(): string {
  const hash = createHash('sha256');
  hash.update(process.version);
  hash.update(readFileSync(createRequire(import.meta.url).resolve('@temporalio/worker/package.json')));
  for (const input of bundleInputs) {
    const path = join(codeRoot, input);
    if (existsSync(path)) hashTree(hash, path);
  }
  return hash.digest('hex').slice(0, 24);
}

export const workflowBundlesDirectory = (): string => join(cacheDirectory(), 'workflow-bundles');

async function deleteOlderBundles(directory: string): Promise<void> {
  const bundles = await Promise.all(
    (await readdir(directory))
      .filter((name) => name.endsWith('.js'))
      .map(async (name) => ({ path: join(directory, name), modified: (await stat(join(directory, name))).mtimeMs })),
  );
  bundles.sort((a, b) => b.modified - a.modified);
  await Promise.all(bundles.slice(bundlesKept).map((bundle) => rm(bundle.path, { force: true })));
}

/**
 * The path of tuneflow's workflow bundle for this code, built now if the cache has none. Written whole or not at all
 * (a temporary file renamed), so processes that build it at the same time each publish a complete file.
 */
export async function tuneflowWorkflowBundle(): Promise<{ codePath: string }> {
  const directory = workflowBundlesDirectory();
  const codePath = join(directory, `${workflowBundleKey()}.js`);
  if (!existsSync(codePath)) {
    const { code } = await bundleWorkflowCode({ workflowsPath, logger: undefined });
    await mkdir(directory, { recursive: true });
    await writeFileAtomic(codePath, code);
    await deleteOlderBundles(directory);
  }
  return { codePath };
}
