/**
 * The report's charts: Vega-Lite specifications rendered to SVG by Vega in Node (no browser), and each SVG
 * rasterised to PNG by resvg (for slides, chats and mail). One look for all: `chartConfig`.
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import type { RollbackRecord } from '../contract/index.ts';
import type { ReportData, TrainLogRecord } from './data.ts';

export interface Chart {
  name: string;
  title: string;
  svg: string;
  png: Buffer;
}

const palette = { train: '#2563eb', validation: '#ea580c', plan: '#6b7280', resume: '#dc2626', rate: '#059669' };
const font = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';

const chartConfig = {
  font,
  background: '#ffffff',
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', gridColor: '#e5e7eb', domainColor: '#9ca3af', tickColor: '#9ca3af' },
  legend: { labelFontSize: 11, titleFontSize: 11, orient: 'top', direction: 'horizontal' },
  title: { fontSize: 14, anchor: 'start', fontWeight: 'bold', color: '#111827' },
} as const;

const size = { width: 900, height: 260 };

/** The newest record of each step: a step trained again after a resume replaces the lost attempt's. */
function lastRecordPerStep(log: TrainLogRecord[]): TrainLogRecord[] {
  const byStep = new Map<number, TrainLogRecord>();
  for (const record of log) byStep.set(record.step, record);
  return [...byStep.values()].sort((left, right) => left.step - right.step);
}

/**
 * Steps where training restarted from a checkpoint: the first step of each attempt after the first, and where a step
 * was trained again within an attempt, a rollback (train.rollback) when the run recorded one there.
 */
function resumeSteps(log: TrainLogRecord[], rollbacks: readonly RollbackRecord[]): { step: number; label: string }[] {
  const resumes: { step: number; label: string }[] = [];
  for (let index = 1; index < log.length; index++) {
    const previous = log[index - 1]!;
    const record = log[index]!;
    if (record.attempt !== previous.attempt || record.step <= previous.step) {
      const restored = record.step - 1;
      const rollback =
        record.attempt === previous.attempt
          ? rollbacks.find((candidate) => candidate.restored_step === restored && candidate.step === previous.step + 1 && candidate.attempt === record.attempt)
          : undefined;
      resumes.push({ step: restored, label: rollback ? `rolled back to ${restored} (step ${rollback.step} refused)` : `resumed from ${restored}` });
    }
  }
  return resumes;
}

function lossChart(data: ReportData): TopLevelSpec {
  const { result } = data;
  const train = lastRecordPerStep(data.trainLog).map((record) => ({ step: record.step, loss: record.loss, series: 'train loss' }));
  // Validation loss is measured by the evaluation (base at step 0, tuned at the end) and at checkpoints.
  const validation = [
    ...(result.metrics.base_val_loss === null ? [] : [{ step: 0, loss: result.metrics.base_val_loss }]),
    ...data.checkpoints.flatMap((checkpoint) => (typeof checkpoint.val_loss === 'number' ? [{ step: checkpoint.step, loss: checkpoint.val_loss }] : [])),
    ...(result.metrics.tuned_val_loss === null ? [] : [{ step: result.training.final_step, loss: result.metrics.tuned_val_loss }]),
  ]
    .sort((left, right) => left.step - right.step)
    .map((point) => ({ ...point, series: 'validation loss' }));
  const resumes = resumeSteps(data.trainLog, result.training.rollbacks ?? []);
  return {
    ...size,
    title: 'Loss',
    data: { values: [...train, ...validation] },
    layer: [
      {
        mark: { type: 'line', strokeWidth: 2 },
        transform: [{ filter: "datum.series === 'train loss'" }],
        encoding: {
          x: { field: 'step', type: 'quantitative', title: 'optimizer step' },
          y: { field: 'loss', type: 'quantitative', title: 'loss', scale: { zero: false } },
          color: {
            field: 'series',
            type: 'nominal',
            title: null,
            scale: { domain: ['train loss', 'validation loss'], range: [palette.train, palette.validation] },
          },
        },
      },
      {
        mark: { type: 'line', strokeWidth: 2, strokeDash: [6, 4], point: { size: 60, filled: true } },
        transform: [{ filter: "datum.series === 'validation loss'" }],
        encoding: { x: { field: 'step', type: 'quantitative' }, y: { field: 'loss', type: 'quantitative' }, color: { field: 'series', type: 'nominal' } },
      },
      ...(resumes.length === 0
        ? []
        : [
            {
              data: { values: resumes },
              mark: { type: 'rule' as const, color: palette.resume, strokeDash: [2, 2] },
              encoding: { x: { field: 'step', type: 'quantitative' as const } },
            },
          ]),
    ],
    config: chartConfig,
  } as TopLevelSpec;
}

function learningRateChart(data: ReportData): TopLevelSpec {
  return {
    ...size,
    height: 180,
    title: 'Learning rate',
    data: { values: lastRecordPerStep(data.trainLog).map((record) => ({ step: record.step, learning_rate: record.learning_rate })) },
    mark: { type: 'line', strokeWidth: 2, color: palette.rate },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'optimizer step' },
      y: { field: 'learning_rate', type: 'quantitative', title: 'learning rate', axis: { format: '.1e' } },
    },
    config: chartConfig,
  } as TopLevelSpec;
}

/**
 * Throughput over wall-clock time. The train log has each step's end time; a step trains `effective batch`
 * rows, so tokens per step is the mean trained tokens per row times that (the log has no per-step token count).
 * Averaged over 5 steps; the dashed line is the plan's prediction.
 */
function throughputChart(data: ReportData): TopLevelSpec {
  const { result } = data;
  const tokensPerRow = result.tokens.train.tokens_trained / Math.max(1, result.tokens.train.rows_trained);
  const tokensPerStep = tokensPerRow * result.plan.effective_batch_size;
  const points: { seconds: number; tokens_per_second: number }[] = [];
  const started = data.trainLog[0]?.time ?? 0;
  for (let index = 1; index < data.trainLog.length; index++) {
    const previous = data.trainLog[index - 1]!;
    const record = data.trainLog[index]!;
    const elapsed = record.time - previous.time;
    if (record.attempt !== previous.attempt || elapsed <= 0) continue;
    points.push({ seconds: record.time - started, tokens_per_second: tokensPerStep / elapsed });
  }
  return {
    ...size,
    height: 200,
    title: 'Throughput',
    layer: [
      {
        data: { values: points },
        transform: [{ window: [{ op: 'mean', field: 'tokens_per_second', as: 'smoothed' }], frame: [-4, 0] }],
        mark: { type: 'line', strokeWidth: 2, color: palette.train },
        encoding: {
          x: { field: 'seconds', type: 'quantitative', title: 'seconds since the first step' },
          y: { field: 'smoothed', type: 'quantitative', title: 'tokens/s (5-step mean)' },
        },
      },
      {
        data: { values: [{ planned: result.plan.tokens_per_s, label: `plan ${Math.round(result.plan.tokens_per_s)} tok/s` }] },
        layer: [
          { mark: { type: 'rule', color: palette.plan, strokeDash: [6, 4] }, encoding: { y: { field: 'planned', type: 'quantitative' } } },
          {
            mark: { type: 'text', align: 'left', dx: 4, dy: -6, color: palette.plan, fontSize: 11 },
            encoding: { y: { field: 'planned', type: 'quantitative' }, x: { value: 0 }, text: { field: 'label' } },
          },
        ],
      },
    ],
    config: chartConfig,
  } as TopLevelSpec;
}

async function render(name: string, title: string, specification: TopLevelSpec): Promise<Chart> {
  const view = new vega.View(vega.parse(compile(specification).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
  return { name, title, svg, png };
}

/** The charts a run has data for: none of the training charts when the log is empty (a run that never trained). */
export async function renderCharts(data: ReportData): Promise<Chart[]> {
  if (data.trainLog.length === 0) return [];
  return Promise.all([
    render('loss', 'Train and validation loss', lossChart(data)),
    render('learning-rate', 'Learning rate', learningRateChart(data)),
    render('throughput', 'Throughput', throughputChart(data)),
  ]);
}
