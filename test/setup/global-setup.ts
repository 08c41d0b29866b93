/**
 * One Temporal dev server for the whole test run, and one workflow bundle (the cached one): every test file connects
 * to the same server and builds workers from the same bundle. The server keeps its state in memory: no test restarts it (the
 * server-restart scenarios start their own), and a SQLite file cost the workflow tests a third of their CPU time.
 */
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';
import { startDevServer } from '../../src/runtime/dev-server.ts';
import { tuneflowWorkflowBundle } from '../../src/runtime/workflow-bundle.ts';
import { buildSeaweedfs } from '../../scripts/seaweedfs.mjs';
import { type S3Credentials, startS3Server } from '../support/s3-server.ts';
import { startTestWorkerZygote } from '../support/worker-zygote.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    /** The dev server's Web UI, for the browser test. */
    temporalUiUrl: string;
    workflowBundlePath: string;
    testRoot: string;
    /** The shared SeaweedFS S3 server's endpoint and credentials (test/support/s3-server.ts). */
    s3: S3Credentials;
  }
}

/**
 * The kernel's ephemeral port range (Linux): where it picks the local port of every outgoing connection, and of a
 * listen on port 0.
 */
function ephemeralPortRange(): [number, number] | null {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return low && high ? [low, high] : null;
  } catch {
    return null;
  }
}

function listensOn(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(null));
    server.listen(port, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : null));
    });
  });
}

/**
 * A port free now, for a server started next. Chosen below the kernel's ephemeral range where there is room: a port
 * the kernel handed out for a listen on port 0 can be taken, between this check and the server's bind, by any
 * outgoing connection (a fault trial's dev server once failed on its UI port so, in a run full of gRPC connections).
 */
export async function freePort(): Promise<number> {
  const range = ephemeralPortRange();
  const lowest = 10_000;
  if (range && range[0] - lowest >= 1_000) {
    for (let attempt = 0; attempt < 50; attempt += 1) {
      const port = await listensOn(lowest + Math.floor(Math.random() * (range[0] - lowest)));
      if (port !== null) return port;
    }
  }
  const port = await listensOn(0);
  if (port === null) throw new Error('no free port');
  return port;
}

export default async function setup(project: TestProject) {
  const root = await mkdtemp(join(tmpdir(), 'tuneflow-test-'));
  const server = await startDevServer({
    logFile: join(root, 'temporal.log'),
    port: await freePort(),
    uiPort: await freePort(),
  });
  // The S3 server of the scale-out tests: built once into the cache (minutes, first time only), started here.
  buildSeaweedfs();
  const s3 = await startS3Server(root);
  // Every Python worker the test files start is forked from it (the variable it sets reaches the forked files).
  const stopWorkerZygote = await startTestWorkerZygote(root);
  const { codePath: workflowBundlePath } = await tuneflowWorkflowBundle();
  project.provide('temporalAddress', server.address);
  project.provide('temporalUiUrl', server.uiUrl);
  project.provide('workflowBundlePath', workflowBundlePath);
  project.provide('testRoot', root);
  project.provide('s3', { endpoint: s3.endpoint, accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey, region: s3.region });
  return async () => {
    await stopWorkerZygote();
    await s3.stop();
    await server.stop();
    // TUNEFLOW_KEEP_TEST_ROOT=1 keeps the logs, databases and artifacts of every test for a post-mortem.
    if (process.env.TUNEFLOW_KEEP_TEST_ROOT === '1') console.log(`test root kept: ${root}`);
    else await rm(root, { recursive: true, force: true });
  };
}
