import { InvalidSpecError } from '../errors/index.ts';
import type { TrainSpec } from '../spec/schema.ts';

/** The effective batch (sequences per optimizer step per process) of a spec that states none. */
export const defaultBatchSize = 4;

/** The spec fields that say how many sequences a step trains, and in how many passes. */
export type BatchChoices = Pick<TrainSpec, 'micro_batch_size'> & Partial<Pick<TrainSpec, 'gradient_accumulation_steps' | 'batch_size'>>;

/** A micro-batch and its accumulation: batch_size = micro_batch_size × gradient_accumulation_steps. */
export interface DecidedBatch {
  micro_batch_size: number;
  gradient_accumulation_steps: number;
}

/**
 * What the spec asks of the batch: a fixed micro-batch and accumulation, or (micro_batch_size 'auto') only the
 * effective batch, whose split the planner decides (planner/fastest-fit.ts). The one rule for how the three fields
 * combine; a combination that says two different things is bad input, named by its field.
 */
export function requestedBatch(train: BatchChoices): { fixed: DecidedBatch } | { auto: { batch_size: number } } {
  const { micro_batch_size: micro, gradient_accumulation_steps: accumulation, batch_size: batch } = train;
  if (micro === 'auto') {
    if (accumulation !== undefined) {
      throw new InvalidSpecError(
        'train.gradient_accumulation_steps is decided when train.micro_batch_size is auto (the effective batch over the micro-batch that fits); give train.batch_size instead, or a micro_batch_size',
        { field: 'train.gradient_accumulation_steps' },
      );
    }
    return { auto: { batch_size: batch ?? defaultBatchSize } };
  }
  if (batch === undefined) return { fixed: { micro_batch_size: micro, gradient_accumulation_steps: accumulation ?? 1 } };
  if (accumulation !== undefined && micro * accumulation !== batch) {
    throw new InvalidSpecError(
      `train.batch_size ${batch} is not train.micro_batch_size ${micro} × train.gradient_accumulation_steps ${accumulation}; give two of the three`,
      { field: 'train.batch_size' },
    );
  }
  if (batch % micro !== 0) {
    throw new InvalidSpecError(`train.batch_size ${batch} is not a multiple of train.micro_batch_size ${micro}`, { field: 'train.batch_size' });
  }
  return { fixed: { micro_batch_size: micro, gradient_accumulation_steps: batch / micro } };
}
