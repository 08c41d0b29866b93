import { writeFileSync } from 'node:fs';
import type { WorkerFacts } from '../../src/contract/index.ts';
import { architectureFromHuggingFaceConfig } from '../../src/planner/architecture.ts';
import { findArchitecture, planTrainingRun } from '../../src/planner/index.ts';
import { runSpecSchema } from '../../src/spec/schema.ts';

/**
 * The train requests bench/gpu/fastest_fit.py sends, built by the product's own code: the spec through the spec
 * schema (its defaults), the setup and the plan through planTrainingRun (resolveTrainingSetup, and `auto`'s
 * fastest-fit choice) on the worker facts of each card. Nothing is written by hand, so a contract or planner
 * change shows here (and in the CPU dry run that .ci/run executes) instead of on the device.
 * Usage: npx tsx bench/gpu/fastest_fit_requests.ts [out.json]   (default bench/gpu/inputs/fastest-fit-requests.json)
 */
const out = process.argv[2] ?? new URL('inputs/fastest-fit-requests.json', import.meta.url).pathname;

/** real_data.py's TINY shape: the CPU dry run's model. */
const tinyConfig = {
  model_type: 'llama',
  hidden_size: 64,
  intermediate_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 16,
  vocab_size: 49152,
  tie_word_embeddings: false,
};
const llama8b = findArchitecture('llama-3.1-8b');
if (llama8b === undefined) throw new Error('llama-3.1-8b is missing from the architecture catalog');

const cuda = (name: string, memory_gib: number): WorkerFacts => ({
  device: { kind: 'cuda', name, memory_gib, count: 1 },
  cuda_bf16_supported: true,
  unsloth_importable: true,
  bitsandbytes_importable: true,
});
/** Each card the device may lend, by the name torch reports, and the CPU of the dry run. */
const targets = {
  h100: { facts: cuda('NVIDIA H100 80GB HBM3', 79.65), architecture: llama8b, sequence: 2048, micro: 8, every: 10 },
  h200: { facts: cuda('NVIDIA H200', 139.8), architecture: llama8b, sequence: 2048, micro: 8, every: 10 },
  cpu: {
    facts: {
      device: { kind: 'cpu', name: 'dry run', memory_gib: 8, count: 2, cores: 2 },
      cuda_bf16_supported: false,
      unsloth_importable: false,
      bitsandbytes_importable: false,
    },
    architecture: architectureFromHuggingFaceConfig(tinyConfig, 'tiny'),
    sequence: 256,
    micro: 2,
    every: 4,
  },
} satisfies Record<string, { facts: WorkerFacts; architecture: unknown; sequence: number; micro: number; every: number }>;

/** `auto` and the two settings it chooses between, for each precision. */
const variants = { auto: 'auto', 'checkpointing-on': true, 'checkpointing-off': false } as const;

const requests = Object.fromEntries(
  Object.entries(targets).map(([target, { facts, architecture, sequence, micro, every }]) => [
    target,
    Object.fromEntries(
      (facts.device.kind === 'cuda' ? (['4bit', 'none'] as const) : (['none'] as const)).map((quantization) => [
        quantization,
        Object.fromEntries(
          Object.entries(variants).map(([variant, gradientCheckpointing]) => {
            const spec = runSpecSchema.parse({
              model: { source: architecture.name, max_seq_length: sequence },
              dataset: { path: 'train.jsonl', overlong: 'truncate' },
              lora: { r: 64, alpha: 64 },
              train: { micro_batch_size: micro, learning_rate: 1e-4, warmup_steps: 2, gradient_checkpointing: gradientCheckpointing, packing: true },
              checkpoint: { every_steps: every, keep_last: 2 },
              validation: { max_rows: 8 },
              device: { quantization },
            });
            const { setup, plan } = planTrainingRun({ spec, worker: facts, architecture, tokens: {} });
            const allocated = plan.peak_vram_gib - (plan.breakdown.runtime_context ?? 0) - (plan.breakdown.allocator_slack ?? 0);
            return [
              variant,
              {
                spec,
                setup,
                plan: {
                  fits: plan.fits,
                  peak_vram_gib: plan.peak_vram_gib,
                  peak_allocated_gib: Math.round(allocated * 1000) / 1000,
                  tokens_per_s: plan.tokens_per_s,
                  auto_choice: plan.auto_choice ?? null,
                },
              },
            ];
          }),
        ),
      ]),
    ),
  ]),
);
writeFileSync(out, `${JSON.stringify({ command: 'npx tsx bench/gpu/fastest_fit_requests.ts', requests }, null, 2)}\n`);
