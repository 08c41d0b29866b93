import { match } from 'ts-pattern';
import { ObjectiveKind } from '../contract/vocabulary.ts';
import { InvalidSpecError } from '../errors/index.ts';
import type { ObjectiveSpec, TrainSpec } from '../spec/schema.ts';

/**
 * What the objective decides of packing, before the loader's preference: null when it leaves packing to the
 * loader (SFT), false when the objective trains unpacked (DPO: a pair's chosen and rejected sequences are scored
 * side by side against the reference, one row each, so rows are never laid end to end). Asking for packing with
 * DPO is bad input, named by its field; the plan says why packing is off (planner/objective.ts).
 */
export function objectivePacking(objective: ObjectiveSpec | undefined, packing: TrainSpec['packing']): boolean | null {
  return match(objective?.kind ?? ObjectiveKind.SupervisedFineTuning)
    .with(ObjectiveKind.SupervisedFineTuning, () => null)
    .with(ObjectiveKind.DirectPreferenceOptimization, () => {
      if (packing === true) {
        throw new InvalidSpecError(
          "train.packing is true but train.objective 'dpo' trains each pair's chosen and rejected sequences unpacked; use auto or false",
          {
            field: 'train.packing',
          },
        );
      }
      return false;
    })
    .exhaustive();
}
