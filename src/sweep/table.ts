/**
 * The sweep's result table from what its trials did: one row per trial with its losses per rung, speed, time,
 * steps and adapter size, the Pareto front and the best trial marked. Pure: the sweep workflow returns it and the
 * CLI writes and prints it.
 */
import { bestTrial, paretoFront, type TrialStanding } from './pareto.ts';
import type { RungResult, SweepTable, Trial, TrialOutcome, TrialRow } from './schema.ts';

/** LoRA weights are saved as float32 safetensors whatever the base model's dtype. */
const bytesPerAdapterParameter = 4;

/** What the sweep workflow knows of one trial. */
export interface TrialRecord extends Trial {
  outcome: TrialOutcome;
  reason: string | null;
  workflow_id: string;
  run_uri: string;
  planned: TrialRow['planned'];
  rungs: RungResult[];
  adapter_uri: string | null;
  last_checkpoint_uri: string | null;
}

export function sweepTable(records: readonly TrialRecord[], rungs: readonly number[], plannedSeconds: number, wallSeconds: number): SweepTable {
  const standings: TrialStanding[] = records
    .filter((record) => record.planned !== null && record.rungs.length > 0)
    .map((record) => ({
      key: record.key,
      val_losses: record.rungs.map(({ val_loss }) => val_loss),
      peak_vram_gib: record.planned!.peak_vram_gib,
      step_seconds: record.planned!.step_seconds,
    }));
  const front = paretoFront(standings);
  const best = bestTrial(standings);
  const trials: TrialRow[] = records.map((record) => {
    const parameters = record.planned?.trainable_parameters ?? null;
    return {
      ...record,
      steps_spent: record.rungs.reduce((sum, rung) => sum + rung.steps_trained, 0),
      wall_seconds: record.rungs.reduce((sum, rung) => sum + rung.wall_seconds, 0),
      tokens_per_second: record.rungs.at(-1)?.tokens_per_second ?? null,
      adapter_parameters: parameters,
      adapter_bytes: parameters === null ? null : parameters * bytesPerAdapterParameter,
      pareto: front.includes(record.key),
      best: record.key === best,
    };
  });
  const fitting = records.filter((record) => record.planned !== null).length;
  return {
    rungs: [...rungs],
    trials,
    best,
    pareto_front: front,
    steps_spent: trials.reduce((sum, row) => sum + row.steps_spent, 0),
    steps_without_halving: fitting * (rungs.at(-1) ?? 0),
    planned_seconds: plannedSeconds,
    wall_seconds: wallSeconds,
  };
}

const number = (value: number | null | undefined, digits: number) => (value == null ? '—' : value.toFixed(digits));

/** The table as text, one line per trial: what `tuneflow sweep` and `tuneflow sweep show` print. */
export function formatSweepTable(table: SweepTable): string {
  const header = ['', 'trial', 'outcome', ...table.rungs.map((rung) => `val@${rung}`), 'peak GiB', 's/step', 'tok/s', 'wall s', 'steps', 'adapter MB'];
  const rows = table.trials.map((row) => [
    `${row.best ? '★' : ' '}${row.pareto ? 'P' : ' '}`,
    row.key,
    row.outcome,
    ...table.rungs.map((_, index) => number(row.rungs[index]?.val_loss, 4)),
    number(row.planned?.peak_vram_gib, 2),
    number(row.planned?.step_seconds, 2),
    number(row.tokens_per_second, 0),
    number(row.wall_seconds, 0),
    String(row.steps_spent),
    row.adapter_bytes === null ? '—' : (row.adapter_bytes / 1e6).toFixed(2),
  ]);
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => row[column]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, column) => cell.padEnd(widths[column]!))
      .join('  ')
      .trimEnd();
  const reasons = table.trials.filter((row) => row.reason !== null).map((row) => `  ${row.key}: ${row.reason}`);
  return [
    line(header),
    ...rows.map(line),
    '',
    `★ best: ${table.best ?? '—'}   P: Pareto front (validation loss at equal steps, planned peak VRAM, planned s/step)`,
    `steps spent ${table.steps_spent} of ${table.steps_without_halving} without halving; planned ${Math.round(table.planned_seconds)} s, took ${Math.round(table.wall_seconds)} s`,
    ...(reasons.length > 0 ? ['', 'not trained to the end:', ...reasons] : []),
  ].join('\n');
}
