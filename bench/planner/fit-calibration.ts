/**
 * Fits the planner's calibration constants (src/planner/calibration.ts) to the committed measurements and prints
 * the planner's error on every measurement with the constants as committed.
 *
 *   npx tsx bench/planner/fit-calibration.ts            # errors with the committed constants
 *   npx tsx bench/planner/fit-calibration.ts --fit      # also fits the constants, to copy into calibration.ts
 *   npx tsx bench/planner/fit-calibration.ts --hold-out llama-3.1-8b   # fit without the 8B runs, predict them
 *
 * The memory constants enter linearly (a byte count times a scale), so they are an ordinary least-squares fit on
 * relative errors (each row divided by its measured value, so that a 135M model counts as much as an 8B one). The
 * throughput constants are fitted to minimise the worst relative error, which is what the calibration test bounds.
 * Writes bench/planner/results/calibration-fit.json.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpuCalibration, gpuCalibration, type BackendCalibration } from '../../src/planner/calibration.ts';
import { resolveDevice } from '../../src/planner/device.ts';
import { evaluatePlan, memoryInputs } from '../../src/planner/evaluate.ts';
import { loadCalibrationPoints, predictedPeakGib, type CalibrationPoint } from './measurements.ts';
import { memoryBreakdownBytes } from '../../src/planner/memory.ts';
import type { TrainingBackend } from '../../src/contract/vocabulary.ts';
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
    const pivot = augmented
      .slice(column)
      .reduce((best, candidate, offset) => (Math.abs(candidate[column]!) > Math.abs(augmented[best]![column]!) ? column + offset : best), column);
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

/**
 * Minimises the log errors' L4 norm by coordinate search in log space: close to minimising the worst point, which
 * is what the calibration test bounds, yet smooth enough that the search does not stall on one stubborn point.
 */
function minimaxFit(start: number[], worstLogError: (parameters: number[]) => number): number[] {
  let best = [...start];
  let bestError = worstLogError(best);
  for (let step = 1; step > 0.001; step /= 2) {
    let improved = true;
    while (improved) {
      improved = false;
      for (let index = 0; index < best.length; index += 1) {
        for (const direction of [1, -1]) {
          const candidate = best.map((value, position) => (position === index ? value * Math.exp(direction * step) : value));
          const error = worstLogError(candidate);
          if (error < bestError) [best, bestError, improved] = [candidate, error, true];
        }
      }
    }
  }
  return best;
}

const worst = (errors: number[]) => errors.reduce((sum, error) => sum + error ** 4, 0);
const tokensPerMicroStep = (point: CalibrationPoint) => point.request.micro_batch_size * point.request.sequence_length;

function fitCpu(points: readonly CalibrationPoint[]) {
  const memory = leastSquares(
    points.map((point) => {
      const parts = memoryParts(point);
      return { features: [1, parts.activations, parts.logits], fixed: parts.others, measured: point.peaks[0]!.gib };
    }),
  );
  const [flopsPerCore, memoryBytesPerSecond, hostPerLayerPass] = minimaxFit(
    [cpuCalibration.flops_per_core, cpuCalibration.memory_bytes_per_s, cpuCalibration.host_seconds_per_layer_pass],
    (parameters) =>
      worst(
        points.map((point) => {
          const device = resolveDevice(point.request.device);
          const calibration = {
            ...cpuCalibration,
            flops_per_core: parameters[0]!,
            memory_bytes_per_s: parameters[1]!,
            host_seconds_per_layer_pass: parameters[2]!,
          };
          const seconds = cpuStepTime(memoryInputs(point.request, device), device.count, calibration).seconds;
          return Math.log(tokensPerMicroStep(point) / seconds / point.tokens_per_s);
        }),
      ),
  );
  return {
    runtime_gib: memory[0],
    activation_scale: memory[1],
    logits_bytes_per_element: memory[2],
    flops_per_core: flopsPerCore,
    memory_bytes_per_s: memoryBytesPerSecond,
    host_seconds_per_layer_pass: hostPerLayerPass,
  };
}

function fitGpuBackend(points: readonly CalibrationPoint[], backend: TrainingBackend) {
  const ofBackend = points.filter((point) => point.request.backend === backend && resolveDevice(point.request.device).kind === 'cuda');
  if (ofBackend.length === 0) return undefined;
  const peak = (point: CalibrationPoint, metric: string) => point.peaks.find((candidate) => candidate.metric === metric)!.gib;
  const memory = leastSquares(
    ofBackend.map((point) => {
      const parts = memoryParts(point);
      return { features: [parts.activations, parts.logits], fixed: parts.others, measured: peak(point, 'cuda_allocated') };
    }),
  );
  const slackFractions = ofBackend.map((point) => peak(point, 'cuda_reserved') / peak(point, 'cuda_allocated') - 1);
  const current = gpuCalibration[backend];
  const [efficiencyNone, efficiency4bit, hostPerStep, hostPerLayerPassNone, hostPerLayerPass4bit] = minimaxFit(
    [
      current.compute_efficiency.none,
      current.compute_efficiency['4bit'],
      current.host_seconds_per_step,
      current.host_seconds_per_layer_pass.none,
      current.host_seconds_per_layer_pass['4bit'],
    ],
    (parameters) =>
      worst(
        ofBackend.map((point) => {
          const device = resolveDevice(point.request.device);
          if (device.kind !== 'cuda') throw new Error('unreachable: filtered to cuda');
          const calibration = {
            ...current,
            compute_efficiency: { ...current.compute_efficiency, none: parameters[0]!, '4bit': parameters[1]! },
            host_seconds_per_step: parameters[2]!,
            host_seconds_per_layer_pass: { ...current.host_seconds_per_layer_pass, none: parameters[3]!, '4bit': parameters[4]! },
          };
          const seconds = gpuStepTime(memoryInputs(point.request, device), device.gpu, calibration).seconds;
          return Math.log(tokensPerMicroStep(point) / seconds / point.tokens_per_s);
        }),
      ),
  );
  const fitted: BackendCalibration = {
    activation_scale: memory[0]!,
    logits_bytes_per_element: memory[1]!,
    allocator_slack_fraction: Math.max(...slackFractions),
    compute_efficiency: { ...current.compute_efficiency, none: efficiencyNone!, '4bit': efficiency4bit! },
    host_seconds_per_step: hostPerStep!,
    host_seconds_per_layer_pass: { ...current.host_seconds_per_layer_pass, none: hostPerLayerPassNone!, '4bit': hostPerLayerPass4bit! },
    // Checkpointing off: fitted to bench/gpu/unfitted's checkpointing-off runs (test/planner/calibration.test.ts checks them).
    saved_layer_scale: current.saved_layer_scale,
    // The 8-bit constants come from bench/planner/fit-int8.ts, on runs outside this fit's folders.
    int8_retained_bytes_per_hidden_unit: current.int8_retained_bytes_per_hidden_unit,
  };
  return fitted;
}

/** The fitted constants' errors on points the fit did not see: peak allocated and tokens/s. */
function heldOutErrors(points: readonly CalibrationPoint[], backend: TrainingBackend, fitted: BackendCalibration): ErrorRow[] {
  return points
    .filter((point) => point.request.backend === backend)
    .flatMap((point) => {
      const parts = memoryParts(point);
      if (parts.device.kind !== 'cuda') return [];
      const allocated = parts.others + fitted.activation_scale * parts.activations + fitted.logits_bytes_per_element * parts.logits;
      const measuredAllocated = point.peaks.find((peak) => peak.metric === 'cuda_allocated')!.gib;
      const seconds = gpuStepTime(memoryInputs(point.request, parts.device), parts.device.gpu, fitted).seconds;
      return [
        row(point.label, 'held-out peak cuda_allocated GiB', measuredAllocated, allocated),
        row(point.label, 'held-out tokens/s', point.tokens_per_s, tokensPerMicroStep(point) / seconds),
      ];
    });
}

function main(): void {
  const points = loadCalibrationPoints(measurementDirectories);
  const errors = calibrationErrors(points);
  for (const error of errors) {
    console.log(
      `${error.label.padEnd(52)} ${error.metric.padEnd(26)} measured ${error.measured.toFixed(3).padStart(10)} planned ${error.predicted.toFixed(3).padStart(10)} ${(100 * error.relative_error).toFixed(1).padStart(6)} %`,
    );
  }
  const worst = (metricPrefix: string) =>
    Math.max(0, ...errors.filter((error) => error.metric.startsWith(metricPrefix)).map((error) => Math.abs(error.relative_error)));
  const summary = { points: points.length, max_abs_error_peak: worst('peak'), max_abs_error_tokens_per_s: worst('tokens/s') };
  console.log(summary);
  const fits = process.argv.includes('--fit')
    ? {
        cpu: points.some((point) => resolveDevice(point.request.device).kind === 'cpu')
          ? fitCpu(points.filter((point) => resolveDevice(point.request.device).kind === 'cpu'))
          : undefined,
        unsloth: fitGpuBackend(points, 'unsloth'),
        'hf-peft': fitGpuBackend(points, 'hf-peft'),
      }
    : undefined;
  if (fits !== undefined) console.log(JSON.stringify(fits, null, 2));
  // --hold-out llama-3.1-8b: fit the GPU constants without that model's runs, then predict them.
  const heldOutIndex = process.argv.indexOf('--hold-out');
  const heldOutName = heldOutIndex === -1 ? undefined : process.argv[heldOutIndex + 1];
  const heldOut =
    heldOutName === undefined
      ? undefined
      : (['unsloth', 'hf-peft'] as const).flatMap((backend) => {
          const fitted = fitGpuBackend(
            points.filter((point) => !point.label.includes(heldOutName)),
            backend,
          );
          return fitted === undefined
            ? []
            : heldOutErrors(
                points.filter((point) => point.label.includes(heldOutName)),
                backend,
                fitted,
              );
        });
  for (const error of heldOut ?? []) {
    console.log(
      `${error.label.padEnd(52)} ${error.metric.padEnd(34)} measured ${error.measured.toFixed(3).padStart(10)} planned ${error.predicted.toFixed(3).padStart(10)} ${(100 * error.relative_error).toFixed(1).padStart(6)} %`,
    );
  }
  mkdirSync('bench/planner/results', { recursive: true });
  // --out: elsewhere than the committed result (the bench dry run's scratch folder).
  const outIndex = process.argv.indexOf('--out');
  const output =
    outIndex !== -1
      ? (process.argv[outIndex + 1] as string)
      : heldOutName === undefined
        ? 'bench/planner/results/calibration-fit.json'
        : `bench/planner/results/hold-out-${heldOutName}.json`;
  writeFileSync(output, `${JSON.stringify({ date: new Date().toISOString(), summary, errors, fits, held_out: heldOut }, null, 2)}\n`);
}

main();
