/**
 * Preference tuning as one workflow you compose yourself: supervised fine-tuning first, then DPO on the SFT model.
 * `tuneflow run spec.yaml` does the same with tuneflow's own fineTune (the spec's `runs:`); this is the shape to
 * start from when a pipeline needs steps of its own between the runs. Two training runs in one workflow, each a
 * value with its own name: `sft` and `dpo` write under `runs/<workflow id>/sft/` and `runs/<workflow id>/dpo/`, and
 * train in their own children (`<workflow id>/train/sft`, `…/train/dpo`).
 *
 * The DPO run's model is the SFT run's merged model, so its reference (the frozen model with the adapter disabled)
 * is the SFT model: DPO moves the SFT model toward the chosen answers, and its evaluation compares the SFT model
 * (base) with the DPO-tuned one on the held-out pairs.
 */
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
  startFrom,
  startingPointOf,
  train,
} from 'tuneflow/workflow';

/** Our worker's task queue; tuneflow's stages run on tuneflow's queues. */
export const preferenceTaskQueue = 'preference-tune';

export interface PreferenceTuneInput {
  /** The SFT run: its dataset holds single answers (objective sft). */
  sft: RunSpec;
  /** The DPO run: preference pairs (objective dpo). Its model.source is replaced by the SFT run's merged model. */
  dpo: RunSpec;
  artifact_root_uri: string;
}

export interface PreferenceTuneResult {
  sft: { run_uri: string; adapter_uri: string; merged: MergeResult; train_loss: number | null };
  dpo: { run_uri: string; adapter_uri: string; evaluation: EvaluationResult | null; train_loss: number | null };
  datasets: { sft: DatasetSpec; dpo: DatasetSpec };
}

export async function preferenceTune(input: PreferenceTuneInput): Promise<PreferenceTuneResult> {
  const { artifact_root_uri: artifactRootUri } = input;
  // pause, resume and checkpointNow sent to this workflow reach whichever run is training.
  const control = acceptRunControl();
  const [sftData, dpoData] = await Promise.all([prepare(input.sft, { artifactRootUri }), prepare(input.dpo, { artifactRootUri })]);

  const sftRun = await plan(input.sft, sftData, { artifactRootUri, run: 'sft' });
  const sftTrained = await train(sftRun, { control });
  await recordCheckpoints(sftRun, sftTrained);
  const sftMerged = await merge(sftRun, sftTrained);

  // The same rule fineTune's runs use for `from: sft`: the DPO run's model (and reference) is the SFT model.
  const sftModel = startingPointOf(sftRun, sftMerged);
  const dpoRun = await plan(startFrom(input.dpo, sftModel), dpoData, { artifactRootUri, run: 'dpo' });
  const dpoTrained = await train(dpoRun, { control });
  await recordCheckpoints(dpoRun, dpoTrained, { started_from: sftModel });
  const evaluation = dpoRun.spec.evaluate.enabled ? await evaluate(dpoRun, dpoTrained) : null;

  return {
    sft: { run_uri: sftRun.run_uri, adapter_uri: sftTrained.training.adapter_uri, merged: sftMerged, train_loss: sftTrained.training.train_loss },
    dpo: { run_uri: dpoRun.run_uri, adapter_uri: dpoTrained.training.adapter_uri, evaluation, train_loss: dpoTrained.training.train_loss },
    datasets: { sft: input.sft.dataset, dpo: input.dpo.dataset },
  };
}
