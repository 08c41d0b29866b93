import { evaluatePlan, type Evaluation } from './evaluate.ts';
import type { PlanRequest } from './request.ts';
import { suggestChanges, type Suggestion } from './search.ts';

/** The plan stage's answer. snake_case: it travels as JSON through Temporal and `tuneflow plan --json`. */
export interface Plan extends Evaluation {
  /** Empty when the plan fits; otherwise the cheapest changes that make it fit, each with its new peak. */
  suggestions: Suggestion[];
}

export function planRun(request: PlanRequest): Plan {
  const evaluation = evaluatePlan(request);
  return { ...evaluation, suggestions: evaluation.fits ? [] : suggestChanges(request) };
}
