import { PlanDoesNotFitError } from '../errors/index.ts';
import type { Plan } from '../contract/orchestration.ts';
import { evaluatePlan } from './evaluate.ts';
import type { PlanRequest } from './request.ts';
import { suggestChanges } from './search.ts';

/** The plan stage's answer (its schema is in the contract): it travels as JSON through Temporal and `tuneflow plan --json`. */
export type { Plan };

export function planRun(request: PlanRequest): Plan {
  const evaluation = evaluatePlan(request);
  return { ...evaluation, suggestions: evaluation.fits ? [] : suggestChanges(request) };
}

/** The non-retryable failure for a plan that does not fit: why, and the cheapest change, in the message; the whole plan in the details. */
export function planDoesNotFitError(plan: Plan): PlanDoesNotFitError {
  const cheapest = plan.suggestions[0];
  const remedy =
    cheapest === undefined
      ? 'no change the planner knows makes it fit'
      : `cheapest change that fits: ${cheapest.description} (peak ${cheapest.peak_vram_gib} GiB)`;
  return new PlanDoesNotFitError(`the run does not fit: ${plan.reasons.join('; ')}; ${remedy}`, { plan });
}
