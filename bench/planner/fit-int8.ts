import { gpuCalibration } from '../../src/planner/calibration.ts';
import { evaluatePlan } from '../../src/planner/index.ts';
import { loadCalibrationPoints, PeakMetric, predictedPeakGib } from './measurements.ts';
import type { TrainingBackend } from '../../src/contract/vocabulary.ts';

/**
 * Fits the planner's LLM.int8 constants (src/planner/calibration.ts) to the 8-bit runs of bench/gpu/unfitted:
 * `int8_retained_bytes_per_hidden_unit` for hf-peft by least squares on relative error of peak allocated memory
 * (measured minus what the model predicts without the term, which is linear in it), then each backend's 8-bit
 * `compute_efficiency` and `host_seconds_per_layer_pass` by coordinate search on the tokens/s log errors' L4 norm.
 * Prints the values to copy. Usage: npx tsx bench/planner/fit-int8.ts
 */
const points = loadCalibrationPoints(['bench/gpu/unfitted']).filter((point) => point.request.quantization === '8bit');

const hfPeft = gpuCalibration['hf-peft'];
hfPeft.int8_retained_bytes_per_hidden_unit = 0;
let numerator = 0;
let denominator = 0;
for (const point of points.filter((candidate) => candidate.request.backend === 'hf-peft')) {
  const measured = point.peaks.find((peak) => peak.metric === PeakMetric.CudaAllocated)!.gib;
  const predicted = predictedPeakGib(evaluatePlan(point.request), PeakMetric.CudaAllocated);
  const { architecture, micro_batch_size: microBatch, sequence_length: sequence } = point.request;
  const gibPerByte = (architecture.num_layers * architecture.hidden_size * microBatch * sequence) / 2 ** 30;
  numerator += (gibPerByte * (measured - predicted)) / measured ** 2;
  denominator += gibPerByte ** 2 / measured ** 2;
}
hfPeft.int8_retained_bytes_per_hidden_unit = numerator / denominator;
console.log(`hf-peft int8_retained_bytes_per_hidden_unit: ${hfPeft.int8_retained_bytes_per_hidden_unit.toFixed(1)}`);

for (const backend of ['hf-peft', 'unsloth'] as const satisfies readonly TrainingBackend[]) {
  const runs = points.filter((point) => point.request.backend === backend);
  const calibration = gpuCalibration[backend];
  const logErrors = () => runs.map((point) => Math.log(evaluatePlan(point.request).tokens_per_s / point.tokens_per_s));
  const score = () => logErrors().reduce((sum, error) => sum + error ** 4, 0);
  const setters = [
    (value: number) => (calibration.compute_efficiency['8bit'] = value),
    (value: number) => (calibration.host_seconds_per_layer_pass['8bit'] = value),
  ];
  const getters = [() => calibration.compute_efficiency['8bit'], () => calibration.host_seconds_per_layer_pass['8bit']];
  let best = score();
  for (let step = 1; step > 0.001; step /= 2) {
    for (let improved = true; improved; ) {
      improved = false;
      for (const [index, set] of setters.entries()) {
        for (const direction of [1, -1]) {
          const previous = getters[index]!();
          set(previous * Math.exp(direction * step));
          const candidate = score();
          if (candidate < best) [best, improved] = [candidate, true];
          else set(previous);
        }
      }
    }
  }
  const errors = logErrors().map((error) => `${((Math.exp(error) - 1) * 100).toFixed(0)} %`);
  console.log(
    `${backend} compute_efficiency['8bit']: ${calibration.compute_efficiency['8bit'].toFixed(4)}, host_seconds_per_layer_pass['8bit']: ${calibration.host_seconds_per_layer_pass['8bit'].toFixed(5)} (tokens/s errors ${errors.join(', ')})`,
  );
}
