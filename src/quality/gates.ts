/**
 * Promotion gates: `<suite>.<metric> <comparator> <threshold>` lines in the spec (`evaluate.gates`), where the
 * threshold is a number or `base`/`champion` with an optional `+ x`/`- x`. Parsed once, when the spec is parsed
 * (a gate naming an unknown suite or metric makes the spec invalid, naming the field); evaluated in one place,
 * `evaluateGates`, by the fineTune and retrain workflows and by `tuneflow models promote`.
 */
import { z } from 'zod';
import {
  describeOpponent,
  type JudgeOpponent,
  JudgeOpponentKind,
  judgeOpponentOf,
  judgeOpponentSchema,
  type SuiteEvaluation,
  SuiteKind,
  suiteMetrics,
} from './suites.ts';

export const Comparator = { AtLeast: '>=', AtMost: '<=', Above: '>', Below: '<' } as const;
export type Comparator = (typeof Comparator)[keyof typeof Comparator];

/** What a threshold is relative to: nothing (a number), the base model's score, or the champion's. */
export const GateReference = { Absolute: 'absolute', Base: 'base', Champion: 'champion' } as const;
export type GateReference = (typeof GateReference)[keyof typeof GateReference];

export const gateSchema = z.strictObject({
  /** The gate as written in the spec. */
  gate: z.string().min(1),
  suite: z.string().min(1),
  metric: z.string().min(1),
  comparator: z.enum(Comparator),
  reference: z.enum(GateReference),
  /** The threshold itself when absolute; added to the reference's score otherwise. */
  offset: z.number(),
});
export type Gate = z.infer<typeof gateSchema>;

const gatePattern =
  /^\s*([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\s*(>=|<=|>|<)\s*(?:(base|champion)\s*(?:([+-])\s*(\d+(?:\.\d+)?|\.\d+))?|(-?\d+(?:\.\d+)?|-?\.\d+))\s*$/;

/** A gate line as an object, or why it is not one. Suite and metric names are checked against the spec by the caller. */
export function parseGate(text: string): Gate | { error: string } {
  const match = gatePattern.exec(text);
  if (!match) {
    return { error: `"${text}" is not a gate: expected <suite>.<metric> >=|<=|>|< <number | base | champion, optionally ± number>` };
  }
  const [, suite, metric, comparator, reference, sign, delta, absolute] = match;
  if (reference === undefined) {
    return {
      gate: text.trim(),
      suite: suite!,
      metric: metric!,
      comparator: comparator as Comparator,
      reference: GateReference.Absolute,
      offset: Number(absolute),
    };
  }
  const offset = delta === undefined ? 0 : Number(delta) * (sign === '-' ? -1 : 1);
  return { gate: text.trim(), suite: suite!, metric: metric!, comparator: comparator as Comparator, reference: reference as GateReference, offset };
}

/** A spec's gate: written as a string, parsed into a Gate (an already parsed Gate passes through, so a parsed spec re-parses). */
export const gateSpecSchema = z
  .union([z.string(), gateSchema])
  .transform((value, context) => {
    if (typeof value !== 'string') return value;
    const parsed = parseGate(value);
    if ('error' in parsed) {
      context.addIssue({ code: 'custom', message: parsed.error });
      return z.NEVER;
    }
    return parsed;
  })
  // The pipe states the parsed shape, so the parsed spec has a JSON Schema too (the contract's).
  .pipe(gateSchema);

/** Why a gate does not fit the declared suites (unknown suite, metric the suite's kind lacks), or null when it does. */
export function gateProblem(gate: Gate, suites: ReadonlyMap<string, SuiteKind>): string | null {
  const kind = suites.get(gate.suite);
  if (kind === undefined) {
    return `gate "${gate.gate}" names suite "${gate.suite}", but evaluate.suites declares ${suites.size ? [...suites.keys()].map((name) => `"${name}"`).join(', ') : 'none'}`;
  }
  const metrics: readonly string[] = suiteMetrics[kind];
  if (!metrics.includes(gate.metric)) return `gate "${gate.gate}": a ${kind} suite has no metric "${gate.metric}" (it has ${metrics.join(', ')})`;
  if (kind === 'judge' && gate.reference !== GateReference.Absolute) {
    return `gate "${gate.gate}": a judge scores the candidate against its opponent already; compare its ${gate.metric} with a number`;
  }
  return null;
}

/** Scores by `<suite>.<metric>`, one model's. */
export type Scores = Readonly<Record<string, number | null>>;

/**
 * One side of a suite evaluation as flat scores: the base model's or the adapter's. A judge's scores are the
 * candidate's, so they are the adapter's only when its opponent is the base; against a champion (a champion's
 * evaluation in retraining) they are the challenger's, which `comparedScores` takes.
 */
export function scoresOf(evaluation: SuiteEvaluation | null | undefined, side: 'base' | 'tuned'): Scores {
  const scores: Record<string, number | null> = {};
  for (const result of evaluation?.results ?? []) {
    if (result.kind === SuiteKind.Judge && judgeOpponentOf(result).kind !== JudgeOpponentKind.Base) continue;
    const metrics = side === 'base' ? result.base : result.tuned;
    for (const [metric, value] of Object.entries(metrics ?? {})) scores[`${result.name}.${metric}`] = value;
  }
  return scores;
}

/** What each judge suite's scores compare the candidate with, by suite name. */
export const judgedAgainstSchema = z.record(z.string(), judgeOpponentSchema);
export type JudgedAgainst = z.infer<typeof judgedAgainstSchema>;

/** What the gates of a candidate are judged on: its scores, its base's, the champion's (null: none) and each judge's opponent. */
export interface ComparedScores {
  candidate: Scores;
  base: Scores;
  champion: Scores | null;
  champion_version: number | null;
  judged_against: JudgedAgainst;
}

/**
 * The scores a candidate's gates are judged on, in one place: its own evaluation's (candidate and base) and, in
 * retraining, the champion's evaluation on the same reference rows. A judge the champion's evaluation scored (the
 * challenger's answers against the champion's) replaces the candidate's judge against its base: with a champion, a
 * judge gate asks whether the candidate beats the champion.
 */
export function comparedScores(
  candidate: SuiteEvaluation | null | undefined,
  champion: { version: number; suites: SuiteEvaluation | null | undefined } | null,
): ComparedScores {
  const candidateScores: Record<string, number | null> = { ...scoresOf(candidate, 'tuned') };
  const judgedAgainst: Record<string, JudgeOpponent> = {};
  for (const result of [...(candidate?.results ?? []), ...(champion?.suites?.results ?? [])]) {
    if (result.kind !== SuiteKind.Judge) continue;
    const opponent = judgeOpponentOf(result);
    // The candidate's own evaluation judges against its base; the champion's, against the champion.
    if (opponent.kind === JudgeOpponentKind.Champion && opponent.version !== champion?.version) continue;
    judgedAgainst[result.name] = opponent;
    for (const [metric, value] of Object.entries(result.tuned)) candidateScores[`${result.name}.${metric}`] = value;
  }
  return {
    candidate: candidateScores,
    base: scoresOf(candidate, 'base'),
    champion: champion ? scoresOf(champion.suites, 'tuned') : null,
    champion_version: champion?.version ?? null,
    judged_against: judgedAgainst,
  };
}

export const gateCheckSchema = z.object({
  gate: z.string(),
  passed: z.boolean(),
  /** The candidate's score; null when it has none. */
  value: z.number().nullable(),
  /** What it was compared with; null when the reference has no score (no champion yet). */
  threshold: z.number().nullable(),
  reason: z.string(),
  /** A gate on a judge suite: what the judge compared the candidate with. */
  against: judgeOpponentSchema.optional(),
});
export type GateCheck = z.infer<typeof gateCheckSchema>;

export const gateVerdictSchema = z.object({
  passed: z.boolean(),
  checks: z.array(gateCheckSchema),
  /** The champion version the relative gates compared with; null when there was none. */
  champion_version: z.number().int().positive().nullable(),
});
export type GateVerdict = z.infer<typeof gateVerdictSchema>;

const holds = (value: number, comparator: Comparator, threshold: number): boolean =>
  comparator === '>=' ? value >= threshold : comparator === '<=' ? value <= threshold : comparator === '>' ? value > threshold : value < threshold;

const format = (value: number) => String(Number(value.toFixed(4)));

/**
 * Every gate on the candidate's scores. A gate relative to the champion passes while there is no champion (nothing
 * to beat); a score the candidate lacks fails its gate. A judge gate says what the judge compared with, and while
 * there is a champion (its version known) it fails unless the judge compared the candidate with that champion.
 */
export function evaluateGates(
  gates: readonly Gate[],
  scores: { candidate: Scores; base: Scores; champion: Scores | null; champion_version?: number | null; judged_against?: JudgedAgainst },
): GateVerdict {
  const championVersion = scores.champion_version ?? null;
  const checks = gates.map((gate): GateCheck => {
    const checked = checkGate(gate, scores);
    const against = scores.judged_against?.[gate.suite];
    if (against === undefined) return checked;
    const againstTheChampion = against.kind === JudgeOpponentKind.Champion && against.version === championVersion;
    if (scores.champion !== null && championVersion !== null && !againstTheChampion) {
      const reason = `${gate.gate}: judged against ${describeOpponent(against)}, not the champion v${championVersion}`;
      return { ...checked, passed: false, reason, against };
    }
    return { ...checked, reason: `${checked.reason} against ${describeOpponent(against)}`, against };
  });
  return { passed: checks.every((check) => check.passed), checks, champion_version: championVersion };
}

/** One gate on the scores, whatever suite it names. */
function checkGate(gate: Gate, scores: { candidate: Scores; base: Scores; champion: Scores | null }): GateCheck {
  const key = `${gate.suite}.${gate.metric}`;
  const value = scores.candidate[key] ?? null;
  const referenceScores = gate.reference === GateReference.Base ? scores.base : gate.reference === GateReference.Champion ? scores.champion : null;
  if (gate.reference === GateReference.Champion && scores.champion === null) {
    return { gate: gate.gate, passed: true, value, threshold: null, reason: `${gate.gate}: no champion to compare with` };
  }
  const referenceValue = gate.reference === GateReference.Absolute ? 0 : (referenceScores?.[key] ?? null);
  if (referenceValue === null) {
    return { gate: gate.gate, passed: false, value, threshold: null, reason: `${gate.gate}: the ${gate.reference} has no ${key} score` };
  }
  const threshold = referenceValue + gate.offset;
  if (value === null) return { gate: gate.gate, passed: false, value, threshold, reason: `${gate.gate}: the candidate has no ${key} score` };
  const passed = holds(value, gate.comparator, threshold);
  const relativeTo =
    gate.reference === GateReference.Absolute
      ? ''
      : ` (${gate.reference} ${format(referenceValue)}${gate.offset ? ` ${gate.offset > 0 ? '+' : '−'} ${format(Math.abs(gate.offset))}` : ''})`;
  return {
    gate: gate.gate,
    passed,
    value,
    threshold,
    reason: `${key} ${format(value)} ${passed ? '' : 'not '}${gate.comparator} ${format(threshold)}${relativeTo}`,
  };
}

/** The verdict in one line: what failed, or that every gate passed. */
export function describeVerdict(verdict: GateVerdict): string {
  if (verdict.checks.length === 0) return 'no gates';
  const failed = verdict.checks.filter((check) => !check.passed);
  return failed.length
    ? `gates failed: ${failed.map((check) => check.reason).join('; ')}`
    : `gates passed: ${verdict.checks.map((check) => check.reason).join('; ')}`;
}
