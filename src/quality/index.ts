/**
 * Quality: evaluation suites and promotion gates (docs/quality.md). Sandbox-safe (no Node built-ins): the workflows
 * evaluate gates themselves.
 */
export * from './gates.ts';
export * from './run-quality.ts';
export * from './suites.ts';
export { GateFailedError, isGateFailedError } from './gate-failed-error.ts';
export { metricsFromScores, promotionVerdict, scoresFromMetrics } from './promotion.ts';
export { judgeLines, type SuiteScoreRow, suiteScoreRows, verdictLines } from './format.ts';
