import type { GateVerdict, Scores } from './gates.ts';
import type { SuiteEvaluation } from './suites.ts';

const cell = (value: number | null | undefined) => (value === null || value === undefined ? '—' : value.toFixed(3));

/**
 * The suites' scores side by side, one row per `<suite>.<metric>`: base, champion (when given) and candidate. The
 * CLI's evaluation table and the HTML report both print these rows.
 */
export function suiteScoreRows(suites: SuiteEvaluation, champion?: Scores | null): { metric: string; base: string; champion: string; candidate: string }[] {
  return suites.results.flatMap((result) =>
    Object.entries(result.tuned).map(([metric, value]) => {
      const key = `${result.name}.${metric}`;
      return { metric: key, base: cell(result.base?.[metric]), champion: cell(champion?.[key]), candidate: cell(value) };
    }),
  );
}

/** `PASS json.field_accuracy 0.94 >= 0.52 (base 0.5 + 0.02)`, one line per gate. */
export function verdictLines(verdict: GateVerdict): string[] {
  return verdict.checks.map((check) => `${check.passed ? 'PASS' : 'FAIL'}  ${check.reason}`);
}
