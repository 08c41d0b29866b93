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

const spec = (device: Partial<PlannedSpec['device']>, train: Partial<PlannedSpec['train']> = {}, sequence = 2048, rank = 16): PlannedSpec => ({
  model: { max_seq_length: sequence },
  lora: { r: rank, target_modules: 'all-linear' },
  train: { micro_batch_size: 1, gradient_accumulation_steps: 4, epochs: 1, optimizer: 'auto', gradient_checkpointing: 'auto', packing: 'auto', ...train },
  device: { type: 'auto', gpu: 'auto', gpu_count: 2, parallelism: 'auto', cpu_processes: 1, backend: 'auto', quantization: 'none', ...device },
});

describe('parallelism in the planner', () => {
  it('shards memory per GPU under FSDP, and DDP holds a whole replica on each: a 70B shape in 4-bit at micro-batch 4 on 2 × A100-80GB', () => {
    const options = { quantization: '4bit', micro_batch_size: 4 } as const;
    const one = evaluatePlan(requestFor('llama-3.1-70b', { ...options, device: { gpu: 'a100-80gb' } }));
    const ddp = evaluatePlan(requestFor('llama-3.1-70b', { ...options, device: { gpu: 'a100-80gb', count: 2 }, parallelism: 'ddp' }));
    const fsdp = evaluatePlan(requestFor('llama-3.1-70b', { ...options, device: { gpu: 'a100-80gb', count: 2 }, parallelism: 'fsdp' }));
    expect(ddp.breakdown).toEqual(one.breakdown);
    expect(ddp.peak_vram_gib).toBe(one.peak_vram_gib);
    // Halved: the frozen weights' constants, embeddings/head and the adapter's parameters, gradients and optimizer state.
    for (const term of ['quantization_constants', 'embeddings_and_head', 'lora_parameters', 'lora_gradients', 'optimizer_state'] as const) {
      expect(fsdp.breakdown[term]).toBeCloseTo(one.breakdown[term]! / 2, 2);
    }
    // The base weights are halved too, plus the two layers gathered at a time.
    expect(fsdp.breakdown.base_weights).toBeGreaterThan(one.breakdown.base_weights! / 2);
    expect(fsdp.breakdown.base_weights).toBeLessThan(one.breakdown.base_weights! * 0.55);
    // Each GPU's own: its micro-batch's activations and logits; and training, not the load, is the peak here.
    for (const term of ['dequantization_buffer', 'activations', 'logits_and_loss', 'runtime_context'] as const)
      expect(fsdp.breakdown[term]).toBe(one.breakdown[term]);
    expect(fsdp.breakdown.unsharded_load).toBe(0);
    expect([one.peak_vram_gib, fsdp.peak_vram_gib]).toEqual([82.922, 59.937]);
    expect([one.fits, ddp.fits, fsdp.fits]).toEqual([false, false, true]);
  });

  it("counts FSDP's load: each GPU holds its shard of the model and, for a moment, the whole embeddings and head, which no replica or single plan adds", () => {
    for (const [gpu, count, micro, sequence] of [
      ['l40s', 2, 1, 512],
      ['a100-80gb', 2, 4, 2048],
      ['rtx-4090', 8, 1, 512],
      ['h100', 4, 2, 1024],
    ] as const) {
      const options = { quantization: '4bit', micro_batch_size: micro, sequence_length: sequence } as const;
      const one = evaluatePlan(requestFor('llama-3.1-70b', { ...options, device: { gpu } }));
      const ddp = evaluatePlan(requestFor('llama-3.1-70b', { ...options, device: { gpu, count }, parallelism: 'ddp' }));
      const fsdp = evaluatePlan(requestFor('llama-3.1-70b', { ...options, device: { gpu, count }, parallelism: 'fsdp' }));
      // One process's whole model: every weight, the constants, the FP32 embeddings/head and the FP32 adapter. While
      // loading, a GPU holds its shard of it and the whole embeddings/head (the root group arrives whole).
      const whole = one.breakdown.base_weights! + one.breakdown.quantization_constants! + one.breakdown.embeddings_and_head! + one.breakdown.lora_parameters!;
      const loaded = whole / count + one.breakdown.embeddings_and_head!;
      const { unsharded_load, runtime_context, allocator_slack, ...allocated } = fsdp.breakdown;
      const shardedTotal = Object.values(allocated).reduce((sum, value) => sum + value, 0);
      expect(unsharded_load).toBeCloseTo(Math.max(0, loaded - shardedTotal), 2);
      expect(fsdp.peak_vram_gib).toBeCloseTo(shardedTotal + unsharded_load! + runtime_context! + allocator_slack!, 2);
      expect(fsdp.peak_vram_gib).toBeGreaterThanOrEqual(loaded + runtime_context!);
      expect([one.breakdown.unsharded_load, ddp.breakdown.unsharded_load]).toEqual([0, 0]);
      // Where the load is the peak, the plan says so.
      const explained = fsdp.notes.some((note) =>
        note.startsWith('FSDP: while loading, each GPU holds its shard of every layer and, for a moment, the whole embeddings and head ('),
      );
      expect(explained).toBe(unsharded_load! > 0);
    }
    // At micro-batch 1 the load is the peak (2 × L40S); at micro-batch 4 training is (2 × A100-80GB, above).
    const load = evaluatePlan(
      requestFor('llama-3.1-70b', { quantization: '4bit', sequence_length: 512, device: { gpu: 'l40s', count: 2 }, parallelism: 'fsdp' }),
    );
    expect(load.breakdown.unsharded_load).toBeCloseTo(3.083, 3);
    expect(load.fits).toBe(true);
    expect(load.notes).toContain(
      'FSDP: while loading, each GPU holds its shard of every layer and, for a moment, the whole embeddings and head (28.579 GiB); that moment is this peak (unsharded_load)',
    );
  });

  /**
   * Sharding shrinks the training state, not the load: it wins where the adapter's state is what overflows, here LoRA
   * rank 256 with full-precision AdamW on a 70B shape in 4-bit (each GPU still loads the whole 4-bit model first).
   */
  const bigAdapter = (device: Partial<PlannedSpec['device']> = {}) =>
    planTrainingRun({
      spec: spec({ gpu: 'a100-80gb', quantization: '4bit', ...device }, { optimizer: 'adamw_torch' }, 512, 256),
      worker: twoGpus('a100-80gb', 80),
      architecture: architecture('llama-3.1-70b'),
      tokens: {},
    });

  it('plans auto as FSDP with hf-peft where DDP does not fit and FSDP does: a 70B shape in 4-bit at rank 256 with AdamW on 2 × A100-80GB', () => {
    const { setup, request, plan } = bigAdapter();
    expect(setup).toMatchObject({ processes: 2, parallelism: 'fsdp', backend: 'hf-peft', optimizer: 'adamw_torch', packing: false });
    expect(request).toMatchObject({ parallelism: 'fsdp', backend: 'hf-peft', lora_rank: 256 });
    expect(plan.fits).toBe(true);
    expect(plan.notes[0]).toMatch(
      /^device\.parallelism auto chose FSDP \(hf-peft\) over the 2 GPUs: DDP's replicas need \d+\.\d+ GiB per GPU, FSDP's shards \d+\.\d+ of the 80 GiB$/,
    );
    // The adapter state is what overflows here, not loading: a GPU holds its shard while it loads, so the load adds nothing.
    expect(plan.breakdown.unsharded_load).toBe(0);
    expect(plan.notes.some((note) => note.startsWith('FSDP: while loading'))).toBe(false);
    // The replicas' peak that the note quotes is the DDP plan's, over one GPU's memory.
    const replicas = bigAdapter({ parallelism: 'ddp' });
    expect(replicas.setup).toMatchObject({ parallelism: 'ddp', backend: 'unsloth' });
    expect(replicas.plan.fits).toBe(false);
    expect(plan.notes[0]).toContain(`need ${replicas.plan.peak_vram_gib} GiB per GPU, FSDP's shards ${plan.peak_vram_gib} of`);
    // The shards leave room for every layer's activations: gradient checkpointing auto turns it off (faster).
    expect([replicas.plan.peak_vram_gib, plan.peak_vram_gib]).toEqual([90.775, 71.492]);
    expect(setup.gradient_checkpointing).toBe(false);
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

  it('keeps the DDP plan, saying so, when FSDP does not fit either: 70B in 4-bit on 2 × 24 GiB, which 4 of them hold', () => {
    const { setup, plan } = planTrainingRun({
      spec: spec({ gpu: 'rtx-4090', quantization: '4bit' }),
      worker: twoGpus('rtx-4090', 23.99),
      architecture: architecture('llama-3.1-70b'),
      tokens: {},
    });
    expect(setup.parallelism).toBe('ddp');
    expect(plan.fits).toBe(false);
    expect(plan.notes[0]).toMatch(/^device\.parallelism auto: FSDP \(hf-peft\) over the 2 GPUs would not fit either, at \d+\.\d+ GiB per GPU$/);
    // Sharding over the same 2 would not fit (no shard-model); over 4 it does: each holds a quarter while loading.
    const kinds = plan.suggestions.map((suggestion) => suggestion.kind);
    expect(kinds).not.toContain('shard-model');
    expect(plan.suggestions.find((suggestion) => suggestion.kind === 'more-gpus')).toMatchObject({
      changes: { backend: 'hf-peft', parallelism: 'fsdp', optimizer: 'adamw_torch', device: { gpu: 'rtx-4090', count: 4 } },
      fits: true,
    });
    expect(plan.suggestions.find((suggestion) => suggestion.kind === 'bigger-gpu')).toMatchObject({
      changes: { device: { gpu: 'l40s', count: 2 } },
      fits: true,
    });
    const eight = evaluatePlan({
      ...planTrainingRun({
        spec: spec({ gpu: 'rtx-4090', quantization: '4bit', parallelism: 'fsdp' }),
        worker: twoGpus('rtx-4090', 23.99),
        architecture: architecture('llama-3.1-70b'),
        tokens: {},
      }).request,
      device: { gpu: 'rtx-4090', count: 8 },
    });
    // At sequence 2048 training, not loading, is each GPU's peak: 8 of them hold it.
    expect(eight.fits).toBe(true);
  });

  it('suggests sharding over the same GPUs when replicas pinned to DDP do not fit, and never for FSDP or one GPU', () => {
    // An 8B shape in 16-bit at LoRA rank 512 on 2 × 24 GiB: the replicas' adapter state overflows, the shards' does not.
    const options = { micro_batch_size: 1, sequence_length: 512, backend: 'unsloth', optimizer: 'adamw_8bit', lora_rank: 512 } as const;
    const ddp = planRun(requestFor('llama-3.1-8b', { ...options, device: { gpu: 'rtx-4090', count: 2 }, parallelism: 'ddp' }));
    expect(ddp.fits).toBe(false);
    // FSDP trains with torch AdamW (the setup refuses 8-bit optimizers on sharded parameters), so the change says so.
    expect(ddp.suggestions[0]).toMatchObject({
      kind: 'shard-model',
      changes: { backend: 'hf-peft', parallelism: 'fsdp', optimizer: 'adamw_torch' },
      description: 'FSDP with hf-peft: each GPU keeps 1/2 of the weights and adapter state, optimizer adamw_torch',
      fits: true,
    });
    expect(ddp.suggestions.map((suggestion) => suggestion.kind)).not.toContain('eight-bit-optimizer');
    expect(ddp.suggestions[0]!.peak_vram_gib).toBe(
      evaluatePlan(
        requestFor('llama-3.1-8b', { ...options, backend: 'hf-peft', optimizer: 'adamw_torch', device: { gpu: 'rtx-4090', count: 2 }, parallelism: 'fsdp' }),
      ).peak_vram_gib,
    );
    const seventy = { quantization: '4bit', micro_batch_size: 1, sequence_length: 512, optimizer: 'adamw_8bit' } as const;
    const fsdp = planRun(requestFor('llama-3.1-70b', { ...seventy, backend: 'hf-peft', device: { gpu: 'rtx-4090', count: 2 }, parallelism: 'fsdp' }));
    const single = planRun(requestFor('llama-3.1-70b', { ...seventy, backend: 'unsloth', device: { gpu: 'rtx-5090' } }));
    for (const plan of [fsdp, single]) {
      expect(plan.fits).toBe(false);
      expect(plan.suggestions.map((suggestion) => suggestion.kind)).not.toContain('shard-model');
    }
  });

  it('keeps DDP, saying why, where the spec pins an 8-bit optimizer that FSDP refuses', () => {
    // Rank 512 with 8-bit AdamW: DDP's replicas do not fit 80 GiB; sharding would need torch AdamW.
    const { setup, plan } = planTrainingRun({
      spec: spec({ gpu: 'a100-80gb', quantization: '4bit' }, { optimizer: 'adamw_8bit' }, 512, 512),
      worker: twoGpus('a100-80gb', 80),
      architecture: architecture('llama-3.1-70b'),
      tokens: {},
    });
    expect(setup).toMatchObject({ parallelism: 'ddp', backend: 'unsloth', optimizer: 'adamw_8bit' });
    expect(plan.fits).toBe(false);
    expect(plan.notes[0]).toBe(
      "device.parallelism auto kept DDP: FSDP is refused for this spec (train.optimizer adamw_8bit under FSDP: bitsandbytes' 8-bit optimizers are not run on sharded parameters here (FSDP was measured with torch AdamW only); use auto or adamw_torch)",
    );
    // Suggestions to shard are planned with torch AdamW, the optimizer FSDP would train with: its state does not fit
    // sharded over these 2 GPUs (so no shard-model), it does over 4.
    const kinds = plan.suggestions.map((suggestion) => suggestion.kind);
    expect(kinds).not.toContain('shard-model');
    expect(plan.suggestions.find((suggestion) => suggestion.kind === 'more-gpus')).toMatchObject({
      changes: { backend: 'hf-peft', parallelism: 'fsdp', optimizer: 'adamw_torch', device: { gpu: 'a100-80gb', count: 4 } },
      fits: true,
    });
  });

  it('does not shard what the spec pins: parallelism ddp, or backend unsloth', () => {
    // The shape that auto shards (above) stays DDP, and does not fit, when the spec pins either.
    for (const device of [
      { parallelism: 'ddp', backend: 'auto' },
      { parallelism: 'auto', backend: 'unsloth' },
    ] as const) {
      const { setup, plan } = bigAdapter(device);
      expect(setup).toMatchObject({ parallelism: 'ddp', backend: 'unsloth' });
      expect(plan.fits).toBe(false);
      expect(plan.notes.some((note) => note.includes('parallelism'))).toBe(false);
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
