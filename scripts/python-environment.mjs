// Where tuneflow's Python environment lives. Plain JavaScript so that `npm run setup` can use it before any
// npm dependency is installed; the TypeScript side imports the same functions.
//
// The environment is heavy (torch alone is several GB), so it lives outside the clone, in a cache keyed by the
// hash of the lockfiles and the Python version: a fresh clone (CI) reuses it, a changed lock builds a new one.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repositoryRoot = dirname(dirname(fileURLToPath(import.meta.url)));
export const pythonActivitiesDirectory = join(repositoryRoot, 'python-activities');
export const lockFiles = ['requirements.lock', 'model-packages.txt'].map((name) => join(pythonActivitiesDirectory, name));

/** The pinned uv used to build the environment (uv is itself installed from PyPI into a bootstrap venv). */
export const uvVersion = '0.13.8';

export function cacheDirectory() {
  return process.env.TUNEFLOW_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'tuneflow');
}

export function environmentKey(pythonVersion) {
  const hash = createHash('sha256');
  hash.update(pythonVersion);
  for (const file of lockFiles) hash.update(readFileSync(file));
  return hash.digest('hex').slice(0, 16);
}

/** The environment's directory; TUNEFLOW_PYTHON_ENV points at an existing one instead (deployments). */
export function pythonEnvironmentDirectory(pythonVersion) {
  return process.env.TUNEFLOW_PYTHON_ENV ?? join(cacheDirectory(), `python-${environmentKey(pythonVersion)}`);
}

/** Written last by setup: its presence means the environment is complete. */
export const readyMarker = '.tuneflow-ready.json';

/** The Python that builds the environment: python3 on PATH, or TUNEFLOW_BASE_PYTHON. */
export const basePython = () => process.env.TUNEFLOW_BASE_PYTHON ?? 'python3';

export function basePythonVersion() {
  return execFileSync(basePython(), ['-c', 'import sys; print(sys.version)'], { encoding: 'utf8' }).trim();
}

export function environmentPaths(directory) {
  return {
    directory,
    python: join(directory, 'bin', 'python'),
    temporal: join(directory, 'bin', 'temporal'),
  };
}

/** The ready environment for this checkout's lockfiles, or an error that says how to build it. */
export function readyEnvironment() {
  const directory = pythonEnvironmentDirectory(basePythonVersion());
  if (!existsSync(join(directory, readyMarker))) {
    throw new Error(`tuneflow's Python environment is not set up (${directory}): run \`npm run setup\``);
  }
  return environmentPaths(directory);
}
