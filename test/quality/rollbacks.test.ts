/**
 * Loss-spike and NaN rollback as the TypeScript side sees it (the rule itself runs in Python: tests/test_rollback.py):
 * the spec's defaults and refusals, the worker's rolled_back message folded into the workflow's progress and shown in
 * the UI's Current Details, and the typed failure a run ends with when the rollbacks run out.
 */
import { ApplicationFailure } from '@temporalio/common';
import { describe, expect, it } from 'vitest';
import { FailureType, type RollbackRecord, trainingProgressMessageSchema, trainResultSchema } from '../../src/contract/index.ts';
import { failureOf, isTrainingDivergedError } from '../../src/errors/index.ts';
import { InvalidSpecError } from '../../src/errors/index.ts';
import { parseSpec } from '../../src/spec/load.ts';
import { describeRunDetails } from '../../workflows/current-details.ts';
import { applyProgressMessage, describeRollbacks, emptyProgress } from '../../workflows/progress.ts';

const baseSpec = { model: { source: 'tiny-random-llama' }, dataset: { path: 'data.jsonl' } };

const spike: RollbackRecord = {
  step: 17,
  reason: 'loss_spike',
  loss: 9.81,
  gradient_norm: 3.2,
  loss_median: 2.31,
  gradient_norm_median: 0.4,
  z_score: 14.2,
  restored_step: 15,
  rows: [
    { file: 'data.jsonl', row: 3 },
    { file: 'poisoned.jsonl', row: 1 },
  ],
  learning_rate_scale: 0.5,
  attempt: 1,
};
const nan: RollbackRecord = { ...spike, step: 8, reason: 'loss_not_finite', loss: 'NaN', gradient_norm: 'NaN', z_score: null, restored_step: 5 };

describe('train.rollback in the spec', () => {
  it('is on by default, with a gradient-norm z-score only when asked for', () => {
    expect(parseSpec(baseSpec, '/tmp').train.rollback).toEqual({
      enabled: true,
      window_steps: 50,
      min_history_steps: 20,
      z_threshold: 10,
      max_rollbacks: 3,
      learning_rate_factor: 1,
      gradient_norm_z_threshold: null,
    });
    expect(parseSpec({ ...baseSpec, train: { rollback: { enabled: false } } }, '/tmp').train.rollback.enabled).toBe(false);
  });

  it('refuses a minimum history longer than the window and a learning-rate factor above 1, naming the field', () => {
    expect(() => parseSpec({ ...baseSpec, train: { rollback: { window_steps: 10, min_history_steps: 20 } } }, '/tmp')).toThrow(
      /train\.rollback\.min_history_steps/,
    );
    expect(() => parseSpec({ ...baseSpec, train: { rollback: { learning_rate_factor: 2 } } }, '/tmp')).toThrow(InvalidSpecError);
  });
});

describe('rollbacks in the workflow and its views', () => {
  it('folds the worker’s rolled_back message into the progress and shows it in the Current Details', () => {
    const message = trainingProgressMessageSchema.parse({
      step: 15,
      total_steps: 40,
      epoch: 0,
      loss: 2.3,
      val_loss: null,
      tokens_per_second: null,
      padded_tokens_per_second: null,
      padding_fraction: null,
      eta_seconds: null,
      last_checkpoint: null,
      resumed_from_step: 0,
      steps_redone: 1,
      rollbacks: 2,
      event: 'rolled_back',
      attempt: 1,
      best: null,
      losses: [],
      rollback_records: [nan, spike],
    });
    const progress = emptyProgress();
    applyProgressMessage(progress, message);
    expect(progress.rollbacks).toEqual([nan, spike]);
    expect(progress.resumes).toBe(0);
    const details = describeRunDetails({ stage: 'train', status: 'running', model: 'tiny-random-llama', progress, plan: null });
    expect(details).toContain('| Rollbacks | 2 rollbacks, 4 rows skipped; last: step 17 refused (loss spike: loss 9.810');
    expect(details).toContain('→ back to step 15, 2 rows skipped');
  });

  it('keeps the rollbacks of a message without them (a worker from before rollback existed)', () => {
    const progress = emptyProgress();
    progress.rollbacks = [nan];
    applyProgressMessage(progress, {
      ...trainingProgressMessageSchema.parse({
        step: 20,
        total_steps: 40,
        epoch: 0,
        loss: 2.1,
        val_loss: null,
        tokens_per_second: null,
        padded_tokens_per_second: null,
        padding_fraction: null,
        eta_seconds: null,
        last_checkpoint: null,
        resumed_from_step: 0,
        steps_redone: 0,
        event: 'checkpoint',
        attempt: 1,
        best: null,
        losses: [[20, 2.1]],
      }),
    });
    expect(progress.rollbacks).toEqual([nan]);
    expect(describeRollbacks([])).toBeNull();
  });

  it('carries NaN as a name, never as a number JSON cannot hold', () => {
    expect(trainResultSchema.shape.rollbacks.safeParse([{ ...nan, loss: Number.NaN }]).success).toBe(false);
    expect(trainResultSchema.shape.rollbacks.safeParse([nan]).success).toBe(true);
  });

  it('turns the worker’s TuneflowTrainingDiverged into a typed error with the step, rows and values', () => {
    const failure = ApplicationFailure.create({
      type: FailureType.TrainingDiverged,
      nonRetryable: true,
      message: 'training diverged at step 21 (loss spike: loss 9.81, gradient norm 3.2) after 3 rollbacks',
      details: [{ rollback: spike, rollbacks: [nan] }],
    });
    const error = failureOf(failure);
    expect(isTrainingDivergedError(error)).toBe(true);
    expect(error?.details.rollback).toEqual(spike);
  });
});
