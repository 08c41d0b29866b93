import type { TrainingSetup, WorkerFacts } from '../contract/index.ts';
import { InvalidSpecError } from '../errors/index.ts';
import { Parallelism, type TrainingBackend } from '../contract/vocabulary.ts';
import type { DeviceSpec, TrainSpec } from '../spec/schema.ts';
import { type BatchChoices, requestedBatch } from './batch.ts';
import { objectivePacking } from './objective-packing.ts';

/** The spec fields that choose how to train; a whole RunSpec is one. */
export interface TrainingChoices {
  device: Pick<DeviceSpec, 'type' | 'backend' | 'quantization' | 'gpu_count' | 'cpu_processes' | 'parallelism'>;
  train: Pick<TrainSpec, 'optimizer' | 'gradient_checkpointing' | 'packing'> & BatchChoices & Partial<Pick<TrainSpec, 'objective'>>;
}

/**
 * What every 'auto' in the spec means on a worker with these facts: the one rule, used by the workflow's plan
 * stage and by `tuneflow plan` alike. The Python side receives the answer and decides nothing. A choice the worker
 * cannot honour (Unsloth without Unsloth, bitsandbytes without CUDA) is bad input, named by its field.
 */
export function resolveTrainingSetup(spec: TrainingChoices, facts: WorkerFacts): TrainingSetup {
  const cuda = facts.device.kind === 'cuda';
  if (spec.device.type === 'cuda' && !cuda) {
    throw new InvalidSpecError('device.type is cuda but the worker has no CUDA device', { field: 'device.type' });
  }
  const device = spec.device.type === 'auto' ? facts.device.kind : spec.device.type;
  const onCuda = device === 'cuda';
  // bitsandbytes' 4/8-bit weights and 8-bit optimizers have CUDA kernels only.
  const bitsandbytes = onCuda && facts.bitsandbytes_importable;

  const unsloth = onCuda && facts.unsloth_importable;
  if (spec.device.backend === 'unsloth' && !unsloth) {
    throw new InvalidSpecError(
      `device.backend is unsloth but ${onCuda ? 'Unsloth does not import on the worker' : 'the run trains on a CPU'}; use auto or hf-peft`,
      {
        field: 'device.backend',
      },
    );
  }
  if (spec.device.quantization !== 'none' && !bitsandbytes) {
    throw new InvalidSpecError(`device.quantization ${spec.device.quantization} needs CUDA and bitsandbytes on the worker; use none`, {
      field: 'device.quantization',
    });
  }
  if ((spec.train.optimizer === 'adamw_8bit' || spec.train.optimizer === 'paged_adamw_8bit') && !bitsandbytes) {
    throw new InvalidSpecError(`train.optimizer ${spec.train.optimizer} needs CUDA and bitsandbytes on the worker; use auto or adamw_torch`, {
      field: 'train.optimizer',
    });
  }

  const processes = trainingProcesses(spec.device, facts, onCuda);
  const parallelism =
    processes === 1 ? Parallelism.Single : spec.device.parallelism === 'fsdp' ? Parallelism.FullyShardedDataParallel : Parallelism.DistributedDataParallel;
  const sharded = parallelism === Parallelism.FullyShardedDataParallel;
  if (sharded && spec.device.backend === 'unsloth') {
    throw new InvalidSpecError(
      'device.parallelism fsdp shards the model with hf-peft, but device.backend is unsloth (Unsloth trains data-parallel only); use ddp, or backend auto or hf-peft',
      {
        field: 'device.parallelism',
      },
    );
  }

  if (sharded && (spec.train.optimizer === 'adamw_8bit' || spec.train.optimizer === 'paged_adamw_8bit')) {
    throw new InvalidSpecError(
      `train.optimizer ${spec.train.optimizer} under FSDP: bitsandbytes' 8-bit optimizers are not run on sharded parameters here (FSDP was measured with torch AdamW only); use auto or adamw_torch`,
      { field: 'train.optimizer' },
    );
  }

  const batch = requestedBatch(spec.train);
  // Unsloth's fused kernels: about 2x faster and far less memory, where it runs; FSDP shards with transformers + PEFT.
  const backend: TrainingBackend = spec.device.backend === 'auto' ? (unsloth && !sharded ? 'unsloth' : 'hf-peft') : spec.device.backend;
  return {
    device,
    backend,
    quantization: spec.device.quantization,
    dtype: onCuda ? (facts.cuda_bf16_supported ? 'bfloat16' : 'float16') : 'float32',
    // 'auto' is the fastest setting that fits, which only the planner knows (planTrainingRun weighs off and on,
    // planner/fastest-fit.ts); the memory-safe one on a GPU until it has.
    gradient_checkpointing: spec.train.gradient_checkpointing === 'auto' ? onCuda : spec.train.gradient_checkpointing,
    // micro_batch_size 'auto' likewise: the fastest split of the effective batch that fits is the planner's to find;
    // until it has, the memory-safest, one sequence per pass.
    ...('fixed' in batch ? batch.fixed : { micro_batch_size: 1, gradient_accumulation_steps: batch.auto.batch_size }),
    // 8-bit AdamW halves optimizer memory where bitsandbytes runs; FSDP shards torch AdamW's state instead.
    optimizer: spec.train.optimizer === 'auto' ? (bitsandbytes && !sharded ? 'adamw_8bit' : 'adamw_torch') : spec.train.optimizer,
    // Both loaders pack correctly, but only Unsloth's attention takes the row boundaries natively (varlen kernels, 4.8x
    // the unpacked real tokens/s on an H200, docs/gpu.md). transformers turns them into a block-diagonal mask, which
    // keeps sdpa off its flash kernel: hf-peft packs only when asked.
    packing: objectivePacking(spec.train.objective, spec.train.packing) ?? (spec.train.packing === 'auto' ? backend === 'unsloth' : spec.train.packing),
    processes,
    // Several processes replicate the model (DDP) unless the spec asks to shard it. device.parallelism 'auto' is DDP
    // here: only the planner knows whether DDP fits, and planTrainingRun asks again for FSDP when it does not.
    parallelism,
  };
}

/**
 * One process per GPU on CUDA, device.cpu_processes on a CPU; each count belongs to its device, so the other one
 * above 1 is a spec that says something the run would not do.
 */
function trainingProcesses(device: TrainingChoices['device'], facts: WorkerFacts, onCuda: boolean): number {
  if (!onCuda) {
    if (device.gpu_count > 1) {
      throw new InvalidSpecError(`device.gpu_count is ${device.gpu_count} but the run trains on a CPU; for several CPU processes use device.cpu_processes`, {
        field: 'device.gpu_count',
      });
    }
    return device.cpu_processes;
  }
  if (device.cpu_processes > 1) {
    throw new InvalidSpecError(`device.cpu_processes is ${device.cpu_processes} but the run trains on CUDA, one process per GPU; use device.gpu_count`, {
      field: 'device.cpu_processes',
    });
  }
  if (device.gpu_count > facts.device.count) {
    throw new InvalidSpecError(`device.gpu_count is ${device.gpu_count} but the worker has ${facts.device.count} GPU${facts.device.count === 1 ? '' : 's'}`, {
      field: 'device.gpu_count',
    });
  }
  return device.gpu_count;
}
