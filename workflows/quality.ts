import { comparedScores, evaluateGates, type Gate, type RunQuality, type SuiteEvaluation } from '../src/quality/index.ts';
import { bookkeeping } from './activities.ts';

/** Histories recorded before the evaluation suites wrote no quality record. */
export const qualitySuitesPatch = 'tuneflow-quality-suites';

/**
 * A run's gates on its own suite scores (relative to its base, a judge against it too; a champion gate waits for
 * retraining or `models promote`), recorded in its manifest beside the scores.
 */
export async function recordQuality(runUri: string, gates: readonly Gate[], suites: SuiteEvaluation): Promise<RunQuality> {
  const quality = { suites, gates: evaluateGates(gates, comparedScores(suites, null)) };
  await bookkeeping.recordRunQuality({ run_uri: runUri, quality });
  return quality;
}
