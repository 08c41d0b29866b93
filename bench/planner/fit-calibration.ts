/**
 * Fits the planner's calibration constants (src/planner/calibration.ts) to the committed measurements and prints
 * the planner's error on every measurement with the constants as committed.
 *
 *   npx tsx bench/planner/fit-calibration.ts            # errors with the committed constants
 *   npx tsx bench/planner/fit-calibration.ts --fit      # also least-squares fits, to copy into calibration.ts
 *
 * Every constant enters the model linearly (a byte count times a scale, a FLOP count divided by a speed), so each
 * fit is an ordinary least-squares problem on relative errors: each row is divided by its measured value so that a
 * 135M model counts as much as an 8B one. Writes bench/planner/results/calibration-fit.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpuCalibration, gpuCalibration } from '../../src/planner/calibration.ts';
import { resolveDevice } from '../../src/planner/device.ts';
import { evaluatePlan, memoryInputs } from '../../src/planner/evaluate.ts';
import { loadCalibrationPoints, predictedPeakGib, type CalibrationPoint } from '../../src/planner/measurements.ts';
import { memoryBreakdownBytes } from '../../src/planner/memory.ts';
import type { TrainingBackend } from '../../src/planner/request.ts';
import { cpuStepTime, gpuStepTime } from '../../src/planner/throughput.ts';
import { bytesToGib } from '../../src/planner/units.ts';

const measurementDirectories = ['bench/cpu/results', 'bench/gpu/results'];

interface ErrorRow {
  label: string;
  metric: string;
  measured: number;
  predicted: number;
  relative_error: number;
}

function calibrationErrors(points: readonly CalibrationPoint[]): ErrorRow[] {
  return points.flatMap((point) => {
    const plan = evaluatePlan(point.request);
    const peaks = point.peaks.map((peak) => row(point.label, `peak ${peak.metric} GiB`, peak.gib, predictedPeakGib(plan, peak.metric)));
    return [...peaks, row(point.label, 'tokens/s', point.tokens_per_s, plan.tokens_per_s)];
  });
}

function row(label: string, metric: string, measured: number, predicted: number): ErrorRow {
  return { label, metric, measured, predicted, relative_error: (predicted - measured) / measured };
}

/** Minimises Σ ((Σ_j x_j · a_ij + b_i − y_i) / y_i)² over x by the normal equations. */
function leastSquares(rows: { features: number[]; fixed: number; measured: number }[]): number[] {
  const size = rows[0]?.features.length ?? 0;
  const normal = Array.from({ length: size }, () => new Array<number>(size + 1).fill(0));
  for (const { features, fixed, measured } of rows) {
    const scaled = features.map((feature) => feature / measured);
    const target = (measured - fixed) / measured;
    for (let i = 0; i < size; i += 1) {
      for (let j = 0; j < size; j += 1) normal[i]![j]! += scaled[i]! * scaled[j]!;
      normal[i]![size]! += scaled[i]! * target;
    }
  }
  return solve(normal);
}

function solve(augmented: number[][]): number[] {
  const size = augmented.length;
  for (let column = 0; column < size; column += 1) {
    const pivot = augmented.slice(column).reduce((best, candidate, offset) => (Math.abs(candidate[column]!) > Math.abs(augmented[best]![column]!) ? column + offset : best), column);
    [augmented[column], augmented[pivot]] = [augmented[pivot]!, augmented[column]!];
    for (let rowIndex = 0; rowIndex < size; rowIndex += 1) {
      if (rowIndex === column) continue;
      const factor = augmented[rowIndex]![column]! / augmented[column]![column]!;
      for (let k = column; k <= size; k += 1) augmented[rowIndex]![k]! -= factor * augmented[column]![k]!;
    }
  }
  return augmented.map((line, index) => line[size]! / line[index]!);
}

/** Splits a breakdown into the fitted terms (at scale 1) and everything else. */
function memoryParts(point: CalibrationPoint) {
  const device = resolveDevice(point.request.device);
  const breakdown = memoryBreakdownBytes(memoryInputs(point.request, device));
  const scales = device.kind === 'cpu' ? cpuCalibration : gpuCalibration[point.request.backend];
  const activations = bytesToGib(breakdown.activations) / scales.activation_scale;
  const logits = bytesToGib(breakdown.logits_and_loss) / scales.logits_bytes_per_element;
  const others = bytesToGib(
    Object.entries(breakdown)
      .filter(([term]) => !['activations', 'logits_and_loss', 'runtime_context', 'allocator_slack'].includes(term))
      .reduce((sum, [, bytes]) => sum + bytes, 0),
  );
  return { device, activations, logits, others };
}

function fitCpu(points: readonly CalibrationPoint[]) {
  const memory = leastSquares(
    points.map((point) => {
      const parts = memoryParts(point);
      return { features: [1, parts.activations, parts.logits], fixed: parts.others, measured: point.peaks[0]!.gib };
    }),
  );
  const throughputRows = (checkpointed: boolean) =>
    points
      .filter((point) => point.request.gradient_checkpointing === checkpointed)
      .map((point) => {
        const device = resolveDevice(point.request.device);
        const cores = device.kind === 'cpu' ? device.cores : 1;
        const time = cpuStepTime(memoryInputs(point.request, device), cores);
        return {
          features: [
            time.compute_seconds * cores * cpuCalibration.flops_per_core,
            time.memory_seconds * cpuCalibration.memory_bytes_per_s,
            time.overhead_seconds / cpuCalibration.seconds_per_layer_pass,
          ],
          fixed: 0,
          measured: (point.request.micro_batch_size * point.request.sequence_length) / point.tokens_per_s,
        };
      });
  const [inverseFlops, inverseBandwidth, overhead] = leastSquares(throughputRows(false));
  return {
    runtime_gib: memory[0],
    activation_scale: memory[1],
    logits_bytes_per_element: memory[2],
    flops_per_core: 1 / inverseFlops!,
    memory_bytes_per_s: 1 / inverseBandwidth!,
    seconds_per_layer_pass: overhead,
  };
}

function fitGpuBackend(points: readonly CalibrationPoint[], backend: TrainingBackend) {
  const ofBackend = points.filter((point) => point.request.backend === backend && resolveDevice(point.request.device).kind === 'cuda');
  if (ofBackend.length === 0) return undefined;
  const memory = leastSquares(
    ofBackend.map((point) => {
      const parts = memoryParts(point);
      const allocated = point.peaks.find((peak) => peak.metric === 'cuda_allocated')!.gib;
      return { features: [parts.activations, parts.logits], fixed: parts.others, measured: allocated };
    }),
  );
  const slackFractions = ofBackend.map((point) => {
    const reserved = point.peaks.find((peak) => peak.metric === 'cuda_reserved')!.gib;
    const allocated = point.peaks.find((peak) => peak.metric === 'cuda_allocated')!.gib;
    return reserved / allocated - 1;
  });
  const calibration = gpuCalibration[backend];
  const throughput = leastSquares(
    ofBackend.map((point) => {
      const device = resolveDevice(point.request.device);
      if (device.kind !== 'cuda') throw new Error('unreachable: filtered to cuda');
      const time = gpuStepTime(memoryInputs(point.request, device), device.gpu);
      const unitCompute = time.compute_seconds * calibration.compute_efficiency[point.request.quantization];
      const quantized = point.request.quantization !== 'none';
      return {
        features: [quantized ? 0 : unitCompute, quantized ? unitCompute : 0, time.overhead_seconds / calibration.seconds_per_layer_pass],
        fixed: time.memory_seconds,
        measured: (point.request.micro_batch_size * point.request.sequence_length) / point.tokens_per_s,
      };
    }),
  );
  return {
    activation_scale: memory[0],
    logits_bytes_per_element: memory[1],
    mean_allocator_slack_fraction: slackFractions.reduce((sum, value) => sum + value, 0) / slackFractions.length,
    compute_efficiency_none: 1 / throughput[0]!,
    compute_efficiency_4bit: 1 / throughput[1]!,
    seconds_per_layer_pass: throughput[2],
  };
}

function main(): void {
  const points = loadCalibrationPoints(measurementDirectories);
  const errors = calibrationErrors(points);
  for (const error of errors) {
    console.log(`${error.label.padEnd(52)} ${error.metric.padEnd(26)} measured ${error.measured.toFixed(3).padStart(10)} planned ${error.predicted.toFixed(3).padStart(10)} ${(100 * error.relative_error).toFixed(1).padStart(6)} %`);
  }
  const worst = (metricPrefix: string) => Math.max(0, ...errors.filter((error) => error.metric.startsWith(metricPrefix)).map((error) => Math.abs(error.relative_error)));
  const summary = { points: points.length, max_abs_error_peak: worst('peak'), max_abs_error_tokens_per_s: worst('tokens/s') };
  console.log(summary);
  const fits = process.argv.includes('--fit')
    ? {
        cpu: points.some((point) => resolveDevice(point.request.device).kind === 'cpu') ? fitCpu(points.filter((point) => resolveDevice(point.request.device).kind === 'cpu')) : undefined,
        unsloth: fitGpuBackend(points, 'unsloth'),
        'hf-peft': fitGpuBackend(points, 'hf-peft'),
      }
    : undefined;
  if (fits !== undefined) console.log(JSON.stringify(fits, null, 2));
  mkdirSync('bench/planner/results', { recursive: true });
  writeFileSync('bench/planner/results/calibration-fit.json', `${JSON.stringify({ date: new Date().toISOString(), summary, errors, fits }, null, 2)}\n`);
}

main();
