#!/usr/bin/env node
// The S3 server the scale-out tests run against: SeaweedFS's `weed`, built from its Go module with this machine's Go
// toolchain (nothing prebuilt can be downloaded here), once, into the tuneflow cache beside the Python environment.
// Tests need it; `npm run demo` does not. Idempotent: a finished build is a binary at its final path (renamed into
// place last), so a second run returns at once. Run directly (`node scripts/seaweedfs.mjs`) it prints the binary's path.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheDirectory } from './python-environment.mjs';

/** The version the Go module proxy serves here (a pseudo-version: SeaweedFS's tags are not Go-module versions). */
export const seaweedfsVersion = 'v0.0.0-20261109003541-7506e5f91cd6';
const seaweedfsModule = 'github.com/seaweedfs/seaweedfs';

export const seaweedfsDirectory = () => join(cacheDirectory(), `seaweedfs-${seaweedfsVersion}`);
export const seaweedfsBinary = () => process.env.TUNEFLOW_WEED ?? join(seaweedfsDirectory(), 'weed');

const goBinary = () => process.env.TUNEFLOW_GO ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : 'go');

/** Builds `weed` unless it is already there; returns its path. */
export function buildSeaweedfs({ log = (message) => console.error(`[seaweedfs] ${message}`) } = {}) {
  const binary = seaweedfsBinary();
  if (existsSync(binary)) return binary;
  const directory = seaweedfsDirectory();
  const go = join(cacheDirectory(), 'go');
  // The module cache, build cache and GOPATH live in the tuneflow cache too, so a rebuild reuses downloads and
  // nothing lands in the user's own Go directories.
  const environment = {
    ...process.env,
    GOPATH: join(go, 'path'),
    GOMODCACHE: join(go, 'mod'),
    GOCACHE: join(go, 'build'),
    GOFLAGS: '-mod=mod',
    CGO_ENABLED: '0',
    GOTOOLCHAIN: 'local',
  };
  log(`building SeaweedFS ${seaweedfsVersion} with ${goBinary()} (first time only; several minutes on two cores)`);
  mkdirSync(directory, { recursive: true });
  // A throwaway module that requires SeaweedFS: `go install module@version` refuses modules with replace directives.
  const workspace = join(directory, `build-${process.pid}`);
  rmSync(workspace, { recursive: true, force: true });
  mkdirSync(workspace, { recursive: true });
  writeFileSync(join(workspace, 'go.mod'), 'module tuneflow.local/seaweedfs\n\ngo 1.24\n');
  const run = (args) => execFileSync(goBinary(), args, { cwd: workspace, env: environment, stdio: 'inherit' });
  try {
    run(['get', `${seaweedfsModule}@${seaweedfsVersion}`]);
    run(['build', '-trimpath', '-ldflags=-s -w', '-o', join(workspace, 'weed'), `${seaweedfsModule}/weed`]);
    renameSync(join(workspace, 'weed'), binary);
  } finally {
    rmSync(workspace, { recursive: true, force: true });
  }
  return binary;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(buildSeaweedfs());
