/**
 * One writer process for registry.test.ts: waits until a shared start time, then registers or promotes once, and
 * prints the outcome as one JSON line (the registry's own typed error names a lost compare-and-swap).
 * argv: artifact root, start time (ms since epoch), then `register NAME INDEX` or `promote NAME VERSION EXPECTED`.
 */
import { isRegistryConflictError, ModelRegistry } from '../../src/registry/index.ts';
import { exampleVersion } from './example-version.ts';

const [root, startAt, action, name, first, second] = process.argv.slice(2) as [string, string, string, string, string, string?];
const registry = new ModelRegistry(root);
await new Promise((resolve) => setTimeout(resolve, Math.max(0, Number(startAt) - Date.now())));
try {
  if (action === 'register') {
    const model = await registry.register(exampleVersion(name, { workflowId: `writer-${first}`, valLoss: Number(first) }));
    process.stdout.write(`${JSON.stringify({ outcome: 'registered', version: model.version, workflow_id: model.lineage.workflow_id })}\n`);
  } else {
    const change = await registry.promote(name, Number(first), { expectedChampion: Number(second), reason: `writer ${process.pid}` });
    process.stdout.write(`${JSON.stringify({ outcome: 'promoted', version: change.version, sequence: change.sequence })}\n`);
  }
} catch (error) {
  if (!isRegistryConflictError(error)) throw error;
  process.stdout.write(`${JSON.stringify({ outcome: 'conflict', message: error.message })}\n`);
}
