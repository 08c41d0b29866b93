import { match } from 'ts-pattern';
import { gpuCatalog } from './catalog/gpus.ts';
import { dataParallelRanks, resolveDevice, type ResolvedDevice } from './device.ts';
import { evaluatePlan, type Evaluation } from './evaluate.ts';
import type { RequestChanges, Suggestion } from '../contract/orchestration.ts';
import { SuggestionKind } from '../contract/vocabulary.ts';
import type { PlanRequest } from './request.ts';

interface Candidate {
  kind: SuggestionKind;
  changes: RequestChanges;
}

/** The ways to split an effective batch, largest micro-batch first: every divisor, with the accumulation it takes. */
export function batchSplits(batchSize: number): { micro_batch_size: number; gradient_accumulation_steps: number }[] {
  const splits: { micro_batch_size: number; gradient_accumulation_steps: number }[] = [];
  for (let micro = batchSize; micro >= 1; micro -= 1) {
    if (batchSize % micro === 0) splits.push({ micro_batch_size: micro, gradient_accumulation_steps: batchSize / micro });
  }
  return splits;
}

/** Keeps micro × accumulation fixed and steps to the next smaller micro-batch that divides it; null at 1. */
export function nextSmallerMicroBatch<Config extends { micro_batch_size: number; gradient_accumulation_steps: number }>(config: Config): Config | null {
  const smaller = batchSplits(config.micro_batch_size * config.gradient_accumulation_steps).find((split) => split.micro_batch_size < config.micro_batch_size);
  return smaller === undefined ? null : { ...config, ...smaller };
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
  const ranks = dataParallelRanks(resolveDevice(request.device), request);
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
 * sequence, the fewest GPUs, the smallest bigger GPU), cheapest kind first. When no cheap change is enough on its
 * own, each expensive change that is not enough either is tried again on top of all the cheap ones together, and
 * the cheap ones together are offered too.
 */
export function suggestChanges(request: PlanRequest): Suggestion[] {
  const device = resolveDevice(request.device);
  const cheap = cheapFamilies(request, device);
  const expensive = expensiveFamilies(request, device);
  const cheapSingles = cheap.flatMap((family) => firstFitting(request, family));
  const expensiveSingles = expensive.map((family) => firstFitting(request, family));

  const strongestCheap = cheap.flatMap((family) => family.at(-1) ?? []);
  const cheapChanges = Object.assign({}, ...strongestCheap.map((candidate) => candidate.changes)) as RequestChanges;
  const combined = expensive.flatMap((family, index) =>
    cheapSingles.length > 0 || expensiveSingles[index]!.length > 0 || strongestCheap.length === 0
      ? []
      : firstFitting(
          request,
          expandFamily(request, device, family, cheapChanges).map((candidate) => ({
            kind: SuggestionKind.Combined,
            changes: { ...cheapChanges, ...candidate.changes },
          })),
        ),
  );
  const singles = [...cheapSingles, ...expensiveSingles.flat()];
  const cheapTogether =
    singles.length === 0 && strongestCheap.length > 1 ? firstFitting(request, [{ kind: SuggestionKind.Combined, changes: cheapChanges }]) : [];
  return [...singles, ...cheapTogether, ...combined];
}

/** A family's variants again, regenerated for the request with the cheap changes applied (more GPUs re-derives its list). */
function expandFamily(request: PlanRequest, device: ResolvedDevice, family: Candidate[], cheapChanges: RequestChanges): Candidate[] {
  const kind = family[0]?.kind;
  return expensiveFamilies(applyChanges(request, cheapChanges), device).find((candidates) => candidates[0]?.kind === kind) ?? [];
}

function firstFitting(request: PlanRequest, family: Candidate[]): Suggestion[] {
  for (const candidate of family) {
    const suggestion = evaluateCandidate(request, candidate);
    if (suggestion.fits) return [suggestion];
  }
  return [];
}

function evaluateCandidate(request: PlanRequest, candidate: Candidate): Suggestion {
  const changed = applyChanges(request, candidate.changes);
  const plan = evaluatePlan(changed);
  return {
    kind: candidate.kind,
    description: describeChanges(changed, candidate.changes),
    changes: candidate.changes,
    fits: plan.fits,
    peak_vram_gib: plan.peak_vram_gib,
    available_gib: plan.available_gib,
    tokens_per_s: plan.tokens_per_s,
  };
}

/** One description written from the changes themselves, so that combined suggestions read as one configuration. */
function describeChanges(changed: PlanRequest, changes: RequestChanges): string {
  const device = resolveDevice(changed.device);
  const parts = [
    changes.device === undefined || device.kind !== 'cuda' ? undefined : `${device.count} × ${device.name} (${device.memory_gib} GiB each)`,
    changes.parallelism === 'fsdp'
      ? `FSDP with ${changed.backend}: each ${device.kind === 'cuda' ? 'GPU' : 'process'} keeps 1/${dataParallelRanks(device, changed)} of the weights and adapter state`
      : changes.backend === undefined
        ? undefined
        : `backend ${changes.backend}`,
    changes.gradient_checkpointing === true ? 'gradient checkpointing on' : undefined,
    changes.optimizer === undefined ? undefined : `optimizer ${changes.optimizer}`,
    changes.micro_batch_size === undefined && changes.gradient_accumulation_steps === undefined
      ? undefined
      : `micro-batch ${changed.micro_batch_size} × ${changed.gradient_accumulation_steps} accumulation steps (effective batch ${changed.micro_batch_size * changed.gradient_accumulation_steps * dataParallelRanks(device, changed)})`,
    changes.quantization === '4bit' ? 'base weights in 4-bit NF4 (QLoRA)' : undefined,
    changes.lora_rank === undefined ? undefined : `LoRA rank ${changes.lora_rank}`,
    changes.sequence_length === undefined ? undefined : `sequence length ${changes.sequence_length}`,
  ];
  return parts.filter((part) => part !== undefined).join(', ');
}

function applyChanges(request: PlanRequest, changes: RequestChanges): PlanRequest {
  return { ...request, ...changes, device: changes.device ?? request.device };
}

/** Each family lists its variants mildest first; the last is the strongest. */
function cheapFamilies(request: PlanRequest, device: ResolvedDevice): Candidate[][] {
  const onGpu = device.kind === 'cuda';
  const families: Candidate[][] = [
    request.gradient_checkpointing ? [] : [{ kind: SuggestionKind.EnableGradientCheckpointing, changes: { gradient_checkpointing: true } }],
    // FSDP trains with torch AdamW only (resolveTrainingSetup refuses 8-bit optimizers on sharded parameters).
    onGpu && request.optimizer === 'adamw_torch' && request.parallelism !== 'fsdp'
      ? [{ kind: SuggestionKind.EightBitOptimizer, changes: { optimizer: 'adamw_8bit' } }]
      : [],
    smallerMicroBatches(request),
    // Replicas that do not fit may fit sharded over the same processes (Unsloth trains data-parallel only).
    dataParallelRanks(device, request) > 1 && request.parallelism !== 'fsdp' ? [{ kind: SuggestionKind.ShardModel, changes: shardedChanges(request) }] : [],
    onGpu && request.quantization !== '4bit' ? [{ kind: SuggestionKind.QuantizeFourBit, changes: { quantization: '4bit' } }] : [],
  ];
  return families.filter((family) => family.length > 0);
}

function expensiveFamilies(request: PlanRequest, device: ResolvedDevice): Candidate[][] {
  const families: Candidate[][] = [
    halvings(request.lora_rank, 4).map((rank) => ({ kind: SuggestionKind.SmallerRank, changes: { lora_rank: rank } })),
    halvings(request.sequence_length, 128).map((length) => ({ kind: SuggestionKind.ShorterSequence, changes: { sequence_length: length } })),
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
      changes: { micro_batch_size: smaller.micro_batch_size, gradient_accumulation_steps: smaller.gradient_accumulation_steps },
    });
  }
  return candidates;
}

/**
 * What sharding changes, as resolveTrainingSetup decides FSDP: transformers + PEFT (Unsloth trains data-parallel
 * only) and torch AdamW (8-bit optimizers are refused on sharded parameters), so the suggestion is one that runs.
 */
function shardedChanges(request: PlanRequest): RequestChanges {
  return { backend: 'hf-peft', parallelism: 'fsdp', ...(request.optimizer === 'adamw_torch' ? {} : { optimizer: 'adamw_torch' }) };
}

function moreGpus(request: PlanRequest, device: Extract<ResolvedDevice, { kind: 'cuda' }>): Candidate[] {
  // Only sharding reduces memory per GPU; DDP's replicas would not, so the suggestion is FSDP. The embeddings and head
  // still reach each GPU whole while loading, so where they alone do not fit no count of GPUs is offered (none
  // fits). Each GPU runs the accumulation on its own micro-batches, so accumulation shrinks to keep the
  // effective batch where it divides.
  const effective = request.micro_batch_size * request.gradient_accumulation_steps * device.count;
  return [2, 4, 8]
    .filter((count) => count > device.count)
    .map((count) => {
      const accumulation = effective / (request.micro_batch_size * count);
      return {
        kind: SuggestionKind.MoreGpus,
        changes: {
          ...shardedChanges(request),
          device: { gpu: device.gpu.id, count },
          ...(Number.isInteger(accumulation) ? { gradient_accumulation_steps: accumulation } : {}),
        },
      };
    });
}

function biggerGpus(device: Extract<ResolvedDevice, { kind: 'cuda' }>): Candidate[] {
  return [...gpuCatalog]
    .filter((gpu) => gpu.memory_gib > device.memory_gib)
    .sort((left, right) => left.memory_gib - right.memory_gib)
    .map((gpu) => ({ kind: SuggestionKind.BiggerGpu, changes: { device: { gpu: gpu.id, count: device.count } } }));
}

function halvings(start: number, minimum: number): number[] {
  const values: number[] = [];
  for (let value = Math.floor(start / 2); value >= minimum; value = Math.floor(value / 2)) values.push(value);
  return values;
}
