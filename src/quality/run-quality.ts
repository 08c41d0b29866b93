import { z } from 'zod';
import { gateVerdictSchema } from './gates.ts';
import { suiteEvaluationSchema } from './suites.ts';

/** A run's quality record: its suites' scores (base and candidate) and the spec's gates judged on them. */
export const runQualitySchema = z.object({
  suites: suiteEvaluationSchema,
  /** In a plain run, relative to the base (champion gates wait for the retrain workflow or `models promote`). */
  gates: gateVerdictSchema,
});
export type RunQuality = z.infer<typeof runQualitySchema>;
