import { NativeConnection } from '@temporalio/worker';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { type DevServer, startDevServer } from '../runtime/dev-server.ts';
import { gpuWorkerLogFile, startGpuWorker } from '../runtime/gpu-worker.ts';
import type { HomeLayout } from '../runtime/home.ts';
import type { ManagedProcess } from '../runtime/processes.ts';
import { createOrchestrationWorker } from '../worker.ts';

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

/**
 * Server + TypeScript worker + Python worker in one process tree (`tuneflow dev`, `tuneflow demo`). Stopping
 * goes in reverse: workers finish or hand back their tasks, then the server flushes its database.
 */
export async function startStack(layout: HomeLayout, ports: { port: number; uiPort: number }, log: (line: string) => void): Promise<Stack> {
  for (const port of [ports.port, ports.uiPort]) {
    if (!(await portIsFree(port))) throw new Error(`port ${port} is in use: is another tuneflow dev server running? (use --port/--ui-port)`);
  }
  log(`starting the Temporal dev server (database ${layout.temporalDatabase})`);
  const server = await startDevServer({
    databaseFile: layout.temporalDatabase,
    logFile: join(layout.logs, 'temporal.log'),
    port: ports.port,
    uiPort: ports.uiPort,
  });
  log(`Temporal Web UI: ${server.uiUrl}`);
  const connection = await NativeConnection.connect({ address: server.address });
  const worker = await createOrchestrationWorker({ connection });
  const running = worker.run();
  log('starting the Python worker (task queue tuneflow-gpu)');
  const gpuWorker = await startGpuWorker({ address: server.address, logFile: gpuWorkerLogFile(layout.logs) });
  log(`workers ready; logs in ${layout.logs}`);
  return {
    server,
    gpuWorker,
    stop: async () => {
      await gpuWorker.stop();
      worker.shutdown();
      await running;
      await connection.close();
      await server.stop();
    },
  };
}
