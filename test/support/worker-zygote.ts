/**
 * A worker zygote for the tests: every Python worker they start with startGpuWorker is forked from it, ready, rather
 * than importing torch, transformers and peft afresh (~5 s of CPU each).
 */
import { join } from 'node:path';
import { startWorkerZygote, workerZygoteVariable } from '../../src/runtime/gpu-worker.ts';

/** Starts a zygote with its socket and log in `directory` and points this process's worker starts at it; resolves to its stop. */
export async function startTestWorkerZygote(directory: string): Promise<() => Promise<void>> {
  const socket = join(directory, 'worker-zygote.sock');
  const zygote = await startWorkerZygote({ socket, logFile: join(directory, 'worker-zygote.log') });
  process.env[workerZygoteVariable] = socket;
  return async () => {
    delete process.env[workerZygoteVariable];
    await zygote.stop();
  };
}
