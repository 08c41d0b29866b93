/**
 * The sweep's pure decisions: grid flags and the `sweep:` section expanded into trials with validated specs, the
 * rungs, which trials a rung keeps, the planned cost against a budget, the Pareto front and the best trial.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from 'vitest';
import { loadSpec } from '../../src/spec/load.ts';
import {
  checkBudget,
  deriveRungs,
  dominates,
  expandGrid,
  isInvalidSweepError,
  paretoFront,
  parseGridFlags,
  plannedSweepSeconds,
  planSweep,
  selectSurvivors,
  sweepTable,
  TrialOutcome,
  type TrialRecord,
  trialSpec,
  bestTrial,
} from '../../src/sweep/index.ts';

const tinySpec = loadSpec(fileURLToPath(new URL('../../examples/tiny/spec.yaml', import.meta.url)));

function thrown(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

describe('grid', () => {
  test('flags become typed values; every combination is a trial named by its parameters', () => {
    const grid = parseGridFlags(['lora.r=8,16,64', 'train.learning_rate=1e-4,2e-4', 'lora.use_rslora=true']);
    expect(grid).toEqual({ 'lora.r': [8, 16, 64], 'train.learning_rate': [1e-4, 2e-4], 'lora.use_rslora': [true] });
    const trials = expandGrid(grid);
    expect(trials).toHaveLength(6);
    expect(trials[0]).toEqual({
      key: 'lora.r=8,train.learning_rate=0.0001,lora.use_rslora=true',
      parameters: { 'lora.r': 8, 'train.learning_rate': 1e-4, 'lora.use_rslora': true },
    });
    expect(new Set(trials.map(({ key }) => key)).size).toBe(6);
  });

  test('a flag naming no sweepable parameter, or without values, is refused naming it', () => {
    const unknown = thrown(() => parseGridFlags(['lora.rank=8,16']));
    expect(isInvalidSweepError(unknown)).toBe(true);
    expect(unknown).toMatchObject({ field: 'lora.rank' });
    expect((unknown as Error).message).toContain('lora.rank cannot be swept');
    expect(thrown(() => parseGridFlags(['lora.r=']))).toMatchObject({ field: 'lora.r' });
    expect(thrown(() => parseGridFlags(['lora.r=8,,16']))).toMatchObject({ field: 'lora.r' });
  });

  test("a trial's spec: its parameters set, alpha/r kept when only r is swept, max_steps at the last rung", () => {
    const base = { ...tinySpec, lora: { ...tinySpec.lora, r: 8, alpha: 16 } };
    const spec = trialSpec(base, { key: 'k', parameters: { 'lora.r': 32, 'train.learning_rate': 1e-3 } }, 40);
    expect(spec.lora).toMatchObject({ r: 32, alpha: 64 });
    expect(spec.train).toMatchObject({ learning_rate: 1e-3, max_steps: 40 });
    expect(trialSpec(base, { key: 'k', parameters: { 'lora.r': 32, 'lora.alpha': 8 } }, 40).lora).toMatchObject({ r: 32, alpha: 8 });
  });

  test('a value the run spec refuses fails before anything runs, naming the trial, field and value', () => {
    const error = thrown(() => planSweep(tinySpec, ['lora.r=8,-4']));
    expect(isInvalidSweepError(error)).toBe(true);
    expect(error).toMatchObject({ field: 'lora.r', value: -4 });
    expect((error as Error).message).toContain('trial lora.r=-4: lora.r=-4');
    expect(thrown(() => planSweep(tinySpec, ['train.optimizer=sgd']))).toMatchObject({ field: 'train.optimizer', value: 'sgd' });
  });

  test('the sweep section and flags: flags replace the section’s values, the rungs halve to the end', () => {
    const plan = planSweep(tinySpec, ['train.learning_rate=0.01,0.02'], {
      grid: { 'lora.r': [4, 8, 16, 32], 'train.learning_rate': [1] },
      steps: 24,
      budget: '2h',
    });
    expect(plan.trials).toHaveLength(8);
    expect(plan.rungs).toEqual([3, 6, 12, 24]);
    expect(plan.budget_seconds).toBe(7200);
    expect(thrown(() => planSweep(tinySpec, [], { grid: {} }))).toMatchObject({ field: 'sweep.grid' });
    expect(thrown(() => planSweep(tinySpec, ['lora.r=4,8'], { rungs: [10, 5, 24] }))).toMatchObject({ field: 'sweep.rungs' });
    expect(thrown(() => planSweep(tinySpec, ['lora.r=4,8'], { budget: 'two hours' }))).toMatchObject({ field: 'sweep.budget' });
  });

  test('rungs: one per halving the trials allow, each reduction_factor times the last', () => {
    expect(deriveRungs(80, 8, 2)).toEqual([10, 20, 40, 80]);
    expect(deriveRungs(90, 9, 3)).toEqual([10, 30, 90]);
    expect(deriveRungs(50, 1, 2)).toEqual([50]);
    expect(deriveRungs(4, 16, 2)).toEqual([1, 2, 4]);
  });
});

describe('halving', () => {
  test('keeps the best 1/factor by validation loss; a missing loss ranks last; ties by key', () => {
    const standings = [
      { key: 'a', val_loss: 2.0 },
      { key: 'b', val_loss: null },
      { key: 'c', val_loss: 1.5 },
      { key: 'd', val_loss: 2.0 },
      { key: 'e', val_loss: 3.0 },
    ];
    expect(selectSurvivors(standings, 2)).toEqual(['c', 'a', 'd']);
    expect(selectSurvivors(standings, 3)).toEqual(['c', 'a']);
    expect(selectSurvivors([{ key: 'x', val_loss: null }], 2)).toEqual(['x']);
  });

  test('the planned cost bounds any survivors, and a budget names the priciest trials to drop', () => {
    const costs = [
      { key: 'r8', step_seconds: 1, rung_overhead_seconds: 10 },
      { key: 'r16', step_seconds: 2, rung_overhead_seconds: 10 },
      { key: 'r64', step_seconds: 4, rung_overhead_seconds: 10 },
      { key: 'r128', step_seconds: 8, rung_overhead_seconds: 10 },
    ];
    const rungs = [10, 20, 40];
    // rung 1: all four 10 steps; rung 2: the two priciest 10 more; rung 3: the priciest 20 more.
    const expected = 10 * 15 + 40 + (10 * 12 + 20) + (20 * 8 + 10);
    expect(plannedSweepSeconds(costs, rungs, 2, 1)).toBe(expected);
    expect(plannedSweepSeconds(costs, rungs, 2, 2)).toBe((10 * 15 + 40) / 2 + (10 * 12 + 20) / 2 + (20 * 8 + 10));
    expect(checkBudget(costs, rungs, 2, 1, expected)).toEqual({ planned_seconds: expected, drop: [], planned_seconds_after_drop: expected });
    const verdict = checkBudget(costs, rungs, 2, 1, 300);
    expect(verdict.drop).toEqual(['r128']);
    expect(verdict.planned_seconds_after_drop).toBeLessThanOrEqual(300);
    expect(checkBudget(costs, rungs, 2, 1, 1)).toMatchObject({ drop: ['r128', 'r64', 'r16', 'r8'], planned_seconds_after_drop: null });
  });
});

describe('pareto front and best trial', () => {
  const standing = (key: string, val_losses: (number | null)[], peak_vram_gib: number, step_seconds: number) => ({
    key,
    val_losses,
    peak_vram_gib,
    step_seconds,
  });

  test('compares losses at the deepest rung both reached', () => {
    const deep = standing('deep', [2.0, 1.2, 0.9], 10, 1);
    const stopped = standing('stopped', [2.5], 10, 1);
    expect(dominates(deep, stopped)).toBe(true);
    expect(dominates(stopped, deep)).toBe(false);
    // Cheaper in memory but worse at equal steps: neither dominates.
    const small = standing('small', [2.4], 6, 1);
    expect(dominates(deep, small)).toBe(false);
    expect(dominates(small, deep)).toBe(false);
    expect(dominates(standing('x', [null], 1, 1), standing('y', [3], 9, 9))).toBe(false);
  });

  test('the front keeps what nothing dominates; the best is lowest loss at the deepest rung', () => {
    const trials = [
      standing('r8', [2.4], 6, 1),
      standing('r16', [2.1, 1.5], 7, 1.1),
      standing('r64', [2.0, 1.4, 1.1], 9, 1.5),
      standing('r64-slow', [2.6], 9, 1.5),
      standing('r128', [2.05, 1.45], 12, 2),
    ];
    expect(paretoFront(trials)).toEqual(['r8', 'r16', 'r64']);
    expect(bestTrial(trials)).toBe('r64');
    expect(bestTrial([])).toBeNull();
  });

  test('the table: steps spent against no halving, the front and the best marked, a trial that does not fit listed', () => {
    const record = (key: string, peak: number, losses: number[], outcome: TrialRecord['outcome']): TrialRecord => ({
      key,
      parameters: { 'lora.r': Number(key.slice(1)) },
      outcome,
      reason: outcome === TrialOutcome.DoesNotFit ? 'TuneflowPlanDoesNotFit: the run does not fit' : null,
      workflow_id: `s/trial-${key}`,
      run_uri: `file:///runs/s%2Ftrial-${key}`,
      planned:
        outcome === TrialOutcome.DoesNotFit
          ? null
          : { peak_vram_gib: peak, available_gib: 80, step_seconds: peak / 10, seconds: 100, trainable_parameters: 1000 * peak },
      rungs: losses.map((val_loss, index) => ({
        steps: [5, 10][index]!,
        val_loss,
        train_loss: val_loss,
        tokens_per_second: 100,
        wall_seconds: 5,
        steps_trained: 5,
      })),
      adapter_uri: null,
      last_checkpoint_uri: null,
    });
    const table = sweepTable(
      [record('r8', 6, [2.5], TrialOutcome.Stopped), record('r16', 7, [2.2, 1.8], TrialOutcome.Completed), record('r512', 200, [], TrialOutcome.DoesNotFit)],
      [5, 10],
      300,
      20,
    );
    expect(table.steps_spent).toBe(15);
    expect(table.steps_without_halving).toBe(20);
    expect(table.best).toBe('r16');
    expect(table.pareto_front).toEqual(['r8', 'r16']);
    expect(table.trials.find((row) => row.key === 'r512')).toMatchObject({ pareto: false, best: false, adapter_bytes: null, steps_spent: 0 });
    expect(table.trials.find((row) => row.key === 'r16')).toMatchObject({
      adapter_parameters: 7000,
      adapter_bytes: 28000,
      wall_seconds: 10,
      tokens_per_second: 100,
    });
  });
});
