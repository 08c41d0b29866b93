import { evaluatePlan } from '../../src/planner/index.ts';
import { loadCalibrationPoints, PeakMetric, predictedPeakGib } from './measurements.ts';

/**
 * Planned against measured for every run in the given measurement folders, as a markdown table: how far the
 * planner is from runs it was not fitted on. Usage: npx tsx bench/planner/compare.ts bench/gpu/unfitted
 */
const percent = (planned: number, measured: number): string => `${planned / measured - 1 >= 0 ? '+' : ''}${((planned / measured - 1) * 100).toFixed(0)} %`;
console.log('| run | peak allocated GiB, planned / measured | tokens/s, planned / measured |\n|---|---|---|');
for (const point of loadCalibrationPoints(process.argv.slice(2))) {
  const plan = evaluatePlan(point.request);
  const allocated = point.peaks.find((peak) => peak.metric === PeakMetric.CudaAllocated);
  const memory =
    allocated === undefined
      ? 'n/a'
      : `${predictedPeakGib(plan, allocated.metric).toFixed(1)} / ${allocated.gib.toFixed(1)} (${percent(predictedPeakGib(plan, allocated.metric), allocated.gib)})`;
  console.log(
    `| ${point.label} | ${memory} | ${plan.tokens_per_s.toFixed(0)} / ${point.tokens_per_s.toFixed(0)} (${percent(plan.tokens_per_s, point.tokens_per_s)}) |`,
  );
}
