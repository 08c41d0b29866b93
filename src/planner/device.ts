import { match } from 'ts-pattern';
import { InvalidSpecError } from '../errors/index.ts';
import { findGpu, gpuCatalog, type GpuSpecification } from './catalog/gpus.ts';
import type { CatalogGpuReference, DeviceDescription, TrainingBackend } from './request.ts';

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

/** The memory a run may use on each device: all of a GPU's, most of the system RAM. */
export function availableGib(device: ResolvedDevice): number {
  return match(device)
    .with({ kind: 'cuda' }, (gpu) => gpu.memory_gib)
    .with({ kind: 'cpu' }, (cpu) => cpu.memory_gib * cpuUsableMemoryFraction)
    .exhaustive();
}

/**
 * hf-peft on several GPUs shards the frozen weights and the adapter state across them (FSDP, as in Answer.AI's
 * FSDP+QLoRA); Unsloth runs data-parallel replicas, so each GPU holds the whole model.
 */
export function weightShards(device: ResolvedDevice, backend: TrainingBackend): number {
  return match(device)
    .with({ kind: 'cuda' }, (gpu) => (backend === 'hf-peft' ? gpu.count : 1))
    .with({ kind: 'cpu' }, () => 1)
    .exhaustive();
}

/** GPUs that each process their own micro-batch. */
export function dataParallelRanks(device: ResolvedDevice): number {
  return match(device)
    .with({ kind: 'cuda' }, (gpu) => gpu.count)
    .with({ kind: 'cpu' }, () => 1)
    .exhaustive();
}
