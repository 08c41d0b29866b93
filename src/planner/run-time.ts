import type { RunTime } from '../contract/orchestration.ts';
import type { SplitTokenStatistics } from '../contract/index.ts';
import { totalParameters } from './architecture.ts';
import { startupCalibration } from './calibration.ts';
import { parallelEfficiency, type ResolvedDevice } from './device.ts';
import type { MemoryInputs } from './memory.ts';
import type { LengthHistogram } from './request.ts';
import type { ObjectiveCost } from './objective.ts';
import { microStepTime } from './throughput.ts';
import { roundToThousandths as round } from './units.ts';

export type { RunTime };

/** What the run-time prediction needs beyond the step's inputs: the data's lengths and how long the run goes on. */
export interface RunLength {
  lengths: LengthHistogram;
  packing: boolean;
  accumulation_steps: number;
  /** Data-parallel processes: each runs the whole accumulation on its own micro-batches (dataParallelRanks). */
  ranks: number;
  epochs: number;
  max_steps?: number;
  /** Sequences per row and the reference's extra time (planner/objective.ts); one sequence, no extra, when absent. */
  objective?: ObjectiveCost;
  /** The packs the train activity makes at this sequence length (token_statistics), where known. */
  packed_sequences?: { sequence_length: number; sequences: number };
}

/** A row length standing for every row of a bin: each bin's rows, at their mean length (exact total tokens). */
function rowLengths(lengths: LengthHistogram, scale: number): number[] {
  return lengths.flatMap((bin) => {
    const rows = Math.max(1, Math.round(bin.rows / scale));
    return Array.from({ length: rows }, () => Math.min(bin.up_to, Math.round(bin.tokens / bin.rows)));
  });
}

/**
 * The number of packs best-fit decreasing makes of these lengths (packing.pack_rows' rule, applied to the
 * histogram): long rows open packs, each row goes to the fullest pack it fits. More than 100k rows are packed as a
 * proportional sample and the count scaled back.
 */
function packCount(lengths: LengthHistogram, capacity: number): number {
  // The fit search evaluates many candidates on one histogram: pack it once per capacity.
  const known = packCounts.get(lengths) ?? new Map<number, number>();
  packCounts.set(lengths, known);
  const cached = known.get(capacity);
  if (cached !== undefined) return cached;
  const packs = bestFitDecreasingPacks(lengths, capacity);
  known.set(capacity, packs);
  return packs;
}
const packCounts = new WeakMap<LengthHistogram, Map<number, number>>();

function bestFitDecreasingPacks(lengths: LengthHistogram, capacity: number): number {
  const rows = lengths.reduce((sum, bin) => sum + bin.rows, 0);
  const scale = Math.max(1, rows / 100_000);
  // packsWithRoom[r]: how many packs have exactly r tokens of room left.
  const packsWithRoom = new Array<number>(capacity + 1).fill(0);
  let packs = 0;
  for (const length of rowLengths(lengths, scale).sort((left, right) => right - left)) {
    let room = length;
    while (room <= capacity && packsWithRoom[room] === 0) room += 1;
    const opened = room > capacity;
    if (opened) packs += 1;
    else packsWithRoom[room] = (packsWithRoom[room] ?? 0) - 1;
    const left = (opened ? capacity : room) - length;
    packsWithRoom[left] = (packsWithRoom[left] ?? 0) + 1;
  }
  return Math.round(packs * scale);
}

/** Unsloth pads a micro-batch to the next power of two of its longest row, at least 64, capped (data.bucketed_width). */
function bucketedWidth(longest: number, maxSeqLength: number): number {
  return Math.min(maxSeqLength, Math.max(64, 2 ** Math.ceil(Math.log2(longest))));
}

/**
 * The packs a packed run trains: token_statistics counted them with the train activity's own rule where the plan is
 * for that sequence length; at any other (a shorter-sequence suggestion) the histogram's estimate of the same rule.
 */
function packedSequences(run: RunLength, capacity: number): number {
  return run.packed_sequences?.sequence_length === capacity ? run.packed_sequences.sequences : packCount(run.lengths, capacity);
}

/**
 * How wide unpacked micro-batches are, with the probability of each width: a micro-batch is `micro` rows of the
 * shuffled split, its width the longest row's (hf-peft) or that rounded up to Unsloth's bucket. P(longest ≤ x) =
 * F(x)^micro, F the histogram's distribution (rows drawn with replacement: close enough for thousands of rows).
 * A bin's rows are taken as long as its upper edge; every bucket edge is a bin edge, so Unsloth's widths are exact.
 */
function paddedWidths(lengths: LengthHistogram, micro: number, maxSeqLength: number, bucketed: boolean): Map<number, number> {
  const rows = lengths.reduce((sum, bin) => sum + bin.rows, 0);
  const widths = new Map<number, number>();
  let below = 0;
  for (const bin of lengths) {
    const probability = ((below + bin.rows) / rows) ** micro - (below / rows) ** micro;
    below += bin.rows;
    const width = bucketed ? bucketedWidth(bin.up_to, maxSeqLength) : Math.min(bin.up_to, maxSeqLength);
    widths.set(width, (widths.get(width) ?? 0) + probability);
  }
  return widths;
}

/**
 * How long the run takes on the data's real lengths: steps (epochs, max_steps) × the step time at the widths the
 * batches really have, plus loading the model, the first step's warm-up or compile, and the last checkpoint.
 *
 * Packed, a micro-batch is `micro` packs of best-fit-decreasing rows laid end to end: its tokens are real tokens
 * and attention spans only each row. Unpacked, a micro-batch is `micro` rows padded to the longest (hf-peft) or to
 * Unsloth's bucketed width, and Unsloth compiles once per width it meets: the plan counts the widths a run of this
 * many steps is expected to see.
 *
 * With several ranks an optimizer step takes micro × accumulation sequences on every rank at once, so an epoch has
 * `ranks` times fewer steps, each as long as one rank's accumulation (over the all-reduce's efficiency).
 */
export function predictRunTime(inputs: MemoryInputs, device: ResolvedDevice, run: RunLength): RunTime {
  const rows = run.lengths.reduce((sum, bin) => sum + bin.rows, 0);
  const realTokens = run.lengths.reduce((sum, bin) => sum + bin.tokens, 0);
  // The histogram counts rows (pairs for DPO, each as long as its longer sequence); the memory inputs count sequences.
  const sequencesPerRow = run.objective?.sequences_per_row ?? 1;
  const micro = inputs.micro_batch_size / sequencesPerRow;
  const sequences = run.packing ? packedSequences(run, inputs.sequence_length) : rows;
  const stepsPerEpoch = Math.ceil(sequences / (micro * run.accumulation_steps * run.ranks));
  const epochSteps = Math.ceil(run.epochs * stepsPerEpoch);
  const steps = run.max_steps === undefined ? epochSteps : Math.min(epochSteps, run.max_steps);
  const realTokensPerStep = realTokens / stepsPerEpoch;

  const unsloth = inputs.backend === 'unsloth';
  let microStep: number;
  let paddedTokensPerStep: number;
  let compiledShapes: number;
  if (run.packing) {
    const squaredLengths = run.lengths.reduce((sum, bin) => sum + bin.rows * (bin.tokens / bin.rows) ** 2, 0);
    const tokensPerMicroStep = (micro * realTokens) / sequences;
    microStep = microStepTime(
      { ...inputs, micro_batch_size: 1, sequence_length: tokensPerMicroStep, attention_span: squaredLengths / realTokens },
      device,
      run.ranks,
    ).seconds;
    paddedTokensPerStep = realTokensPerStep;
    // Unsloth runs packed decoder blocks eagerly (docs/gpu.md): nothing is compiled.
    compiledShapes = 0;
  } else {
    const widths = paddedWidths(run.lengths, micro, inputs.sequence_length, unsloth);
    microStep = 0;
    let width = 0;
    compiledShapes = 0;
    const microSteps = steps * run.accumulation_steps;
    for (const [batchWidth, probability] of widths) {
      microStep += probability * microStepTime({ ...inputs, sequence_length: batchWidth }, device, run.ranks).seconds * (run.objective?.time_factor ?? 1);
      width += probability * batchWidth;
      compiledShapes += 1 - (1 - probability) ** microSteps;
    }
    paddedTokensPerStep = micro * run.accumulation_steps * run.ranks * width;
    compiledShapes = unsloth ? Math.min(widths.size, Math.max(1, Math.round(compiledShapes))) : 0;
  }
  const stepSeconds = (microStep * run.accumulation_steps) / parallelEfficiency(device, run.ranks);
  const compileSeconds =
    compiledShapes === 0 ? 0 : startupCalibration.first_shape_compile_seconds + (compiledShapes - 1) * startupCalibration.further_shape_compile_seconds;
  const firstStepSeconds = compiledShapes === 0 ? startupCalibration.eager_first_step_seconds : compileSeconds;
  const modelLoadSeconds = totalParameters(inputs.architecture) * startupCalibration.model_load_seconds_per_parameter;
  const trainingSeconds = steps * stepSeconds;
  return {
    packing: run.packing,
    sequences,
    steps,
    real_tokens_per_step: round(realTokensPerStep),
    padding_fraction: round(1 - realTokensPerStep / paddedTokensPerStep),
    step_seconds: round(stepSeconds),
    real_tokens_per_s: round(realTokensPerStep / stepSeconds),
    compiled_shapes: compiledShapes,
    compile_seconds: round(compileSeconds),
    model_load_seconds: round(modelLoadSeconds),
    first_step_seconds: round(firstStepSeconds),
    finish_seconds: startupCalibration.finish_seconds,
    training_seconds: round(trainingSeconds),
    eta_seconds: Math.round(modelLoadSeconds + firstStepSeconds + trainingSeconds + startupCalibration.finish_seconds),
  };
}
