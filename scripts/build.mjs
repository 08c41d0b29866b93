#!/usr/bin/env node
// Builds the package into dist/: tsc (JavaScript and declarations, incremental, so a build with nothing changed
// takes a second or two), then what tsc does not carry. Plain `node` and other bundlers import dist/; tsx is
// only for development.
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { repositoryRoot } from './python-environment.mjs';

const dist = join(repositoryRoot, 'dist');
const stamp = join(dist, '.built');

/** The newest modification time among the files the build reads. */
function newestSource() {
  const newest = (path) => {
    const stats = statSync(path);
    if (!stats.isDirectory()) return stats.mtimeMs;
    return Math.max(0, ...readdirSync(path).map((name) => newest(join(path, name))));
  };
  const inputs = ['src', 'workflows', 'activities', 'scripts', 'package.json', 'tsconfig.json', 'tsconfig.build.json'];
  return Math.max(...inputs.map((input) => newest(join(repositoryRoot, input))));
}

if (existsSync(stamp) && statSync(stamp).mtimeMs >= newestSource()) process.exit(0);

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
execFileSync(process.execPath, [tsc, '-p', join(repositoryRoot, 'tsconfig.build.json')], { stdio: 'inherit', cwd: repositoryRoot });

// The line encoder's WebAssembly, read beside its module at run time.
const wasm = 'src/data/assembly/line-encoder.wasm';
mkdirSync(dirname(join(dist, wasm)), { recursive: true });
copyFileSync(join(repositoryRoot, wasm), join(dist, wasm));

// The Python worker's sources and environment are the repository's, not dist's: the compiled copy of this module
// would locate them under dist/. It re-exports the one at the repository root instead.
writeFileSync(
  join(dist, 'scripts', 'python-environment.mjs'),
  "// Written by scripts/build.mjs: the Python environment is located from the repository root, not from dist/.\nexport * from '../../scripts/python-environment.mjs';\n",
);

writeFileSync(stamp, `${new Date().toISOString()}\n`);
