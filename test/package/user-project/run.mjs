// A user's program, outside the package, run by plain `node` (no tsx): it bundles its own workflow file, runs it
// on a worker of its own beside tuneflow's orchestration worker (which bundles the built package's workflows), and
// prints the workflow's result as JSON. Arguments: the Temporal address, the dataset, the artifact root URI.
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { fileURLToPath } from 'node:url';
import { parseSpec } from 'tuneflow';
import { createOrchestrationWorker } from 'tuneflow/worker';

const [address, dataset, artifactRootUri] = process.argv.slice(2);
const { code } = await bundleWorkflowCode({ workflowsPath: fileURLToPath(new URL('./workflows.mjs', import.meta.url)), logger: undefined });
const connection = await NativeConnection.connect({ address });
const tuneflowWorker = await createOrchestrationWorker({ connection });
const userWorker = await Worker.create({ connection, taskQueue: 'user-project', workflowBundle: { code } });
const client = new Client({ connection: await Connection.connect({ address }) });
const spec = parseSpec({ model: { source: 'tiny-random-llama' }, dataset: { path: dataset, val_count: 32 } }, '/');
const run = client.workflow.execute('prepareOnly', { taskQueue: 'user-project', workflowId: `user-project-${Date.now()}`, args: [spec, artifactRootUri] });
const result = await tuneflowWorker.runUntil(userWorker.runUntil(run));
console.log(JSON.stringify(result));
await connection.close();
