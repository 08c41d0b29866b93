import type { AutoChoice, AutoAlternative } from '../contract/orchestration.ts';
import type { TrainingSetup } from '../contract/index.ts';
import type { Plan } from './plan.ts';

/*
 * What `gradient_checkpointing: auto` means: of the settings the spec leaves open, the one with the highest
 * predicted tokens/s that fits the device the run is planned for. Checkpointing off keeps every layer's activations
 * (no recompute: about a third faster) and is taken wherever it fits; on, each layer keeps only its input and the
 * backward pass recomputes it. Where neither fits the memory-safest (on) is kept, so that the plan fails with the
 * changes that would make it fit. The rule lives here alone: planTrainingRun applies it, Python receives the answer.
 */
/** The alternatives `auto` weighs for a setup resolveTrainingSetup decided: checkpointing off, then on. */
export function checkpointingAlternatives(setup: TrainingSetup): TrainingSetup[] {
  return [
    { ...setup, gradient_checkpointing: false },
    { ...setup, gradient_checkpointing: true },
  ];
}

/**
 * Picks the fastest fitting plan among `alternatives` (planned in the order given; the last is the fallback where
 * none fits) and says what was weighed: the plan carries the choice and each rejected alternative's tokens/s and peak.
 */
export function chooseFastestFit<Planned extends { setup: TrainingSetup; plan: Plan }>(alternatives: readonly Planned[]): Planned {
  const fitting = alternatives.filter((alternative) => alternative.plan.fits);
  const fallback = alternatives.at(-1);
  if (fallback === undefined) throw new Error('chooseFastestFit needs at least one alternative');
  const chosen = fitting.length === 0 ? fallback : fitting.reduce((fastest, next) => (next.plan.tokens_per_s > fastest.plan.tokens_per_s ? next : fastest));
  const choice: AutoChoice = {
    fields: ['gradient_checkpointing'],
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
    fits: plan.fits,
    peak_vram_gib: plan.peak_vram_gib,
    tokens_per_s: plan.tokens_per_s,
  };
}

function rejection(alternative: { setup: TrainingSetup; plan: Plan }, chosen: { setup: TrainingSetup; plan: Plan }): AutoAlternative & { why: string } {
  const described = describe(alternative);
  const why = !alternative.plan.fits
    ? `does not fit: ${alternative.plan.peak_vram_gib} of ${alternative.plan.available_gib} GiB`
    : `slower: ${Math.round(alternative.plan.tokens_per_s)} against ${Math.round(chosen.plan.tokens_per_s)} tokens/s`;
  return { ...described, why };
}
