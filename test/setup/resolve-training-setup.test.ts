/** resolveTrainingSetup: what every 'auto' means on a worker, and which explicit choices a worker cannot honour. */
import { describe, expect, it } from 'vitest';
import type { WorkerFacts } from '../../src/contract/index.ts';
import { isInvalidSpecError } from '../../src/errors/index.ts';
import { resolveTrainingSetup, type TrainingChoices } from '../../src/setup/index.ts';

const gpuWorker: WorkerFacts = {
  device: { kind: 'cuda', name: 'NVIDIA H200', memory_gib: 139.8, count: 1 },
  cuda_bf16_supported: true,
  unsloth_importable: true,
  bitsandbytes_importable: true,
};
const cpuWorker: WorkerFacts = {
  device: { kind: 'cpu', name: 'cpu', memory_gib: 16, count: 1, cores: 2 },
  cuda_bf16_supported: false,
  unsloth_importable: false,
  bitsandbytes_importable: false,
};

const choices = (device: Partial<TrainingChoices['device']> = {}, train: Partial<TrainingChoices['train']> = {}): TrainingChoices => ({
  device: { type: 'auto', backend: 'auto', quantization: 'none', gpu_count: 1, cpu_processes: 1, parallelism: 'auto', ...device },
  train: { optimizer: 'auto', gradient_checkpointing: 'auto', packing: 'auto', micro_batch_size: 'auto', ...train },
});

function invalidField(run: () => unknown): unknown {
  try {
    run();
  } catch (error) {
    expect(isInvalidSpecError(error)).toBe(true);
    return (error as { details: { field: unknown } }).details.field;
  }
  throw new Error('expected an InvalidSpec error');
}

describe('resolveTrainingSetup', () => {
  it('resolves auto on a CUDA worker with Unsloth to Unsloth, bf16, checkpointing, 8-bit AdamW and packing', () => {
    expect(resolveTrainingSetup(choices(), gpuWorker)).toEqual({
      device: 'cuda',
      backend: 'unsloth',
      quantization: 'none',
      dtype: 'bfloat16',
      gradient_checkpointing: true,
      // micro_batch_size auto: the memory-safest split of the default effective batch of 4 until the planner chooses.
      micro_batch_size: 1,
      gradient_accumulation_steps: 4,
      optimizer: 'adamw_8bit',
      packing: true,
      processes: 1,
      parallelism: 'single',
    });
  });

  it('resolves auto on a CPU worker to hf-peft in float32 without checkpointing, torch AdamW, unpacked', () => {
    expect(resolveTrainingSetup(choices(), cpuWorker)).toEqual({
      device: 'cpu',
      backend: 'hf-peft',
      quantization: 'none',
      dtype: 'float32',
      gradient_checkpointing: false,
      micro_batch_size: 1,
      gradient_accumulation_steps: 4,
      optimizer: 'adamw_torch',
      packing: false,
      processes: 1,
      parallelism: 'single',
    });
  });

  it('packs on auto only under Unsloth, and packs hf-peft when asked', () => {
    expect(resolveTrainingSetup(choices({ backend: 'hf-peft' }), gpuWorker).packing).toBe(false);
    expect(resolveTrainingSetup(choices({}, { packing: true }), cpuWorker).packing).toBe(true);
    expect(resolveTrainingSetup(choices({}, { packing: false }), gpuWorker).packing).toBe(false);
  });

  it('falls back where the worker lacks a package: fp16 without bf16, hf-peft without Unsloth, torch AdamW without bitsandbytes', () => {
    const bare = { ...gpuWorker, cuda_bf16_supported: false, unsloth_importable: false, bitsandbytes_importable: false };
    expect(resolveTrainingSetup(choices(), bare)).toMatchObject({
      backend: 'hf-peft',
      dtype: 'float16',
      optimizer: 'adamw_torch',
      gradient_checkpointing: true,
    });
  });

  it('keeps explicit choices, and a CPU run on a CUDA worker trains as a CPU run', () => {
    expect(
      resolveTrainingSetup(choices({ backend: 'hf-peft', quantization: '4bit' }, { optimizer: 'paged_adamw_8bit', gradient_checkpointing: false }), gpuWorker),
    ).toMatchObject({
      backend: 'hf-peft',
      quantization: '4bit',
      optimizer: 'paged_adamw_8bit',
      gradient_checkpointing: false,
    });
    expect(resolveTrainingSetup(choices({ type: 'cpu' }), gpuWorker)).toMatchObject({
      device: 'cpu',
      backend: 'hf-peft',
      dtype: 'float32',
      optimizer: 'adamw_torch',
    });
  });

  it('splits the effective batch as the spec says: a fixed micro-batch with its accumulation, or train.batch_size over it', () => {
    const batch = (train: Partial<TrainingChoices['train']>) => {
      const { micro_batch_size, gradient_accumulation_steps } = resolveTrainingSetup(choices({}, train), gpuWorker);
      return [micro_batch_size, gradient_accumulation_steps];
    };
    expect(batch({ micro_batch_size: 8 })).toEqual([8, 1]);
    expect(batch({ micro_batch_size: 8, gradient_accumulation_steps: 2 })).toEqual([8, 2]);
    expect(batch({ micro_batch_size: 2, batch_size: 8 })).toEqual([2, 4]);
    expect(batch({ micro_batch_size: 2, gradient_accumulation_steps: 4, batch_size: 8 })).toEqual([2, 4]);
    // auto: the whole batch in single sequences until planTrainingRun has chosen the fastest split that fits.
    expect(batch({ micro_batch_size: 'auto', batch_size: 16 })).toEqual([1, 16]);
  });

  it('refuses batch fields that say two different things, naming the field', () => {
    const refused = (train: Partial<TrainingChoices['train']>) => invalidField(() => resolveTrainingSetup(choices({}, train), gpuWorker));
    expect(refused({ micro_batch_size: 'auto', gradient_accumulation_steps: 2 })).toBe('train.gradient_accumulation_steps');
    expect(refused({ micro_batch_size: 4, gradient_accumulation_steps: 2, batch_size: 16 })).toBe('train.batch_size');
    expect(refused({ micro_batch_size: 3, batch_size: 8 })).toBe('train.batch_size');
  });

  it('refuses what the worker cannot do, naming the field', () => {
    expect(invalidField(() => resolveTrainingSetup(choices({ type: 'cuda' }), cpuWorker))).toBe('device.type');
    expect(invalidField(() => resolveTrainingSetup(choices({ backend: 'unsloth' }), cpuWorker))).toBe('device.backend');
    expect(invalidField(() => resolveTrainingSetup(choices({ backend: 'unsloth' }), { ...gpuWorker, unsloth_importable: false }))).toBe('device.backend');
    expect(invalidField(() => resolveTrainingSetup(choices({ quantization: '4bit' }), cpuWorker))).toBe('device.quantization');
    expect(invalidField(() => resolveTrainingSetup(choices({ quantization: '8bit' }), { ...gpuWorker, bitsandbytes_importable: false }))).toBe(
      'device.quantization',
    );
    expect(invalidField(() => resolveTrainingSetup(choices({}, { optimizer: 'adamw_8bit' }), cpuWorker))).toBe('train.optimizer');
  });

  describe('several processes', () => {
    const twoGpus: WorkerFacts = { ...gpuWorker, device: { ...gpuWorker.device, count: 2 } };
    const failure = (run: () => unknown): { field: unknown; message: string } => {
      try {
        run();
      } catch (error) {
        expect(isInvalidSpecError(error)).toBe(true);
        return { field: (error as { details: { field: unknown } }).details.field, message: (error as Error).message };
      }
      throw new Error('expected an InvalidSpec error');
    };

    it('trains one process per GPU on CUDA and device.cpu_processes on a CPU', () => {
      expect(resolveTrainingSetup(choices({ gpu_count: 2 }), twoGpus)).toMatchObject({ device: 'cuda', processes: 2 });
      expect(resolveTrainingSetup(choices({ cpu_processes: 3 }), cpuWorker)).toMatchObject({ device: 'cpu', processes: 3, parallelism: 'ddp' });
      // A CPU run on a CUDA worker counts CPU processes.
      expect(resolveTrainingSetup(choices({ type: 'cpu', cpu_processes: 2 }), twoGpus)).toMatchObject({ device: 'cpu', processes: 2 });
    });

    it('is single for one process whatever device.parallelism says', () => {
      expect(resolveTrainingSetup(choices({ parallelism: 'fsdp' }), gpuWorker)).toMatchObject({ processes: 1, parallelism: 'single', backend: 'unsloth' });
      expect(resolveTrainingSetup(choices({ parallelism: 'ddp' }), cpuWorker)).toMatchObject({ processes: 1, parallelism: 'single' });
      // Unsloth with fsdp on one GPU is no contradiction: nothing is sharded.
      expect(resolveTrainingSetup(choices({ parallelism: 'fsdp', backend: 'unsloth' }), gpuWorker).parallelism).toBe('single');
    });

    it('is DDP on auto and ddp, keeping Unsloth and its packing', () => {
      for (const parallelism of ['auto', 'ddp'] as const) {
        expect(resolveTrainingSetup(choices({ gpu_count: 2, parallelism }), twoGpus)).toMatchObject({
          parallelism: 'ddp',
          backend: 'unsloth',
          packing: true,
        });
      }
    });

    it('shards with hf-peft on fsdp: backend auto becomes hf-peft, and packing follows the backend', () => {
      expect(resolveTrainingSetup(choices({ gpu_count: 2, parallelism: 'fsdp' }), twoGpus)).toMatchObject({
        processes: 2,
        parallelism: 'fsdp',
        backend: 'hf-peft',
        packing: false,
      });
      expect(resolveTrainingSetup(choices({ gpu_count: 2, parallelism: 'fsdp', backend: 'hf-peft' }, { packing: true }), twoGpus)).toMatchObject({
        parallelism: 'fsdp',
        backend: 'hf-peft',
        packing: true,
      });
      expect(resolveTrainingSetup(choices({ cpu_processes: 2, parallelism: 'fsdp' }), cpuWorker)).toMatchObject({ parallelism: 'fsdp', backend: 'hf-peft' });
    });

    it('shards torch AdamW under FSDP, refusing the 8-bit optimizers it was not measured with', () => {
      expect(resolveTrainingSetup(choices({ gpu_count: 2, parallelism: 'fsdp' }), twoGpus).optimizer).toBe('adamw_torch');
      expect(resolveTrainingSetup(choices({ gpu_count: 2, parallelism: 'ddp' }), twoGpus).optimizer).toBe('adamw_8bit');
      for (const optimizer of ['adamw_8bit', 'paged_adamw_8bit'] as const) {
        const refused = failure(() => resolveTrainingSetup(choices({ gpu_count: 2, parallelism: 'fsdp' }, { optimizer }), twoGpus));
        expect(refused.field).toBe('train.optimizer');
        expect(refused.message).toContain(`train.optimizer ${optimizer} under FSDP`);
      }
    });

    it('refuses FSDP with Unsloth, which trains data-parallel only', () => {
      const refused = failure(() => resolveTrainingSetup(choices({ gpu_count: 2, parallelism: 'fsdp', backend: 'unsloth' }), twoGpus));
      expect(refused.field).toBe('device.parallelism');
      expect(refused.message).toMatch(/unsloth/);
    });

    it('refuses more GPUs than the worker has, naming both counts', () => {
      const refused = failure(() => resolveTrainingSetup(choices({ gpu_count: 4 }), twoGpus));
      expect(refused.field).toBe('device.gpu_count');
      expect(refused.message).toBe('device.gpu_count is 4 but the worker has 2 GPUs');
    });

    it('refuses CPU processes on a CUDA run and GPUs on a CPU run', () => {
      const cpuProcessesOnCuda = failure(() => resolveTrainingSetup(choices({ cpu_processes: 2 }), gpuWorker));
      expect(cpuProcessesOnCuda.field).toBe('device.cpu_processes');
      const gpusOnCpu = failure(() => resolveTrainingSetup(choices({ gpu_count: 2 }), cpuWorker));
      expect(gpusOnCpu.field).toBe('device.gpu_count');
      expect(gpusOnCpu.message).toMatch(/device\.cpu_processes/);
      // An explicit CPU run on a GPU worker is a CPU run: gpu_count does not apply to it.
      expect(failure(() => resolveTrainingSetup(choices({ type: 'cpu', gpu_count: 2 }), twoGpus)).field).toBe('device.gpu_count');
    });
  });
});
