/**
 * Runs the preference pipeline: SFT (sft.yaml), then DPO (spec.yaml) on the SFT model, in one workflow, and prints
 * the held-out pairs' reward accuracy and margin of the SFT model (base) and the DPO-tuned one.
 *
 *   npx tsx examples/preference/client.ts [spec.yaml] [sft.yaml]
 */
import type { Client } from '@temporalio/client';
import { pathToFileURL } from 'node:url';
import { connectClient, homeLayout, loadSpec, type RunSpec } from 'tuneflow';
import { preferenceTaskQueue, preferenceTune, type PreferenceTuneResult } from './workflows.ts';

const here = (name: string) => new URL(name, import.meta.url).pathname;

export function runPreferenceTune(client: Client, dpo: RunSpec, sft: RunSpec, workflowId: string): Promise<PreferenceTuneResult> {
  return client.workflow.execute(preferenceTune, {
    taskQueue: preferenceTaskQueue,
    workflowId,
    args: [{ sft, dpo, artifact_root_uri: homeLayout().artifactRootUri }],
  });
}

async function main([dpoPath = here('spec.yaml'), sftPath = here('sft.yaml')]: string[]) {
  const client = await connectClient();
  const workflowId = `preference-tune-${Date.now()}`;
  console.log(`started ${workflowId}: SFT, then DPO on the SFT model`);
  const result = await runPreferenceTune(client, loadSpec(dpoPath), loadSpec(sftPath), workflowId);
  console.log(JSON.stringify({ sft: result.sft.run_uri, dpo: result.dpo.run_uri, preference: result.dpo.evaluation?.preference ?? null }, null, 2));
  await client.connection.close();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main(process.argv.slice(2));
