/**
 * The TypeScript worker as a process of its own, so the fault-injection harness can SIGKILL it and start it again.
 * Usage: ts-worker.ts TEMPORAL_ADDRESS WORKFLOW_BUNDLE_PATH. Prints "ts-worker ready" once it polls.
 */
import { NativeConnection } from '@temporalio/worker';
import { createOrchestrationWorker } from '../../src/worker.ts';

const [address, workflowBundlePath] = process.argv.slice(2);
if (address === undefined || workflowBundlePath === undefined) throw new Error('usage: ts-worker.ts TEMPORAL_ADDRESS WORKFLOW_BUNDLE_PATH');

const connection = await NativeConnection.connect({ address });
const worker = await createOrchestrationWorker({ connection, workflowBundle: { codePath: workflowBundlePath } });
// The SDK's runtime shuts the worker down on SIGTERM/SIGINT, so run() resolves and the process exits cleanly.
const running = worker.run();
console.log(`ts-worker ready at ${address}`);
await running;
await connection.close();
