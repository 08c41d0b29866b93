/**
 * One Temporal dev server for the whole test run, and one workflow bundle (the cached one): every test file connects
 * to the same server and builds workers from the same bundle. The server keeps its state in memory: no test restarts it (the
 * server-restart scenarios start their own), and a SQLite file cost the workflow tests a third of their CPU time.
 */
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

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
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
