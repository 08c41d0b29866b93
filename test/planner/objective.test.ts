/** The planner prices DPO: two sequences per pair for the policy, the reference's forwards in time, not memory. */
import { describe, expect, it } from 'vitest';
import { planRun } from '../../src/planner/index.ts';
import { planTrainingRun } from '../../src/planner/run.ts';
import { requestFor } from './helpers.ts';

const lengths = [
  { up_to: 256, rows: 600, tokens: 120_000 },
  { up_to: 512, rows: 400, tokens: 160_000 },
];

describe('dpo in the plan', () => {
  it("keeps two sequences' activations and logits per pair: a dpo micro-batch of m is an sft micro-batch of 2m", () => {
    const sft = planRun(requestFor('llama-3.1-8b', { micro_batch_size: 4 }));
    const dpo = planRun(requestFor('llama-3.1-8b', { micro_batch_size: 2, objective: 'dpo' }));
    expect(dpo.breakdown.activations).toBe(sft.breakdown.activations);
    expect(dpo.breakdown.logits_and_loss).toBe(sft.breakdown.logits_and_loss);
    expect(dpo.peak_vram_gib).toBe(sft.peak_vram_gib);
    // The same pairs-per-step batch, counted in pairs.
    expect(dpo.effective_batch_size).toBe(2);
  });

  it("adds the reference's forward passes to the step time, not to memory", () => {
    const policyOnly = planRun(requestFor('llama-3.1-8b', { micro_batch_size: 4 }));
    const dpo = planRun(requestFor('llama-3.1-8b', { micro_batch_size: 2, objective: 'dpo' }));
    // With gradient checkpointing a forward is a quarter of the training micro-step.
    expect(dpo.step_seconds / policyOnly.step_seconds).toBeCloseTo(1.25, 2);
    expect(dpo.tokens_per_s / policyOnly.tokens_per_s).toBeCloseTo(1 / 1.25, 2);
    expect(dpo.notes.join('\n')).toMatch(/dpo: a micro-batch of 2 pairs trains 4 sequences.*\+25 % time/);
    expect(dpo.notes.join('\n')).toContain('packing is off');
  });

  it('counts steps in pairs and times them as pairs of sequences on the real lengths', () => {
    // Long rows, so that the step is compute-bound (short ones are bound by per-step overhead, whatever the rows).
    const longRows = [
      { up_to: 2048, rows: 600, tokens: 1_000_000 },
      { up_to: 4096, rows: 400, tokens: 1_400_000 },
    ];
    const base = { micro_batch_size: 2, gradient_accumulation_steps: 4, sequence_length: 4096, lengths: longRows, epochs: 1, packing: false } as const;
    const sft = planRun(requestFor('llama-3.1-8b', base));
    const dpo = planRun(requestFor('llama-3.1-8b', { ...base, objective: 'dpo' }));
    expect(dpo.run_time?.steps).toBe(sft.run_time?.steps);
    expect(dpo.run_time?.steps).toBe(Math.ceil(1000 / 8));
    // Twice the sequences at the same widths, plus the reference: well over twice the step time.
    expect(dpo.run_time!.step_seconds / sft.run_time!.step_seconds).toBeGreaterThan(2);
    expect(dpo.run_time!.eta_seconds).toBeGreaterThan(sft.run_time!.eta_seconds);
  });

  it('refuses what does not fit, with suggestions, where sft at the same micro-batch would fit', () => {
    const settings = { device: { gpu: 'rtx-4090' }, micro_batch_size: 8, sequence_length: 4096, gradient_checkpointing: false } as const;
    const dpo = planRun(requestFor('llama-3.2-1b', { ...settings, objective: 'dpo' }));
    expect(dpo.fits).toBe(false);
    expect(dpo.suggestions.length).toBeGreaterThan(0);
    expect(dpo.suggestions[0]?.fits).toBe(true);
    const halved = planRun(requestFor('llama-3.2-1b', { ...settings, micro_batch_size: 16 }));
    expect(halved.peak_vram_gib).toBe(dpo.peak_vram_gib);
  });

  it('plans a dpo spec through planTrainingRun: the objective reaches the request and packing is off', () => {
    const planned = planTrainingRun({
      spec: {
        model: { max_seq_length: 512 },
        lora: { r: 16, target_modules: 'all-linear' },
        train: {
          objective: { kind: 'dpo', beta: 0.1, loss_type: 'sigmoid', label_smoothing: 0 },
          micro_batch_size: 2,
          gradient_accumulation_steps: 1,
          epochs: 1,
          optimizer: 'auto',
          gradient_checkpointing: 'auto',
          packing: 'auto',
        },
        device: { type: 'auto', gpu: 'auto', gpu_count: 1, backend: 'auto', quantization: 'none', parallelism: 'auto', cpu_processes: 1 },
      },
      worker: {
        device: { kind: 'cuda', name: 'NVIDIA H100 80GB HBM3', memory_gib: 79.2, count: 1 },
        cuda_bf16_supported: true,
        unsloth_importable: true,
        bitsandbytes_importable: true,
      },
      architecture: requestFor('llama-3.2-1b').architecture,
      tokens: { longest_row: 400, lengths },
    });
    expect(planned.request.objective).toBe('dpo');
    // Unsloth would pack SFT here; DPO trains unpacked.
    expect(planned.setup.backend).toBe('unsloth');
    expect(planned.setup.packing).toBe(false);
    expect(planned.plan.run_time?.packing).toBe(false);
  });
});
