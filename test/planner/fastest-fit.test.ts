/**
 * `gradient_checkpointing: auto` and `micro_batch_size: auto` are the fastest setting that fits the card the run is planned for: decided by the
 * planner (planTrainingRun), shown in the plan with what it was chosen over, and undone step by step when CUDA
 * runs out of memory anyway (replanAfterOutOfMemory: checkpointing on first, then a smaller micro-batch).
 */
import { describe, expect, it } from 'vitest';
import { replanAfterOutOfMemory } from '../../activities/index.ts';
import type { ModelFacts, TokenStatistics, WorkerFacts } from '../../src/contract/index.ts';
import { findArchitecture } from '../../src/planner/catalog/architectures.ts';
import { planTrainingRun, type PlannedSpec } from '../../src/planner/run.ts';
import { runSpecSchema, type RunSpec } from '../../src/spec/schema.ts';

const h100: WorkerFacts = {
  device: { kind: 'cuda', name: 'NVIDIA H100 80GB HBM3', memory_gib: 79.65, count: 1 },
  cuda_bf16_supported: true,
  unsloth_importable: true,
  bitsandbytes_importable: true,
};
const llama8b = findArchitecture('llama-3.1-8b');
if (llama8b === undefined) throw new Error('llama-3.1-8b is in the catalog');

function specWith(train: Record<string, unknown>, device: Record<string, unknown> = {}): RunSpec {
  return runSpecSchema.parse({
    model: { source: 'llama-3.1-8b', max_seq_length: 2048 },
    dataset: { path: '/data/train.jsonl' },
    lora: { r: 64 },
    train,
    device: { quantization: '4bit', ...device },
  });
}

function plan(spec: PlannedSpec, worker: WorkerFacts = h100) {
  return planTrainingRun({ spec, worker, architecture: llama8b as NonNullable<typeof llama8b>, tokens: {} });
}

describe('gradient_checkpointing auto', () => {
  it('turns checkpointing off on an 80 GB card where micro-batch 8 of the 8B in 4-bit fits without it, and says what it rejected', () => {
    const { setup, plan: chosen } = plan(specWith({ micro_batch_size: 8 }));
    expect(setup.gradient_checkpointing).toBe(false);
    expect(chosen.fits).toBe(true);
    const choice = chosen.auto_choice;
    expect(choice?.fields).toEqual(['gradient_checkpointing']);
    expect(choice?.chosen).toMatchObject({ gradient_checkpointing: false, fits: true, tokens_per_s: chosen.tokens_per_s, peak_vram_gib: chosen.peak_vram_gib });
    expect(choice?.rejected).toHaveLength(1);
    const [rejected] = choice?.rejected ?? [];
    expect(rejected).toMatchObject({ gradient_checkpointing: true, fits: true });
    // Recomputing every layer costs about a third of the speed; it needs a fraction of the memory.
    expect(chosen.tokens_per_s / (rejected?.tokens_per_s ?? Number.NaN)).toBeGreaterThan(1.3);
    expect(rejected?.peak_vram_gib).toBeLessThan(chosen.peak_vram_gib / 3);
    expect(rejected?.why).toMatch(/^slower: /);
  });

  it('keeps checkpointing on where the activations of every layer do not fit, and says why', () => {
    const { setup, plan: chosen } = plan(specWith({ micro_batch_size: 8 }, { gpu: 'rtx-4090' }));
    expect(setup.gradient_checkpointing).toBe(true);
    expect(chosen.fits).toBe(true);
    expect(chosen.auto_choice?.rejected[0]).toMatchObject({ gradient_checkpointing: false, fits: false });
    expect(chosen.auto_choice?.rejected[0]?.why).toMatch(/^does not fit: /);
  });

  it('plans the memory-safest where nothing fits, so the plan fails with the changes that would make it fit', () => {
    const { setup, plan: chosen } = plan(specWith({ micro_batch_size: 64 }, { gpu: 'rtx-4090', quantization: 'none' }));
    expect(setup.gradient_checkpointing).toBe(true);
    expect(chosen.fits).toBe(false);
    expect(chosen.suggestions.length).toBeGreaterThan(0);
    expect(chosen.auto_choice?.reason).toMatch(/no alternative fits/);
  });

  it('leaves an explicit choice alone and weighs nothing', () => {
    for (const explicit of [true, false]) {
      const { setup, plan: chosen } = plan(specWith({ micro_batch_size: 8, gradient_checkpointing: explicit }));
      expect(setup.gradient_checkpointing).toBe(explicit);
      expect(chosen.auto_choice).toBeUndefined();
    }
  });
});

describe('micro_batch_size auto', () => {
  it('weighs every split of train.batch_size with checkpointing off and on, and takes the fastest that fits: micro-batch 8 off on an 80 GB card', () => {
    const { setup, plan: chosen } = plan(specWith({ micro_batch_size: 'auto', batch_size: 8 }));
    expect(setup).toMatchObject({ micro_batch_size: 8, gradient_accumulation_steps: 1, gradient_checkpointing: false });
    const choice = chosen.auto_choice;
    expect(choice?.fields).toEqual(['gradient_checkpointing', 'micro_batch_size']);
    expect(choice?.chosen).toMatchObject({ micro_batch_size: 8, gradient_accumulation_steps: 1, gradient_checkpointing: false, fits: true });
    const weighed = [choice!.chosen, ...choice!.rejected].map((alternative) => [
      alternative.micro_batch_size,
      alternative.gradient_accumulation_steps,
      alternative.gradient_checkpointing,
    ]);
    expect(weighed).toEqual([
      [8, 1, false],
      [8, 1, true],
      [4, 2, false],
      [4, 2, true],
      [2, 4, false],
      [2, 4, true],
      [1, 8, false],
      [1, 8, true],
    ]);
    for (const rejected of choice!.rejected) expect(rejected.tokens_per_s).toBeLessThanOrEqual(choice!.chosen.tokens_per_s);
    expect(chosen.effective_batch_size).toBe(8);
  });

  it('on a 24 GB card takes the fastest split that fits, the effective batch kept, and says why each other was rejected', () => {
    const { setup, plan: chosen } = plan(specWith({ micro_batch_size: 'auto', batch_size: 8 }, { gpu: 'rtx-4090' }));
    expect(chosen.fits).toBe(true);
    expect(setup.micro_batch_size * setup.gradient_accumulation_steps).toBe(8);
    const choice = chosen.auto_choice!;
    const fittingFaster = choice.rejected.filter((rejected) => rejected.fits && rejected.tokens_per_s > choice.chosen.tokens_per_s);
    expect(fittingFaster).toEqual([]);
    // Micro-batch 8 without checkpointing holds every layer's activations of 8 × 2048 tokens: more than 24 GB.
    expect(choice.rejected.find((rejected) => rejected.micro_batch_size === 8 && !rejected.gradient_checkpointing)?.why).toMatch(/^does not fit: /);
  });

  it('with checkpointing fixed, weighs the splits only; with both fixed, weighs nothing', () => {
    const { setup, plan: chosen } = plan(specWith({ micro_batch_size: 'auto', batch_size: 4, gradient_checkpointing: true }));
    expect(chosen.auto_choice?.fields).toEqual(['micro_batch_size']);
    expect(setup.gradient_checkpointing).toBe(true);
    expect([chosen.auto_choice!.chosen, ...chosen.auto_choice!.rejected].every((alternative) => alternative.gradient_checkpointing)).toBe(true);
    expect(chosen.auto_choice!.rejected).toHaveLength(2);
    expect(plan(specWith({ micro_batch_size: 2, batch_size: 4, gradient_checkpointing: true })).plan.auto_choice).toBeUndefined();
  });

  it('is the default: an effective batch of 4, split by the planner', () => {
    const { setup, plan: chosen } = plan(specWith({}));
    expect(setup.micro_batch_size * setup.gradient_accumulation_steps).toBe(4);
    expect(chosen.auto_choice?.fields).toEqual(['gradient_checkpointing', 'micro_batch_size']);
  });
});

describe('out of memory with auto', () => {
  const split = {
    rows: 4000,
    total_tokens: 400_000,
    trainable_tokens: 300_000,
    max: 2048,
    rows_trained: 4000,
    tokens_trained: 400_000,
    length_histogram: [{ up_to: 2048, rows: 4000, tokens: 400_000 }],
  };
  const tokens: TokenStatistics = { train: split, val: split, train_tokens_uri: 'file:///tokens/train', val_tokens_uri: 'file:///tokens/val' };
  const model: ModelFacts = {
    ...h100,
    model_uri: 'file:///models/llama-3.1-8b',
    source: 'llama-3.1-8b',
    tokenizer_identity: '0'.repeat(64),
    config: {
      model_type: 'llama',
      hidden_size: 4096,
      intermediate_size: 14336,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      head_dim: 128,
      vocab_size: 128256,
      tie_word_embeddings: false,
    },
  };

  it('turns checkpointing on first (same micro-batch), then shrinks the micro-batch keeping the effective batch', async () => {
    const spec = specWith({ micro_batch_size: 8, gradient_accumulation_steps: 2 });
    const { setup } = plan(spec);
    expect(setup.gradient_checkpointing).toBe(false);
    const first = await replanAfterOutOfMemory({ spec, model, tokens, setup });
    expect(first).toMatchObject({ setup: { ...setup, micro_batch_size: 8, gradient_accumulation_steps: 2, gradient_checkpointing: true } });
    expect(first?.plan.peak_vram_gib).toBeLessThan(20);
    if (first === null) throw new Error('a replan');
    // The spec stays as the user wrote it: the replanned split travels in the setup alone.
    const second = await replanAfterOutOfMemory({ spec, model, tokens, setup: first.setup });
    expect(second).toMatchObject({ setup: { ...first.setup, micro_batch_size: 4, gradient_accumulation_steps: 4 } });
  });

  it('never turns off checkpointing the spec asked for, nor turns on what it turned off: only the micro-batch shrinks', async () => {
    const spec = specWith({ micro_batch_size: 8, gradient_checkpointing: false });
    const { setup } = plan(spec);
    const replan = await replanAfterOutOfMemory({ spec, model, tokens, setup });
    expect(replan).toMatchObject({ setup: { micro_batch_size: 4, gradient_accumulation_steps: 2, gradient_checkpointing: false } });
  });
});

describe('one packing rule', () => {
  it("plans a packed run's steps from the packs token_statistics counted with the train activity's rule, at max_seq_length", () => {
    const spec = specWith({ micro_batch_size: 8, gradient_accumulation_steps: 2, epochs: 2 });
    const lengths = [{ up_to: 700, rows: 10_000, tokens: 1_000_000 }];
    const {
      setup,
      request,
      plan: planned,
    } = planTrainingRun({
      spec,
      worker: h100,
      architecture: llama8b as NonNullable<typeof llama8b>,
      tokens: { longest_row: 700, dataset_tokens: 1_000_000, lengths, packed_sequences: 517 },
    });
    expect(setup.packing).toBe(true);
    // Packs fill max_seq_length, not the longest row: the peak is planned at the length the activity trains.
    expect(request.sequence_length).toBe(2048);
    expect(planned.run_time).toMatchObject({ packing: true, sequences: 517, steps: 2 * Math.ceil(517 / 16) });
  });
});
