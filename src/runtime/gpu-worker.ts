import { join } from 'node:path';
import { pythonActivitiesDirectory, readyEnvironment } from '../../scripts/python-environment.mjs';
import { type ManagedProcess, startProcess } from './processes.ts';

export interface GpuWorkerOptions {
  /** Without one, the worker connects as Temporal's environment configuration says (TEMPORAL_CONFIG_FILE, …). */
  address?: string;
  namespace?: string;
  logFile: string;
  echo?: boolean;
  environment?: Record<string, string>;
}

/** The Python worker's environment: offline, unbuffered, and glibc returning freed activation memory. */
export function gpuWorkerEnvironment(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PYTHONPATH: pythonActivitiesDirectory,
    PYTHONUNBUFFERED: '1',
    HF_HUB_OFFLINE: '1',
    TRANSFORMERS_OFFLINE: '1',
    UNSLOTH_DISABLE_STATISTICS: '1',
    // Without it glibc keeps freed activation buffers in the heap and a CPU run's RSS climbs every step (measured
    // in bench/cpu: 4.06 GiB and growing vs 2.04 GiB in use); the planner predicts memory in use. A value set in
    // the environment wins: the test runner trades that honesty for speed (scripts/test.mjs).
    MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? '65536',
    ...extra,
  };
}

/** Starts the Python activity worker (task queue tuneflow-gpu) and resolves once it polls. */
export function startGpuWorker(options: GpuWorkerOptions): Promise<ManagedProcess> {
  const args = ['-m', 'tuneflow_activities.worker'];
  if (options.address) args.push('--address', options.address);
  if (options.namespace) args.push('--namespace', options.namespace);
  return startProcess(readyEnvironment().python, args, {
    cwd: pythonActivitiesDirectory,
    logFile: options.logFile,
    echo: options.echo,
    readyPattern: /gpu-worker ready/,
    readyTimeoutMilliseconds: 180_000,
    env: gpuWorkerEnvironment(options.environment),
  });
}

export const gpuWorkerLogFile = (logs: string): string => join(logs, 'gpu-worker.log');
