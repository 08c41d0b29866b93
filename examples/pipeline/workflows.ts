/**
 * A pipeline of our own, built from tuneflow's stages: the training set and a held-out set are prepared in
 * parallel, the adapter is trained and scored on the held-out set, our own activity judges its answers, and a
 * person approves (or rejects) before the adapter is merged into a standalone model.
 *
 * Like any workflow file it runs in Temporal's sandbox: it imports `tuneflow/workflow` (sandbox-safe) and our own
 * activities as types only.
 */
import { condition, defineQuery, defineSignal, proxyActivities, setHandler } from '@temporalio/workflow';
import {
  acceptRunControl,
  type DatasetSpec,
  type EvaluationResult,
  evaluate,
  type MergeResult,
  merge,
  plan,
  prepare,
  recordCheckpoints,
  type RunSpec,
  train,
} from 'tuneflow/workflow';
import type * as activities from './activities.ts';
import type { Judgement } from './activities.ts';

/** Our worker's task queue: our workflows and our activities. tuneflow's stages run on tuneflow's queues. */
export const pipelineTaskQueue = 'reviewed-fine-tune';

export interface ReviewedFineTuneInput {
  /** The training run; its dataset is the training set. */
  spec: RunSpec;
  /** The held-out set, never trained on: its validation split (all of it: `val_fraction: 1`) is scored. */
  held_out: DatasetSpec;
  artifact_root_uri: string;
}

export interface Review {
  evaluation: EvaluationResult;
  judgement: Judgement;
}

export interface Decision {
  approved: boolean;
  reviewer: string;
}

export type ReviewedFineTuneResult =
  | { status: 'merged'; adapter_uri: string; merged: MergeResult; review: Review; decision: Decision; train_rows: number; held_out_rows: number }
  | { status: 'rejected'; adapter_uri: string; review: Review; decision: Decision; train_rows: number; held_out_rows: number };

/** The held-out scores and our judgement, once they exist: what the reviewer decides on. */
export const reviewQuery = defineQuery<Review | null>('review');
/** The reviewer's decision; the workflow waits for it (for days if need be) before merging. */
export const decideSignal = defineSignal<[Decision]>('decide');

const { judgeAnswers } = proxyActivities<typeof activities>({ taskQueue: pipelineTaskQueue, startToCloseTimeout: '5 minutes' });

export async function reviewedFineTune(input: ReviewedFineTuneInput): Promise<ReviewedFineTuneResult> {
  const { spec, artifact_root_uri: artifactRootUri } = input;
  // pause, resume and checkpointNow sent to this workflow reach training.
  const control = acceptRunControl();
  let review: Review | null = null;
  let decision: Decision | null = null;
  setHandler(reviewQuery, () => review);
  setHandler(decideSignal, (made) => {
    decision ??= made;
  });

  const [trainingSet, heldOut] = await Promise.all([prepare(spec, { artifactRootUri }), prepare({ ...spec, dataset: input.held_out }, { artifactRootUri })]);
  const run = await plan(spec, trainingSet, { artifactRootUri });
  const trained = await train(run, { control });
  await recordCheckpoints(run, trained);
  const evaluation = await evaluate(run, trained, { dataset: heldOut });
  const judgement = await judgeAnswers({ held_out_path: input.held_out.path, evaluation });
  review = { evaluation, judgement };

  await condition(() => decision !== null);
  const decided = decision!;
  const outcome = { adapter_uri: trained.training.adapter_uri, review, decision: decided, train_rows: trainingSet.train_rows, held_out_rows: heldOut.val_rows };
  if (!decided.approved) return { status: 'rejected', ...outcome };
  return { status: 'merged', merged: await merge(run, trained), ...outcome };
}
