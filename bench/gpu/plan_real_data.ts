import { writeFileSync } from 'node:fs';
import { evaluatePlan, findArchitecture } from '../../src/planner/index.ts';

/**
 * What the planner predicts for the configurations `bench/gpu/real_data.py` measures (Llama-3.1-8B, Unsloth, r=64 on
 * all linear layers, sequence 2048, micro-batch 8, gradient checkpointing, 8-bit AdamW, one H200). The planner's ETA is
 * `dataset_tokens / tokens_per_s` (src/planner/evaluate.ts); the benchmark applies it to the real tokens each run
 * trained, so the predicted ETA of a run is what `tuneflow plan` prints for that many tokens.
 * Usage: npx tsx bench/gpu/plan_real_data.ts > bench/gpu/results/real-data-plans.json
 */
const architecture = findArchitecture('llama-3.1-8b');
if (architecture === undefined) throw new Error('llama-3.1-8b is missing from the architecture catalog');
const plans = Object.fromEntries(
  (['4bit', 'none'] as const).map((quantization) => {
    const plan = evaluatePlan({
      architecture,
      device: { gpu: 'h200' },
      backend: 'unsloth',
      quantization,
      lora_rank: 64,
      target_modules: 'all-linear',
      sequence_length: 2048,
      micro_batch_size: 8,
      gradient_accumulation_steps: 1,
      gradient_checkpointing: true,
      optimizer: 'adamw_8bit',
    });
    return [quantization, { tokens_per_s: plan.tokens_per_s, step_seconds: plan.step_seconds, peak_vram_gib: plan.peak_vram_gib, fits: plan.fits }];
  }),
);
process.stdout.write(`${JSON.stringify({ command: 'npx tsx bench/gpu/plan_real_data.ts', plans }, null, 2)}\n`);
