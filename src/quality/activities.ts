/**
 * The quality bookkeeping activity (task queue tuneflow): the run's suite scores and gate verdict go into its
 * manifest (run.json), which the checkpoint stage wrote before the evaluation ran.
 */
import { artifactStoreFor } from '../artifacts/index.ts';
import { checkPayload } from '../contract/check.ts';
import { typedFailures } from '../errors/typed-failures.ts';
import { RunLayout } from '../runtime/layout.ts';
import { type RunQuality, runQualitySchema } from './run-quality.ts';

export async function recordRunQuality(request: { run_uri: string; quality: RunQuality }): Promise<void> {
  return typedFailures(async () => {
    const quality = checkPayload(runQualitySchema, request.quality, 'the recordRunQuality request');
    const layout = RunLayout.at(request.run_uri);
    const store = artifactStoreFor(request.run_uri);
    const text = await store.getText(layout.manifest);
    const manifest = text === null ? {} : (JSON.parse(text) as Record<string, unknown>);
    await store.putText(layout.manifest, `${JSON.stringify({ ...manifest, quality }, null, 2)}\n`);
  });
}
