import { match } from 'ts-pattern';
import { gpuCatalog } from './catalog/gpus.ts';
import { dataParallelRanks, resolveDevice, type ResolvedDevice } from './device.ts';
import { evaluatePlan, type Evaluation } from './evaluate.ts';
import type { CatalogGpuReference, PlanRequest } from './request.ts';

/** The changes the planner proposes, cheapest first: the order users should try them in. */
export const SuggestionKind = {
  /** Slower by about a third, costs nothing else. */
  EnableGradientCheckpointing: 'enable-gradient-checkpointing',
  /** Quality-neutral in practice. */
  EightBitOptimizer: 'eight-bit-optimizer',
  /** Same effective batch through more accumulation: same result, slower. */
  SmallerMicroBatch: 'smaller-micro-batch',
  /** QLoRA: a small quality cost, less memory. */
  QuantizeFourBit: 'quantize-4bit',
  /** Less adapter capacity. */
  SmallerRank: 'smaller-rank',
  /** Truncates longer examples: changes what is learned. */
  ShorterSequence: 'shorter-sequence',
  /** Costs money: more GPUs of the same kind, sharding the weights. */
  MoreGpus: 'more-gpus',
  /** Costs money: one bigger GPU. */
  BiggerGpu: 'bigger-gpu',
  /** Several of the above together, when no single one is enough. */
  Combined: 'combined',
} as const;
export type SuggestionKind = (typeof SuggestionKind)[keyof typeof SuggestionKind];

/** The request fields a suggestion changes; JSON, so it can travel in a plan. */
export type RequestChanges = Partial<
  Pick<PlanRequest, 'backend' | 'quantization' | 'lora_rank' | 'sequence_length' | 'micro_batch_size' | 'gradient_accumulation_steps' | 'gradient_checkpointing' | 'optimizer'>
> & { device?: CatalogGpuReference };

export interface Suggestion {
  kind: SuggestionKind;
  description: string;
  changes: RequestChanges;
  fits: boolean;
  peak_vram_gib: number;
  available_gib: number;
  tokens_per_s: number;
}

interface Candidate {
  kind: SuggestionKind;
  description: string;
  changes: RequestChanges;
}

/** Keeps micro × accumulation fixed and steps to the next smaller micro-batch that divides it; null at 1. */
export function nextSmallerMicroBatch<Config extends { micro_batch_size: number; gradient_accumulation_steps: number }>(config: Config): Config | null {
  const effective = config.micro_batch_size * config.gradient_accumulation_steps;
  for (let micro = config.micro_batch_size - 1; micro >= 1; micro -= 1) {
    if (effective % micro === 0) return { ...config, micro_batch_size: micro, gradient_accumulation_steps: effective / micro };
  }
  return null;
}

export interface MicroBatchChoice {
  micro_batch_size: number;
  gradient_accumulation_steps: number;
  plan: Evaluation;
}

/**
 * The largest micro-batch that fits and reaches `effectiveBatchSize` exactly (micro × accumulation × data-parallel
 * GPUs), so that the optimizer sees the batch the user asked for. Null when even micro-batch 1 does not fit or the
 * GPUs do not divide the batch.
 */
export function largestFittingMicroBatch(request: PlanRequest, effectiveBatchSize: number): MicroBatchChoice | null {
  const ranks = dataParallelRanks(resolveDevice(request.device));
  for (let micro = Math.floor(effectiveBatchSize / ranks); micro >= 1; micro -= 1) {
    if (effectiveBatchSize % (micro * ranks) !== 0) continue;
    const accumulation = effectiveBatchSize / (micro * ranks);
    const plan = evaluatePlan({ ...request, micro_batch_size: micro, gradient_accumulation_steps: accumulation });
    if (plan.fits) return { micro_batch_size: micro, gradient_accumulation_steps: accumulation, plan };
  }
  return null;
}

/**
 * For a plan that does not fit: per kind of change, the mildest version that fits (the largest rank, the longest
 * sequence, the fewest GPUs, the smallest bigger GPU), cheapest kind first. When no single change fits, the cheap
 * ones together, then each expensive one on top of them.
 */
export function suggestChanges(request: PlanRequest): Suggestion[] {
  const device = resolveDevice(request.device);
  const singles = candidateFamilies(request, device).flatMap((family) => firstFitting(request, family));
  if (singles.length > 0) return singles;

  const cheapChanges = Object.assign({}, ...cheapFamilies(request, device).map((family) => family.at(-1)?.changes ?? {})) as RequestChanges;
  const cheapRequest = applyChanges(request, cheapChanges);
  const cheapTogether = evaluateCandidate(request, { kind: SuggestionKind.Combined, description: describeAll(cheapFamilies(request, device)), changes: cheapChanges });
  if (cheapTogether.fits) return [cheapTogether];
  return expensiveFamilies(cheapRequest, device).flatMap((family) =>
    firstFitting(
      request,
      family.map((candidate) => ({
        kind: SuggestionKind.Combined,
        description: `${describeAll(cheapFamilies(request, device))}, and ${candidate.description}`,
        changes: { ...cheapChanges, ...candidate.changes },
      })),
    ),
  );
}

function describeAll(families: Candidate[][]): string {
  return families.flatMap((family) => family.at(-1)?.description ?? []).join(', ');
}

function firstFitting(request: PlanRequest, family: Candidate[]): Suggestion[] {
  for (const candidate of family) {
    const suggestion = evaluateCandidate(request, candidate);
    if (suggestion.fits) return [suggestion];
  }
  return [];
}

function evaluateCandidate(request: PlanRequest, candidate: Candidate): Suggestion {
  const plan = evaluatePlan(applyChanges(request, candidate.changes));
  return { ...candidate, fits: plan.fits, peak_vram_gib: plan.peak_vram_gib, available_gib: plan.available_gib, tokens_per_s: plan.tokens_per_s };
}

function applyChanges(request: PlanRequest, changes: RequestChanges): PlanRequest {
  return { ...request, ...changes, device: changes.device ?? request.device };
}

function candidateFamilies(request: PlanRequest, device: ResolvedDevice): Candidate[][] {
  return [...cheapFamilies(request, device), ...expensiveFamilies(request, device)];
}

/** Each family lists its variants mildest first; the last is the strongest. */
function cheapFamilies(request: PlanRequest, device: ResolvedDevice): Candidate[][] {
  const onGpu = device.kind === 'cuda';
  const families: Candidate[][] = [
    request.gradient_checkpointing ? [] : [{ kind: SuggestionKind.EnableGradientCheckpointing, description: 'enable gradient checkpointing', changes: { gradient_checkpointing: true } }],
    onGpu && request.optimizer === 'adamw_torch'
      ? [{ kind: SuggestionKind.EightBitOptimizer, description: 'use the 8-bit AdamW optimizer', changes: { optimizer: 'adamw_8bit' } }]
      : [],
    smallerMicroBatches(request),
    onGpu && request.quantization !== '4bit' ? [{ kind: SuggestionKind.QuantizeFourBit, description: 'load the base model in 4-bit NF4 (QLoRA)', changes: { quantization: '4bit' } }] : [],
  ];
  return families.filter((family) => family.length > 0);
}

function expensiveFamilies(request: PlanRequest, device: ResolvedDevice): Candidate[][] {
  const families: Candidate[][] = [
    halvings(request.lora_rank, 4).map((rank) => ({ kind: SuggestionKind.SmallerRank, description: `LoRA rank ${rank}`, changes: { lora_rank: rank } })),
    halvings(request.sequence_length, 128).map((length) => ({
      kind: SuggestionKind.ShorterSequence,
      description: `sequence length ${length}`,
      changes: { sequence_length: length },
    })),
    ...match(device)
      .with({ kind: 'cuda' }, (gpu) => [moreGpus(request, gpu), biggerGpus(gpu)])
      .with({ kind: 'cpu' }, () => [])
      .exhaustive(),
  ];
  return families.filter((family) => family.length > 0);
}

function smallerMicroBatches(request: PlanRequest): Candidate[] {
  const candidates: Candidate[] = [];
  for (let smaller = nextSmallerMicroBatch(request); smaller !== null; smaller = nextSmallerMicroBatch(smaller)) {
    candidates.push({
      kind: SuggestionKind.SmallerMicroBatch,
      description: `micro-batch ${smaller.micro_batch_size} with ${smaller.gradient_accumulation_steps} accumulation steps (same effective batch)`,
      changes: { micro_batch_size: smaller.micro_batch_size, gradient_accumulation_steps: smaller.gradient_accumulation_steps },
    });
  }
  return candidates;
}

function moreGpus(request: PlanRequest, device: Extract<ResolvedDevice, { kind: 'cuda' }>): Candidate[] {
  // Only sharding reduces memory per GPU; Unsloth's replicas would not, so the suggestion switches to hf-peft.
  return [2, 4, 8]
    .filter((count) => count > device.count)
    .map((count) => ({
      kind: SuggestionKind.MoreGpus,
      description: `${count} × ${device.name}${request.backend === 'hf-peft' ? '' : ' with hf-peft (FSDP shards the weights)'}`,
      changes: { backend: 'hf-peft', device: { gpu: device.gpu.id, count } },
    }));
}

function biggerGpus(device: Extract<ResolvedDevice, { kind: 'cuda' }>): Candidate[] {
  return [...gpuCatalog]
    .filter((gpu) => gpu.memory_gib > device.memory_gib)
    .sort((left, right) => left.memory_gib - right.memory_gib)
    .map((gpu) => ({
      kind: SuggestionKind.BiggerGpu,
      description: `${device.count > 1 ? `${device.count} × ` : ''}${gpu.id} (${gpu.memory_gib} GiB)`,
      changes: { device: { gpu: gpu.id, count: device.count } },
    }));
}

function halvings(start: number, minimum: number): number[] {
  const values: number[] = [];
  for (let value = Math.floor(start / 2); value >= minimum; value = Math.floor(value / 2)) values.push(value);
  return values;
}
