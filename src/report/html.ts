/**
 * The report page: one HTML file with its charts inline as SVG, its styles inline, no script and no network,
 * so it opens offline, in a mail attachment, or from a CI artifact.
 */
import { scoresFromMetrics, suiteScoreRows, verdictLines } from '../quality/index.ts';
import type { Chart } from './charts.ts';
import type { ReportData } from './data.ts';
import { describeRollbacks } from '../../workflows/index.ts';

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (character) => `&#${character.charCodeAt(0)};`);
const fixed = (value: number | null | undefined, digits: number) => (value === null || value === undefined ? '—' : value.toFixed(digits));
const count = (value: number | null) => (value === null ? '—' : Math.round(value).toLocaleString('en-US'));

function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  const whole = Math.round(seconds);
  if (whole < 60) return `${whole} s`;
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  return hours > 0 ? `${hours} h ${minutes} min` : `${minutes} min ${whole % 60} s`;
}

function bytes(value: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let scaled = value;
  let unit = 0;
  while (scaled >= 1024 && unit < units.length - 1) {
    scaled /= 1024;
    unit++;
  }
  return `${unit === 0 ? scaled : scaled.toFixed(1)} ${units[unit]}`;
}

/** Ratio of actual to planned, as `1.12× plan`, or nothing when either is unknown. */
function versusPlan(actual: number | null, planned: number | null): string {
  if (actual === null || planned === null || planned === 0) return '';
  return `${(actual / planned).toFixed(2)}× plan`;
}

function trainingSeconds(data: ReportData): number | null {
  const log = data.trainLog;
  if (log.length < 2) return null;
  // Wall time the steps took, attempt by attempt: the gap while a worker was down is not training time.
  let seconds = 0;
  for (let index = 1; index < log.length; index++) if (log[index]!.attempt === log[index - 1]!.attempt) seconds += log[index]!.time - log[index - 1]!.time;
  return seconds + seconds / Math.max(1, log.length - 1);
}

function planVersusActual(data: ReportData): string {
  const { plan, training } = data.result;
  const seconds = trainingSeconds(data);
  const rows: [string, string, string, string][] = [
    ['peak memory per device', `${fixed(plan.peak_vram_gib, 2)} GiB of ${fixed(plan.available_gib, 1)}`, 'not measured by this run', ''],
    ['tokens/s', count(plan.tokens_per_s), count(training.tokens_per_second), versusPlan(training.tokens_per_second, plan.tokens_per_s)],
    ['training time', duration(plan.eta_seconds), duration(seconds), versusPlan(seconds, plan.eta_seconds ?? null)],
  ];
  return table(['', 'plan', 'actual', ''], rows);
}

function table(header: string[], rows: string[][], className = ''): string {
  return `<table class="${className}"><thead><tr>${header.map((cell) => `<th>${escapeHtml(cell)}</th>`).join('')}</tr></thead><tbody>${rows
    .map((row) => `<tr>${row.map((cell) => `<td>${escapeHtml(cell)}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;
}

function evaluation(data: ReportData): string {
  const { metrics } = data.result;
  const change = (base: number | null, tuned: number | null) => (base === null || tuned === null ? '' : `${(((tuned - base) / base) * 100).toFixed(1)} %`);
  return table(
    ['', 'base', 'tuned', 'change'],
    [
      ['validation loss', fixed(metrics.base_val_loss, 4), fixed(metrics.tuned_val_loss, 4), change(metrics.base_val_loss, metrics.tuned_val_loss)],
      ['perplexity', fixed(metrics.base_perplexity, 2), fixed(metrics.tuned_perplexity, 2), change(metrics.base_perplexity, metrics.tuned_perplexity)],
    ],
    'numbers',
  );
}

/** The suites side by side (base / champion / candidate) and the gate verdict: the retrain's when registered, else the run's. */
function quality(data: ReportData): string {
  const run = data.result.quality;
  if (!run) return '<p class="muted">No evaluation suites in the spec (evaluate.suites).</p>';
  const registered = data.registered;
  const champion = registered?.quality?.verdict.champion_version ? scoresFromMetrics(registered.metrics, 'champion') : null;
  const verdict = registered?.quality?.verdict ?? run.gates;
  // Retraining judged the candidate against the champion too: the registered version holds that score and its opponent.
  const judged = registered?.judged_against ? { scores: scoresFromMetrics(registered.metrics, 'own'), against: registered.judged_against } : undefined;
  const rows = suiteScoreRows(run.suites, champion, judged).map((row) => [row.metric, row.base, row.champion, row.candidate]);
  const header = ['', 'base', champion ? `champion v${verdict.champion_version}` : 'champion', 'candidate'];
  const gates = verdict.checks.length
    ? `<p><strong>Gates ${verdict.passed ? 'passed' : 'FAILED'}</strong>${registered ? ` (registered as ${escapeHtml(registered.name)} v${registered.version})` : ''}</p><ul>${verdictLines(
        verdict,
      )
        .map((line) => `<li>${escapeHtml(line)}</li>`)
        .join('')}</ul>`
    : '<p class="muted">No gates in the spec (evaluate.gates).</p>';
  return `${table(header, rows, 'numbers')}<p class="muted">${run.suites.rows} reference rows from ${escapeHtml(run.suites.references)}</p>${gates}`;
}

function samples(data: ReportData): string {
  if (data.result.samples.length === 0) return '<p class="muted">No sample prompts in the spec (evaluate.sample_prompts).</p>';
  return data.result.samples
    .map(
      (sample, index) => `<div class="sample">
  <div class="prompt"><span class="label">prompt ${index + 1}</span><pre>${escapeHtml(sample.prompt)}</pre></div>
  <div class="pair">
    <div><span class="label">base</span><pre>${escapeHtml(sample.base) || '<span class="muted">(empty)</span>'}</pre></div>
    <div><span class="label tuned">tuned</span><pre>${escapeHtml(sample.tuned) || '<span class="muted">(empty)</span>'}</pre></div>
  </div>
</div>`,
    )
    .join('\n');
}

function artifacts(data: ReportData): string {
  const total = data.artifacts.reduce((sum, artifact) => sum + artifact.bytes, 0);
  return `${table(
    ['file', 'size', 'sha256'],
    data.artifacts.map((artifact) => [artifact.path, bytes(artifact.bytes), artifact.sha256]),
    'artifacts',
  )}<p class="muted">${data.artifacts.length} files, ${bytes(total)} in all.</p>`;
}

function summary(data: ReportData): string {
  const { result } = data;
  const spec = result.dataset;
  const facts: [string, string][] = [
    ['model', result.model.source],
    ['device', `${result.training.device} · ${result.training.backend} · ${result.training.dtype}`],
    [
      'dataset',
      `${count(spec.train_rows)} train / ${count(spec.val_rows)} validation rows (${spec.format}), ${count(result.tokens.train.tokens_trained)} train tokens`,
    ],
    ['steps', `${result.training.final_step} of ${result.training.total_steps}, effective batch ${result.plan.effective_batch_size}`],
    ['resumes', result.progress.resumes === 0 ? 'none' : `${result.progress.resumes} (${result.progress.steps_redone} steps redone)`],
    ['rollbacks', describeRollbacks(result.training.rollbacks) ?? 'none'],
    ['final train loss', fixed(result.metrics.final_train_loss, 4)],
  ];
  return `<dl class="facts">${facts.map(([term, value]) => `<dt>${escapeHtml(term)}</dt><dd>${escapeHtml(value)}</dd>`).join('')}</dl>`;
}

const styles = `
:root { color-scheme: light; --ink: #111827; --muted: #6b7280; --line: #e5e7eb; --accent: #2563eb; --tuned: #059669; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: var(--ink); background: #f9fafb; }
main { max-width: 1080px; margin: 0 auto; padding: 32px 24px 64px; }
header h1 { margin: 0 0 4px; font-size: 26px; }
header p { margin: 0; color: var(--muted); }
section { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 20px 24px; margin-top: 20px; }
h2 { font-size: 17px; margin: 0 0 12px; }
.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 20px; margin: 0; }
.facts dt { color: var(--muted); }
.facts dd { margin: 0; }
.charts figure { margin: 0 0 12px; }
.charts svg { max-width: 100%; height: auto; }
.charts figcaption { font-size: 13px; color: var(--muted); }
.charts figcaption a { color: var(--accent); }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { font-weight: 600; font-size: 13px; color: var(--muted); }
table.numbers td:not(:first-child), table.numbers th:not(:first-child) { text-align: right; }
table.artifacts td:first-child { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 13px; }
table.artifacts td:last-child { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 11px; color: var(--muted); word-break: break-all; }
table.artifacts td:nth-child(2) { white-space: nowrap; text-align: right; }
.sample { border-top: 1px solid var(--line); padding: 12px 0; }
.sample:first-of-type { border-top: none; padding-top: 0; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; margin-top: 8px; }
pre { margin: 4px 0 0; padding: 10px 12px; background: #f3f4f6; border-radius: 6px; white-space: pre-wrap; word-break: break-word; font: 13px/1.45 ui-monospace, "DejaVu Sans Mono", monospace; }
.label { font-size: 12px; font-weight: 600; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.label.tuned { color: var(--tuned); }
.muted { color: var(--muted); }
footer { margin-top: 24px; font-size: 13px; color: var(--muted); }
`;

export function renderHtml(data: ReportData, charts: Chart[], generatedAt: Date): string {
  const chartFigures = charts
    .map(
      (chart) =>
        `<figure>${chart.svg.replace(/^<\?xml[^>]*>\s*/, '')}<figcaption>${escapeHtml(chart.title)}: <a href="charts/${chart.name}.svg">SVG</a> · <a href="charts/${chart.name}.png">PNG</a></figcaption></figure>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tuneflow run ${escapeHtml(data.workflowId)}</title>
<style>${styles}</style>
</head>
<body>
<main>
<header>
  <h1>${escapeHtml(data.workflowId)}</h1>
  <p>LoRA fine-tune of ${escapeHtml(data.result.model.source)} · completed · ${data.result.training.final_step} steps</p>
</header>
<section><h2>Run</h2>${summary(data)}</section>
<section class="charts"><h2>Training</h2>${chartFigures || '<p class="muted">The train log is empty: nothing to chart.</p>'}</section>
<section><h2>Plan vs actual</h2>${planVersusActual(data)}</section>
<section><h2>Evaluation: base vs tuned</h2>${evaluation(data)}</section>
<section><h2>Quality: suites and gates</h2>${quality(data)}</section>
<section><h2>Sample generations</h2>${samples(data)}</section>
<section><h2>Artifacts</h2>${artifacts(data)}</section>
<footer>Written by <code>tuneflow report</code> at ${generatedAt.toISOString()} from the run's train_log.jsonl, run.json and workflow result.</footer>
</main>
</body>
</html>
`;
}
