import { NativeConnection, type Worker } from '@temporalio/worker';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { type DevServer, startDevServer } from '../runtime/dev-server.ts';
import { gpuWorkerLogFile, startGpuWorker } from '../runtime/gpu-worker.ts';
import type { HomeLayout } from '../runtime/home.ts';
import type { ManagedProcess } from '../runtime/processes.ts';
import { createOrchestrationWorker } from '../worker.ts';
import { CommandError } from './command-error.ts';
import { ExitCode } from './exit-code.ts';

export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, host, () => server.close(() => resolve(true)));
  });
}

export interface Stack {
  server: DevServer;
  gpuWorker: ManagedProcess;
  stop(): Promise<void>;
}

/** The TypeScript worker running in this process, stoppable once whatever state the SDK left it in. */
export interface RunningWorker {
  /** Settles when the worker stops: after stop(), or on its own after a fatal error (it then rejects). */
  finished: Promise<void>;
  stop(): Promise<void>;
}

export async function runOrchestrationWorker(connection: NativeConnection, namespace?: string): Promise<RunningWorker> {
  const worker: Worker = await createOrchestrationWorker({ connection, namespace });
  const running = worker.run();
  return {
    finished: running,
    stop: async () => {
      // shutdown() throws unless the worker is RUNNING (it may have stopped on a fatal error already).
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await running;
    },
  };
}

/**
 * Server + TypeScript worker + Python worker in one process tree (`tuneflow dev`, `tuneflow demo`). Stopping
 * goes in reverse: workers finish or hand back their tasks, then the server flushes its database. Each part is
 * stopped even when an earlier one failed to stop, so no port stays taken.
 */
export async function startStack(layout: HomeLayout, ports: { port: number; uiPort: number }, log: (line: string) => void): Promise<Stack> {
  for (const port of [ports.port, ports.uiPort]) {
    if (!(await portIsFree(port))) {
      throw new CommandError(`port ${port} is in use`, ExitCode.InvalidInput, 'is another `tuneflow dev` running? choose others with --port/--ui-port');
    }
  }
  const started: (() => Promise<void>)[] = [];
  const stop = async () => {
    const failures: unknown[] = [];
    for (const stopPart of started.reverse()) await stopPart().catch((error: unknown) => failures.push(error));
    if (failures.length > 0) throw new AggregateError(failures, 'some parts of the stack did not stop cleanly');
  };
  try {
    log(`starting the Temporal dev server (database ${layout.temporalDatabase})`);
    const server = await startDevServer({
      databaseFile: layout.temporalDatabase,
      logFile: join(layout.logs, 'temporal.log'),
      port: ports.port,
      uiPort: ports.uiPort,
    });
    started.push(() => server.stop());
    log(`Temporal Web UI: ${server.uiUrl}`);
    const connection = await NativeConnection.connect({ address: server.address });
    started.push(() => connection.close());
    const worker = await runOrchestrationWorker(connection);
    started.push(() => worker.stop());
    log('starting the Python worker (task queue tuneflow-gpu)');
    const gpuWorker = await startGpuWorker({ address: server.address, logFile: gpuWorkerLogFile(layout.logs) });
    started.push(() => gpuWorker.stop());
    log(`workers ready; logs in ${layout.logs}`);
    return { server, gpuWorker, stop };
  } catch (error) {
    await stop().catch(() => undefined);
    throw error;
  }
}
