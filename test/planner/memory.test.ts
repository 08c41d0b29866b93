import { describe, expect, it } from 'vitest';
import { evaluatePlan, loraParameters, findArchitecture } from '../../src/planner/index.ts';
import { requestFor } from './helpers.ts';

const gigabyte = 1e9 / 2 ** 30;

describe('memory model, term by term', () => {
  it('puts the 4-bit weights of a 70B at 35–40 GB: no 24 GB card holds them', () => {
    const plan = evaluatePlan(requestFor('llama-3.3-70b', { quantization: '4bit', backend: 'unsloth', device: { gpu: 'rtx-4090' } }));
    const weights = plan.breakdown.base_weights! + plan.breakdown.quantization_constants! + plan.breakdown.embeddings_and_head!;
    expect(weights).toBeGreaterThan(35 * gigabyte);
    expect(weights).toBeLessThan(40 * gigabyte * 1.05);
    expect(plan.fits).toBe(false);
  });

  it('keeps embeddings and the untied lm_head unquantised: 16-bit with Unsloth, FP32 after PEFT prepare_model_for_kbit_training', () => {
    const full = evaluatePlan(requestFor('llama-3.1-8b', { backend: 'unsloth' }));
    const quantized = evaluatePlan(requestFor('llama-3.1-8b', { backend: 'unsloth', quantization: '4bit' }));
    const peftQuantized = evaluatePlan(requestFor('llama-3.1-8b', { backend: 'hf-peft', quantization: '4bit' }));
    expect(quantized.breakdown.embeddings_and_head).toBe(full.breakdown.embeddings_and_head);
    expect(peftQuantized.breakdown.embeddings_and_head).toBeCloseTo(2 * full.breakdown.embeddings_and_head!, 2);
    // 2 × 128256 × 4096 parameters in BF16.
    expect(full.breakdown.embeddings_and_head).toBeCloseTo((2 * 128256 * 4096 * 2) / 2 ** 30, 1);
    // NF4 with double quantisation: half a byte per weight plus ~0.127 bits of constants.
    expect(quantized.breakdown.base_weights! / full.breakdown.base_weights!).toBeCloseTo(0.25, 3);
    expect(quantized.breakdown.quantization_constants! / quantized.breakdown.base_weights!).toBeCloseTo(1 / 64 / 0.5 + 4 / (64 * 256) / 0.5, 4);
  });

  it('counts LoRA parameters per target module per layer', () => {
    const architecture = findArchitecture('llama-3.1-8b')!;
    // q: 4096+4096, k: 4096+1024, v: 4096+1024, o: 4096+4096, gate/up: 4096+14336, down: 14336+4096; × r × 32 layers.
    const perLayerPerRank = 8192 + 5120 + 5120 + 8192 + 3 * 18432;
    expect(loraParameters(architecture, 16, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'])).toBe(perLayerPerRank * 16 * 32);
    expect(evaluatePlan(requestFor('llama-3.1-8b', { lora_rank: 16 })).trainable_parameters).toBe(41_943_040);
    expect(evaluatePlan(requestFor('llama-3.1-8b', { target_modules: ['q_proj', 'v_proj'] })).trainable_parameters).toBe((8192 + 5120) * 16 * 32);
  });

  it('charges 4 bytes per adapter weight and gradient, and 8 or 2 for the optimizer by kind', () => {
    const torch = evaluatePlan(requestFor('llama-3.1-8b', { lora_rank: 64 }));
    const eightBit = evaluatePlan(requestFor('llama-3.1-8b', { lora_rank: 64, optimizer: 'adamw_8bit' }));
    const paged = evaluatePlan(requestFor('llama-3.1-8b', { lora_rank: 64, optimizer: 'paged_adamw_8bit' }));
    expect(torch.breakdown.lora_gradients).toBe(torch.breakdown.lora_parameters);
    expect(torch.breakdown.optimizer_state).toBeCloseTo(2 * torch.breakdown.lora_parameters!, 2);
    expect(eightBit.breakdown.optimizer_state).toBeCloseTo(torch.breakdown.optimizer_state! / 4, 2);
    expect(paged.breakdown.optimizer_state).toBe(eightBit.breakdown.optimizer_state);
  });

  it('shrinks activations with checkpointing, and further with Unsloth offloading the checkpoints', () => {
    const base = { micro_batch_size: 4 };
    const none = evaluatePlan(requestFor('llama-3.1-8b', { ...base, gradient_checkpointing: false }));
    const checkpointed = evaluatePlan(requestFor('llama-3.1-8b', base));
    const offloaded = evaluatePlan(requestFor('llama-3.1-8b', { ...base, backend: 'unsloth' }));
    expect(checkpointed.breakdown.activations! * 5).toBeLessThan(none.breakdown.activations!);
    expect(offloaded.breakdown.activations!).toBeLessThan(checkpointed.breakdown.activations!);
  });

  it('scales activations and logits linearly with micro-batch × sequence', () => {
    const one = evaluatePlan(requestFor('llama-3.2-1b', { micro_batch_size: 1 }));
    const four = evaluatePlan(requestFor('llama-3.2-1b', { micro_batch_size: 4 }));
    const longer = evaluatePlan(requestFor('llama-3.2-1b', { micro_batch_size: 2, sequence_length: 4096 }));
    expect(four.breakdown.logits_and_loss).toBeCloseTo(4 * one.breakdown.logits_and_loss!, 2);
    expect(longer.breakdown.logits_and_loss).toBeCloseTo(four.breakdown.logits_and_loss!, 2);
    expect(four.breakdown.activations).toBeCloseTo(4 * one.breakdown.activations!, 2);
  });

  it('charges the logits by vocabulary: Unsloth chunks them, transformers materialises FP32 copies', () => {
    const hf = evaluatePlan(requestFor('llama-3.2-1b', { micro_batch_size: 4 }));
    const unsloth = evaluatePlan(requestFor('llama-3.2-1b', { micro_batch_size: 4, backend: 'unsloth' }));
    expect(unsloth.breakdown.logits_and_loss!).toBeLessThan(hf.breakdown.logits_and_loss!);
  });

  it('shards weights and adapter state across GPUs under FSDP; DDP replicas each hold the whole model', () => {
    const one = evaluatePlan(requestFor('llama-3.1-70b', { quantization: '4bit', device: { gpu: 'rtx-4090', count: 1 } }));
    const four = evaluatePlan(requestFor('llama-3.1-70b', { quantization: '4bit', parallelism: 'fsdp', device: { gpu: 'rtx-4090', count: 4 } }));
    const replicas = evaluatePlan(requestFor('llama-3.1-70b', { quantization: '4bit', parallelism: 'ddp', device: { gpu: 'rtx-4090', count: 4 } }));
    expect(four.breakdown.embeddings_and_head).toBeCloseTo(one.breakdown.embeddings_and_head! / 4, 2);
    expect(four.breakdown.lora_parameters).toBeCloseTo(one.breakdown.lora_parameters! / 4, 2);
    expect(four.breakdown.optimizer_state).toBeCloseTo(one.breakdown.optimizer_state! / 4, 2);
    // A quarter of every layer, plus the two layers gathered whole around the one computing.
    expect(four.breakdown.base_weights!).toBeLessThan(one.breakdown.base_weights! / 3);
    expect(four.breakdown.base_weights!).toBeGreaterThan(one.breakdown.base_weights! / 4);
    // The activations are each GPU's own micro-batch's either way.
    expect(four.breakdown.activations).toBe(one.breakdown.activations);
    expect(replicas.breakdown).toEqual(one.breakdown);
    // The backend no longer implies the sharding: a request that does not say FSDP is replicas.
    expect(evaluatePlan(requestFor('llama-3.1-70b', { quantization: '4bit', device: { gpu: 'rtx-4090', count: 4 } })).breakdown).toEqual(replicas.breakdown);
  });

  it('splits a CPU between its processes: each gets its share of the RAM and of the cores', () => {
    const cpu = { kind: 'cpu' as const, name: 'test', memory_gib: 16, count: 8 };
    const single = evaluatePlan(requestFor('smollm2-135m', { device: cpu, gradient_checkpointing: false }));
    const two = evaluatePlan(requestFor('smollm2-135m', { device: cpu, gradient_checkpointing: false, parallelism: 'ddp', cpu_processes: 2 }));
    expect(two.available_gib).toBeCloseTo(single.available_gib / 2, 2);
    expect(two.breakdown).toEqual(single.breakdown);
    expect(two.effective_batch_size).toBe(2 * single.effective_batch_size);
    // The processes add no cores: together they train as fast as two runs on four cores each.
    const halfMachine = evaluatePlan(requestFor('smollm2-135m', { device: { ...cpu, count: 4 }, gradient_checkpointing: false }));
    expect(two.tokens_per_s).toBeCloseTo(2 * halfMachine.tokens_per_s, 1);
    expect(two.step_seconds).toBe(halfMachine.step_seconds);
    expect(two.notes).toContain('2 CPU processes share the 8 cores and the RAM: each trains with 4 cores in 7.2 GiB');
  });

  it('adds the CUDA context on a GPU and the Python runtime on a CPU', () => {
    const gpu = evaluatePlan(requestFor('smollm2-135m'));
    const cpu = evaluatePlan(requestFor('smollm2-135m', { device: { kind: 'cpu', name: 'test', memory_gib: 16, count: 2 }, gradient_checkpointing: false }));
    expect(gpu.breakdown.runtime_context).toBeGreaterThan(0);
    expect(cpu.breakdown.runtime_context).toBeGreaterThan(0);
    expect(cpu.available_gib).toBeLessThan(16);
    // FP32 on a CPU: twice the bytes of the BF16 weights.
    expect(cpu.breakdown.embeddings_and_head).toBeCloseTo(2 * gpu.breakdown.embeddings_and_head!, 3);
  });

  it('refuses what a CPU cannot run: Unsloth, bitsandbytes quantisation and 8-bit optimizers', () => {
    const cpu = { kind: 'cpu' as const, name: 'test', memory_gib: 64, count: 8 };
    const plan = evaluatePlan(requestFor('smollm2-135m', { device: cpu, backend: 'unsloth', quantization: '4bit', optimizer: 'adamw_8bit' }));
    expect(plan.fits).toBe(false);
    expect(plan.reasons).toHaveLength(3);
  });

  it('sums the breakdown to the peak', () => {
    const plan = evaluatePlan(requestFor('qwen2.5-7b', { quantization: '4bit', micro_batch_size: 2 }));
    const sum = Object.values(plan.breakdown).reduce((total, value) => total + value, 0);
    expect(sum).toBeCloseTo(plan.peak_vram_gib, 2);
  });
});

describe('devices the worker reports', () => {
  it('plans a GPU the catalog does not know with its reported memory and a pessimistic speed, and says so', () => {
    const plan = evaluatePlan(
      requestFor('llama-3.1-8b', { quantization: '4bit', device: { kind: 'cuda', name: 'NVIDIA RTX A6000', memory_gib: 47.99, count: 1 } }),
    );
    expect(plan.available_gib).toBe(47.99);
    expect(plan.fits).toBe(true);
    expect(plan.notes.join(' ')).toMatch(/not in the GPU catalog/);
  });

  it('recognises a catalog GPU by the name torch reports', () => {
    const reported = evaluatePlan(requestFor('llama-3.1-8b', { device: { kind: 'cuda', name: 'NVIDIA H100 80GB HBM3', memory_gib: 79.19, count: 1 } }));
    const catalog = evaluatePlan(requestFor('llama-3.1-8b', { device: { gpu: 'h100' } }));
    expect(reported.notes).toEqual([]);
    expect(reported.tokens_per_s).toBe(catalog.tokens_per_s);
    expect(reported.available_gib).toBe(79.19);
  });
});

describe('where measurements show the model off', () => {
  it('says so on a GPU plan without gradient checkpointing or with Unsloth 8-bit, and only there', () => {
    const withoutCheckpointing = evaluatePlan(requestFor('llama-3.2-1b', { gradient_checkpointing: false, device: { gpu: 'h200' } }));
    expect(withoutCheckpointing.notes.join(' ')).toMatch(/without gradient checkpointing tokens\/s .* up to 34 % above/);
    const unsloth8bit = evaluatePlan(requestFor('llama-3.2-1b', { backend: 'unsloth', quantization: '8bit', device: { gpu: 'h200' } }));
    expect(unsloth8bit.notes.join(' ')).toMatch(/Unsloth 8-bit used up to 0.5 GiB more/);
    expect(evaluatePlan(requestFor('llama-3.2-1b', { backend: 'hf-peft', quantization: '8bit', device: { gpu: 'h200' } })).notes).toEqual([]);
    expect(
      evaluatePlan(
        requestFor('llama-3.2-1b', {
          gradient_checkpointing: false,
          device: { kind: 'cpu', name: 'cpu', memory_gib: 16, count: 2 },
          backend: 'hf-peft',
          quantization: 'none',
          optimizer: 'adamw_torch',
        }),
      ).notes,
    ).toEqual([]);
  });
});
