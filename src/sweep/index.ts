/**
 * Sweeps: a grid of LoRA and training parameters, planned before it runs and trained by successive halving
 * (docs/sweeps.md). Sandbox-safe: the sweep workflow imports all of it.
 */
export { deriveRungs, expandGrid, parseGridFlags, planSweep, survivorsAfterRung, trialKey, trialSpec } from './grid.ts';
export {
  type BudgetVerdict,
  checkBudget,
  plannedSweepSeconds,
  type RungStanding,
  selectSurvivors,
  type TrialCost,
  trialSecondsThroughAllRungs,
} from './halving.ts';
export { InvalidSweepError, isInvalidSweepError } from './invalid-sweep-error.ts';
export { bestTrial, dominates, paretoFront, type TrialStanding } from './pareto.ts';
export * from './schema.ts';
export { formatSweepTable, sweepTable, type TrialRecord } from './table.ts';
