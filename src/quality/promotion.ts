import type { ModelVersion } from '../registry/schema.ts';
import { evaluateGates, type GateVerdict, type Scores } from './gates.ts';

/** Metrics a version carries of another model are prefixed with its role; the version's own carry none. */
const roles = ['base.', 'champion.'] as const;

/** The `<suite>.<metric>` scores a registered version holds: its own (no prefix) or its base's / champion's. */
export function scoresFromMetrics(metrics: ModelVersion['metrics'], role: 'own' | 'base' | 'champion'): Scores {
  const scores: Record<string, number | null> = {};
  for (const [key, value] of Object.entries(metrics)) {
    const prefix = roles.find((candidate) => key.startsWith(candidate));
    if (role === 'own' ? prefix === undefined && key.includes('.') : prefix === `${role}.`) scores[prefix ? key.slice(prefix.length) : key] = value;
  }
  return scores;
}

/** A version's scores as registry metrics: its own, its base's and (when there is one) its champion's, prefixed by role. */
export function metricsFromScores(scores: { candidate: Scores; base: Scores; champion: Scores | null }): Record<string, number | null> {
  const prefixed = (prefix: string, values: Scores) => Object.fromEntries(Object.entries(values).map(([key, value]) => [`${prefix}${key}`, value]));
  return { ...scores.candidate, ...prefixed('base.', scores.base), ...(scores.champion ? prefixed('champion.', scores.champion) : {}) };
}

/**
 * Whether `version` may replace `champion` by its gates: the verdict it was registered with while that champion is
 * still the one it was judged against; otherwise its gates judged again on the champion's own scores, which compare
 * only when both were measured on the same held-out set (else the champion gates fail, saying so), and a judge's
 * only when it judged the version against that champion. Null for a version registered without gates.
 */
export function promotionVerdict(version: ModelVersion, champion: ModelVersion | null): GateVerdict | null {
  if (!version.quality) return null;
  const { gates, verdict } = version.quality;
  if ((champion?.version ?? null) === verdict.champion_version) return verdict;
  const comparable = champion === null || (champion.evaluated_on !== null && champion.evaluated_on === version.evaluated_on);
  const judged = evaluateGates(gates, {
    candidate: scoresFromMetrics(version.metrics, 'own'),
    base: scoresFromMetrics(version.metrics, 'base'),
    champion: champion === null ? null : comparable ? scoresFromMetrics(champion.metrics, 'own') : {},
    champion_version: champion?.version ?? null,
    // A judge against another champion (or the base) says nothing about this one: its gates fail, naming it.
    judged_against: version.judged_against ?? {},
  });
  if (comparable || !champion) return judged;
  const note = `champion v${champion.version} was measured on another held-out set`;
  return { ...judged, checks: judged.checks.map((check) => (check.passed ? check : { ...check, reason: `${check.reason} (${note})` })) };
}
