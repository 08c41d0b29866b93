import { match } from 'ts-pattern';
import { ObjectiveKind } from '../contract/vocabulary.ts';

/**
 * What the objective changes in a plan, in one place. SFT trains one sequence per row. DPO trains a pair: one
 * micro-batch of m pairs is 2m sequences (the chosen rows, then the rejected, padded to one width, python
 * objectives/dpo.py), whose activations and logits the policy keeps for its backward pass; before it, the
 * reference (the same weights, adapter disabled, under no_grad) scores the same 2m sequences, and frees its
 * activations before the policy's forward, so it adds time but not memory. token_statistics describes each pair by
 * its longer sequence (prompt + the longer response), so the planned width is the pair's.
 */
export interface ObjectiveCost {
  /** Sequences the policy trains on per dataset row (per pair for DPO). */
  sequences_per_row: number;
  /** A micro-step's time over the policy's forward and backward alone: the reference's forwards on top. */
  time_factor: number;
}

/**
 * A forward pass is a third of a training micro-step's compute (the backward costs twice the forward), a quarter
 * when gradient checkpointing recomputes the forward during the backward.
 */
const forwardShare = (gradientCheckpointing: boolean) => (gradientCheckpointing ? 1 / 4 : 1 / 3);

export function objectiveCost(objective: ObjectiveKind | undefined, gradientCheckpointing: boolean): ObjectiveCost {
  return match(objective ?? ObjectiveKind.SupervisedFineTuning)
    .with(ObjectiveKind.SupervisedFineTuning, () => ({ sequences_per_row: 1, time_factor: 1 }))
    .with(ObjectiveKind.DirectPreferenceOptimization, () => ({ sequences_per_row: 2, time_factor: 1 + forwardShare(gradientCheckpointing) }))
    .exhaustive();
}

/** What the plan tells the user about the objective's cost; nothing for SFT. */
export function objectiveNotes(objective: ObjectiveKind | undefined, microBatchSize: number, gradientCheckpointing: boolean): string[] {
  return match(objective ?? ObjectiveKind.SupervisedFineTuning)
    .with(ObjectiveKind.SupervisedFineTuning, () => [])
    .with(ObjectiveKind.DirectPreferenceOptimization, () => {
      const { time_factor } = objectiveCost(objective, gradientCheckpointing);
      return [
        `dpo: a micro-batch of ${microBatchSize} pair${microBatchSize === 1 ? '' : 's'} trains ${2 * microBatchSize} sequences (chosen and rejected), planned as their activations and logits; the reference (adapter disabled, no gradient) scores them first, +${Math.round((time_factor - 1) * 100)} % time, no extra memory`,
        'dpo: packing is off, each pair trains unpacked (its two sequences padded to one width)',
      ];
    })
    .exhaustive();
}
