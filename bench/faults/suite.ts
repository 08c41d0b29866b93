/**
 * A fault-injection suite: one uninterrupted reference run, then `trials` runs of every scenario, each compared
 * with the reference's artifacts; and the per-scenario summary. Used by bench/faults/run.ts and test/faults.
 */
import { type ArtifactHashes, type FaultRun, type FaultScenario, prepareSuite, runTrial, trainingRestarted, type TrialRecord } from './harness.ts';
import { median } from '../statistics.ts';

export interface SuiteOptions {
  scenarios: readonly FaultScenario[];
  trials: number;
  /** Per trial; a trial past it is a failure and its processes are stopped. */
  timeoutSeconds: number;
  root?: string;
  heartbeatTimeoutSeconds?: number;
  keepSucceeded?: boolean;
  onRecord?: (record: TrialRecord) => void;
}

export interface ScenarioSummary {
  scenario: string;
  trials: number;
  successes: number;
  /** Trials whose evidence shows the fault hit the intended moment. */
  landed: number;
  steps_redone: { median: number | null; max: number | null };
  restart_to_first_step_seconds: { median: number | null; max: number | null };
  ready_to_first_step_seconds: { median: number | null; max: number | null };
  model_load_seconds: { median: number | null; max: number | null };
  /** Trials with restart → first step ≤ model load + 5 s, out of those where it applies. */
  first_step_within_bound: { met: number; applicable: number };
}

export interface SuiteResult {
  /** The first uninterrupted reference (the SFT run's unless only DPO scenarios ran); `references` has every run's. */
  reference: TrialRecord;
  references: Partial<Record<FaultRun, TrialRecord>>;
  records: TrialRecord[];
  summary: ScenarioSummary[];
}

export async function runSuite(options: SuiteOptions): Promise<SuiteResult> {
  const suite = await prepareSuite({ root: options.root, heartbeatTimeoutSeconds: options.heartbeatTimeoutSeconds });
  // One uninterrupted reference per run the scenarios fault: each faulted run must end byte-identical to its own.
  const runs = [...new Set<FaultRun>(options.scenarios.length === 0 ? ['sft'] : options.scenarios.map((scenario) => scenario.run ?? 'sft'))];
  const references: Partial<Record<FaultRun, TrialRecord>> = {};
  const hashes: Partial<Record<FaultRun, ArtifactHashes>> = {};
  for (const run of runs) {
    const reference = await runTrial({
      suite,
      scenario: null,
      run,
      trial: 0,
      reference: null,
      timeoutSeconds: options.timeoutSeconds,
      keep: options.keepSucceeded,
    });
    options.onRecord?.(reference);
    if (!reference.success || !reference.hashes)
      throw new Error(`the uninterrupted ${run} reference run failed: ${reference.failure}; logs in ${reference.logs}`);
    references[run] = reference;
    hashes[run] = reference.hashes;
  }
  const records: TrialRecord[] = [];
  // Trial-major order: every scenario's first trial before any second, so a partial suite covers every scenario.
  for (let trial = 1; trial <= options.trials; trial += 1) {
    for (const scenario of options.scenarios) {
      const reference = hashes[scenario.run ?? 'sft']!;
      const record = await runTrial({ suite, scenario, trial, reference, timeoutSeconds: options.timeoutSeconds, keep: options.keepSucceeded });
      records.push(record);
      options.onRecord?.(record);
    }
  }
  return { reference: (references.sft ?? references.dpo ?? references.poisoned)!, references, records, summary: summarise(options.scenarios, records) };
}

const spread = (values: (number | null)[]) => {
  const present = values.filter((value): value is number => value !== null);
  return { median: median(present), max: present.length ? Math.max(...present) : null };
};

export function summarise(scenarios: readonly FaultScenario[], records: TrialRecord[]): ScenarioSummary[] {
  return scenarios.map(({ name }) => {
    const mine = records.filter((record) => record.scenario === name);
    const bound = mine
      .filter((record) => trainingRestarted(record.train_attempts))
      .map((record) => record.first_step_within_model_load_plus_5s)
      .filter((met): met is boolean => met !== null);
    return {
      scenario: name,
      trials: mine.length,
      successes: mine.filter((record) => record.success).length,
      landed: mine.filter((record) => record.fault?.landed).length,
      steps_redone: spread(mine.map((record) => record.steps_redone)),
      restart_to_first_step_seconds: spread(mine.map((record) => record.restart_to_first_step_seconds)),
      ready_to_first_step_seconds: spread(mine.map((record) => record.ready_to_first_step_seconds)),
      model_load_seconds: spread(mine.map((record) => record.model_load_seconds)),
      first_step_within_bound: { met: bound.filter(Boolean).length, applicable: bound.length },
    };
  });
}

const format = (value: number | null, digits = 1) => (value === null ? '–' : value.toFixed(digits));

/** The summary as a Markdown table (what docs/durability.md shows). */
export function summaryTable(summary: ScenarioSummary[]): string {
  const rows = summary.map((row) =>
    [
      row.scenario,
      row.trials,
      row.successes,
      row.landed,
      `${format(row.steps_redone.median, 0)} / ${format(row.steps_redone.max, 0)}`,
      `${format(row.restart_to_first_step_seconds.median)} / ${format(row.restart_to_first_step_seconds.max)}`,
      `${format(row.ready_to_first_step_seconds.median)} / ${format(row.ready_to_first_step_seconds.max)}`,
      `${format(row.model_load_seconds.median, 2)} / ${format(row.model_load_seconds.max, 2)}`,
      row.first_step_within_bound.applicable ? `${row.first_step_within_bound.met}/${row.first_step_within_bound.applicable}` : '–',
    ].join(' | '),
  );
  return [
    'scenario | trials | successes | fault landed | steps redone (median / max) | restart → first step s (median / max) | ready → first step s (median / max) | model load s (median / max) | ready → step ≤ load + 5 s',
    '--- | --: | --: | --: | --: | --: | --: | --: | --:',
    ...rows,
  ].join('\n');
}
