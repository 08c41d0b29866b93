import { match } from 'ts-pattern';
import { InvalidSpecError } from '../errors/index.ts';
import { multiGpuScaling } from './calibration.ts';
import { findGpu, gpuCatalog, type GpuSpecification } from './catalog/gpus.ts';
import { Parallelism } from '../contract/vocabulary.ts';
import type { CatalogGpuReference, DeviceDescription, PlanRequest } from './request.ts';

/** A device with everything the models need: the GPU's speeds, or the CPU's core count. */
export type ResolvedDevice =
  | { kind: 'cuda'; name: string; memory_gib: number; count: number; gpu: GpuSpecification; notes: string[] }
  | { kind: 'cpu'; name: string; memory_gib: number /** Cores. */; count: number; notes: string[] };

/**
 * The slowest catalog GPU stands in for a GPU the catalog does not know, so that an unknown card gets a
 * pessimistic time rather than none; the memory is the one the worker reported, so the fit stays exact.
 */
const slowestCatalogGpu = gpuCatalog.reduce((slowest, gpu) => (gpu.bf16_dense_tflops < slowest.bf16_dense_tflops ? gpu : slowest));

/** The share of system RAM a CPU run may take: the OS, the Temporal worker and page cache need the rest. */
export const cpuUsableMemoryFraction = 0.9;

export function unknownGpuError(name: string): InvalidSpecError {
  return new InvalidSpecError(
    `unknown GPU "${name}"; the planner knows ${gpuCatalog.map((entry) => entry.id).join(', ')} (or give device.gpu_memory_gib with a reported name)`,
    {
      field: 'device.gpu',
    },
  );
}

export function resolveDevice(device: DeviceDescription | CatalogGpuReference): ResolvedDevice {
  if ('gpu' in device) {
    const gpu = findGpu(device.gpu);
    if (gpu === undefined) throw unknownGpuError(device.gpu);
    return { kind: 'cuda', name: gpu.id, memory_gib: device.memory_gib ?? gpu.memory_gib, count: device.count ?? 1, gpu, notes: [] };
  }
  if (device.kind === 'cpu') {
    return { kind: 'cpu', name: device.name, memory_gib: device.memory_gib, count: device.count, notes: [] };
  }
  const known = findGpu(device.name);
  return {
    kind: 'cuda',
    name: known?.id ?? device.name,
    memory_gib: device.memory_gib,
    count: device.count,
    gpu: known ?? { ...slowestCatalogGpu, id: device.name, name: device.name },
    notes: known === undefined ? [`"${device.name}" is not in the GPU catalog: throughput assumes the slowest catalog GPU (${slowestCatalogGpu.id})`] : [],
  };
}

/**
 * The memory one process may use: all of its GPU's; on a CPU its share of most of the system RAM, which the run's
 * processes (`ranks`) split between them.
 */
export function availableGib(device: ResolvedDevice, ranks: number): number {
  return match(device)
    .with({ kind: 'cuda' }, (gpu) => gpu.memory_gib)
    .with({ kind: 'cpu' }, (cpu) => (cpu.memory_gib * cpuUsableMemoryFraction) / ranks)
    .exhaustive();
}

/**
 * The processes that each train on their own micro-batches, every one running the whole accumulation: one per GPU;
 * on a CPU the run's device.cpu_processes, data-parallel ranks that share the cores rather than adding any.
 */
export function dataParallelRanks(device: ResolvedDevice, request: Pick<PlanRequest, 'cpu_processes'>): number {
  return match(device)
    .with({ kind: 'cuda' }, (gpu) => gpu.count)
    .with({ kind: 'cpu' }, () => request.cpu_processes ?? 1)
    .exhaustive();
}

/**
 * FSDP shards the frozen weights and the adapter state over the ranks (as in Answer.AI's FSDP+QLoRA), so each holds
 * 1/N of them; DDP's replicas each hold the whole model.
 */
export function weightShards(device: ResolvedDevice, request: Pick<PlanRequest, 'parallelism' | 'cpu_processes'>): number {
  return request.parallelism === Parallelism.FullyShardedDataParallel ? dataParallelRanks(device, request) : 1;
}

/**
 * Throughput of the ranks relative to ranks × one: several GPUs lose multiGpuScaling to the gradient all-reduce
 * (and FSDP's all-gathers); CPU processes only split the cores, which their step time already counts.
 */
export function parallelEfficiency(device: ResolvedDevice, ranks: number): number {
  return device.kind === 'cuda' && ranks > 1 ? multiGpuScaling : 1;
}
