import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { evaluatePlan, findArchitecture, type LengthHistogram } from '../../src/planner/index.ts';

/**
 * What the planner predicts for the runs `bench/gpu/real_data.py` measured (Llama-3.1-8B, Unsloth, r=64 on all
 * linear layers, sequence 2048, micro-batch 8, gradient checkpointing, 8-bit AdamW, one H200), on the runs' own
 * length histograms (bench/gpu/results/real-data-lengths.json, what token_statistics returns for those rows) with
 * their packing and max_steps: the ETA `tuneflow plan` and the plan stage give for that run. A pure function of
 * the committed inputs, so it runs on any machine; bench/gpu/summarise_real_data.py scores it against the measured
 * wall times.
 * Usage: npx tsx bench/gpu/plan_real_data.ts > bench/gpu/results/real-data-plans.json
 */
const architecture = findArchitecture('llama-3.1-8b');
if (architecture === undefined) throw new Error('llama-3.1-8b is missing from the architecture catalog');
const lengths = JSON.parse(readFileSync(new URL('results/real-data-lengths.json', import.meta.url), 'utf8')) as {
  length_histogram: Record<'real' | 'fixed', LengthHistogram>;
};
// real_data.py's TUNEFLOW_RUNS: (name, data, packing, max_steps).
const runs = [
  ['fixed-unpacked', 'fixed', false, 16],
  ['fixed-packed', 'fixed', true, 12],
  ['real-packed', 'real', true, undefined],
  ['real-unpacked', 'real', false, 80],
] as const;

const plans = Object.fromEntries(
  (['4bit', 'none'] as const).map((quantization) => [
    quantization,
    Object.fromEntries(
      runs.map(([name, data, packing, maxSteps]) => {
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
          epochs: 1,
          lengths: lengths.length_histogram[data],
          packing,
          ...(maxSteps === undefined ? {} : { max_steps: maxSteps }),
        });
        return [name, { full_length_tokens_per_s: plan.tokens_per_s, peak_vram_gib: plan.peak_vram_gib, fits: plan.fits, run_time: plan.run_time }];
      }),
    ),
  ]),
);
const commit = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
process.stdout.write(
  `${JSON.stringify({ command: 'npx tsx bench/gpu/plan_real_data.ts > bench/gpu/results/real-data-plans.json', planner_commit: commit, plans }, null, 2)}\n`,
);
