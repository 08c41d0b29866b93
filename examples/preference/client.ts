/**
 * Runs the composed preference pipeline (workflows.ts) on spec.yaml's two runs: SFT (run sft), then DPO (run dpo)
 * on the SFT model, in one workflow, and prints the held-out pairs' reward accuracy and margin of the SFT model
 * (base) and the DPO-tuned one.
 *
 *   npx tsx examples/preference/client.ts [spec.yaml]
 */
import type { Client } from '@temporalio/client';
import { pathToFileURL } from 'node:url';
import { connectClient, homeLayout, loadSpecFile, type RunSpec } from 'tuneflow';
import { preferenceTaskQueue, preferenceTune, type PreferenceTuneResult } from './workflows.ts';

const here = (name: string) => new URL(name, import.meta.url).pathname;

export function runPreferenceTune(client: Client, dpo: RunSpec, sft: RunSpec, workflowId: string): Promise<PreferenceTuneResult> {
  return client.workflow.execute(preferenceTune, {
    taskQueue: preferenceTaskQueue,
    workflowId,
    args: [{ sft, dpo, artifact_root_uri: homeLayout().artifactRootUri }],
  });
}

/** The sft and dpo runs of a spec with runs (spec.yaml's `runs:`). */
export function preferenceRuns(path: string): { sft: RunSpec; dpo: RunSpec } {
  const file = loadSpecFile(path);
  const run = (name: string) => {
    const found = file.kind === 'runs' ? file.runs.runs.find((candidate) => candidate.name === name) : undefined;
    if (found === undefined) throw new Error(`${path} has no run named ${name}: the pipeline trains runs sft and dpo`);
    return found.spec;
  };
  return { sft: run('sft'), dpo: run('dpo') };
}

async function main([specPath = here('spec.yaml')]: string[]) {
  const client = await connectClient();
  const workflowId = `preference-tune-${Date.now()}`;
  console.log(`started ${workflowId}: SFT, then DPO on the SFT model`);
  const { sft, dpo } = preferenceRuns(specPath);
  const result = await runPreferenceTune(client, dpo, sft, workflowId);
  console.log(JSON.stringify({ sft: result.sft.run_uri, dpo: result.dpo.run_uri, preference: result.dpo.evaluation?.preference ?? null }, null, 2));
  await client.connection.close();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main(process.argv.slice(2));
