/**
 * Successive halving, decided once: which trials a rung keeps, and what the whole sweep is planned to cost before
 * it starts (so that a budget it cannot meet is refused, naming the trials to drop). Pure: the sweep workflow runs it.
 */
import { survivorsAfterRung } from './grid.ts';

/** A trial's validation loss at a rung; null when it had no validation rows or failed. */
export interface RungStanding {
  key: string;
  val_loss: number | null;
}

/**
 * The trials that go on to the next rung: the best `survivorsAfterRung` by validation loss at this rung, ties and
 * missing losses broken by key so that a replayed or resumed sweep keeps exactly the same ones.
 */
export function selectSurvivors(standings: readonly RungStanding[], reductionFactor: number): string[] {
  const ranked = [...standings].sort(
    (a, b) => (a.val_loss ?? Number.POSITIVE_INFINITY) - (b.val_loss ?? Number.POSITIVE_INFINITY) || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0),
  );
  return ranked.slice(0, survivorsAfterRung(standings.length, reductionFactor)).map(({ key }) => key);
}

/** What the planner says one trial costs: seconds per optimizer step, and seconds each rung's start and end add. */
export interface TrialCost {
  key: string;
  step_seconds: number;
  /** Model load, compile and the final checkpoint: paid again by every rung, each one a fresh train activity. */
  rung_overhead_seconds: number;
}

/** Seconds one trial takes to train rungs `from`..`to` (indices), rung overhead included. */
const rungSeconds = (cost: TrialCost, rungs: readonly number[], index: number) =>
  (rungs[index]! - (index === 0 ? 0 : rungs[index - 1]!)) * cost.step_seconds + cost.rung_overhead_seconds;

/** A trial trained through every rung: what it costs if it is never stopped. */
export const trialSecondsThroughAllRungs = (cost: TrialCost, rungs: readonly number[]) =>
  rungs.reduce((total, _, index) => total + rungSeconds(cost, rungs, index), 0);

/**
 * The sweep's planned wall time, a bound that holds whichever trials survive: rung k runs `survivors(k)` trials,
 * priced as the most expensive that many, spread over `parallel` workers.
 */
export function plannedSweepSeconds(costs: readonly TrialCost[], rungs: readonly number[], reductionFactor: number, parallel: number): number {
  let live = costs.length;
  let total = 0;
  rungs.forEach((_, index) => {
    if (index > 0) live = survivorsAfterRung(live, reductionFactor);
    const priciest = costs
      .map((cost) => rungSeconds(cost, rungs, index))
      .sort((a, b) => b - a)
      .slice(0, live);
    total += priciest.reduce((sum, seconds) => sum + seconds, 0) / Math.min(parallel, Math.max(live, 1));
  });
  return total;
}

export interface BudgetVerdict {
  planned_seconds: number;
  /** Empty when the sweep fits the budget; otherwise the trials to drop, most expensive first, so that it would. */
  drop: string[];
  /** The planned seconds once they are dropped (null when even one trial does not fit). */
  planned_seconds_after_drop: number | null;
}

/** Whether the planned sweep meets `budgetSeconds`, and if not, the fewest most expensive trials to drop so it does. */
export function checkBudget(
  costs: readonly TrialCost[],
  rungs: readonly number[],
  reductionFactor: number,
  parallel: number,
  budgetSeconds: number,
): BudgetVerdict {
  const planned = plannedSweepSeconds(costs, rungs, reductionFactor, parallel);
  const remaining = [...costs].sort((a, b) => trialSecondsThroughAllRungs(b, rungs) - trialSecondsThroughAllRungs(a, rungs) || (a.key < b.key ? -1 : 1));
  const drop: string[] = [];
  let after = planned;
  while (after > budgetSeconds && remaining.length > 0) {
    drop.push(remaining.shift()!.key);
    after = remaining.length === 0 ? Number.POSITIVE_INFINITY : plannedSweepSeconds(remaining, rungs, reductionFactor, parallel);
  }
  return { planned_seconds: planned, drop, planned_seconds_after_drop: Number.isFinite(after) ? after : null };
}
