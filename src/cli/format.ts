import type { RunStatusEntry, RunStatusReport } from '../client.ts';
import type { FineTuneResult } from '../../workflows/index.ts';
import { comparedScores, describeVerdict, judgeLines, type RunQuality, suiteScoreRows, verdictLines } from '../quality/index.ts';

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const whole = Math.max(0, Math.round(seconds));
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = whole % 60;
  return hours > 0 ? `${hours}h${String(minutes).padStart(2, '0')}m` : minutes > 0 ? `${minutes}m${String(rest).padStart(2, '0')}s` : `${rest}s`;
}

const number = (value: number | null | undefined, digits = 4) => (value === null || value === undefined ? '—' : value.toFixed(digits));

/** `loss 0.4123 · 512 tok/s · ETA 1m20s · checkpoint 10`: the live figures, without stage and step. */
export function progressDetails(status: RunStatusReport): string {
  const parts: string[] = [];
  if (status.loss !== null) parts.push(`loss ${number(status.loss)}`);
  if (status.tokens_per_second) {
    const padding = status.padding_fraction ? ` (${Math.round(status.padding_fraction * 100)} % padding)` : '';
    parts.push(`${Math.round(status.tokens_per_second)} tok/s${padding}`);
  }
  if (status.eta_seconds !== null) parts.push(`ETA ${formatDuration(status.eta_seconds)}`);
  if (status.last_checkpoint) parts.push(`checkpoint ${status.last_checkpoint.step}`);
  return parts.join(' · ');
}

/** One line: `train · step 12/36 · loss 0.4123 · 512 tok/s · ETA 1m20s · checkpoint 10 · resumed 1×`. */
export function progressLine(status: RunStatusReport): string {
  const parts = [status.stage ?? status.status];
  if (status.step !== null && status.total_steps !== null) parts.push(`step ${status.step}/${status.total_steps}`);
  const details = progressDetails(status);
  if (details) parts.push(details);
  if (status.train_attempt && status.train_attempt > 1) parts.push(`attempt ${status.train_attempt}`);
  if (status.resumes > 0) parts.push(`resumed ${status.resumes}× (${status.steps_redone} steps redone)`);
  if (status.rollbacks.length > 0) parts.push(`rolled back ${status.rollbacks.length}×`);
  return parts.join(' · ');
}

export function evaluationTable(result: FineTuneResult): string {
  const { metrics } = result;
  const rows = [
    ['', 'base', 'tuned'],
    ['validation loss', number(metrics.base_val_loss), number(metrics.tuned_val_loss)],
    ['perplexity', number(metrics.base_perplexity, 2), number(metrics.tuned_perplexity, 2)],
    // A dpo run's held-out pairs: how often each model prefers the chosen response, and by how much (nats).
    ...(metrics.preference === undefined
      ? []
      : [
          ['reward accuracy', number(metrics.preference.base.reward_accuracy, 3), number(metrics.preference.tuned.reward_accuracy, 3)],
          ['reward margin', number(metrics.preference.base.reward_margin, 3), number(metrics.preference.tuned.reward_margin, 3)],
        ]),
    ...(result.quality ? suiteScoreRows(result.quality.suites).map((row) => [row.metric, row.base, row.candidate]) : []),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const table = rows.map((row) => row.map((cell, column) => cell.padEnd(widths[column]!)).join('  ')).join('\n');
  const samples = result.samples
    .map(
      (sample) =>
        `\nprompt: ${sample.prompt.replace(/\n+/g, ' ')}\n  base : ${sample.base.replace(/\n+/g, ' ')}\n  tuned: ${sample.tuned.replace(/\n+/g, ' ')}`,
    )
    .join('\n');
  const gates = result.quality?.gates.checks.length
    ? `\n\npromotion gates (${result.quality.gates.passed ? 'passed' : 'FAILED'}):\n  ${verdictLines(result.quality.gates).join('\n  ')}`
    : '';
  const suites = result.quality ? `\n(suites: ${result.quality.suites.rows} reference rows from ${result.quality.suites.references})` : '';
  return `${table}${suites}${gates}\n${samples}`;
}

/** A completed run's quality in `tuneflow status`: each judge's win rate and opponent, and the gates' verdict in one line. */
export function qualityLines(quality: RunQuality): string[] {
  const { candidate, judged_against } = comparedScores(quality.suites, null);
  return [...judgeLines(candidate, judged_against), ...(quality.gates.checks.length ? [describeVerdict(quality.gates)] : [])];
}

const gib = (value: number) => `${value.toFixed(1)} GiB`;

/** `run dpo (dpo, from sft): 18 steps · peak 2.1 GiB of 15.5 GiB on cpu · ~4m10s`: a run's plan, one line. */
export function runPlanLine(run: RunStatusEntry): string {
  const head = `run ${run.name} (${run.objective}${run.from === null ? '' : `, from ${run.from}`})`;
  if (run.plan === null) return `${head}: not planned yet`;
  const { plan } = run;
  const steps = plan.steps === null ? '' : `${plan.steps} steps · `;
  const fits = plan.fits ? '' : ' · DOES NOT FIT';
  return `${head}: ${steps}peak ${gib(plan.peak_vram_gib)} of ${gib(plan.available_gib)} on ${plan.device} · ~${formatDuration(plan.eta_seconds)}${fits}`;
}

/** `run sft: done · 8 steps · train loss 0.4123 · val loss 1.2 → 0.9`: where a run of several stands. */
export function runStatusLine(run: RunStatusEntry): string {
  const parts = [`run ${run.name}`, run.stage];
  if (run.final_step !== null) parts.push(`${run.final_step} steps`);
  else if (run.plan?.steps != null) parts.push(`${run.plan.steps} steps planned`);
  if (run.train_loss !== null) parts.push(`train loss ${number(run.train_loss)}`);
  const metrics = run.metrics;
  if (metrics?.base_val_loss != null || metrics?.tuned_val_loss != null)
    parts.push(`val loss ${number(metrics?.base_val_loss)} → ${number(metrics?.tuned_val_loss)}`);
  if (metrics?.preference) {
    const { base, tuned } = metrics.preference;
    parts.push(`reward accuracy ${number(base.reward_accuracy, 3)} → ${number(tuned.reward_accuracy, 3)}`);
  }
  parts.push(run.run);
  return parts.join(' · ');
}
