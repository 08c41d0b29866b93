/**
 * Several processes in the planner: FSDP shards memory per GPU and DDP does not; device.parallelism auto is DDP
 * where it fits and FSDP where only the shards fit (planTrainingRun); an optimizer step takes every process's
 * micro-batches, so an epoch has fewer steps.
 */
import { describe, expect, it } from 'vitest';
import type { WorkerFacts } from '../../src/contract/index.ts';
import { multiGpuScaling } from '../../src/planner/calibration.ts';
import { evaluatePlan, findArchitecture, type PlannedSpec, planRun, planTrainingRun } from '../../src/planner/index.ts';
import { requestFor } from './helpers.ts';

function architecture(name: string) {
  const found = findArchitecture(name);
  if (found === undefined) throw new Error(`no catalog model ${name}`);
  return found;
}

/** What `tuneflow plan --gpu GPU --gpus 2` assumes of a GPU worker: Unsloth, bitsandbytes and bf16. */
const twoGpus = (name: string, memory_gib: number): WorkerFacts => ({
  device: { kind: 'cuda', name, memory_gib, count: 2 },
  cuda_bf16_supported: true,
  unsloth_importable: true,
  bitsandbytes_importable: true,
});

const spec = (device: Partial<PlannedSpec['device']>, train: Partial<PlannedSpec['train']> = {}, sequence = 2048): PlannedSpec => ({
  model: { max_seq_length: sequence },
  lora: { r: 16, target_modules: 'all-linear' },
  train: { micro_batch_size: 1, gradient_accumulation_steps: 4, epochs: 1, optimizer: 'auto', gradient_checkpointing: 'auto', packing: 'auto', ...train },
  device: { type: 'auto', gpu: 'auto', gpu_count: 2, parallelism: 'auto', cpu_processes: 1, backend: 'auto', quantization: 'none', ...device },
});

describe('parallelism in the planner', () => {
  it('shards memory per GPU under FSDP, and DDP holds a whole replica on each', () => {
    const options = { quantization: '4bit', micro_batch_size: 1 } as const;
    const one = evaluatePlan(requestFor('llama-3.1-70b', { ...options, device: { gpu: 'l40s' } }));
    const ddp = evaluatePlan(requestFor('llama-3.1-70b', { ...options, device: { gpu: 'l40s', count: 2 }, parallelism: 'ddp' }));
    const fsdp = evaluatePlan(requestFor('llama-3.1-70b', { ...options, device: { gpu: 'l40s', count: 2 }, parallelism: 'fsdp' }));
    expect(ddp.peak_vram_gib).toBe(one.peak_vram_gib);
    expect(fsdp.peak_vram_gib).toBeLessThan(one.peak_vram_gib * 0.7);
    expect(fsdp.breakdown.optimizer_state).toBeCloseTo(one.breakdown.optimizer_state! / 2, 2);
    expect([one.fits, ddp.fits, fsdp.fits]).toEqual([false, false, true]);
  });

  it('plans auto as FSDP with hf-peft where DDP does not fit and FSDP does: a 70B shape in 4-bit on 2 × 32 GiB', () => {
    const { setup, request, plan } = planTrainingRun({
      spec: spec({ gpu: 'rtx-5090', quantization: '4bit' }, {}, 512),
      worker: twoGpus('rtx-5090', 31.84),
      architecture: architecture('llama-3.1-70b'),
      tokens: {},
    });
    expect(setup).toMatchObject({ processes: 2, parallelism: 'fsdp', backend: 'hf-peft', packing: false });
    expect(request).toMatchObject({ parallelism: 'fsdp', backend: 'hf-peft' });
    expect(plan.fits).toBe(true);
    expect(plan.notes[0]).toMatch(
      /^device\.parallelism auto chose FSDP \(hf-peft\) over the 2 GPUs: DDP's replicas need \d+\.\d+ GiB per GPU, FSDP's shards \d+\.\d+ of the 31\.84 GiB$/,
    );
    // The replicas' peak that the note quotes is the DDP plan's, over one GPU's memory.
    const replicas = planTrainingRun({
      spec: spec({ gpu: 'rtx-5090', quantization: '4bit', parallelism: 'ddp' }, {}, 512),
      worker: twoGpus('rtx-5090', 31.84),
      architecture: architecture('llama-3.1-70b'),
      tokens: {},
    });
    expect(replicas.setup).toMatchObject({ parallelism: 'ddp', backend: 'unsloth' });
    expect(replicas.plan.fits).toBe(false);
    expect(plan.notes[0]).toContain(`need ${replicas.plan.peak_vram_gib} GiB per GPU, FSDP's shards ${plan.peak_vram_gib} of`);
  });

  it('plans the GPUs the run trains on, not every GPU the worker has', () => {
    const { setup, plan } = planTrainingRun({
      spec: spec({ gpu_count: 1 }),
      worker: twoGpus('h200', 140.4),
      architecture: architecture('llama-3.1-8b'),
      tokens: {},
    });
    expect(setup).toMatchObject({ processes: 1, parallelism: 'single' });
    expect(plan.device).toMatchObject({ kind: 'cuda', name: 'h200', count: 1 });
    expect(plan.effective_batch_size).toBe(4);
  });

  it('keeps DDP where it fits: an 8B shape on 2 × H200', () => {
    const { setup, plan } = planTrainingRun({
      spec: spec({ gpu: 'h200' }),
      worker: twoGpus('h200', 140.4),
      architecture: architecture('llama-3.1-8b'),
      tokens: {},
    });
    expect(setup).toMatchObject({ processes: 2, parallelism: 'ddp', backend: 'unsloth' });
    expect(plan.fits).toBe(true);
    expect(plan.notes.some((note) => note.includes('parallelism'))).toBe(false);
  });

  it('keeps the DDP plan, saying so, when FSDP does not fit either: 70B in 4-bit on 2 × 24 GiB', () => {
    const { setup, plan } = planTrainingRun({
      spec: spec({ gpu: 'rtx-4090', quantization: '4bit' }),
      worker: twoGpus('rtx-4090', 23.99),
      architecture: architecture('llama-3.1-70b'),
      tokens: {},
    });
    expect(setup.parallelism).toBe('ddp');
    expect(plan.fits).toBe(false);
    expect(plan.notes[0]).toMatch(/^device\.parallelism auto: FSDP \(hf-peft\) over the 2 GPUs would not fit either, at \d+\.\d+ GiB per GPU$/);
    // More GPUs help only sharded: the suggestion says FSDP.
    const moreGpus = plan.suggestions.find((suggestion) => suggestion.kind === 'more-gpus');
    expect(moreGpus?.changes).toMatchObject({ backend: 'hf-peft', parallelism: 'fsdp', device: { gpu: 'rtx-4090', count: 4 } });
    expect(moreGpus?.description).toContain('FSDP with hf-peft: each GPU holds 1/4 of the weights and adapter state');
  });

  it('suggests sharding over the same GPUs when replicas pinned to DDP do not fit, and never for FSDP or one GPU', () => {
    const options = { quantization: '4bit', micro_batch_size: 1, sequence_length: 512, backend: 'unsloth', optimizer: 'adamw_8bit' } as const;
    const ddp = planRun(requestFor('llama-3.1-70b', { ...options, device: { gpu: 'rtx-5090', count: 2 }, parallelism: 'ddp' }));
    expect(ddp.fits).toBe(false);
    expect(ddp.suggestions[0]).toMatchObject({
      kind: 'shard-model',
      changes: { backend: 'hf-peft', parallelism: 'fsdp' },
      description: 'FSDP with hf-peft: each GPU holds 1/2 of the weights and adapter state',
      fits: true,
    });
    const fsdp = planRun(requestFor('llama-3.1-70b', { ...options, backend: 'hf-peft', device: { gpu: 'rtx-4090', count: 2 }, parallelism: 'fsdp' }));
    const single = planRun(requestFor('llama-3.1-70b', { ...options, device: { gpu: 'rtx-5090' } }));
    for (const plan of [fsdp, single]) expect(plan.suggestions.map((suggestion) => suggestion.kind)).not.toContain('shard-model');
  });

  it('does not shard what the spec pins: parallelism ddp, or backend unsloth', () => {
    const input = { worker: twoGpus('rtx-5090', 31.84), architecture: architecture('llama-3.1-70b'), tokens: {} };
    for (const device of [
      { parallelism: 'ddp', backend: 'auto' },
      { parallelism: 'auto', backend: 'unsloth' },
    ] as const) {
      const { setup, plan } = planTrainingRun({ ...input, spec: spec({ gpu: 'rtx-5090', quantization: '4bit', ...device }, {}, 512) });
      expect(setup.parallelism).toBe('ddp');
      expect(plan.fits).toBe(false);
    }
  });

  it('counts every process in the effective batch and divides the steps of an epoch by the processes', () => {
    // 1000 rows of 200 tokens, unpacked; hf-peft so that nothing is compiled and widths are the rows'.
    const lengths = [{ up_to: 256, rows: 1000, tokens: 200_000 }];
    const options = { backend: 'hf-peft', micro_batch_size: 2, gradient_accumulation_steps: 5, lengths, packing: false, sequence_length: 256 } as const;
    const one = evaluatePlan(requestFor('llama-3.2-1b', { ...options, device: { gpu: 'h200' } }));
    const two = evaluatePlan(requestFor('llama-3.2-1b', { ...options, device: { gpu: 'h200', count: 2 }, parallelism: 'ddp' }));
    expect(one.effective_batch_size).toBe(10);
    expect(two.effective_batch_size).toBe(20);
    expect(one.run_time?.steps).toBe(100);
    expect(two.run_time?.steps).toBe(50);
    // A step is one GPU's accumulation, slowed by the all-reduce; it trains twice the rows.
    expect(two.step_seconds).toBeCloseTo(one.step_seconds / multiGpuScaling, 2);
    expect(two.run_time!.step_seconds).toBeCloseTo(one.run_time!.step_seconds / multiGpuScaling, 2);
    expect(two.run_time!.real_tokens_per_step).toBeCloseTo(2 * one.run_time!.real_tokens_per_step, 1);
    expect(two.tokens_per_s).toBeCloseTo(2 * multiGpuScaling * one.tokens_per_s, 0);
    expect(two.run_time!.training_seconds).toBeCloseTo(one.run_time!.training_seconds / (2 * multiGpuScaling), 0);
  });

  it('plans CPU processes as data-parallel ranks that share the cores and the RAM', () => {
    const cpuWorker: WorkerFacts = {
      device: { kind: 'cpu', name: 'cpu', memory_gib: 16, count: 1, cores: 4 },
      cuda_bf16_supported: false,
      unsloth_importable: false,
      bitsandbytes_importable: false,
    };
    const lengths = [{ up_to: 128, rows: 100, tokens: 10_000 }];
    const plan = (cpu_processes: number) =>
      planTrainingRun({
        spec: spec({ gpu_count: 1, cpu_processes }, { gradient_accumulation_steps: 1 }, 128),
        worker: cpuWorker,
        architecture: architecture('smollm2-135m'),
        tokens: { lengths },
      });
    const single = plan(1);
    const two = plan(2);
    expect(two.setup).toMatchObject({ device: 'cpu', processes: 2, parallelism: 'ddp' });
    expect(two.request.cpu_processes).toBe(2);
    expect(two.plan.effective_batch_size).toBe(2);
    expect(single.plan.run_time?.steps).toBe(100);
    expect(two.plan.run_time?.steps).toBe(50);
    expect(two.plan.available_gib).toBeCloseTo(single.plan.available_gib / 2, 2);
    expect(two.plan.notes).toContain(`2 CPU processes share the 4 cores and the RAM: each trains with 2 cores in ${two.plan.available_gib} GiB`);
  });
});
