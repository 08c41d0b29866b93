import { match } from 'ts-pattern';
import { DatasetFormat, ObjectiveKind, preferenceDatasetFormats } from '../contract/vocabulary.ts';

/**
 * Which dataset formats an objective trains on, decided here once: the spec's check (an explicit dataset.format)
 * and the prepare activity's (the format prepare detected) both ask it. SFT learns from single responses; DPO
 * from pairs of a chosen and a rejected response to one prompt. 'auto' is undecided until prepare has read the rows.
 * Returns why the two do not go together, or null when they do.
 */
export function objectiveDatasetMismatch(objective: ObjectiveKind, format: DatasetFormat): string | null {
  if (format === DatasetFormat.Auto) return null;
  const isPreference = preferenceDatasetFormats.includes(format);
  return match(objective)
    .with(ObjectiveKind.SupervisedFineTuning, () =>
      isPreference
        ? `train.objective 'sft' trains on single responses, but dataset.format is '${format}' (pairs of chosen and rejected responses): use train.objective { kind: dpo } for preference data`
        : null,
    )
    .with(ObjectiveKind.DirectPreferenceOptimization, () =>
      isPreference
        ? null
        : `train.objective 'dpo' trains on pairs of chosen and rejected responses, but dataset.format is '${format}': give rows with prompt/chosen/rejected (format 'preference') or chosen/rejected message lists (format 'chat_preference')`,
    )
    .exhaustive();
}
