/**
 * `tuneflow report`: a run as one HTML page (charts inline, opens offline) with its charts beside it as SVG and
 * PNG files: train and validation loss, learning rate, throughput; plan vs actual; base vs tuned evaluation;
 * sample generations side by side; every artifact with its size and sha256.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelVersion } from '../registry/schema.ts';
import { writeFileAtomic } from '../runtime/atomic-write.ts';
import type { FineTuneResult } from '../../workflows/index.ts';
import { renderCharts } from './charts.ts';
import { readReportData } from './data.ts';
import { renderHtml } from './html.ts';

export interface WriteReportOptions {
  workflowId: string;
  result: FineTuneResult;
  runDirectory: string;
  outDirectory: string;
  /** The registry's version this run made, if any: adds the champion's scores and the retrain's gate verdict. */
  registered?: ModelVersion | null;
}

export interface WrittenReport {
  html: string;
  charts: { svg: string; png: string }[];
}

export async function writeRunReport(options: WriteReportOptions): Promise<WrittenReport> {
  const data = await readReportData(options.workflowId, options.result, options.runDirectory, options.registered ?? null);
  const charts = await renderCharts(data);
  const chartDirectory = join(options.outDirectory, 'charts');
  await mkdir(chartDirectory, { recursive: true });
  const written: WrittenReport['charts'] = [];
  for (const chart of charts) {
    const svg = join(chartDirectory, `${chart.name}.svg`);
    const png = join(chartDirectory, `${chart.name}.png`);
    await writeFileAtomic(svg, chart.svg);
    await writeFileAtomic(png, chart.png);
    written.push({ svg, png });
  }
  const html = join(options.outDirectory, 'index.html');
  await writeFileAtomic(html, renderHtml(data, charts, new Date()));
  return { html, charts: written };
}
