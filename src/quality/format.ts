import type { GateVerdict, JudgedAgainst, Scores } from './gates.ts';
import { describeOpponent, JudgeOpponentKind, judgeOpponentOf, type SuiteEvaluation, SuiteKind, suiteMetrics } from './suites.ts';

const cell = (value: number | null | undefined) => (value === null || value === undefined ? '—' : value.toFixed(3));

export interface SuiteScoreRow {
  metric: string;
  base: string;
  champion: string;
  candidate: string;
}

/**
 * The suites' scores side by side, one row per `<suite>.<metric>`: base, champion (when given) and candidate; a
 * judge's rows name its opponent. `judged` adds the rows of judges that compared the candidate with a champion
 * (retraining, from the registered version: `judged_against` and its own scores). The CLI's evaluation table and
 * the HTML report both print these rows.
 */
export function suiteScoreRows(suites: SuiteEvaluation, champion?: Scores | null, judged?: { scores: Scores; against: JudgedAgainst }): SuiteScoreRow[] {
  const rows = suites.results.flatMap((result) =>
    Object.entries(result.tuned).map(([metric, value]) => {
      const key = `${result.name}.${metric}`;
      const label = result.kind === SuiteKind.Judge ? `${key} against ${describeOpponent(judgeOpponentOf(result))}` : key;
      return { metric: label, base: cell(result.base?.[metric]), champion: cell(champion?.[key]), candidate: cell(value) };
    }),
  );
  const againstChampion = Object.entries(judged?.against ?? {}).filter(([, opponent]) => opponent.kind === JudgeOpponentKind.Champion);
  for (const [suite, opponent] of againstChampion) {
    for (const metric of suiteMetrics[SuiteKind.Judge]) {
      rows.push({
        metric: `${suite}.${metric} against ${describeOpponent(opponent)}`,
        base: '—',
        champion: '—',
        candidate: cell(judged?.scores[`${suite}.${metric}`]),
      });
    }
  }
  return rows;
}

/** `judge: win rate 0.625 [0.41, 0.80] against champion v1`, one line per judge suite of a registered version. */
export function judgeLines(scores: Scores, against: JudgedAgainst): string[] {
  return Object.entries(against).map(
    ([suite, opponent]) =>
      `${suite}: win rate ${cell(scores[`${suite}.win_rate`])} [${cell(scores[`${suite}.win_rate_lower`])}, ${cell(scores[`${suite}.win_rate_upper`])}] against ${describeOpponent(opponent)}`,
  );
}

/** `PASS json.field_accuracy 0.94 >= 0.52 (base 0.5 + 0.02)`, one line per gate. */
export function verdictLines(verdict: GateVerdict): string[] {
  return verdict.checks.map((check) => `${check.passed ? 'PASS' : 'FAIL'}  ${check.reason}`);
}
