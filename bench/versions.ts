/** What a benchmark result records about the code and software it measured: commit, Node, Temporal, Python packages. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readyEnvironment, repositoryRoot } from '../scripts/python-environment.mjs';

export function versions(): Record<string, string> {
  const environment = readyEnvironment();
  const python = (code: string) => execFileSync(environment.python, ['-c', code], { encoding: 'utf8' }).trim();
  const packageVersion = (name: string) =>
    (JSON.parse(readFileSync(join(repositoryRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  return {
    tuneflow_commit: execFileSync('git', ['rev-parse', 'HEAD'], { cwd: repositoryRoot, encoding: 'utf8' }).trim(),
    tuneflow_tree_dirty: String(execFileSync('git', ['status', '--porcelain'], { cwd: repositoryRoot, encoding: 'utf8' }).trim() !== ''),
    node: process.version,
    temporalio_typescript: packageVersion('@temporalio/worker'),
    temporal_cli: execFileSync(environment.temporal, ['--version'], { encoding: 'utf8' }).trim(),
    python: python('import sys; print(sys.version.split()[0])'),
    python_packages: python('import importlib.metadata as m; print(", ".join(f"{p} {m.version(p)}" for p in ("temporalio", "torch", "transformers", "peft")))'),
  };
}
