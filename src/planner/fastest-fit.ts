import type { AutoChoice, AutoAlternative } from '../contract/orchestration.ts';
import type { TrainingSetup } from '../contract/index.ts';
import type { TrainSpec } from '../spec/schema.ts';
import type { Plan } from './plan.ts';
import { batchSplits } from './search.ts';

/*
 * What `gradient_checkpointing: auto` and `micro_batch_size: auto` mean: of the settings the spec leaves open, the
 * one with the highest predicted real tokens/s that fits the device the run is planned for. Checkpointing off keeps
 * every layer's activations (no recompute: about a third faster) and is taken wherever it fits; on, each layer keeps
 * only its input and the backward pass recomputes it. The micro-batch is every split of the effective batch
 * (train.batch_size = micro-batch × accumulation), weighed jointly with checkpointing: a larger micro-batch uses
 * the GPU better but holds more activations, and on unpacked rows pads more. Where nothing fits the memory-safest
 * (checkpointing on, micro-batch 1) is kept, so that the plan fails with the changes that would make it fit. The
 * rule lives here alone: planTrainingRun applies it, Python receives the answer in the TrainingSetup.
 */

type AutoFields = Pick<TrainSpec, 'gradient_checkpointing' | 'micro_batch_size'>;

/** The spec fields left to 'auto' that the planner decides here. */
export function autoFields(train: AutoFields): AutoChoice['fields'] {
  return [
    ...(train.gradient_checkpointing === 'auto' ? (['gradient_checkpointing'] as const) : []),
    ...(train.micro_batch_size === 'auto' ? (['micro_batch_size'] as const) : []),
  ];
}

/**
 * The alternatives `auto` weighs for a setup resolveTrainingSetup decided, fastest-looking first and the
 * memory-safest last: each split of the effective batch from the largest micro-batch down (where micro_batch_size is
 * auto), each with checkpointing off then on (where gradient_checkpointing is auto). Fixed fields keep the setup's value.
 */
export function autoAlternatives(setup: TrainingSetup, fields: AutoChoice['fields']): TrainingSetup[] {
  const splits = fields.includes('micro_batch_size')
    ? batchSplits(setup.micro_batch_size * setup.gradient_accumulation_steps)
    : [{ micro_batch_size: setup.micro_batch_size, gradient_accumulation_steps: setup.gradient_accumulation_steps }];
  const checkpointing = fields.includes('gradient_checkpointing') ? [false, true] : [setup.gradient_checkpointing];
  return splits.flatMap((split) => checkpointing.map((gradient_checkpointing) => ({ ...setup, ...split, gradient_checkpointing })));
}

/** The speed `auto` compares: real tokens/s on the data's lengths (padding and packing counted) where known. */
export function predictedTokensPerSecond(plan: Plan): number {
  return plan.run_time?.real_tokens_per_s ?? plan.tokens_per_s;
}

/**
 * Picks the fastest fitting plan among `alternatives` (planned in the order given: ties go to the earlier, and the
 * last is the fallback where none fits) and says what was weighed: the plan carries the choice and each rejected
 * alternative's tokens/s and peak.
 */
export function chooseFastestFit<Planned extends { setup: TrainingSetup; plan: Plan }>(
  alternatives: readonly Planned[],
  fields: AutoChoice['fields'],
): Planned {
  const fitting = alternatives.filter((alternative) => alternative.plan.fits);
  const fallback = alternatives.at(-1);
  if (fallback === undefined) throw new Error('chooseFastestFit needs at least one alternative');
  const chosen =
    fitting.length === 0
      ? fallback
      : fitting.reduce((fastest, next) => (predictedTokensPerSecond(next.plan) > predictedTokensPerSecond(fastest.plan) ? next : fastest));
  const choice: AutoChoice = {
    fields,
    chosen: describe(chosen),
    reason:
      fitting.length === 0
        ? 'no alternative fits: the memory-safest is planned, with the changes that would make it fit'
        : `the fastest of ${fitting.length} that fit${fitting.length === 1 ? 's' : ''} the ${chosen.plan.available_gib} GiB available`,
    rejected: alternatives.filter((alternative) => alternative !== chosen).map((alternative) => rejection(alternative, chosen)),
  };
  return { ...chosen, plan: { ...chosen.plan, auto_choice: choice } };
}

function describe({ setup, plan }: { setup: TrainingSetup; plan: Plan }): AutoAlternative {
  return {
    gradient_checkpointing: setup.gradient_checkpointing,
    micro_batch_size: setup.micro_batch_size,
    gradient_accumulation_steps: setup.gradient_accumulation_steps,
    fits: plan.fits,
    peak_vram_gib: plan.peak_vram_gib,
    tokens_per_s: predictedTokensPerSecond(plan),
  };
}

function rejection(alternative: { setup: TrainingSetup; plan: Plan }, chosen: { setup: TrainingSetup; plan: Plan }): AutoAlternative & { why: string } {
  const described = describe(alternative);
  const why = !alternative.plan.fits
    ? `does not fit: ${alternative.plan.peak_vram_gib} of ${alternative.plan.available_gib} GiB`
    : `slower: ${Math.round(described.tokens_per_s)} against ${Math.round(predictedTokensPerSecond(chosen.plan))} tokens/s`;
  return { ...described, why };
}
