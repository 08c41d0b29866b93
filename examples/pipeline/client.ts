/**
 * Starts the pipeline, shows the review once the held-out scores are in, and sends the decision.
 *
 *   npx tsx examples/pipeline/client.ts start <spec.yaml> <held-out.jsonl>   # prints the workflow id
 *   npx tsx examples/pipeline/client.ts review <workflow id>                 # the scores and the judgement, once ready
 *   npx tsx examples/pipeline/client.ts approve|reject <workflow id> <reviewer>
 */
import type { Client, WorkflowHandle } from '@temporalio/client';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { connectClient, homeLayout, loadSpec, type RunSpec } from 'tuneflow';
import { promptOf } from './activities.ts';
import { decideSignal, pipelineTaskQueue, type Review, reviewedFineTune, reviewQuery } from './workflows.ts';

/**
 * The pipeline's input: the spec's training run, and the held-out file as a dataset whose every row is validation.
 * The first `samples` held-out prompts become the spec's sample prompts, so the evaluate stage answers them and our
 * activity can judge the answers against the rows' expected outputs.
 */
export function pipelineInput(spec: RunSpec, heldOutPath: string, artifactRootUri: string, samples = 2) {
  const prompts = readFileSync(heldOutPath, 'utf8')
    .split('\n')
    .filter((line) => line.trim())
    .slice(0, samples)
    .map((line) => promptOf(JSON.parse(line)));
  return {
    spec: { ...spec, evaluate: { ...spec.evaluate, sample_prompts: prompts } },
    held_out: { ...spec.dataset, path: resolve(heldOutPath), val_fraction: 1, val_count: undefined, val_path: undefined },
    artifact_root_uri: artifactRootUri,
  };
}

export function startReviewedFineTune(
  client: Client,
  input: ReturnType<typeof pipelineInput>,
  workflowId: string,
): Promise<WorkflowHandle<typeof reviewedFineTune>> {
  return client.workflow.start(reviewedFineTune, { taskQueue: pipelineTaskQueue, workflowId, args: [input] });
}

/** The review, or null while training and scoring are still under way. */
export function review(client: Client, workflowId: string): Promise<Review | null> {
  return client.workflow.getHandle(workflowId).query(reviewQuery);
}

export function decide(client: Client, workflowId: string, approved: boolean, reviewer: string): Promise<void> {
  return client.workflow.getHandle(workflowId).signal(decideSignal, { approved, reviewer });
}

async function main([command, ...args]: string[]) {
  const client = await connectClient();
  if (command === 'start' && args.length === 2) {
    const [specPath, heldOutPath] = args as [string, string];
    const workflowId = `reviewed-fine-tune-${Date.now()}`;
    await startReviewedFineTune(client, pipelineInput(loadSpec(specPath), heldOutPath, homeLayout().artifactRootUri), workflowId);
    console.log(workflowId);
  } else if (command === 'review' && args.length === 1) {
    console.log(JSON.stringify(await review(client, args[0]!), null, 2));
  } else if ((command === 'approve' || command === 'reject') && args.length === 2) {
    await decide(client, args[0]!, command === 'approve', args[1]!);
  } else {
    console.error('usage: client.ts start <spec.yaml> <held-out.jsonl> | review <workflow id> | approve|reject <workflow id> <reviewer>');
    process.exitCode = 2;
  }
  await client.connection.close();
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main(process.argv.slice(2));
