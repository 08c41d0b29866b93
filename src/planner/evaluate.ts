import { match } from 'ts-pattern';
import { loraParameters, resolveTargetModules, totalParameters } from './architecture.ts';
import { availableGib, dataParallelRanks, parallelEfficiency, resolveDevice, weightShards, type ResolvedDevice } from './device.ts';
import { embeddingsAndHeadBytes, fsdpLoadPeakBytes, memoryBreakdownBytes, type MemoryInputs, type MemoryTerm } from './memory.ts';
import { bytesToGib, roundToThousandths as round } from './units.ts';
import type { Evaluation } from '../contract/orchestration.ts';
import type { PlanRequest } from './request.ts';
import { objectiveCost, objectiveNotes } from './objective.ts';
import { predictRunTime } from './run-time.ts';
import { microStepTime } from './throughput.ts';

/** A plan without suggestions: what one candidate configuration costs. The search evaluates many of these. */
export type { Evaluation };

export function memoryInputs(request: PlanRequest, device: ResolvedDevice): MemoryInputs {
  const { sequences_per_row } = objectiveCost(request.objective, request.gradient_checkpointing);
  return {
    architecture: request.architecture,
    device_kind: device.kind,
    backend: request.backend,
    quantization: request.quantization,
    lora_rank: request.lora_rank,
    target_modules: resolveTargetModules(request.target_modules),
    sequence_length: request.sequence_length,
    // The memory model counts sequences: a DPO micro-batch of m pairs is 2m of them.
    micro_batch_size: request.micro_batch_size * sequences_per_row,
    gradient_checkpointing: request.gradient_checkpointing,
    optimizer: request.optimizer,
    weight_shards: weightShards(device, request),
  };
}

export function evaluatePlan(request: PlanRequest): Evaluation {
  const device = resolveDevice(request.device);
  const inputs = memoryInputs(request, device);
  const breakdownBytes = memoryBreakdownBytes(inputs);
  const peakBytes = Object.values(breakdownBytes).reduce((sum, value) => sum + value, 0);
  const peakGib = bytesToGib(peakBytes);
  const ranks = dataParallelRanks(device, request);
  const available = availableGib(device, ranks);

  // Every rank runs its own micro-batches at once: a step is one rank's accumulation, over all ranks' rows.
  const cost = objectiveCost(request.objective, request.gradient_checkpointing);
  const microStepSeconds = microStepTime(inputs, device, ranks).seconds * cost.time_factor;
  const scaling = parallelEfficiency(device, ranks);
  const tokensPerSecond = ((inputs.micro_batch_size * request.sequence_length * ranks) / microStepSeconds) * scaling;
  const totalTokens = request.dataset_tokens === undefined ? undefined : request.dataset_tokens * (request.epochs ?? 1);

  const runTime =
    request.lengths === undefined || request.lengths.length === 0
      ? undefined
      : predictRunTime(inputs, device, {
          lengths: request.lengths,
          packing: request.packing ?? false,
          ...(request.packed_sequences === undefined ? {} : { packed_sequences: request.packed_sequences }),
          accumulation_steps: request.gradient_accumulation_steps,
          ranks,
          epochs: request.epochs ?? 1,
          objective: cost,
          ...(request.max_steps === undefined ? {} : { max_steps: request.max_steps }),
        });

  const unsupported = unsupportedCombinations(request, device);
  const fitsMemory = peakGib <= available;
  return {
    fits: fitsMemory && unsupported.length === 0,
    peak_vram_gib: round(peakGib),
    available_gib: round(available),
    breakdown: Object.fromEntries(Object.entries(breakdownBytes).map(([term, bytes]) => [term, round(bytesToGib(bytes))])),
    tokens_per_s: round(tokensPerSecond),
    tokens_per_hour: Math.round(tokensPerSecond * 3600),
    ...(runTime !== undefined
      ? { eta_seconds: runTime.eta_seconds, run_time: runTime }
      : totalTokens === undefined
        ? {}
        : { eta_seconds: Math.round(totalTokens / tokensPerSecond) }),
    step_seconds: round((microStepSeconds * request.gradient_accumulation_steps) / scaling),
    effective_batch_size: request.micro_batch_size * request.gradient_accumulation_steps * ranks,
    trainable_parameters: loraParameters(request.architecture, request.lora_rank, inputs.target_modules),
    total_parameters: totalParameters(request.architecture),
    device: { kind: device.kind, name: device.name, count: device.count, memory_gib: device.memory_gib },
    reasons: [...unsupported, ...(fitsMemory ? [] : memoryReasons(request, device, inputs, breakdownBytes, peakGib, available))],
    notes: [
      ...device.notes,
      ...cpuProcessesNotes(device, ranks, available),
      ...loadPeakNotes(request, device, inputs, breakdownBytes),
      ...accuracyNotes(request, device),
      ...objectiveNotes(request.objective, request.micro_batch_size, request.gradient_checkpointing),
    ],
  };
}

/** CPU processes add no cores: the plan says how the run's processes split the machine. */
function cpuProcessesNotes(device: ResolvedDevice, ranks: number, available: number): string[] {
  if (device.kind !== 'cpu' || ranks === 1) return [];
  const cores = Math.max(1, Math.floor(device.count / ranks));
  return [
    `${ranks} CPU processes share the ${device.count} cores and the RAM: each trains with ${cores} core${cores === 1 ? '' : 's'} in ${round(available)} GiB`,
  ];
}

/**
 * Under FSDP each process holds, while it loads, its shard of every layer and for a moment the whole embeddings and
 * head; where that moment is above the sharded training peak, it is the plan's peak, and the plan says so rather than
 * leaving unsharded_load unexplained.
 */
function loadPeakNotes(request: PlanRequest, device: ResolvedDevice, inputs: MemoryInputs, breakdownBytes: Record<MemoryTerm, number>): string[] {
  if (breakdownBytes.unsharded_load === 0) return [];
  const each = device.kind === 'cuda' ? 'GPU' : 'process';
  return [
    `FSDP: while loading, each ${each} holds its shard of every layer and, for a moment, the whole embeddings and head (${round(bytesToGib(fsdpLoadPeakBytes(inputs)))} GiB); that moment is this peak (unsharded_load)`,
  ];
}

/**
 * Where measurements show the model off by more than the calibration test allows, the plan says so rather than
 * implying its usual accuracy (bench/gpu/unfitted/README.md has the runs).
 */
function accuracyNotes(request: PlanRequest, device: ResolvedDevice): string[] {
  if (device.kind !== 'cuda') return [];
  return [
    ...(request.gradient_checkpointing
      ? []
      : [
          'without gradient checkpointing tokens/s is not yet refitted: on an H200 it ran up to 34 % above this estimate (hf-peft) and 24 % (Unsloth, micro-batch 1)',
        ]),
    ...(request.backend === 'unsloth' && request.quantization === '8bit'
      ? ['Unsloth 8-bit used up to 0.5 GiB more than planned on a 1B model at micro-batch 1 (H200)']
      : []),
  ];
}

function unsupportedCombinations(request: PlanRequest, device: ResolvedDevice): string[] {
  return match(device)
    .with({ kind: 'cuda' }, () => [])
    .with({ kind: 'cpu' }, () => [
      ...(request.backend === 'unsloth' ? ['Unsloth needs a CUDA GPU; on a CPU tuneflow trains with hf-peft'] : []),
      ...(request.quantization === 'none' ? [] : [`${request.quantization} quantisation (bitsandbytes) needs a CUDA GPU`]),
      ...(request.optimizer === 'adamw_torch' ? [] : [`${request.optimizer} (bitsandbytes) needs a CUDA GPU; use adamw_torch`]),
    ])
    .exhaustive();
}

/** How the frozen weights are stored, in words: "16-bit", "4-bit NF4"… */
export function describeWeightPrecision(quantization: PlanRequest['quantization'], deviceKind: ResolvedDevice['kind']): string {
  return match(quantization)
    .with('none', () => (deviceKind === 'cuda' ? '16-bit' : '32-bit'))
    .with('8bit', () => '8-bit')
    .with('4bit', () => '4-bit NF4')
    .exhaustive();
}

function memoryReasons(
  request: PlanRequest,
  device: ResolvedDevice,
  inputs: MemoryInputs,
  breakdownBytes: Record<MemoryTerm, number>,
  peakGib: number,
  available: number,
): string[] {
  const ranks = dataParallelRanks(device, request);
  const where = match(device)
    .with({ kind: 'cuda' }, (gpu) => `each ${gpu.name} has ${round(available)} GiB`)
    .with({ kind: 'cpu' }, () =>
      ranks === 1
        ? `the CPU run may use ${round(available)} GiB of system RAM`
        : `each of the ${ranks} CPU processes may use ${round(available)} GiB of system RAM`,
    )
    .exhaustive();
  const largest = Object.entries(breakdownBytes)
    .sort(([, left], [, right]) => right - left)
    .slice(0, 3)
    .map(([term, bytes]) => `${term} ${round(bytesToGib(bytes))} GiB`);
  const reasons = [`needs ${round(peakGib)} GiB per device but ${where}; largest terms: ${largest.join(', ')}`];
  const precision = describeWeightPrecision(request.quantization, device.kind);
  const weightsGib = bytesToGib(breakdownBytes.base_weights + breakdownBytes.quantization_constants + breakdownBytes.embeddings_and_head);
  if (weightsGib > available) {
    reasons.push(
      `the ${precision} weights of ${request.architecture.name} alone take ${round(weightsGib)} GiB: no change of rank, sequence length or batch size can make this fit`,
    );
  }
  const rootGib = bytesToGib(embeddingsAndHeadBytes(inputs) + breakdownBytes.runtime_context);
  if (inputs.weight_shards > 1 && rootGib > available) {
    const [each, more] = device.kind === 'cuda' ? ['GPU', 'GPUs'] : ['process', 'processes'];
    reasons.push(
      `under FSDP the embeddings and head reach each ${each} whole while loading, ${round(rootGib)} GiB with the runtime: more ${more} cannot make this fit`,
    );
  }
  return reasons;
}
